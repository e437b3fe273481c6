"""Hand every raw image file to the image_arrays dataset, which reads, checks and
preprocesses each one once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from {{ cookiecutter.python_package }}.image_features import (
    ImagesToPreprocess,
)
from {{ cookiecutter.python_package }}.image_folders import (
    InvalidImageError,
)


def preprocess_images(
    raw_images: Mapping[str, Callable[[], bytes]],
    params: dict[str, Any],
    image: dict[str, int],
) -> ImagesToPreprocess:
    """Every raw image file, to be read once and preprocessed once per content.

    Unusable files (not an image, over ``image.max_pixels``, outside a class folder)
    are skipped with a warning, or fail the run when ``on_invalid_image`` is ``fail``.
    """
    if not raw_images:
        raise InvalidImageError(
            "No images in the raw images folder (catalog entry 'raw_images', "
            "data/01_raw/images/ by default): put one folder per class there, each "
            "holding that class's images, e.g. data/01_raw/images/cat/001.jpg"
        )
    return ImagesToPreprocess(
        files=raw_images,
        size=image["size"],
        channels=image["channels"],
        max_pixels=image["max_pixels"],
        on_invalid_image=params["on_invalid_image"],
    )
