"""The hand-written Keras script that a generated project is measured against.

What a user writes without Kedro or MLflow: `keras.utils.image_dataset_from_directory`
on folders of images split by hand, the same network, optimizer and early stopping as
the project's default parameters, `fit`, `evaluate` on the test folder, save the model.
With ``--backbone``, what Keras's transfer-learning guide writes: a frozen
`keras.applications` backbone under a new pooling + softmax head, trained with early
stopping, then its top ``--unfreeze-layers`` layers (BatchNorm kept frozen, in
inference mode) fine-tuned for ``--fine-tune-epochs`` at the learning rate times
``--learning-rate-factor``.

    python benchmarks/keras_baseline.py --data SPLIT_FOLDER [--epochs 40] ...

``SPLIT_FOLDER`` holds ``train/``, ``validation/`` and ``test/``, each with one folder
per class. The last line printed is a JSON object: test accuracy, epochs run, seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="train/validation/test"
    )
    parser.add_argument("--output", type=Path, help="where to save the .keras model")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--monitor", default="val_loss")
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--conv-filters", default="16,32,64", help="comma-separated")
    parser.add_argument("--dense-units", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--flip", default="horizontal_and_vertical")
    parser.add_argument("--rotation", type=float, default=0.0)
    parser.add_argument("--zoom", type=float, default=0.0)
    parser.add_argument(
        "--pooling",
        choices=("average_and_max", "flatten", "average", "max"),
        default="average_and_max",
        help="the small CNN's head: each feature map's mean and maximum (the project's)",
    )
    parser.add_argument("--backbone", help="a keras.applications class name")
    parser.add_argument("--weights", default="none", help="imagenet, none or a file")
    parser.add_argument("--fine-tune-epochs", type=int, default=0)
    parser.add_argument("--unfreeze-layers", type=int, default=0)
    parser.add_argument("--learning-rate-factor", type=float, default=0.1)
    return parser.parse_args(argv)


def small_cnn(args: argparse.Namespace, keras: Any, inputs: Any, classes: int) -> Any:
    """Scaling to [0, 1], convolution blocks, pooling, a dense layer, dropout, softmax."""
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for filters in (int(f) for f in args.conv_filters.split(",")):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    if args.pooling == "average_and_max":
        x = keras.layers.Concatenate()(
            [
                keras.layers.GlobalAveragePooling2D()(x),
                keras.layers.GlobalMaxPooling2D()(x),
            ]
        )
    else:
        pooling = {
            "flatten": keras.layers.Flatten,
            "average": keras.layers.GlobalAveragePooling2D,
            "max": keras.layers.GlobalMaxPooling2D,
        }[args.pooling]
        x = pooling()(x)
    x = keras.layers.Dense(args.dense_units, activation="relu")(x)
    x = keras.layers.Dropout(args.dropout)(x)
    return keras.layers.Dense(classes, activation="softmax")(x)


def backbone_head(args: argparse.Namespace, keras: Any, inputs: Any, classes: int):  # noqa: ANN201
    """Keras's transfer-learning guide: the backbone's own input scaling, the backbone
    frozen and in inference mode, average pooling, dropout, softmax."""
    backbone = getattr(keras.applications, args.backbone)(
        include_top=False,
        weights=None if args.weights == "none" else args.weights,
        input_shape=tuple(inputs.shape[1:]),
    )
    backbone.trainable = False
    x = inputs
    if not args.backbone.startswith(("MobileNetV3", "EfficientNetV2")):
        # Those two scale 0-255 inputs themselves; the others need preprocess_input.
        modules = [getattr(keras.applications, n) for n in dir(keras.applications)]
        module = next(
            m
            for m in modules
            if isinstance(m, ModuleType) and hasattr(m, args.backbone)
        )
        x = keras.layers.Lambda(module.preprocess_input)(x)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(args.dropout)(x)
    return keras.layers.Dense(classes, activation="softmax")(x), backbone


def unfreeze_top(backbone: Any, count: int, keras: Any) -> None:
    """Unfreeze the top ``count`` layers of ``backbone``, BatchNorm layers excepted."""
    backbone.trainable = True
    for index, layer in enumerate(backbone.layers):
        top = index >= len(backbone.layers) - count
        batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = top and not batch_norm


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    import keras  # noqa: PLC0415  after parsing, so --help is instant
    import tensorflow as tf  # noqa: PLC0415

    keras.utils.set_random_seed(args.seed)
    size = (args.image_size, args.image_size)
    colour_mode = "rgb" if args.channels == 3 else "grayscale"  # noqa: PLR2004
    class_names = sorted(p.name for p in (args.data / "train").iterdir() if p.is_dir())

    def folder(split: str, shuffle: bool) -> tf.data.Dataset:
        return keras.utils.image_dataset_from_directory(
            args.data / split,
            class_names=class_names,
            color_mode=colour_mode,
            image_size=size,
            batch_size=args.batch_size,
            shuffle=shuffle,
            seed=args.seed,
            verbose=False,
        ).prefetch(tf.data.AUTOTUNE)

    train = folder("train", shuffle=True)
    validation = folder("validation", shuffle=False)
    test = folder("test", shuffle=False)

    inputs = keras.Input(shape=(*size, args.channels))
    x = inputs
    if args.flip != "none":
        x = keras.layers.RandomFlip(args.flip)(x)
    if args.rotation:
        x = keras.layers.RandomRotation(args.rotation)(x)
    if args.zoom:
        x = keras.layers.RandomZoom(args.zoom)(x)
    if args.backbone:
        outputs, backbone = backbone_head(args, keras, x, len(class_names))
    else:
        outputs = small_cnn(args, keras, x, len(class_names))
    model = keras.Model(inputs, outputs)

    def fit(learning_rate: float, epochs: int, initial_epoch: int = 0) -> Any:
        model.compile(
            optimizer=keras.optimizers.get(
                {
                    "class_name": args.optimizer,
                    "config": {"learning_rate": learning_rate},
                }
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        stopping = keras.callbacks.EarlyStopping(
            monitor=args.monitor, patience=args.patience, restore_best_weights=True
        )
        return model.fit(
            train,
            validation_data=validation,
            epochs=initial_epoch + epochs,
            initial_epoch=initial_epoch,
            callbacks=[stopping],
            verbose=2,
        )

    fit_start = time.perf_counter()
    history = fit(args.learning_rate, args.epochs)
    epochs = len(history.history["loss"])
    if args.backbone and args.fine_tune_epochs and args.unfreeze_layers:
        unfreeze_top(backbone, args.unfreeze_layers, keras)
        rate = args.learning_rate * args.learning_rate_factor
        epochs += len(fit(rate, args.fine_tune_epochs, epochs).history["loss"])
    fit_seconds = time.perf_counter() - fit_start
    _, accuracy = model.evaluate(test, verbose=0)
    if args.output:
        model.save(args.output)
    result = {
        "accuracy": float(accuracy),
        "epochs": epochs,
        "fit_seconds": fit_seconds,
        "seconds_after_start": time.perf_counter() - start,
    }
    print(json.dumps(result))  # noqa: T201


if __name__ == "__main__":
    main()
