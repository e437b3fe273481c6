"""Pretrained keras.applications backbones: weights files, input checks, two phases.

Offline: every weights file is written by the test, from a tiny MobileNetV3Small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog
from kedro.pipeline import Node, Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from {{ cookiecutter.python_package }}.backbones import (
    find_backbone,
)
from {{ cookiecutter.python_package }}.hooks import (
    ModelRegistrationHooks,
)
from {{ cookiecutter.python_package }}.keras_model import (
    KerasModelDataset,
)
from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    build_model,
    train_classifier,
)
from {{ cookiecutter.python_package }}.registration import (
    REGISTERED_MODEL_ENTRY,
    RegisteredModelDataset,
)

SIZE = 32
OPTIONS = {"alpha": 0.25, "minimalistic": True}  # a ~30k-parameter MobileNetV3Small


def write_weights(path: Path, seed: int, **options: Any) -> Path:
    """A no-top MobileNetV3Small weights file with random, recognisable weights."""
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), **options
    )
    rng = np.random.default_rng(seed)
    backbone.set_weights(
        [
            w + rng.normal(0, 0.01, w.shape).astype(w.dtype)
            for w in backbone.get_weights()
        ]
    )
    backbone.save_weights(path)
    return path


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    return write_weights(tmp_path / "mobilenet.weights.h5", seed=1, **OPTIONS)


@pytest.fixture
def backbone_params(parameters: dict[str, Any], weights_file: Path) -> dict[str, Any]:
    """train_classifier parameters for the tiny MobileNetV3Small and its weights file."""
    params = parameters["train_classifier"]
    params["network"].update(
        backbone="MobileNetV3Small",
        weights=str(weights_file),
        backbone_options=dict(OPTIONS),
    )
    params.update(epochs=1)
    params["fine_tuning"].update(epochs=1, unfreeze_layers=10)
    return params


def file_weights(path: Path) -> list[np.ndarray]:
    """The weights in a backbone weights file, in the backbone's order."""
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), **OPTIONS
    )
    backbone.load_weights(path)
    return backbone.get_weights()


def test_weights_file_is_loaded(
    backbone_params: dict[str, Any], weights_file: Path
) -> None:
    """The backbone holds exactly the file's weights, frozen, in the new classifier."""
    model = build_model(3, SIZE, 3, backbone_params)
    backbone = find_backbone(model)
    for loaded, saved in zip(
        backbone.get_weights(), file_weights(weights_file), strict=True
    ):
        np.testing.assert_array_equal(loaded, saved)
    assert not backbone.trainable
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"probabilities"}


def test_backbone_scales_zero_to_one_pixels_itself(
    backbone_params: dict[str, Any],
) -> None:
    """preprocess() gives [0, 1]; the model turns it into the 0-255 the backbone expects."""
    model = build_model(3, SIZE, 3, backbone_params)
    backbone = find_backbone(model)
    images = np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)
    pooled = keras.Model(model.input, model.get_layer(index=-3).output)(images)
    expected = backbone(images * 255.0, training=False).numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(pooled), expected, rtol=1e-4, atol=1e-5)


@pytest.fixture
def shape_arrays(
    tmp_path: Path, make_image_folder, load_image_arrays, parameters: dict[str, Any]
) -> dict[str, Any]:
    """The stored arrays of 6 circles and 2 squares, and a split that holds them all.

    The tiny backbone's random features tell the shapes little apart: training mostly
    moves the model towards the common class, lowering the loss on this split.
    """
    image = parameters["image"] | {"size": SIZE, "channels": 3}
    images = make_image_folder(tmp_path / "images", {"circle": 6, "square": 2})
    arrays = load_image_arrays(images, tmp_path / "arrays", image)
    split = pd.DataFrame(
        {
            "partition": sorted(arrays),
            "label": [p.split("/")[0] for p in sorted(arrays)],
        }
    )
    return {"image_arrays": arrays, "split": split, "image": image}


def train(shape_arrays: dict[str, Any], params: dict[str, Any], validation=None):
    """train_classifier on the shape arrays, validated on ``validation`` (else the
    training split itself)."""
    split = shape_arrays["split"]
    return train_classifier(
        shape_arrays["image_arrays"],
        split,
        split if validation is None else validation,
        ["circle", "square"],
        shape_arrays["image"],
        params,
    )


@pytest.mark.parametrize(
    "augmentation",
    [
        {"flip": "none", "rotation": 0.0, "zoom": 0.0},
        {"flip": "none", "rotation": 0.1, "zoom": 0.0},
    ],
    ids=["no-augmentation", "rotation"],
)
def test_fine_tuning_trains_only_the_top_layers(
    backbone_params: dict[str, Any],
    weights_file: Path,
    shape_arrays: dict[str, Any],
    augmentation: dict[str, Any],
) -> None:
    """Phase 2 changes the top non-BatchNorm layers only; the rest keeps the file's
    weights. The augmentation block, another nested Keras model, is not the backbone."""
    backbone_params["augmentation"] = augmentation
    backbone_params["fine_tuning"]["learning_rate_factor"] = 1.0
    model, history = train(shape_arrays, backbone_params)
    assert len(history["loss"]) == 2  # one epoch per phase  # noqa: PLR2004
    assert history["kept_weights"] == [0.0, 1.0]  # the fine-tuned epoch is better
    backbone = find_backbone(model)
    saved = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), **OPTIONS
    )
    saved.load_weights(weights_file)
    top = backbone.layers[-10:]
    changed = []
    for layer, original in zip(backbone.layers, saved.layers, strict=True):
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (layer in top and not is_batch_norm), layer.name
        if any(
            not np.array_equal(a, b)
            for a, b in zip(layer.get_weights(), original.get_weights(), strict=True)
        ):
            changed.append(layer.name)
    assert changed
    assert set(changed) <= {layer.name for layer in top if layer.trainable}


def test_a_worse_fine_tuning_keeps_the_first_phase_weights(
    backbone_params: dict[str, Any], shape_arrays: dict[str, Any]
) -> None:
    """Validated on the rare class alone, every epoch of fine-tuning is worse than the
    first phase's: the model keeps that phase's weights, and the logged model's metrics
    are that epoch's (the step the registration hook sets)."""
    backbone_params["fine_tuning"].update(epochs=2, learning_rate_factor=1.0)
    backbone_params["early_stopping"]["patience"] = 5
    split = shape_arrays["split"]
    squares = split[split["label"] == "square"]
    model, history = train(shape_arrays, backbone_params, validation=squares)
    assert min(history["val_loss"][1:]) > history["val_loss"][0]
    assert history["kept_weights"] == [1.0, 0.0, 0.0]

    backbone_params["fine_tuning"]["epochs"] = 0
    first_phase, _ = train(shape_arrays, backbone_params, validation=squares)
    for kept, expected in zip(
        model.get_weights(), first_phase.get_weights(), strict=True
    ):
        np.testing.assert_allclose(kept, expected, rtol=1e-6, atol=1e-6)

    hooks = ModelRegistrationHooks()
    pipeline = tiny_pipeline_ml()
    catalog = DataCatalog(
        {REGISTERED_MODEL_ENTRY: RegisteredModelDataset(model_name="m")}
    )
    hooks.before_pipeline_run(pipeline, catalog)
    hooks.after_node_run(outputs={"training_history": history})
    assert pipeline.log_model_kwargs["step"] == 1  # epoch 0, logged at step 1


def tiny_pipeline_ml() -> PipelineML:
    """A PipelineML of one training and one inference node, for the hooks."""
    training = Pipeline(
        [Node(func=lambda: 1, inputs=None, outputs="classifier", name="train")]
    )
    inference = Pipeline(
        [
            Node(
                func=lambda images, model: images,
                inputs=["images_to_score", "classifier"],
                outputs="predictions",
                name="predict",
            )
        ]
    )
    return PipelineML(
        nodes=training.nodes, inference=inference, input_name="images_to_score"
    )


def test_unknown_backbone_names_the_parameter(backbone_params: dict[str, Any]) -> None:
    backbone_params["network"]["backbone"] = "MobileNetV9"
    with pytest.raises(
        ValueError, match=r"train_classifier\.network\.backbone 'MobileNetV9' is not"
    ):
        build_model(3, SIZE, 3, backbone_params)


def test_image_below_the_backbone_minimum_names_the_parameter(
    backbone_params: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match=r"image\.size 16 is below the minimum of"):
        build_model(3, 16, 3, backbone_params)


def test_grayscale_images_are_refused_for_a_backbone(
    backbone_params: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match=r"image\.channels 1: .* takes RGB"):
        build_model(3, SIZE, 1, backbone_params)


def test_weights_of_another_network_do_not_fit(
    backbone_params: dict[str, Any], tmp_path: Path
) -> None:
    """A file saved from a different MobileNetV3Small width is refused by name."""
    other = write_weights(tmp_path / "wide.weights.h5", seed=2, alpha=0.5)
    backbone_params["network"]["weights"] = str(other)
    with pytest.raises(
        ValueError, match=r"train_classifier\.network\.weights .* does not fit"
    ):
        build_model(3, SIZE, 3, backbone_params)


@pytest.mark.parametrize(
    ("weights", "message"),
    [("missing.weights.h5", "file not found"), ("model.h5", "must be 'imagenet'")],
)
def test_bad_weights_paths_name_the_parameter(
    backbone_params: dict[str, Any], tmp_path: Path, weights: str, message: str
) -> None:
    backbone_params["network"]["weights"] = str(tmp_path / weights)
    with pytest.raises(
        ValueError, match=rf"train_classifier\.network\.weights.*{message}"
    ):
        build_model(3, SIZE, 3, backbone_params)


def test_weights_from_an_fsspec_url(
    backbone_params: dict[str, Any], weights_file: Path
) -> None:
    """A URL is copied to a local file first: here fsspec's in-memory filesystem."""
    import fsspec  # noqa: PLC0415

    url = "memory://weights/mobilenet.weights.h5"
    with fsspec.open(url, "wb") as target:
        target.write(weights_file.read_bytes())
    backbone_params["network"]["weights"] = url
    backbone = find_backbone(build_model(3, SIZE, 3, backbone_params))
    for loaded, saved in zip(
        backbone.get_weights(), file_weights(weights_file), strict=True
    ):
        np.testing.assert_array_equal(loaded, saved)


@pytest.mark.parametrize("name", ["EfficientNetV2B0", "DenseNet121"])
def test_other_backbone_families_save_and_load_safely(
    backbone_params: dict[str, Any], tmp_path: Path, name: str
) -> None:
    """Scaling inside the network (EfficientNetV2) or by preprocess_input (DenseNet):
    both survive the .keras file that serving loads in safe mode."""
    backbone_params["network"].update(backbone=name, weights=None, backbone_options={})
    model = build_model(3, SIZE, 3, backbone_params)
    dataset = KerasModelDataset(filepath=str(tmp_path / "classifier.keras"))
    dataset.save(model)
    images = np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)
    np.testing.assert_allclose(
        dataset.load().predict_proba(images),
        np.asarray(model(images, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
