"""What the logged model runs on each request: decode and preprocess, then classify."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from {{ cookiecutter.python_package }}.keras_model import (
    SharedKerasModel,
)
from {{ cookiecutter.python_package }}.payload import (
    IMAGE_COLUMN,
    InvalidPayloadError,
    decode_payload_image,
    open_images,
    probability_column,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    preprocess,
)


def preprocess_payload(
    images_to_score: pd.DataFrame, image: dict[str, int], params: dict[str, Any]
) -> np.ndarray:
    """Check the request, then decode and preprocess every image into one batch."""
    if IMAGE_COLUMN not in images_to_score.columns:
        raise InvalidPayloadError(
            f"the input has no '{IMAGE_COLUMN}' column; send one row per image with "
            f"the file's bytes (base64 in JSON) under '{IMAGE_COLUMN}'"
        )
    files = open_images(
        images_to_score[IMAGE_COLUMN].tolist(), params, image["max_pixels"]
    )
    return np.stack(
        [_preprocess_row(row, file, image) for row, file in enumerate(files)]
    )


def _preprocess_row(row: int, file: Image.Image, image: dict[str, int]) -> np.ndarray:
    """Decode and preprocess one checked image, naming its row when it is unusable."""
    decoded = decode_payload_image(row, file)
    try:
        return preprocess(decoded, image["size"], image["channels"])
    except Exception as error:  # noqa: BLE001  Pillow raises many types for bad files
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
                probability_column(name): probabilities[:, index]
                for index, name in enumerate(class_names)
            },
        }
    )
