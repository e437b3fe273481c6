"""What the logged model runs on each request: decode and preprocess, then classify."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from {{ cookiecutter.python_package }}.keras_model import (
    SharedKerasModel,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    decode_image,
    preprocess,
)

IMAGE_COLUMN = "image"


class InvalidPayloadError(ValueError):
    """A request the model cannot score; the message names the culprit."""


def find_invalid_payload(error: BaseException) -> BaseException | None:
    """The ``InvalidPayloadError`` behind ``error`` (itself, its cause or context).

    Matched by class name: a model loaded from MLflow may carry its own copy of this
    module, whose exception class is not the one imported here.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if type(current).__name__ == InvalidPayloadError.__name__:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def preprocess_payload(
    images_to_score: pd.DataFrame, image: dict[str, int], params: dict[str, Any]
) -> np.ndarray:
    """Decode and preprocess every encoded image of the request into one batch."""
    if IMAGE_COLUMN not in images_to_score.columns:
        raise InvalidPayloadError(
            f"the input has no '{IMAGE_COLUMN}' column; send one row per image with "
            f"the file's bytes (base64 in JSON) under '{IMAGE_COLUMN}'"
        )
    if images_to_score.empty:
        raise InvalidPayloadError("the input has no rows: send at least one image")
    if len(images_to_score) > params["max_images"]:
        raise InvalidPayloadError(
            f"the input has {len(images_to_score)} images, over the limit of "
            f"{params['max_images']} per request: send fewer at a time"
        )
    return np.stack(
        [
            _preprocess_row(row, data, image, params)
            for row, data in enumerate(images_to_score[IMAGE_COLUMN])
        ]
    )


def _preprocess_row(
    row: int, data: Any, image: dict[str, int], params: dict[str, Any]
) -> np.ndarray:
    """Preprocess one encoded image, naming its row when it is unusable."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidPayloadError(
            f"row {row}: '{IMAGE_COLUMN}' must hold encoded image bytes, "
            f"got {type(data).__name__}"
        )
    if len(data) > params["max_image_bytes"]:
        raise InvalidPayloadError(
            f"row {row}: image of {len(data)} bytes is over the limit of "
            f"{params['max_image_bytes']} bytes"
        )
    max_pixels = params["max_image_pixels"]
    try:
        decoded = decode_image(bytes(data), max_pixels)
        return preprocess(decoded, image["size"], image["channels"])
    except UnidentifiedImageError as error:
        raise InvalidPayloadError(
            f"row {row}: not an image file (Pillow reads PNG, JPEG, BMP, GIF, WebP "
            "and more)"
        ) from error
    except Image.DecompressionBombError as error:
        raise InvalidPayloadError(
            f"row {row}: image over the limit of {max_pixels} pixels ({error})"
        ) from error
    except Exception as error:  # noqa: BLE001  Pillow raises many types for bad files
        # Also decode_image's own pixel limit, whose message gives the image's size.
        raise InvalidPayloadError(f"row {row}: unusable image ({error})") from error


def classify(
    batch: np.ndarray, classifier: SharedKerasModel, class_names: list[str]
) -> pd.DataFrame:
    """One row per image: the label, its confidence and every class's probability."""
    probabilities = classifier.predict_proba(batch).astype(float)
    return pd.DataFrame(
        {
            "label": np.asarray(class_names)[probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1),
            **{
                f"probability_{name}": probabilities[:, index]
                for index, name in enumerate(class_names)
            },
        }
    )
