"""Pretrained ``keras.applications`` networks as the feature extractor of the classifier.

Our ``preprocess()`` gives pixels in [0, 1]; every keras.applications model expects 0-255
and its own ``preprocess_input`` scaling. Both happen inside the Keras model, so the
logged model and serving feed it exactly what training did.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import keras

WEIGHTS_SUFFIX = ".weights.h5"
# The smallest input side each network accepts; every other one accepts 32 pixels.
MINIMUM_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
DEFAULT_MINIMUM_SIZE = 32
# The backbone's layer name in the classifier, whatever the network (keras.applications
# names them inconsistently: "MobileNetV3Small", "efficientnetv2-b0", "resnet50v2").
BACKBONE_LAYER = "backbone"


def backbone_constructor(name: str) -> Any:
    """The ``keras.applications`` function that builds the model called ``name``."""
    constructor = getattr(keras.applications, str(name), None)
    if not (str(name)[:1].isupper() and callable(constructor)):
        models = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise ValueError(
            f"train_classifier.network.backbone {name!r} is not a keras.applications "
            f"model; use null (the small CNN) or one of: {', '.join(models)}"
        )
    return constructor


def check_input_size(name: str, size: int, channels: int) -> None:
    """Refuse images that the backbone called ``name`` cannot take."""
    minimum = MINIMUM_SIZE.get(name, DEFAULT_MINIMUM_SIZE)
    if size < minimum:
        raise ValueError(
            f"image.size {size} is below the minimum of {name} "
            f"(train_classifier.network.backbone): use at least {minimum}"
        )
    if channels != 3:  # noqa: PLR2004
        raise ValueError(
            f"image.channels {channels}: train_classifier.network.backbone {name} "
            "takes RGB images; set image.channels to 3"
        )


def scale_inputs(name: str, images: keras.KerasTensor) -> keras.KerasTensor:
    """[0, 1] pixels scaled as the backbone expects: 0-255, then its preprocess_input.

    MobileNetV3, EfficientNetV2 and ConvNeXt scale inside the network themselves (their
    preprocess_input does nothing); the others need their module's preprocess_input.
    """
    module_name = backbone_constructor(name).__module__.rsplit(".", 1)[-1]
    module = getattr(keras.applications, module_name)
    return module.preprocess_input(images * 255.0)


def pretrained_backbone(
    name: str, size: int, weights: str | None, options: dict[str, Any]
) -> keras.Model:
    """The backbone without its classification top, with ``weights`` loaded.

    It is named ``BACKBONE_LAYER``, so that fine-tuning finds it by name.
    """
    constructor = backbone_constructor(name)
    shape = (size, size, 3)
    # Random or ImageNet weights come from Keras ("imagenet": downloaded once into
    # its cache, ~/.keras/models); a weights file is loaded below.
    from_keras = weights is None or weights == "imagenet"
    backbone = constructor(
        include_top=False,
        weights=weights if from_keras else None,
        input_shape=shape,
        **options,
    )
    # Renamed, not built with name=: EfficientNetV2 looks up its blocks by its name.
    backbone.name = BACKBONE_LAYER
    if from_keras:
        return backbone
    with local_copy(weights) as path:
        try:
            backbone.load_weights(path)
        except (ValueError, KeyError) as error:
            raise ValueError(
                f"train_classifier.network.weights {weights!r} does not fit {name} "
                f"without its top at {size} px with options {options}: {error}"
            ) from error
    return backbone


@contextlib.contextmanager
def local_copy(weights: str) -> Iterator[str]:
    """A local path of the weights file: itself, or a temporary copy of an fsspec URL."""
    if not str(weights).endswith(WEIGHTS_SUFFIX):
        raise ValueError(
            f"train_classifier.network.weights {weights!r} must be 'imagenet', null, "
            f"or the path or URL of a '{WEIGHTS_SUFFIX}' file"
        )
    protocol, _ = fsspec.core.split_protocol(weights)
    if protocol in (None, "file", "local"):
        path = Path(fsspec.core.strip_protocol(weights))
        if not path.is_file():
            raise ValueError(f"train_classifier.network.weights file not found: {path}")
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="weights-") as folder:
        path = Path(folder, Path(weights).name)
        try:
            with fsspec.open(weights, "rb") as source, path.open("wb") as target:
                shutil.copyfileobj(source, target)
        except FileNotFoundError as error:
            raise ValueError(
                f"train_classifier.network.weights file not found: {weights}"
            ) from error
        yield str(path)


def find_backbone(model: keras.Model) -> keras.Model:
    """The pretrained network inside the classifier (the augmentation block is another
    nested Keras model: the backbone is found by its name)."""
    return model.get_layer(BACKBONE_LAYER)


def freeze(backbone: keras.Model) -> None:
    """Train the new head only: the backbone's weights stay as loaded."""
    backbone.trainable = False


def unfreeze_top(backbone: keras.Model, layer_count: int) -> None:
    """Let the top ``layer_count`` layers train, except BatchNormalization layers.

    As in Keras's fine-tuning examples, batch normalization keeps its statistics and
    weights: the backbone is also called with ``training=False``.
    """
    backbone.trainable = True
    for index, layer in enumerate(backbone.layers):
        in_top = index >= len(backbone.layers) - layer_count
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = in_top and not is_batch_norm
