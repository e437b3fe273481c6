"""Index the checked raw image files and split them for training."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from {{ cookiecutter.python_package }}.image_features import (
    ArrayLoader,
)
from {{ cookiecutter.python_package }}.image_folders import (
    InvalidImageError,
)

logger = logging.getLogger(__name__)


def index_images(
    raw_images: Mapping[str, Callable[[], Any]],
    image_arrays: Mapping[str, ArrayLoader],
) -> tuple[pd.DataFrame, float]:
    """List every image kept by the features step as (partition, label); count the rest.

    Partitions are ``<class>/<file>`` paths under the raw images folder; the class is
    the first folder. ``image_arrays`` holds the files that were read and kept, so no
    image is read here: the raw images' listing only names what was skipped.
    """
    rows = [
        {"partition": partition, "label": partition.partition("/")[0]}
        for partition in sorted(image_arrays)
    ]
    index = pd.DataFrame(rows, columns=["partition", "label"])
    seen_classes = {p.partition("/")[0] for p in raw_images if "/" in p}
    _check_classes(index, seen_classes)
    skipped = len(set(raw_images) - set(image_arrays))
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
