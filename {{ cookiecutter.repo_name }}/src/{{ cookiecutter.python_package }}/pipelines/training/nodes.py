"""Build the Keras network from parameters and train it on streamed image batches."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image
from sklearn.utils.class_weight import compute_class_weight

from {{ cookiecutter.python_package }} import (
    backbones,
)
from {{ cookiecutter.python_package }}.acceleration import (
    build_with_precision,
    jit_compile,
)
from {{ cookiecutter.python_package }}.input_pipeline import (
    image_batches,
)
from {{ cookiecutter.python_package }}.mlflow_callbacks import (
    MlflowEpochMetrics,
)

logger = logging.getLogger(__name__)


def build_model(
    num_classes: int, size: int, channels: int, params: dict[str, Any]
) -> keras.Model:
    """The small CNN, or a pretrained backbone, with augmentation and a softmax head."""
    network = params["network"]
    inputs = keras.Input(shape=(size, size, channels), name="image")
    x = inputs
    augmentation = _augmentation(params["augmentation"])
    if augmentation.layers:  # Keras cannot build an empty Sequential
        x = augmentation(x)
    if network["backbone"] is None:
        x = _small_cnn(x, network)
    else:
        x = _pretrained_features(x, size, channels, network)
    x = keras.layers.Dropout(network["dropout"])(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name="classifier")


def _augmentation(params: dict[str, Any]) -> keras.Sequential:
    """Random transforms that Keras applies in training only, never at inference."""
    layers = []
    if params["flip"] != "none":
        layers.append(keras.layers.RandomFlip(params["flip"]))
    if params["rotation"]:
        layers.append(keras.layers.RandomRotation(params["rotation"]))
    if params["zoom"]:
        layers.append(keras.layers.RandomZoom(params["zoom"]))
    return keras.Sequential(layers, name="augmentation")


def _small_cnn(x: keras.KerasTensor, network: dict[str, Any]) -> keras.KerasTensor:
    """Convolution blocks, then each feature map's mean and maximum, a dense layer."""
    for filters in network["conv_filters"]:
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    # Unlike Flatten, pooling keeps the head's size independent of the image size.
    # The mean suits textures, the maximum shapes: fastai's head concatenates both.
    x = keras.layers.Concatenate(name="pooled")(
        [
            keras.layers.GlobalAveragePooling2D()(x),
            keras.layers.GlobalMaxPooling2D()(x),
        ]
    )
    return keras.layers.Dense(network["dense_units"], activation="relu")(x)


def _pretrained_features(
    x: keras.KerasTensor, size: int, channels: int, network: dict[str, Any]
) -> keras.KerasTensor:
    """A keras.applications backbone's pooled features, with its own input scaling."""
    name = network["backbone"]
    backbones.check_input_size(name, size, channels)
    backbone = backbones.pretrained_backbone(
        name, size, network["weights"], network["backbone_options"] or {}
    )
    backbones.freeze(backbone)
    # training=False keeps batch normalization in inference mode, even once unfrozen.
    x = backbone(backbones.scale_inputs(name, x), training=False)
    return keras.layers.GlobalAveragePooling2D()(x)


def _batches(
    raw_images: Mapping[str, Callable[[], Image.Image]],
    split: pd.DataFrame,
    class_names: list[str],
    image: dict[str, int],
    batch_size: int,
    shuffle_seed: int | None = None,
    cache_file: Path | None = None,
) -> tf.data.Dataset:
    """Stream the images of one split with their class indices."""
    class_index = {name: i for i, name in enumerate(class_names)}
    return image_batches(
        loaders=[raw_images[p] for p in split["partition"]],
        labels=[class_index[label] for label in split["label"]],
        size=image["size"],
        channels=image["channels"],
        batch_size=batch_size,
        shuffle_seed=shuffle_seed,
        cache_file=cache_file,
    )


def _cache_folder(
    image_count: int, image: dict[str, int], max_megabytes: float
) -> tempfile.TemporaryDirectory | contextlib.nullcontext:
    """A temporary folder for preprocessed images if they fit in ``max_megabytes``."""
    megabytes = image_count * image["size"] ** 2 * image["channels"] * 4 / 1e6
    if megabytes > max_megabytes:
        logger.info(
            "Decoding images every epoch: caching them would take %.0f MB, over "
            "cache_max_megabytes (%s)",
            megabytes,
            max_megabytes,
        )
        return contextlib.nullcontext()
    return tempfile.TemporaryDirectory(prefix="image-cache-")


def distribution_strategy(params: dict[str, Any]) -> tf.distribute.Strategy:
    """The tf.distribute strategy named in the parameters."""
    name = params["strategy"]
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=params["devices"])
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()  # workers from TF_CONFIG
    raise ValueError(
        f"train_classifier.distribution.strategy {name!r} is not one of "
        "'default', 'mirrored', 'multi_worker_mirrored'"
    )


def train_classifier(
    raw_images: Mapping[str, Callable[[], Image.Image]],
    train_split: pd.DataFrame,
    validation_split: pd.DataFrame,
    class_names: list[str],
    image: dict[str, int],
    params: dict[str, Any],
) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train with early stopping, then fine-tune a backbone; return the best model."""
    # Created first: a multi-worker strategy must exist before any other TF operation.
    strategy = distribution_strategy(params["distribution"])
    logger.info("Training on %d replica(s)", strategy.num_replicas_in_sync)
    keras.utils.set_random_seed(params["seed"])
    with strategy.scope():
        model = build_with_precision(
            lambda: build_model(
                len(class_names), image["size"], image["channels"], params
            ),
            params,
        )
    fit_options = {
        "class_weight": class_weights(train_split, class_names, params["class_weight"]),
        "epochs": params["epochs"],
    }
    image_count = len(train_split) + len(validation_split)
    with _cache_folder(image_count, image, params["cache_max_megabytes"]) as cache:
        train = _batches(
            raw_images,
            train_split,
            class_names,
            image,
            params["batch_size"],
            shuffle_seed=params["seed"],
            cache_file=Path(cache, "train.f32") if cache else None,
        )
        validation = _batches(
            raw_images,
            validation_split,
            class_names,
            image,
            params["batch_size"],
            cache_file=Path(cache, "validation.f32") if cache else None,
        )
        with strategy.scope():
            _compile(model, params, params["learning_rate"])
        history = _fit(model, train, validation, params, **fit_options)
        fine_tuning_epochs = params["fine_tuning"]["epochs"]
        if params["network"]["backbone"] is not None and fine_tuning_epochs:
            with strategy.scope():
                _prepare_fine_tuning(model, params)
            epochs_run = len(history["loss"])
            fine_tuned = _fit(
                model,
                train,
                validation,
                params,
                class_weight=fit_options["class_weight"],
                initial_epoch=epochs_run,
                epochs=epochs_run + fine_tuning_epochs,
            )
            history = {name: history[name] + fine_tuned[name] for name in history}
    return model, history


def class_weights(
    train_split: pd.DataFrame, class_names: list[str], mode: str | None
) -> dict[int, float] | None:
    """Per-class loss weights: ``balanced`` weighs classes inversely to their count."""
    if mode is None:
        return None
    if mode != "balanced":
        raise ValueError(
            f"train_classifier.class_weight {mode!r} is not 'balanced' or null"
        )
    class_index = {name: i for i, name in enumerate(class_names)}
    indices = train_split["label"].map(class_index).to_numpy()
    weights = compute_class_weight(
        "balanced", classes=np.arange(len(class_names)), y=indices
    )
    return {index: float(weight) for index, weight in enumerate(weights)}


def _prepare_fine_tuning(model: keras.Model, params: dict[str, Any]) -> None:
    """Unfreeze the backbone's top layers; recompile at the fine-tuning learning rate."""
    fine_tuning = params["fine_tuning"]
    logger.info(
        "Fine-tuning the top %d layers of the backbone", fine_tuning["unfreeze_layers"]
    )
    backbone = backbones.find_backbone(model)
    backbones.unfreeze_top(backbone, fine_tuning["unfreeze_layers"])
    learning_rate = params["learning_rate"] * fine_tuning["learning_rate_factor"]
    _compile(model, params, learning_rate)  # trainable changes apply once recompiled


def _compile(model: keras.Model, params: dict[str, Any], learning_rate: float) -> None:
    """Compile for integer labels with the configured optimizer."""
    model.compile(
        optimizer=keras.optimizers.get(
            {
                "class_name": params["optimizer"],
                "config": {"learning_rate": learning_rate},
            }
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile(params),
    )


def _fit(
    model: keras.Model,
    train: tf.data.Dataset,
    validation: tf.data.Dataset,
    params: dict[str, Any],
    **fit_options: Any,
) -> dict[str, list[float]]:
    """``model.fit`` with early stopping back to the best epoch; its per-epoch metrics."""
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=params["early_stopping"]["monitor"],
        patience=params["early_stopping"]["patience"],
        restore_best_weights=True,
    )
    history = model.fit(
        train,
        validation_data=validation,
        callbacks=[early_stopping, MlflowEpochMetrics(prefix="training")],
        shuffle=False,  # the input pipeline shuffles
        verbose=2,
        **fit_options,
    )
    return {
        name: [float(v) for v in values] for name, values in history.history.items()
    }
