"""Classify a folder of image files with the logged model, as the server would."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from kedro.io import DatasetError

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

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.reason = reason


def _read_file(name: str, load: Callable[[], bytes]) -> bytes:
    """The bytes of one file of the folder (a broken link is the file's fault)."""
    try:
        return load()
    except DatasetError as error:  # Kedro wraps the OSError
        reason = error.__cause__ or error
        raise InvalidImageFileError(name, f"cannot be read ({reason})") from error


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
    size, on_invalid_image = params["batch_size"], params["on_invalid_image"]
    tables = []
    for start in range(0, len(files), size):
        batch, images, unreadable = [], [], []
        for name in files[start : start + size]:
            try:
                images.append(_read_file(name, new_images[name]))
                batch.append(name)
            except InvalidImageFileError as error:
                skip_or_fail(error, on_invalid_image)
                unreadable.append({"file": name, "error": error.reason})
        tables.append(pd.DataFrame(unreadable, columns=["file", "error"]))
        if batch:
            tables.append(
                _predict_batch(registered_model, batch, images, on_invalid_image)
            )
    predictions = pd.concat(tables, ignore_index=True)
    predictions = predictions.sort_values("file", ignore_index=True)
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
        skip_or_fail(InvalidImageFileError(files[0], reason), on_invalid_image)
        return pd.DataFrame({"file": files, "error": [reason]})
    predictions = predictions.reset_index(drop=True)
    predictions.insert(0, "file", files)
    predictions["error"] = ""
    return predictions
