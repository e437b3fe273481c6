"""Classify a folder of image files with the logged model, as the server would."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from {{ cookiecutter.python_package }}.image_folders import (
    skip_or_fail,
)
from {{ cookiecutter.python_package }}.payload import (
    IMAGE_COLUMN,
    find_invalid_payload,
)

logger = logging.getLogger(__name__)

ROW_PREFIX = re.compile(r"^row \d+: ")


class InvalidImageFileError(ValueError):
    """A file of the folder that the model cannot classify; the message names it."""


def predict_images(
    new_images: Mapping[str, Callable[[], bytes]],
    registered_model: Any,
    params: dict[str, Any],
) -> pd.DataFrame:
    """One row per file: its label, confidence and class probabilities, or its error.

    ``new_images`` maps each file's path in the folder to a loader of its bytes. The
    model is called on ``batch_size`` files at a time, with a request a client could
    send.
    """
    files = sorted(new_images)
    if not files:
        raise ValueError(
            "The folder of the 'new_images' catalog entry holds no image files: "
            "put the files to classify there (data/01_raw/new_images/ by default)"
        )
    size = params["batch_size"]
    tables = []
    for start in range(0, len(files), size):
        batch = files[start : start + size]
        images = [new_images[name]() for name in batch]
        tables.append(
            _predict_batch(registered_model, batch, images, params["on_invalid_image"])
        )
    predictions = pd.concat(tables, ignore_index=True)
    if "label" not in predictions:  # not one file could be classified
        predictions = predictions.reindex(
            columns=["file", "label", "confidence", "error"]
        )
    columns = [c for c in predictions.columns if c not in ("file", "error")]
    return predictions[["file", *columns, "error"]]


def _predict_batch(
    model: Any, files: list[str], images: list[bytes], on_invalid_image: str
) -> pd.DataFrame:
    """Predict a batch of files; if the model refuses it, find the files at fault."""
    try:
        predictions = model.predict(pd.DataFrame({IMAGE_COLUMN: images}))
    except Exception as error:
        rejection = find_invalid_payload(error)
        if rejection is None:  # not the images' fault
            raise
        if len(files) > 1:
            return pd.concat(
                [
                    _predict_batch(model, [file], [image], on_invalid_image)
                    for file, image in zip(files, images, strict=True)
                ],
                ignore_index=True,
            )
        reason = ROW_PREFIX.sub("", str(rejection))
        skip_or_fail(InvalidImageFileError(f"{files[0]}: {reason}"), on_invalid_image)
        return pd.DataFrame({"file": files, "error": [reason]})
    predictions = predictions.reset_index(drop=True)
    predictions.insert(0, "file", files)
    predictions["error"] = ""
    return predictions
