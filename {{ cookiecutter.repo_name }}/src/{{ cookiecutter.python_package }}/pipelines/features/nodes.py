"""Check the listing of raw image files, then hand them to the image_arrays dataset,
which reads, checks and preprocesses each one once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from {{ cookiecutter.python_package }}.image_features import (
    ImagesToPreprocess,
)
from {{ cookiecutter.python_package }}.image_folders import (
    InvalidImageError,
    skip_or_fail,
)


def preprocess_images(
    raw_images: Mapping[str, Callable[[], bytes]],
    params: dict[str, Any],
    image: dict[str, int],
) -> ImagesToPreprocess:
    """Check the raw images' listing, before any file is read, for image_arrays to save.

    No class folder or a single one stops the run; a file outside the class folders
    is skipped with a warning, or stops the run when ``on_invalid_image`` is ``fail``.
    """
    if not raw_images:
        raise InvalidImageError(
            "No images in the raw images folder (catalog entry 'raw_images', "
            "data/01_raw/images/ by default): put one folder per class there, each "
            "holding that class's images, e.g. data/01_raw/images/cat/001.jpg"
        )
    outside = sorted(p for p in raw_images if "/" not in p)
    skipped = {}
    for partition in outside:
        error = InvalidImageError(
            f"'{partition}' is not inside a class folder "
            "(<images folder>/<class name>/<file>)"
        )
        skip_or_fail(error, params["on_invalid_image"])
        skipped[partition] = str(error)
    classes = sorted({p.partition("/")[0] for p in raw_images if "/" in p})
    _check_class_count(classes)
    return ImagesToPreprocess(
        files={p: load for p, load in raw_images.items() if p not in skipped},
        size=image["size"],
        channels=image["channels"],
        max_pixels=image["max_pixels"],
        max_file_bytes=image["max_file_bytes"],
        on_invalid_image=params["on_invalid_image"],
        classes=classes,
        skipped=skipped,
    )


def _check_class_count(classes: list[str]) -> None:
    """Fail when the listing holds no class folder or a single one."""
    if not classes:
        raise InvalidImageError(
            "No images found: no class folder in the raw images folder (catalog "
            "entry 'raw_images'); add one folder of images per class"
        )
    if len(classes) < 2:  # noqa: PLR2004
        raise InvalidImageError(
            f"Only one class folder ({classes[0]!r}) was found: a classifier needs "
            "at least two"
        )
