"""The one image preprocessing: training, evaluation and the served model all call it.

Decoding, EXIF orientation, colour mode, resizing and scaling happen here and nowhere
else, so a served image becomes exactly the tensor a training image would.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image, ImageOps

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class TooManyPixelsError(ValueError):
    """An image over ``image.max_pixels``, refused as a likely decompression bomb."""


def check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels: the one rule for every path."""
    if width * height > max_pixels:
        raise TooManyPixelsError(
            f"image of {width}x{height} pixels is over the limit of {max_pixels} "
            "pixels (image.max_pixels)"
        )


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open encoded image file bytes (PNG, JPEG, BMP, GIF, WebP, ...) as a PIL image."""
    image = Image.open(io.BytesIO(data))
    check_pixel_count(image.width, image.height, max_pixels)
    image.load()
    return image


def _to_colour_mode(image: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to RGB (3 channels) or L (1 channel), flattening alpha on white."""
    if image.mode in SIXTEEN_BIT_MODES:
        eight_bit = np.clip(np.asarray(image, dtype=np.float64) / 257.0, 0, 255)
        image = Image.fromarray(eight_bit.round().astype(np.uint8), mode="L")
    if image.mode in TRANSPARENT_MODES or "transparency" in image.info:
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    mode = "RGB" if channels == 3 else "L"  # noqa: PLR2004
    return image if image.mode == mode else image.convert(mode)


def _upright(image: Image.Image) -> Image.Image:
    """Turn an image as its EXIF orientation says (most have none: no copy then)."""
    image.load()  # a PNG's EXIF chunk may follow its pixels
    if image.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return image
    return ImageOps.exif_transpose(image)


def preprocess(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """Orient, convert, resize and scale one image to float32 (size, size, channels) in [0, 1]."""
    image = _to_colour_mode(_upright(image), channels)
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.array(image, dtype=np.float32)
    array /= 255.0  # in place: no second float32 array of the image
    return array.reshape(size, size, channels)
