"""Build the Keras network from parameters and train it on the stored image arrays."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.utils.class_weight import compute_class_weight

from {{ cookiecutter.python_package }} import (
    backbones,
)
from {{ cookiecutter.python_package }}.acceleration import (
    build_with_precision,
    jit_compile,
)
from {{ cookiecutter.python_package }}.image_features import (
    ArrayLoader,
)
from {{ cookiecutter.python_package }}.input_pipeline import (
    array_batches,
    loader_errors_raised,
)
from {{ cookiecutter.python_package }}.mlflow_callbacks import (
    MlflowEpochMetrics,
)
from {{ cookiecutter.python_package }}.training_history import (
    TrainingHistory,
    flag_kept_epoch,
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
    image_arrays: Mapping[str, ArrayLoader],
    split: pd.DataFrame,
    class_names: list[str],
    image: dict[str, int],
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """The stored arrays of one split's images, batched with their class indices."""
    class_index = {name: i for i, name in enumerate(class_names)}
    return array_batches(
        loaders=[image_arrays[p] for p in split["partition"]],
        labels=[class_index[label] for label in split["label"]],
        size=image["size"],
        channels=image["channels"],
        batch_size=batch_size,
        shuffle_seed=shuffle_seed,
    )


def distribution_strategy(params: dict[str, Any]) -> tf.distribute.Strategy:
    """The tf.distribute strategy named in the parameters (checked in parameter_checks)."""
    name = params["strategy"]
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=params["devices"])
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()  # workers from TF_CONFIG
    return tf.distribute.get_strategy()


def train_classifier(
    image_arrays: Mapping[str, ArrayLoader],
    train_split: pd.DataFrame,
    validation_split: pd.DataFrame,
    class_names: list[str],
    image: dict[str, int],
    params: dict[str, Any],
) -> tuple[keras.Model, TrainingHistory]:
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
        _compile(model, params, params["learning_rate"])
    batch_size = params["batch_size"]
    fit = partial(
        _fit,
        model,
        _batches(
            image_arrays,
            train_split,
            class_names,
            image,
            batch_size,
            shuffle_seed=params["seed"],
        ),
        _batches(image_arrays, validation_split, class_names, image, batch_size),
        class_weight=class_weights(train_split, class_names, params["class_weight"]),
    )
    return model, _train_two_phases(model, strategy, fit, params)


def _train_two_phases(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    fit: Callable[..., TrainingHistory],
    params: dict[str, Any],
) -> TrainingHistory:
    """Train the head, then, with a backbone, fine-tune its top layers.

    One early stopping watches both phases: fine-tuning's weights are kept only if an
    epoch of it beats the best epoch of the first phase, else the model goes back to
    that epoch's weights.
    """
    early_stopping = EarlyStoppingAcrossFits(
        monitor=params["early_stopping"]["monitor"],
        patience=params["early_stopping"]["patience"],
        restore_best_weights=True,
    )
    history = fit(early_stopping, epochs=params["epochs"])
    fine_tuning_epochs = params["fine_tuning"]["epochs"]
    if params["network"]["backbone"] is not None and fine_tuning_epochs:
        with strategy.scope():
            _prepare_fine_tuning(model, params)
        epochs_run = len(history["loss"])
        fine_tuned = fit(
            early_stopping,
            initial_epoch=epochs_run,
            epochs=epochs_run + fine_tuning_epochs,
        )
        history = {name: history[name] + fine_tuned[name] for name in history}
    return flag_kept_epoch(history, early_stopping.kept_epoch(len(history["loss"])))


class EarlyStoppingAcrossFits(keras.callbacks.EarlyStopping):
    """Keras's EarlyStopping, its best epoch and weights carried from one fit to the next.

    Keras's own forgets them when a fit begins: fine-tuning would then end on its own
    best epoch even when that is worse than the first phase's.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.best, self.best_weights, self.best_epoch = None, None, 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        best = (self.best, self.best_weights, self.best_epoch)
        super().on_train_begin(logs)
        self.best, self.best_weights, self.best_epoch = best

    def kept_epoch(self, epochs_run: int) -> int:
        """The epoch whose weights the model holds: the best one, else the last one."""
        # No best when the monitored metric was never logged: the last weights stay.
        return epochs_run - 1 if self.best is None else self.best_epoch


def class_weights(
    train_split: pd.DataFrame, class_names: list[str], mode: str | None
) -> dict[int, float] | None:
    """Per-class loss weights: ``balanced`` weighs classes inversely to their count."""
    if mode is None:
        return None
    class_index = {name: i for i, name in enumerate(class_names)}
    indices = train_split["label"].map(class_index).to_numpy()
    weights = compute_class_weight(mode, classes=np.arange(len(class_names)), y=indices)
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
    early_stopping: keras.callbacks.EarlyStopping,
    **fit_options: Any,
) -> TrainingHistory:
    """``model.fit`` with early stopping back to the best epoch; its per-epoch metrics."""
    with loader_errors_raised():
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
