"""The hand-written Keras script that a generated project is measured against.

What a user writes without Kedro or MLflow: `keras.utils.image_dataset_from_directory`
on folders of images split by hand, the same network, optimizer and early stopping as
the project's default parameters, `fit`, `evaluate` on the test folder, save the model.

    python benchmarks/keras_baseline.py --data SPLIT_FOLDER [--epochs 40] ...

``SPLIT_FOLDER`` holds ``train/``, ``validation/`` and ``test/``, each with one folder
per class. The last line printed is a JSON object: test accuracy, epochs run, seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


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
    return parser.parse_args(argv)


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

    augmentation = []
    if args.flip != "none":
        augmentation.append(keras.layers.RandomFlip(args.flip))
    if args.rotation:
        augmentation.append(keras.layers.RandomRotation(args.rotation))
    if args.zoom:
        augmentation.append(keras.layers.RandomZoom(args.zoom))
    layers = [
        keras.Input(shape=(*size, args.channels)),
        keras.layers.Rescaling(1 / 255),
    ]
    layers += augmentation
    for filters in (int(f) for f in args.conv_filters.split(",")):
        layers.append(
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu")
        )
        layers.append(keras.layers.MaxPooling2D())
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(args.dense_units, activation="relu"),
        keras.layers.Dropout(args.dropout),
        keras.layers.Dense(len(class_names), activation="softmax"),
    ]
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.get(
            {
                "class_name": args.optimizer,
                "config": {"learning_rate": args.learning_rate},
            }
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fit_start = time.perf_counter()
    history = model.fit(
        train,
        validation_data=validation,
        epochs=args.epochs,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor=args.monitor, patience=args.patience, restore_best_weights=True
            )
        ],
        verbose=2,
    )
    fit_seconds = time.perf_counter() - fit_start
    _, accuracy = model.evaluate(test, verbose=0)
    if args.output:
        model.save(args.output)
    result = {
        "accuracy": float(accuracy),
        "epochs": len(history.history["loss"]),
        "fit_seconds": fit_seconds,
        "seconds_after_start": time.perf_counter() - start,
    }
    print(json.dumps(result))  # noqa: T201


if __name__ == "__main__":
    main()
