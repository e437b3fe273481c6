"""The one preprocessing: odd image modes, EXIF orientation, formats, and
training == serving."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from PIL import ExifTags, Image

from {{ cookiecutter.python_package }} import preprocessing
from {{ cookiecutter.python_package }}.image_features import (
    ImageArrayDataset,
)
from {{ cookiecutter.python_package }}.input_pipeline import (
    array_batches,
)
from {{ cookiecutter.python_package }}.payload import (
    InvalidPayloadError,
)
from {{ cookiecutter.python_package }}.pipelines.features.nodes import (
    preprocess_images,
)
from {{ cookiecutter.python_package }}.pipelines.inference.nodes import (
    preprocess_payload,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    PREPROCESSING_VERSION,
    load_image,
    open_image,
    preprocess,
)

WIDTH, HEIGHT = 37, 23  # not square, so resizing really happens


def sample_image(mode: str) -> Image.Image:
    """A non-square picture with gradients and a bright block, in any PIL mode."""
    x = np.linspace(0, 255, WIDTH)[None, :].repeat(HEIGHT, axis=0)
    y = np.linspace(255, 0, HEIGHT)[:, None].repeat(WIDTH, axis=1)
    rgb = np.stack([x, y, (x + y) / 2], axis=-1).astype(np.uint8)
    rgb[5:12, 20:30] = (255, 255, 40)
    image = Image.fromarray(rgb)
    if mode == "I;16":
        return Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)
    if mode in ("RGBA", "LA"):
        image = image.convert(mode)
        image.putalpha(Image.fromarray(x.astype(np.uint8)))  # transparent on the left
        return image
    return image.convert(mode)


def save_and_load(image: Image.Image, path: Path, **save_args: Any) -> Image.Image:
    """Write a real image file, then open and decode it as every path of the project."""
    image.save(path, **save_args)
    return load_image(open_image(path.read_bytes(), max_pixels=40_000_000))


def orientation(value: int) -> Image.Exif:
    """EXIF data holding only an orientation tag."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = value
    return exif


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("mode", "file_name"),
    [
        ("1", "bilevel.png"),
        ("L", "gray.png"),
        ("LA", "gray_alpha.png"),
        ("P", "palette.png"),
        ("P", "palette.gif"),
        ("RGB", "rgb.png"),
        ("RGB", "rgb.bmp"),
        ("RGB", "rgb.webp"),
        ("RGBA", "rgba.png"),
        ("RGBA", "rgba.webp"),
        ("I;16", "gray16.png"),
        ("CMYK", "cmyk.jpg"),
    ],
)
def test_preprocess_gives_square_float32_in_unit_range(
    tmp_path: Path, mode: str, file_name: str, channels: int
) -> None:
    """Any colour mode becomes a (size, size, channels) float32 array in [0, 1]."""
    image = save_and_load(sample_image(mode), tmp_path / file_name)
    array = preprocess(image, 16, channels)
    assert array.shape == (16, 16, channels)
    assert array.dtype == np.float32
    assert 0.0 <= array.min() <= array.max() <= 1.0
    assert array.max() > array.min()  # the picture survived, not a blank square


def test_rgba_transparency_becomes_white(tmp_path: Path) -> None:
    """Transparent pixels are white, opaque ones keep their colour, half-transparent mix."""
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    image.putpixel((1, 0), (0, 0, 255, 128))
    array = preprocess(save_and_load(image, tmp_path / "rgba.png"), 4, 3)
    np.testing.assert_array_equal(array[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(array[0, 1], [0.5, 0.5, 1.0], atol=0.01)
    np.testing.assert_array_equal(array[1:], np.ones((3, 4, 3)))


@pytest.mark.parametrize("file_name", ["palette.png", "palette.gif"])
def test_palette_transparency_becomes_white(tmp_path: Path, file_name: str) -> None:
    """A palette image's transparent index is white; other indices keep their colour."""
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    image.putpixel((0, 0), 1)
    image.putpixel((1, 0), 2)
    loaded = save_and_load(image, tmp_path / file_name, transparency=0)
    assert loaded.mode == "P"
    array = preprocess(loaded, 4, 3)
    np.testing.assert_array_equal(array[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(array[0, 1], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(array[1:], np.ones((3, 4, 3)))


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    """16-bit values scale by 65535: white is 1.0, mid-grey 0.5, not clipped to white."""
    values = np.zeros((6, 6), dtype=np.uint16)
    values[:, 2:4] = 128 * 257
    values[:, 4:] = 65535
    loaded = save_and_load(Image.fromarray(values), tmp_path / "gray16.png")
    assert loaded.mode.startswith("I")
    array = preprocess(loaded, 6, 1)[..., 0]
    expected_row = [0.0, 0.0, 128 / 255, 128 / 255, 1.0, 1.0]
    np.testing.assert_allclose(array, [expected_row] * 6, rtol=0, atol=1e-6)


def test_cmyk_jpeg_keeps_its_colour(tmp_path: Path) -> None:
    """A CMYK JPEG (print workflows) is converted to the right RGB colour."""
    red = Image.new("CMYK", (8, 8), (0, 255, 255, 0))
    loaded = save_and_load(red, tmp_path / "cmyk.jpg", quality=95)
    assert loaded.mode == "CMYK"
    expected = np.broadcast_to([1.0, 0.0, 0.0], (8, 8, 3))
    np.testing.assert_allclose(preprocess(loaded, 8, 3), expected, atol=0.05)


@pytest.mark.parametrize(("channels", "expected"), [(1, [0.5]), (3, [0.5] * 3)])
def test_grayscale_becomes_requested_channels(
    tmp_path: Path, channels: int, expected: list[float]
) -> None:
    """A grayscale image fills one channel, or all three equally."""
    loaded = save_and_load(Image.new("L", (5, 5), 128), tmp_path / "gray.png")
    array = preprocess(loaded, 5, channels)
    np.testing.assert_allclose(array, np.full((5, 5, channels), expected), atol=0.01)


def test_rgb_becomes_one_channel_of_luminance(tmp_path: Path) -> None:
    """With channels=1, colour images are converted to their grey level."""
    white = Image.new("RGB", (5, 5), (255, 255, 255))
    loaded = save_and_load(white, tmp_path / "white.png")
    np.testing.assert_array_equal(preprocess(loaded, 5, 1), np.ones((5, 5, 1)))


@pytest.mark.parametrize(("tag", "dark_half"), [(6, "top"), (8, "bottom")])
def test_exif_orientation_is_applied(tmp_path: Path, tag: int, dark_half: str) -> None:
    """A phone photo stored sideways is turned upright as its EXIF orientation says."""
    landscape = Image.new("L", (32, 16), 255)
    landscape.paste(0, (0, 0, 16, 16))  # the stored image is dark on the left
    loaded = save_and_load(landscape, tmp_path / "photo.jpg", exif=orientation(tag))
    array = preprocess(loaded, 16, 1)[..., 0]
    top, bottom = array[:8].mean(), array[8:].mean()
    left, right = array[:, :8].mean(), array[:, 8:].mean()
    assert abs(left - right) < 0.1  # noqa: PLR2004
    assert (top < bottom) if dark_half == "top" else (bottom < top)
    assert abs(top - bottom) > 0.8  # noqa: PLR2004


@pytest.mark.parametrize(
    ("mode", "file_name", "save_args"),
    [
        ("RGB", "rgb.png", {}),
        ("L", "gray.png", {}),
        ("RGB", "upright.jpg", {"exif": orientation(1)}),
        ("RGB", "rotated.jpg", {"exif": orientation(6)}),
    ],
)
def test_preprocess_leaves_its_input_unchanged(
    tmp_path: Path, mode: str, file_name: str, save_args: dict[str, Any]
) -> None:
    """Upright images in the wanted mode are used, not copied, and are never changed."""
    image = save_and_load(sample_image(mode), tmp_path / file_name, **save_args)
    pixels = np.asarray(image).copy()
    preprocess(image, 16, 3 if mode == "RGB" else 1)
    assert image.size == (WIDTH, HEIGHT)
    np.testing.assert_array_equal(np.asarray(image), pixels)


@dataclass(frozen=True)
class FileCase:
    """An image file to write: its name, colour mode and save options."""

    file_name: str
    mode: str = "RGB"
    save_args: dict[str, Any] = field(default_factory=dict)


FILE_CASES = [
    pytest.param(FileCase("image.png"), id="png"),
    pytest.param(FileCase("image.jpg"), id="jpeg"),
    pytest.param(FileCase("image.bmp"), id="bmp"),
    pytest.param(FileCase("image.gif"), id="gif"),
    pytest.param(FileCase("image.webp"), id="webp"),
    pytest.param(FileCase("IMAGE.JPG"), id="uppercase-jpg"),
    pytest.param(FileCase("IMAGE.PNG", "RGBA"), id="uppercase-rgba-png"),
    pytest.param(FileCase("palette.png", "P", {"transparency": 3}), id="palette-png"),
    pytest.param(FileCase("gray16.png", "I;16"), id="16-bit-png"),
    pytest.param(FileCase("cmyk.jpg", "CMYK"), id="cmyk-jpeg"),
    pytest.param(FileCase("rotated.jpg", "RGB", {"exif": orientation(6)}), id="exif"),
    pytest.param(
        FileCase(
            "phone.jpg",
            "RGB",
            {
                "format": "MPO",
                "save_all": True,
                "append_images": [sample_image("RGB")],
                "exif": orientation(6),
            },
        ),
        id="phone-mpo",
    ),
]


def training_batch(
    root: Path,
    file: tuple[str, bytes],
    load_partitions: Any,
    parameters: dict[str, Any],
    store_arrays: bool = True,
) -> np.ndarray:
    """What training reads for one file, put in two class folders under ``root``:
    raw_images' loaders, the features node (``fail`` on an unusable file),
    image_arrays saved and loaded, then one array_batches batch of both copies."""
    name, content = file
    for label in ("a", "b"):
        (root / "images" / label).mkdir(parents=True, exist_ok=True)
        (root / "images" / label / name).write_bytes(content)
    image = parameters["image"]
    dataset = ImageArrayDataset(path=str(root / "arrays"), store_arrays=store_arrays)
    work = preprocess_images(
        load_partitions(root / "images"),
        parameters["preprocess_images"] | {"on_invalid_image": "fail"},
        image,
    )
    dataset.save(work)
    loaders = dataset.load()
    batches = array_batches(
        [loaders[p] for p in sorted(loaders)],
        [0] * len(loaders),
        image["size"],
        image["channels"],
        batch_size=len(loaders),
    )
    return next(batches.as_numpy_iterator())[0]


def served_batch(content: bytes, parameters: dict[str, Any]) -> np.ndarray:
    """What the served model makes of a request of two rows of ``content``."""
    payload = pd.DataFrame({"image": [content, content]})
    return preprocess_payload(
        payload, parameters["image"], parameters["preprocess_payload"]
    )


@pytest.mark.parametrize("store_arrays", [True, False], ids=["stored", "streamed"])
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("case", FILE_CASES)
def test_training_and_serving_give_identical_tensors(  # noqa: PLR0913
    tmp_path: Path,
    project_parameters: dict[str, Any],
    load_partitions: Any,
    case: FileCase,
    channels: int,
    store_arrays: bool,
) -> None:
    """The same file becomes the same tensor in training (image_arrays, stored or
    streamed, through the input pipeline) and in the served model."""
    path = tmp_path / case.file_name
    sample_image(case.mode).save(path, **case.save_args)
    file = (case.file_name, path.read_bytes())
    parameters = project_parameters | {
        "image": project_parameters["image"] | {"size": 16, "channels": channels}
    }

    trained_on = training_batch(
        tmp_path, file, load_partitions, parameters, store_arrays
    )
    served = served_batch(file[1], parameters)

    assert trained_on.shape == served.shape == (2, 16, 16, channels)
    assert trained_on.dtype == served.dtype == np.float32
    np.testing.assert_array_equal(trained_on, served)


def test_a_phone_jpeg_with_a_second_frame_is_accepted(tmp_path: Path) -> None:
    """Phones save JPEGs with extra frames, which Pillow calls MPO: a JPEG all the same."""
    photo = sample_image("RGB")
    path = tmp_path / "phone.jpg"
    photo.save(path, "MPO", save_all=True, append_images=[photo], exif=orientation(6))
    opened = open_image(path.read_bytes(), max_pixels=40_000_000)
    assert opened.format == "MPO"
    assert preprocess(load_image(opened), 16, 3).shape == (16, 16, 3)


def test_other_formats_are_refused_by_training_and_serving_alike(
    tmp_path: Path,
    project_parameters: dict[str, Any],
    load_partitions: Any,
    other_formats: dict[str, bytes],
) -> None:
    """TIFF and EPS, which Pillow reads, are refused in one line naming the file (the
    features step) or the row (the served model), listing the accepted formats."""
    accepted = preprocessing.NOT_AN_IMAGE
    for name, content in other_formats.items():
        with pytest.raises(DatasetError) as raised:
            training_batch(
                tmp_path / name, (name, content), load_partitions, project_parameters
            )
        assert str(raised.value) == f"'a/{name}' is not a readable image: {accepted}"
        with pytest.raises(InvalidPayloadError) as refused:
            served_batch(content, project_parameters)
        assert str(refused.value) == f"row 0: {accepted}"


@pytest.mark.parametrize(
    ("side", "refusal"),
    [
        (40, None),
        (50, "image over Pillow's pixel limit (Image size (2500 pixels) exceeds limit"),
    ],
    ids=["over-pillows-warning", "over-pillows-error"],
)
def test_pillows_bomb_limit_is_one_rule_for_training_and_serving(  # noqa: PLR0913
    tmp_path: Path,
    project_parameters: dict[str, Any],
    load_partitions: Any,
    monkeypatch: pytest.MonkeyPatch,
    side: int,
    refusal: str | None,
) -> None:
    """Pillow's bomb warning is no second pixel limit (image.max_pixels is the rule);
    its bomb error refuses in training and serving alike, with the same reason."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warns over 1000, errs 2000
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "PNG")
    file = ("big.png", buffer.getvalue())
    if refusal is None:
        np.testing.assert_array_equal(
            training_batch(tmp_path, file, load_partitions, project_parameters),
            served_batch(file[1], project_parameters),
        )
        return
    with pytest.raises(DatasetError, match=re.escape(f"'a/big.png': {refusal}")):
        training_batch(tmp_path, file, load_partitions, project_parameters)
    with pytest.raises(InvalidPayloadError, match=re.escape(f"row 0: {refusal}")):
        served_batch(file[1], project_parameters)


def test_preprocessing_version_is_a_digest_of_the_code_wherever_it_runs(
    tmp_path: Path,
) -> None:
    """The logged model's copy of the package (its code/ folder) imports and gives the
    same PREPROCESSING_VERSION; any edit of preprocessing.py gives another."""
    package = Path(preprocessing.__file__).parent
    code = tmp_path / "code"
    shutil.copytree(
        package, code / package.name, ignore=shutil.ignore_patterns("__pycache__")
    )

    def version_in(folder: Path) -> str:
        command = (
            f"from {package.name}.preprocessing import PREPROCESSING_VERSION; "
            "print(PREPROCESSING_VERSION)"
        )
        return subprocess.run(
            [sys.executable, "-c", command],
            cwd=tmp_path,
            env={"PYTHONPATH": str(folder)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    assert version_in(code) == PREPROCESSING_VERSION
    edited = code / package.name / "preprocessing.py"
    edited.write_text(edited.read_text().replace("BILINEAR", "BICUBIC"))
    assert version_in(code) not in ("", PREPROCESSING_VERSION)
