"""Index the raw image files, validate them and split them for training."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from PIL import Image
from sklearn.model_selection import train_test_split

from {{ cookiecutter.python_package }}.image_folders import (
    skip_or_fail,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    TooManyPixelsError,
    check_pixel_count,
)

logger = logging.getLogger(__name__)


class InvalidImageError(ValueError):
    """A raw file that cannot be used as a training image."""


def _check_image(
    partition: str, load: Callable[[], Image.Image], max_pixels: int
) -> None:
    """Load one image fully; raise InvalidImageError naming the file if it is unusable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = load()
    except Exception as error:  # noqa: BLE001  any failure to decode makes it unusable
        reason = error.__cause__ or error  # Kedro wraps it in a multi-line DatasetError
        raise InvalidImageError(
            f"'{partition}' is not a readable image: {reason}"
        ) from error
    try:
        check_pixel_count(image.width, image.height, max_pixels)
    except TooManyPixelsError as error:
        raise InvalidImageError(f"'{partition}': {error}") from error


def index_images(
    raw_images: Mapping[str, Callable[[], Image.Image]],
    params: dict[str, Any],
    image: dict[str, int],
) -> tuple[pd.DataFrame, float]:
    """List every readable image as (partition, label) and count the files skipped.

    Partitions are ``<class>/<file>`` paths under the raw images folder; the class is
    the first folder. Unreadable files are skipped with a warning, or fail the run
    when ``on_invalid_image`` is ``fail`` (image_folders.py).
    """
    if not raw_images:
        raise InvalidImageError(
            "No images in the raw images folder (catalog entry 'raw_images', "
            "data/01_raw/images/ by default): put one folder per class there, each "
            "holding that class's images, e.g. data/01_raw/images/cat/001.jpg"
        )
    rows, skipped, seen_classes = [], 0, set()
    for partition in sorted(raw_images):
        label, _, file_name = partition.partition("/")
        try:
            if not file_name:  # e.g. a .DS_Store beside the class folders
                raise InvalidImageError(
                    f"'{partition}' is not inside a class folder "
                    "(<images folder>/<class name>/<file>)"
                )
            seen_classes.add(label)
            _check_image(partition, raw_images[partition], image["max_pixels"])
        except InvalidImageError as error:
            skip_or_fail(error, params["on_invalid_image"])
            skipped += 1
            continue
        rows.append({"partition": partition, "label": label})

    index = pd.DataFrame(rows, columns=["partition", "label"])
    _check_classes(index, seen_classes)
    if skipped:
        logger.warning(
            "Skipped %d unreadable files out of %d", skipped, len(raw_images)
        )
    return index, float(skipped)


def _check_classes(index: pd.DataFrame, seen_classes: set[str]) -> None:
    """Fail when there are no images, a class without images, or a single class."""
    if not seen_classes:
        raise InvalidImageError(
            "No images found: no class folder in the raw images folder (catalog "
            "entry 'raw_images'); add one folder of images per class"
        )
    empty = sorted(seen_classes - set(index["label"]))
    if empty:
        raise InvalidImageError(
            f"Class folder(s) {', '.join(repr(c) for c in empty)} contain no readable "
            "image; add images or remove the folder"
        )
    if len(seen_classes) < 2:  # noqa: PLR2004
        raise InvalidImageError(
            f"Only one class folder ({next(iter(seen_classes))!r}) was found: a "
            "classifier needs at least two"
        )


def list_class_names(image_index: pd.DataFrame) -> list[str]:
    """The sorted class names; a class's position is its index in the model output."""
    return sorted(image_index["label"].unique())


def split_images(
    image_index: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split the index into train, validation and test sets, stratified by class."""
    validation_fraction, test_fraction = (
        params["validation_fraction"],
        params["test_fraction"],
    )
    held_out = validation_fraction + test_fraction
    if min(validation_fraction, test_fraction) <= 0 or held_out >= 1:
        raise ValueError(
            "split_images.validation_fraction and test_fraction must each be above 0 "
            f"and sum below 1, got {validation_fraction} and {test_fraction}"
        )
    advice = _split_advice(image_index, validation_fraction, test_fraction)
    train, rest = _stratified_split(image_index, held_out, params["seed"], advice)
    validation, test = _stratified_split(
        rest, test_fraction / held_out, params["seed"], advice
    )
    return train, validation, test


def _split_advice(
    image_index: pd.DataFrame, validation_fraction: float, test_fraction: float
) -> str:
    """What to do when a class is too small for the validation and test fractions."""
    needed = math.ceil(1 / min(validation_fraction, test_fraction))
    counts = image_index["label"].value_counts()
    small = sorted(counts[counts < needed].index)
    names = ", ".join(repr(name) for name in small) or "each class"
    return (
        f"with validation_fraction {validation_fraction} and test_fraction "
        f"{test_fraction}, a class needs at least {needed} images to have one in each "
        f"split: add images to {names}, remove that class folder, or raise "
        "split_images.validation_fraction and test_fraction"
    )


def _stratified_split(
    table: pd.DataFrame, second_fraction: float, seed: int, advice: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows in two keeping class proportions; name the class that is too small."""
    counts = table["label"].value_counts()
    too_small = counts[counts < 2]  # noqa: PLR2004
    if not too_small.empty:
        raise InvalidImageError(
            f"Class {too_small.index[0]!r} has only {too_small.iloc[0]} image(s) left "
            f"to split: {advice}"
        )
    try:
        first, second = train_test_split(
            table, test_size=second_fraction, random_state=seed, stratify=table["label"]
        )
    except ValueError as error:
        raise InvalidImageError(
            f"Cannot split {len(table)} images into stratified sets ({error}): {advice}"
        ) from error
    return first.reset_index(drop=True), second.reset_index(drop=True)
