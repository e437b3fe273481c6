"""The one image preprocessing: training, evaluation and the served model all call it.

Decoding, EXIF orientation, colour mode, resizing and scaling happen here and nowhere
else, so a served image becomes exactly the tensor a training image would. Opening
(``open_image``: the header only, the accepted formats and the pixel limit) and
decoding (``load_image``) are the same two steps for a training file and a request.

``PREPROCESSING_VERSION`` is a digest of this file and of Pillow's version: the stored
``image_arrays`` are kept under it, so editing anything here (or upgrading Pillow)
makes the next ``kedro run`` preprocess every image again with the new code, which is
the code the logged model serves with.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# The contract's formats. A phone's JPEG with a second frame opens through "JPEG" as
# format "MPO" (Pillow has no separate MPO opener to name here). Every other format
# Pillow knows (TIFF, PSD, ICO, EPS, which runs Ghostscript) is refused.
ACCEPTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
NOT_AN_IMAGE = "not an image file of an accepted format (PNG, JPEG, BMP, GIF, WebP)"
PREPROCESSING_VERSION = hashlib.sha256(
    Path(__file__).read_bytes() + PIL.__version__.encode()
).hexdigest()[:10]


class UnusableImageError(ValueError):
    """Bytes that cannot be used as an image; the message says why, naming no file."""


class TooManyPixelsError(UnusableImageError):
    """An image over ``image.max_pixels``, refused as a likely decompression bomb."""


def check_pixel_count(width: int, height: int, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels: the one rule for every path."""
    if width * height > max_pixels:
        raise TooManyPixelsError(
            f"image of {width}x{height} pixels is over the limit of {max_pixels} "
            "pixels (image.max_pixels)"
        )


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open encoded image bytes (header only), refusing other formats and big images."""
    with _pillow_errors():
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    check_pixel_count(image.width, image.height, max_pixels)
    return image


def load_image(image: Image.Image) -> Image.Image:
    """Decode the pixels of an image ``open_image`` opened."""
    with _pillow_errors():
        image.load()
    return image


@contextlib.contextmanager
def _pillow_errors() -> Iterator[None]:
    """Turn Pillow's many failures on bad bytes into one ``UnusableImageError``.

    Pillow's own bomb warning (over ``Image.MAX_IMAGE_PIXELS``) is silenced: the pixel
    limit is ``check_pixel_count``'s, applied as soon as the header is read. Pillow's
    bomb error (twice its limit) still refuses, as a ``TooManyPixelsError``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except Image.DecompressionBombError as error:
            raise TooManyPixelsError(
                f"image over Pillow's pixel limit ({error})"
            ) from None
        except UnidentifiedImageError:
            raise UnusableImageError(NOT_AN_IMAGE) from None
        except Exception as error:  # noqa: BLE001  Pillow raises many types for bad files
            raise UnusableImageError(f"unusable image ({error})") from error


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
