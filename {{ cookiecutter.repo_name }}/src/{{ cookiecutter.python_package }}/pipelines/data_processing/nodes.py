"""Index the raw image files the features step kept, and split them for training."""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from {{ cookiecutter.python_package }}.image_features import (
    ImageArrays,
)
from {{ cookiecutter.python_package }}.image_folders import (
    InvalidImageError,
)

logger = logging.getLogger(__name__)


def index_images(image_arrays: ImageArrays) -> tuple[pd.DataFrame, float]:
    """List every image the features step kept as (partition, label); count the rest.

    Partitions are ``<class>/<file>`` paths under the raw images folder; the class is
    the first folder. Everything comes from image_arrays' manifest (the files kept,
    the class folders listed, the files skipped), so no image is read and the folder
    is not listed again: the index is exactly what the features step checked.
    """
    rows = [
        {"partition": partition, "label": partition.partition("/")[0]}
        for partition in sorted(image_arrays)
    ]
    index = pd.DataFrame(rows, columns=["partition", "label"])
    empty = sorted(set(image_arrays.classes) - set(index["label"]))
    if empty:
        raise InvalidImageError(
            f"Class folder(s) {', '.join(repr(c) for c in empty)} contain no readable "
            "image; add images or remove the folder"
        )
    logger.info(
        "Indexed the %d images the last features run kept (image_arrays' manifest): "
        "run the features pipeline to take in changes to the images folder",
        len(index),
    )
    skipped = len(image_arrays.skipped)
    if skipped:
        logger.warning(
            "Skipped %d unreadable files out of %d",
            skipped,
            skipped + len(image_arrays),
        )
    return index, float(skipped)


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
