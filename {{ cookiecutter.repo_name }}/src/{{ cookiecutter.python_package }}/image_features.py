"""The preprocessed images as a Kedro dataset: uint8 arrays on disk, one per file content.

Each raw image file is read once per run, its size checked first against
``image.max_file_bytes`` (from the listing, or ``os.stat`` for local files): its bytes
are checked (a decodable image within ``image.max_pixels``; an unusable file is
skipped or stops the run, as ``on_invalid_image`` says; a file that exists but cannot
be read always stops it), digested (SHA-256), and preprocessed with the one
``preprocess()`` only if no array for that content and those preprocessing parameters
exists yet. The arrays are ``.npy`` files of uint8, exactly what ``preprocess()`` gives
times 255 (it only ever returns multiples of 1/255), stored by content under a folder
named after the parameters::

    data/04_feature/image_arrays/64x64x3-5e0c1d9a2b/ab/ab12...ef.npy
    data/04_feature/image_arrays/manifest.json   # partition -> array, the files kept,
                                                 # class folders, files skipped and why

A second run on the same images reuses every array (a stored content decoded before,
so only its header is read again, for the pixel limit); a changed image gets a new
array and a changed size, colour mode or ``preprocessing.py`` (its
``PREPROCESSING_VERSION``) a new folder, so only what changed is preprocessed. The
manifest is written last, whole: a run stopped by an unusable file leaves the previous
manifest as it was. The image index is derived from it alone
(data_processing's ``index_images``), so no image is read, nor the folder listed, a
second time, and a run of data_processing alone indexes what the features step saw.

One file per image, rather than shards, keeps that rebuild exact and lets training
read any shuffled batch by index with one plain read per image (12 KB for 64 px RGB),
so nothing is held in memory. Memory-mapping each file costs more than reading it at
that size, and one large memory-mapped file would be rewritten whenever one image
changes. Arrays are a quarter of the float32 they stand for. The folder is a local
path or any fsspec URL (``s3://bucket/arrays``): every file goes through fsspec.

Where the disk cannot hold the arrays, ``store_arrays: false`` stores none: ``save``
checks every file just the same (decoding each content the last manifest does not list)
and the manifest records each kept file's URL and SHA-256 instead of an array. Each
loader call then reads the raw file, checks its digest (a file changed or deleted
since the features step is refused, naming it: hashing costs 1-2 % of the
decoding it guards) and makes the very array the stored mode would have stored, so
every epoch reads and preprocesses every image again. A save in either mode writes
the whole manifest of that mode, and loading a manifest of the other mode is refused,
so arrays and streamed files never mix. Each manifest records the
``PREPROCESSING_VERSION`` that made it: loading one made by other preprocessing code
is refused (``kedro run`` rebuilds it), so training never reads arrays that the
served model's preprocessing would not make.

Loaders know the shape they were stored at, so a run whose ``image`` parameters differ
(``kedro run --from-nodes train_classifier --params image.size=64``) is refused in one
line naming the parameter, before TensorFlow meets arrays of the wrong shape.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
from fsspec.utils import get_protocol
from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import get_filepath_str, get_protocol_and_path
from PIL import Image

from {{ cookiecutter.python_package }} import preprocessing
from {{ cookiecutter.python_package }}.image_folders import (
    InvalidImageError,
    NotARegularFileError,
    RawFile,
    skip_or_fail,
)
from {{ cookiecutter.python_package }}.parameter_checks import (
    ParameterError,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    PREPROCESSING_VERSION,
    TooManyPixelsError,
    UnusableImageError,
    preprocess,
)

MANIFEST = "manifest.json"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImagesToPreprocess:
    """The raw files in class folders, as preprocess_images checked their listing."""

    files: Mapping[str, Callable[[], bytes]]  # a loader of each file's bytes
    size: int
    channels: int
    max_pixels: int
    max_file_bytes: int
    on_invalid_image: str
    classes: Sequence[str]  # every class folder listed, even one left without images
    skipped: Mapping[str, str]  # files the listing already ruled out, with why


def open_image(partition: str, content: bytes, max_pixels: int) -> Image.Image:
    """Open a raw file's bytes as ``preprocessing.open_image`` does, naming the file."""
    if not isinstance(content, bytes):
        raise DatasetError(
            f"raw_images gave {type(content).__name__} for '{partition}', not bytes: "
            "its dataset must be text.TextDataset with fs_args.open_args_load.mode rb"
        )
    try:
        return preprocessing.open_image(content, max_pixels)
    except UnusableImageError as error:
        raise _named(partition, error) from error


def decode(partition: str, image: Image.Image) -> Image.Image:
    """Decode an opened image as ``preprocessing.load_image`` does, naming the file."""
    try:
        return preprocessing.load_image(image)
    except UnusableImageError as error:
        raise _named(partition, error) from error


def _named(partition: str, error: UnusableImageError) -> InvalidImageError:
    """The preprocessing's refusal of a raw file, naming it."""
    if isinstance(error, TooManyPixelsError):
        return InvalidImageError(f"'{partition}': {error}")
    return InvalidImageError(f"'{partition}' is not a readable image: {error}")


MISSING = (FileNotFoundError, IsADirectoryError)  # e.g. a broken link: skippable


def read(partition: str, load: Callable[[], bytes], max_file_bytes: int) -> bytes:
    """The bytes of one raw file, its size checked first where the listing or the
    local file tells it; InvalidImageError names a missing or too large file."""
    size = _attempt(partition, load.size) if isinstance(load, RawFile) else None
    if size is None or size <= max_file_bytes:
        content = _attempt(partition, load)
        # open_image names the dataset that gave anything else than bytes
        size = len(content) if isinstance(content, bytes) else None
    if size is not None and size > max_file_bytes:
        raise InvalidImageError(
            f"'{partition}' is {size} bytes, over the limit of {max_file_bytes} "
            "bytes (image.max_file_bytes)"
        )
    return content


def _attempt(partition: str, action: Callable[[], Any]) -> Any:
    """``action()`` on a raw file; a missing file or a device is InvalidImageError.

    Any other failure to read (no permission, a throttled or failed S3 request)
    stops the run, naming the file: skipping it would silently shrink the images.
    """
    try:
        return action()
    except NotARegularFileError as error:
        raise InvalidImageError(
            f"'{partition}' is not a regular file (a device, pipe or socket)"
        ) from error
    except (OSError, DatasetError) as error:  # Kedro wraps the loader's OSError
        cause = error.__cause__ if isinstance(error, DatasetError) else error
        if isinstance(cause, MISSING):
            raise InvalidImageError(
                f"'{partition}' is not a readable image: {cause}"
            ) from error
        raise DatasetError(
            f"Could not read '{partition}': {cause or error} (only missing files and "
            "undecodable images are skipped: fix the access and run again)"
        ) from error


@dataclass(frozen=True, slots=True)
class ArrayLoader:
    """Reads one stored uint8 array when called; knows its shape and the SHA-256 of
    the raw file it was made from without reading anything."""

    fs: fsspec.AbstractFileSystem
    location: str
    shape: tuple[int, ...]
    sha256: str

    def __call__(self) -> np.ndarray:
        try:
            return array_from_bytes(self.fs.cat_file(self.location), self.shape)
        except FileNotFoundError as error:
            raise DatasetError(
                f"stored array '{self.location}' is gone: run `kedro run` to rebuild "
                "image_arrays"
            ) from error
        except ValueError as error:  # cut short, or not an array of this shape
            raise DatasetError(
                f"stored array '{self.location}' is damaged ({error}): delete it and "
                "run `kedro run` to rebuild it"
            ) from error


@dataclass(frozen=True, slots=True)
class StreamedArrayLoader(ArrayLoader):
    """Makes the array from the raw file at ``location`` on every call, exactly as a
    stored one was made; refuses a file whose bytes are no longer the ones checked."""

    max_pixels: int
    file_bytes: int

    def __call__(self) -> np.ndarray:
        try:
            # At most one byte more than was checked: a file that grew, or a link to
            # /dev/zero put in its place, is refused without reading it whole.
            content = self.fs.cat_file(self.location, start=0, end=self.file_bytes + 1)
        except FileNotFoundError as error:
            raise DatasetError(
                f"'{self.location}' is gone since the features step checked it: "
                "run `kedro run` to check the raw images again"
            ) from error
        if (
            len(content) != self.file_bytes
            or hashlib.sha256(content).hexdigest() != self.sha256
        ):
            raise DatasetError(
                f"'{self.location}' changed since the features step checked it "
                "(its size or SHA-256 differs from image_arrays' manifest): run "
                "`kedro run` to check the raw images again"
            )
        size, _, channels = self.shape
        image = open_image(self.location, content, self.max_pixels)
        return preprocessed_uint8(self.location, image, size, channels)


class ImageArrays(dict[str, ArrayLoader]):
    """image_arrays as loaded: a loader per file kept, and what else the save saw."""

    def __init__(
        self,
        loaders: Mapping[str, ArrayLoader],
        *,
        classes: Sequence[str],
        skipped: Mapping[str, str],
    ) -> None:
        super().__init__(loaders)
        self.classes = list(classes)  # the class folders listed
        self.skipped = dict(skipped)  # partition -> why it was left out


class ImageArrayDataset(AbstractDataset[ImagesToPreprocess, ImageArrays]):
    """Preprocessed images stored by content digest; loads as {partition: loader}.

    Saving takes an ``ImagesToPreprocess``: each file is read once, checked and
    digested, and preprocessed only when its array is missing. Loading gives, for
    every file the last save kept, a function that reads its uint8 array, and the
    class folders and skipped files (with why) that save saw, as its manifest says. ``path``
    is a local path or any fsspec URL (``s3://bucket/arrays``), as for ``raw_images``.

    With ``store_arrays=False`` no array is written: the manifest records each kept
    file's URL and SHA-256, and every loader call reads the raw file again and
    preprocesses it (each epoch streams from the raw files). ``raw_files`` holds the
    ``credentials`` and ``fs_args`` to open them with, as ``raw_images`` has them.
    """

    def __init__(  # noqa: PLR0913  each one a catalog key
        self,
        *,
        path: str,
        store_arrays: bool = True,
        raw_files: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, root = get_protocol_and_path(path)
        fs_args = dict(fs_args or {})
        if protocol == "file":
            fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._root = PurePosixPath(root)
        self._fs = fsspec.filesystem(protocol, **(credentials or {}), **fs_args)
        self._store_arrays = store_arrays
        self._raw_files = _raw_files_options(raw_files or {})
        self.metadata = metadata

    def _location(self, relative: str) -> str:
        return get_filepath_str(self._root / relative, self._protocol)

    def load(self) -> ImageArrays:
        manifest = self._manifest()
        shape = (manifest["size"], manifest["size"], manifest["channels"])
        seen = {"classes": manifest["classes"], "skipped": manifest["skipped"]}
        if self._store_arrays:
            return ImageArrays(
                {
                    partition: ArrayLoader(
                        self._fs,
                        self._location(relative),
                        shape,
                        PurePosixPath(relative).stem,  # <folder>/<ab>/<sha256>.npy
                    )
                    for partition, relative in manifest["arrays"].items()
                },
                **seen,
            )
        filesystems: dict[str, fsspec.AbstractFileSystem] = {}
        return ImageArrays(
            {
                partition: StreamedArrayLoader(
                    self._raw_filesystem(kept["url"], filesystems),
                    kept["url"],
                    shape,
                    kept["sha256"],
                    manifest["max_pixels"],
                    kept["bytes"],
                )
                for partition, kept in manifest["raw_files"].items()
            },
            **seen,
        )

    def _manifest(self) -> dict[str, Any]:
        """The last save's manifest; refused if missing, from an older version of the
        project, or saved with the other ``store_arrays``."""
        location = self._location(MANIFEST)
        try:
            manifest = json.loads(self._fs.cat_file(location))
        except FileNotFoundError:
            raise DatasetError(  # the catalog prefixes "image_arrays: "
                "not built yet: run `kedro run` (or `kedro run --pipeline "
                "features`) first"
            ) from None
        streamed = "raw_files" in manifest
        # Written before the class folders (or, streamed, each file's size) were kept.
        if "classes" not in manifest or (
            streamed
            and any("bytes" not in kept for kept in manifest["raw_files"].values())
        ):
            raise DatasetError(
                f"its manifest ({location}) is from an older version of the project: "
                "run `kedro run` to rebuild it"
            )
        if streamed == self._store_arrays:
            raise DatasetError(
                f"image_arrays was saved with store_arrays {str(not streamed).lower()} "
                f"({self._location(MANIFEST)}), the catalog now says "
                f"{str(self._store_arrays).lower()}: run `kedro run` to rebuild it"
            )
        if manifest.get("preprocessing") != PREPROCESSING_VERSION:
            raise DatasetError(
                f"its manifest ({location}) was made by another preprocessing.py or "
                f"Pillow than this one ({PREPROCESSING_VERSION}): run `kedro run` to "
                "rebuild it"
            )
        return manifest

    def _raw_filesystem(
        self, url: str, filesystems: dict[str, fsspec.AbstractFileSystem]
    ) -> fsspec.AbstractFileSystem:
        """The filesystem of a raw file's URL, one per protocol, opened with
        ``raw_files``' credentials and fs_args."""
        protocol = get_protocol(url)
        if protocol not in filesystems:
            filesystems[protocol] = fsspec.filesystem(protocol, **self._raw_files)
        return filesystems[protocol]

    def save(self, data: ImagesToPreprocess) -> None:
        if not self._store_arrays:
            self._save_raw_files(data)
            return
        folder = f"{data.size}x{data.size}x{data.channels}-{PREPROCESSING_VERSION}"
        # One listing rather than one existence check per image (a request each on S3).
        found = self._fs.find(self._location(folder))  # [] when there is no folder
        stored = {PurePosixPath(path).name for path in found}
        arrays, built, skipped = {}, 0, dict(data.skipped)
        for partition in sorted(data.files):
            try:
                content = read(partition, data.files[partition], data.max_file_bytes)
                image = open_image(partition, content, data.max_pixels)
                digest = hashlib.sha256(content).hexdigest()
                relative = f"{folder}/{digest[:2]}/{digest}.npy"
                if f"{digest}.npy" not in stored:
                    array = preprocessed_uint8(
                        partition, image, data.size, data.channels
                    )
                    self._write_atomically(relative, array_to_bytes(array))
                    stored.add(f"{digest}.npy")
                    built += 1
            except InvalidImageError as error:
                skip_or_fail(error, data.on_invalid_image)
                skipped[partition] = str(error)
                continue
            arrays[partition] = relative
        logger.info(
            "Preprocessed %d of %d images; %d reused from %s",
            built,
            len(arrays),
            len(arrays) - built,
            self._location(folder),
        )
        manifest = {
            "size": data.size,
            "channels": data.channels,
            "preprocessing": PREPROCESSING_VERSION,
            "classes": sorted(data.classes),
            "skipped": skipped,
            "arrays": arrays,
        }
        self._write_atomically(MANIFEST, json.dumps(manifest, indent=0).encode())

    def _save_raw_files(self, data: ImagesToPreprocess) -> None:
        """Check each file as ``save`` does and record where it is and its digest;
        decode only contents the last manifest did not list as checked."""
        checked = self._streamed_digests()
        raw_files, decoded, skipped = {}, 0, dict(data.skipped)
        for partition in sorted(data.files):
            load = data.files[partition]
            if not isinstance(load, RawFile):
                raise DatasetError(
                    f"image_arrays with store_arrays false reads the raw files again, "
                    f"so it needs their URLs: raw_images gave {type(load).__name__} "
                    f"for '{partition}', not an ImageFolderDataset's RawFile"
                )
            try:
                content = read(partition, load, data.max_file_bytes)
                image = open_image(partition, content, data.max_pixels)
                digest = hashlib.sha256(content).hexdigest()
                if digest not in checked:
                    decode(partition, image)
                    checked.add(digest)
                    decoded += 1
            except InvalidImageError as error:
                skip_or_fail(error, data.on_invalid_image)
                skipped[partition] = str(error)
                continue
            raw_files[partition] = {
                "url": load.url,
                "sha256": digest,
                "bytes": len(content),
            }
        logger.info(
            "Checked %d images (%d decoded, %d known); no arrays stored "
            "(store_arrays false): each epoch preprocesses the raw files again",
            len(raw_files),
            decoded,
            len(raw_files) - decoded,
        )
        self._warn_of_stored_arrays()
        manifest = {
            "size": data.size,
            "channels": data.channels,
            "max_pixels": data.max_pixels,
            "preprocessing": PREPROCESSING_VERSION,
            "classes": sorted(data.classes),
            "skipped": skipped,
            "raw_files": raw_files,
        }
        self._write_atomically(MANIFEST, json.dumps(manifest, indent=0).encode())

    def _streamed_digests(self) -> set[str]:
        """The contents the last streaming save checked (decoded whole), if any."""
        if not self._exists():
            return set()
        manifest = json.loads(self._fs.cat_file(self._location(MANIFEST)))
        if manifest.get("preprocessing") != PREPROCESSING_VERSION:
            return set()  # checked by other code: check every file again
        return {kept["sha256"] for kept in manifest.get("raw_files", {}).values()}

    def _warn_of_stored_arrays(self) -> None:
        """Name the folders of arrays an earlier stored run left, which this mode never
        reads (kept, as stored mode keeps stale arrays: switching back reuses them)."""
        root = self._location("")
        if not self._fs.isdir(root):
            return
        folders = [p for p in self._fs.ls(root, detail=False) if self._fs.isdir(p)]
        if folders:
            logger.warning(
                "image_arrays stores no arrays (store_arrays false), yet arrays of an "
                "earlier run remain in %s: delete them to reclaim the disk",
                ", ".join(sorted(folders)),
            )

    def _write_atomically(self, relative: str, content: bytes) -> None:
        """Write a file so that a crash leaves no half of it: object stores store whole
        objects; a local file is written beside its target, then renamed."""
        target = self._location(relative)
        if self._protocol != "file":
            self._fs.pipe_file(target, content)
            return
        temporary = f"{target}.{uuid.uuid4().hex}.tmp"
        self._fs.pipe_file(temporary, content)
        self._fs.mv(temporary, target)

    def _exists(self) -> bool:
        return self._fs.isfile(self._location(MANIFEST))

    def _describe(self) -> dict[str, Any]:
        return {
            "path": self._location(""),
            "protocol": self._protocol,
            "store_arrays": self._store_arrays,
        }


def _raw_files_options(raw_files: dict[str, Any]) -> dict[str, Any]:
    """The storage options that open the raw files: ``credentials`` and ``fs_args``."""
    unknown = set(raw_files) - {"credentials", "fs_args"}
    if unknown:
        raise DatasetError(
            f"image_arrays.raw_files takes credentials and fs_args, not "
            f"{', '.join(sorted(unknown))}"
        )
    return {**(raw_files.get("credentials") or {}), **(raw_files.get("fs_args") or {})}


def check_stored_shape(
    loaders: Sequence[ArrayLoader], size: int, channels: int
) -> None:
    """Refuse stored arrays made with another ``image.size`` or ``image.channels``
    than the run's (as after ``kedro run --from-nodes train_classifier --params ...``)."""
    for shape in {loader.shape for loader in loaders}:
        for name, value, stored in (
            ("size", size, shape[0]),
            ("channels", channels, shape[2]),
        ):
            if value != stored:
                raise ParameterError(
                    f"image.{name} {value} does not match the stored image_arrays "
                    f"({'x'.join(map(str, shape))}): run `kedro run` to rebuild them"
                )


def array_to_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def array_from_bytes(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """One stored array from its file's bytes: 5x faster than np.load, which parses the
    .npy header every time (a 64 px RGB image: 35 against 180 microseconds)."""
    if data[6:7] != b"\x01":  # np.save writes format 1.0 for these small headers
        return np.load(io.BytesIO(data))
    header_end = 10 + int.from_bytes(data[8:10], "little")
    return np.frombuffer(data, np.uint8, offset=header_end).reshape(shape)


def preprocessed_uint8(
    partition: str, image: Image.Image, size: int, channels: int
) -> np.ndarray:
    """An opened raw image decoded and preprocessed, as the uint8 array stored for it."""
    return to_uint8(preprocess(decode(partition, image), size, channels))


def to_uint8(scaled: np.ndarray) -> np.ndarray:
    """``preprocess()``'s float32 in [0, 1] as the uint8 it was made of (exactly)."""
    return np.rint(scaled * 255.0).astype(np.uint8)


def from_uint8(array: np.ndarray) -> np.ndarray:
    """A stored uint8 array as ``preprocess()`` returns it: float32 in [0, 1]."""
    return np.asarray(array, dtype=np.float32) / 255.0
