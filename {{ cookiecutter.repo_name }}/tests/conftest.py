"""Shared fixtures: the project's own parameters and folders of real image files."""

from __future__ import annotations

import copy
import io
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from {{ cookiecutter.python_package }} import model_logging
from {{ cookiecutter.python_package }}.image_features import (
    ArrayLoader,
    ImageArrayDataset,
)
from {{ cookiecutter.python_package }}.image_folders import (
    ImageFolderDataset,
)
from {{ cookiecutter.python_package }}.pipelines.features.nodes import (
    preprocess_images,
)

CONF_BASE = Path(__file__).resolve().parents[1] / "conf" / "base"

ImageFolderFactory = Callable[[Path, Mapping[str, int]], Path]
PartitionLoader = Callable[[Path], dict[str, Callable[[], Any]]]
ArrayFolderLoader = Callable[..., dict[str, ArrayLoader]]


def draw_shape(class_index: int, image_index: int, size: int = 24) -> Image.Image:
    """An RGB picture of one shape per class, placed and coloured by ``image_index``."""
    rng = np.random.default_rng(image_index)
    background = tuple(int(v) for v in rng.integers(0, 80, 3))
    colour = tuple(int(v) for v in rng.integers(150, 256, 3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    left, top = (int(v) for v in rng.integers(0, size // 4, 2))
    box = (left, top, left + size // 2, top + size // 2)
    if class_index % 3 == 0:
        draw.ellipse(box, fill=colour)
    elif class_index % 3 == 1:
        draw.rectangle(box, fill=colour)
    else:
        corners = [(box[0], box[3]), (box[2], box[3]), (box[0], box[1])]
        draw.polygon(corners, fill=colour)
    return image


@pytest.fixture(scope="session")
def project_parameters() -> dict[str, Any]:
    """Every parameter of conf/base/parameters*.yml, as `kedro run` reads them."""
    parameters: dict[str, Any] = {}
    for path in sorted(CONF_BASE.glob("parameters*.yml")):
        parameters.update(yaml.safe_load(path.read_text()) or {})
    return parameters


@pytest.fixture(scope="session")
def fast_parameters(project_parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's parameters with tiny images, network and epochs, for speed."""
    parameters = copy.deepcopy(project_parameters)
    parameters["image"]["size"] = 16
    training = parameters["train_classifier"]
    training.update(batch_size=8, epochs=2)
    training["network"].update(conv_filters=[4], dense_units=8)
    parameters["predict_test_images"]["batch_size"] = 8
    return parameters


@pytest.fixture
def parameters(fast_parameters: dict[str, Any]) -> dict[str, Any]:
    """A copy of the fast parameters that a test may change."""
    return copy.deepcopy(fast_parameters)


@pytest.fixture(scope="session")
def make_image_folder() -> ImageFolderFactory:
    """Write ``<root>/<class>/<class>_<i>.png|jpg`` shape images, as many as asked."""

    def make(root: Path, images_per_class: Mapping[str, int]) -> Path:
        for class_index, (label, count) in enumerate(images_per_class.items()):
            (root / label).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                suffix = "png" if i % 2 == 0 else "jpg"
                image = draw_shape(class_index, i)
                image.save(root / label / f"{label}_{i:03d}.{suffix}")
        return root

    return make


@pytest.fixture(scope="session")
def raw_images_entry() -> dict[str, Any]:
    """The catalog's ``raw_images`` entry, as conf/base/catalog.yml writes it."""
    catalog = yaml.safe_load((CONF_BASE / "catalog.yml").read_text())
    return catalog["raw_images"]


@pytest.fixture(scope="session")
def load_partitions(raw_images_entry: dict[str, Any]) -> PartitionLoader:
    """Read a raw images folder exactly as the catalog's ``raw_images`` entry does:
    a loader of each file's bytes."""

    def load(path: Path) -> dict[str, Callable[[], bytes]]:
        dataset = copy.deepcopy(raw_images_entry["dataset"])
        return ImageFolderDataset(path=str(path), dataset=dataset).load()

    return load


@pytest.fixture(scope="session")
def load_image_arrays(load_partitions: PartitionLoader) -> ArrayFolderLoader:
    """A raw images folder preprocessed into an ``image_arrays`` folder, as the features
    pipeline does (with ``store_arrays=False``, its manifest of the raw files only);
    loaded as training reads it."""

    def load(
        images: Path, arrays: Path, image: Mapping[str, int], store_arrays: bool = True
    ) -> dict[str, ArrayLoader]:
        dataset = ImageArrayDataset(path=str(arrays), store_arrays=store_arrays)
        work = preprocess_images(
            load_partitions(images), {"on_invalid_image": "fail"}, dict(image)
        )
        dataset.save(work)
        return dataset.load()

    return load


def encoded(image: Image.Image, file_format: str) -> bytes:
    """The bytes of ``image`` saved as a file of ``file_format``."""
    buffer = io.BytesIO()
    image.save(buffer, file_format)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def other_formats() -> dict[str, bytes]:
    """Files of formats Pillow reads and the project refuses (EPS runs Ghostscript)."""
    return {
        "scan.tif": encoded(Image.new("RGB", (8, 8), "red"), "TIFF"),
        "drawing.eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
        + b"0 " * 64,
    }


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data and CRC."""
    crc = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bomb(side: int) -> bytes:
    """A valid 1-bit black PNG of side x side pixels that compresses to a few kB."""
    rows = (b"\x00" + bytes(side // 8)) * 100  # filter byte + one row of black, x100
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(rows) for _ in range(side // 100))
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels + compressor.flush())
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def decompression_bomb() -> bytes:
    """A 20000x20000 PNG: 400 Mpixels, over even Pillow's own bomb limit."""
    return png_bomb(20_000)


@pytest.fixture(scope="session")
def large_png() -> bytes:
    """An 8000x8000 PNG: 64 Mpixels, over the project's limits, under Pillow's."""
    return png_bomb(8_000)


@pytest.fixture
def mlflow_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[mlflow.ActiveRun]:
    """An active MLflow run in a tracking store under ``tmp_path``, ended afterwards."""
    for name in [n for n in os.environ if n.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            yield run
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)


@pytest.fixture
def tensorflow_installed_as(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make the ``tensorflow`` module look provided by other distributions (or none)."""

    def install(*names: str, tensorflow_version: str = "2.21.0") -> None:
        monkeypatch.setattr(
            model_logging,
            "packages_distributions",
            lambda: {**packages_distributions(), "tensorflow": list(names)},
        )

        def fake_version(name: str) -> str:
            if name in names:
                return tensorflow_version
            if name == "tensorflow":
                raise PackageNotFoundError(name)
            return version(name)

        monkeypatch.setattr(model_logging, "version", fake_version)

    return install
