"""The preprocessed images as a Kedro dataset: uint8 arrays on disk, one per file content.

Each image file is read once, its bytes digested (SHA-256), and preprocessed with the
one ``preprocess()`` only if no array for that content and those preprocessing
parameters exists yet. The arrays are ``.npy`` files of uint8, exactly what
``preprocess()`` gives times 255 (it only ever returns multiples of 1/255), stored by
content under a folder named after the parameters::

    data/04_feature/image_arrays/64x64x3/ab/ab12...ef.npy
    data/04_feature/image_arrays/manifest.json   # partition -> array of this run

A second run on the same images reuses every array; a changed image gets a new array
and a changed size or colour mode a new folder, so only what changed is preprocessed.
One file per image, rather than shards, keeps that rebuild exact and lets training
read any shuffled batch by index with one plain read per image (12 KB for 64 px RGB),
so nothing is held in memory. Memory-mapping each file costs more than reading it at
that size, and one large memory-mapped file would be rewritten whenever one image
changes. Arrays are a quarter of the float32 they stand for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_filepath_str
from PIL import Image

from {{ cookiecutter.python_package }}.preprocessing import (
    decode_image,
    preprocess,
)

ImageLoader = Callable[[], Image.Image]
ArrayLoader = Callable[[], np.ndarray]
MANIFEST = "manifest.json"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImagesToPreprocess:
    """What preprocess_images hands to the dataset: each partition's file reader and
    the preprocessing parameters; the dataset reads, digests and stores them."""

    files: Mapping[str, Callable[[], bytes]]
    size: int
    channels: int
    max_pixels: int


def file_reader(load: ImageLoader) -> Callable[[], bytes]:
    """The bytes of the file behind a ``raw_images`` partition loader.

    ``PartitionedDataset`` gives one bound ``load`` of a file dataset per partition
    (``pillow.ImageDataset``); its filesystem reads the same file's bytes, so each
    image crosses the network once and is decoded from those bytes.
    """
    dataset = getattr(load, "__self__", None)
    fs, path = getattr(dataset, "_fs", None), getattr(dataset, "_filepath", None)
    if fs is None or path is None or not hasattr(dataset, "_protocol"):
        raise DatasetError(
            f"raw_images partition loader {load!r} is not a file dataset's load: "
            "raw_images must be a PartitionedDataset of pillow.ImageDataset"
        )

    location = get_filepath_str(PurePosixPath(path), dataset._protocol)

    def read() -> bytes:
        with fs.open(location, "rb") as file:
            return file.read()

    return read


class ImageArrayDataset(AbstractDataset[ImagesToPreprocess, dict[str, ArrayLoader]]):
    """Preprocessed images stored by content digest; loads as {partition: loader}.

    Saving takes an ``ImagesToPreprocess``: each file is read once and digested, and
    preprocessed only when its array is missing. Loading gives, for every partition of
    the last save, a function that reads its uint8 array.
    """

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, ArrayLoader]:
        manifest = json.loads((self._path / MANIFEST).read_text())
        shape = (manifest["size"], manifest["size"], manifest["channels"])
        return {
            partition: partial(read_array, self._path / relative, shape)
            for partition, relative in manifest["arrays"].items()
        }

    def save(self, data: ImagesToPreprocess) -> None:
        folder = f"{data.size}x{data.size}x{data.channels}"
        arrays, built = {}, 0
        for partition, read in data.files.items():
            content = read()
            digest = hashlib.sha256(content).hexdigest()
            relative = f"{folder}/{digest[:2]}/{digest}.npy"
            target = self._path / relative
            if not target.exists():
                image = decode_image(content, data.max_pixels)
                scaled = preprocess(image, data.size, data.channels)
                _write_atomically(target, to_uint8(scaled))
                built += 1
            arrays[partition] = relative
        logger.info(
            "Preprocessed %d of %d images; %d reused from %s",
            built,
            len(arrays),
            len(arrays) - built,
            self._path / folder,
        )
        manifest = {"size": data.size, "channels": data.channels, "arrays": arrays}
        self._path.mkdir(parents=True, exist_ok=True)
        (self._path / MANIFEST).write_text(json.dumps(manifest, indent=0))

    def _exists(self) -> bool:
        return (self._path / MANIFEST).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


def read_array(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """One stored array, read in one call: 5x faster than np.load, which parses the
    .npy header every time (a 64 px RGB image: 35 against 180 microseconds)."""
    data = path.read_bytes()
    if data[6:7] != b"\x01":  # np.save writes format 1.0 for these small headers
        return np.load(path)
    header_end = 10 + int.from_bytes(data[8:10], "little")
    return np.frombuffer(data, np.uint8, offset=header_end).reshape(shape)


def to_uint8(scaled: np.ndarray) -> np.ndarray:
    """``preprocess()``'s float32 in [0, 1] as the uint8 it was made of (exactly)."""
    return np.rint(scaled * 255.0).astype(np.uint8)


def from_uint8(array: np.ndarray) -> np.ndarray:
    """A stored uint8 array as ``preprocess()`` returns it: float32 in [0, 1]."""
    return np.asarray(array, dtype=np.float32) / 255.0


def _write_atomically(target: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``target`` via a temporary file: a crash leaves no half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as file:
        np.save(file, array)
    Path(temporary).replace(target)
