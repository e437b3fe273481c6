"""Hand every indexed image to the image_arrays dataset, which preprocesses each content once."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
from PIL import Image

from {{ cookiecutter.python_package }}.image_features import (
    ImagesToPreprocess,
    file_reader,
)


def preprocess_images(
    raw_images: Mapping[str, Callable[[], Image.Image]],
    image_index: pd.DataFrame,
    image: dict[str, int],
) -> ImagesToPreprocess:
    """Every indexed image file, to be read once and preprocessed once per content."""
    return ImagesToPreprocess(
        files={p: file_reader(raw_images[p]) for p in image_index["partition"]},
        size=image["size"],
        channels=image["channels"],
        max_pixels=image["max_pixels"],
    )
