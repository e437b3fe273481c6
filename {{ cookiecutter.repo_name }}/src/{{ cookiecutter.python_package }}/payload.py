"""The request contract of the logged model: one ``image`` column of encoded image files.

The served model, ``kedro serve``, batch inference and the model's signature all follow
these rules. Each check names the row at fault in one line and never repeats the data.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from PIL import Image

from {{ cookiecutter.python_package }}.preprocessing import (
    UnusableImageError,
    load_image,
    open_image,
)

IMAGE_COLUMN = "image"


def probability_column(class_name: str) -> str:
    """The output column that holds one class's probability: ``probability_<class>``."""
    return f"probability_{class_name}"


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


def decode_base64(row: int, value: Any) -> bytes:
    """The file bytes of a JSON row's base64 text (line breaks allowed, as in MLflow)."""
    if not isinstance(value, str):
        raise InvalidPayloadError(
            f"row {row}: '{IMAGE_COLUMN}' must be a base64 string, got "
            f"{json_type(value)}"
        )
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPayloadError(
            f"row {row}: '{IMAGE_COLUMN}' is not valid base64 (standard alphabet "
            "A-Z a-z 0-9 + / with '=' padding)"
        ) from None


def json_type(value: Any) -> str:
    """How JSON calls the type of a parsed value: an object, an array, a string..."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    names |= {int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def open_images(
    images: Sequence[Any], limits: dict[str, Any], max_pixels: int
) -> list[Image.Image]:
    """Open every image file of a request, refusing it before any is decoded.

    Count, bytes and pixels are checked from each file's header, so a small file that
    would decode to a huge image costs nothing; the request's total is capped as well
    as each image. The files are returned opened, their pixels not yet decoded.
    """
    if not len(images):
        raise InvalidPayloadError("the input has no rows: send at least one image")
    if len(images) > limits["max_images"]:
        raise InvalidPayloadError(
            f"the input has {len(images)} images, over the limit of "
            f"{limits['max_images']} per request: send fewer at a time"
        )
    opened = []
    total = 0
    for row, data in enumerate(images):
        image = _open_header(row, data, limits["max_image_bytes"], max_pixels)
        total += image.width * image.height
        if total > limits["max_request_pixels"]:
            raise InvalidPayloadError(
                f"rows 0-{row}: images of {total} pixels in all, over the limit of "
                f"{limits['max_request_pixels']} pixels per request: send fewer at "
                "a time"
            )
        opened.append(image)
    return opened


def _open_header(row: int, data: Any, max_bytes: int, max_pixels: int) -> Image.Image:
    """An encoded image opened from its bytes: header read and checked, not decoded."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidPayloadError(
            f"row {row}: '{IMAGE_COLUMN}' must hold encoded image bytes, "
            f"got {type(data).__name__}"
        )
    if len(data) > max_bytes:
        raise InvalidPayloadError(
            f"row {row}: image of {len(data)} bytes is over the limit of "
            f"{max_bytes} bytes"
        )
    try:
        return open_image(data, max_pixels)
    except UnusableImageError as error:
        raise InvalidPayloadError(f"row {row}: {error}") from error


def decode_payload_image(row: int, image: Image.Image) -> Image.Image:
    """Decode one opened row's pixels, naming the row when the file is unusable."""
    try:
        return load_image(image)
    except UnusableImageError as error:
        raise InvalidPayloadError(f"row {row}: {error}") from error
