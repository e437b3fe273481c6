"""The features step: each raw file checked (listing first, then its bytes) and kept
or skipped, run as `kedro run` runs it: the features and index nodes on a catalog."""

from __future__ import annotations

import copy
import io
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.text import TextDataset
from PIL import Image

from {{ cookiecutter.python_package }}.image_features import (
    ImageArrayDataset,
)
from {{ cookiecutter.python_package }}.image_folders import (
    ImageFolderDataset,
    InvalidImageError,
)
from {{ cookiecutter.python_package }}.pipelines import (
    data_processing,
    features,
)
from {{ cookiecutter.python_package }}.pipelines.features.nodes import (
    preprocess_images,
)

ImageFolderFactory = Callable[[Path, dict[str, int]], Path]
Indexer = Callable[..., tuple[pd.DataFrame, float]]


def encoded(image: Image.Image, image_format: str) -> bytes:
    """The bytes of an image file."""
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def noise(side: int = 64) -> Image.Image:
    """Random pixels, so that compressed files are large enough to cut in half."""
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


BAD_FILES = {
    "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "truncated.png": encoded(noise(), "PNG")[:4000],
    "truncated.jpg": encoded(noise(), "JPEG")[:2000],
    "empty.png": b"",
    "text.png": b"this is not an image\n",
    "notes.txt": b"labelled by Ann, 2024\n",
}

IMAGE_PARAMS = {  # params:image
    "size": 8,
    "channels": 3,
    "max_pixels": 40_000_000,
    "max_file_bytes": 50_000_000,
}


def index_raw_images(
    raw_images: ImageFolderDataset,
    arrays: Path,
    params: dict[str, Any],
    image: dict[str, int] = IMAGE_PARAMS,
) -> tuple[pd.DataFrame, float]:
    """Run the features pipeline and index_images on a hand-built catalog, as
    `kedro run` runs them: the image index and the skipped count."""
    catalog = DataCatalog(
        datasets={
            "raw_images": raw_images,
            "image_arrays": ImageArrayDataset(path=str(arrays)),
            "image_index": MemoryDataset(),
            "skipped_image_count": MemoryDataset(),
        }
    )
    catalog["params:preprocess_images"] = params
    catalog["params:image"] = image
    pipeline = features.create_pipeline() + data_processing.create_pipeline().to_nodes(
        "index_images"
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog.load("image_index"), catalog.load("skipped_image_count")


@pytest.fixture
def image_folder(
    raw_images_entry: dict[str, Any],
) -> Callable[[str], ImageFolderDataset]:
    """The catalog's raw_images entry for a folder or fsspec URL."""

    def dataset(path: str) -> ImageFolderDataset:
        return ImageFolderDataset(
            path=path, dataset=copy.deepcopy(raw_images_entry["dataset"])
        )

    return dataset


@pytest.fixture
def index_folder(
    tmp_path: Path,
    image_folder: Callable[[str], ImageFolderDataset],
    parameters: dict[str, Any],
) -> Indexer:
    """Index a folder as `kedro run` does; keyword arguments change the parameters."""

    def index(
        folder: Path, image: dict[str, int] = IMAGE_PARAMS, **params: Any
    ) -> tuple[pd.DataFrame, float]:
        return index_raw_images(
            image_folder(str(folder)),
            tmp_path / "arrays",
            {**parameters["preprocess_images"], **params},
            image,
        )

    return index


@pytest.fixture
def good_folder(tmp_path: Path, make_image_folder: ImageFolderFactory) -> Path:
    """Two classes of three readable images each."""
    return make_image_folder(tmp_path / "images", {"cat": 3, "dog": 3})


def test_index_images_lists_every_image_with_its_class(
    good_folder: Path, index_folder: Indexer
) -> None:
    """Each file under a class folder becomes one (partition, label) row."""
    index, skipped = index_folder(good_folder)
    assert list(index.columns) == ["partition", "label", "sha256"]
    assert index["label"].tolist() == ["cat"] * 3 + ["dog"] * 3
    assert index["partition"].tolist()[:2] == ["cat/cat_000.png", "cat/cat_001.jpg"]
    assert skipped == 0.0


def test_images_on_an_fsspec_filesystem_are_indexed(
    tmp_path: Path,
    image_folder: Callable[[str], ImageFolderDataset],
    parameters: dict[str, Any],
) -> None:
    """raw_images may point at any fsspec URL, not only a local folder."""
    memory = fsspec.filesystem("memory")
    partitions = ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    for partition in partitions:
        memory.pipe(f"/shapes/{partition}", encoded(noise(8), "PNG"))
    try:
        memory.pipe("/shapes/.thumbnails/0.png", encoded(noise(8), "PNG"))
        index, skipped = index_raw_images(
            image_folder("memory://shapes"),
            tmp_path / "arrays",
            parameters["preprocess_images"],
        )
    finally:
        memory.rm("/shapes", recursive=True)
    assert index["partition"].tolist() == partitions
    assert skipped == 0.0


@pytest.mark.parametrize("file_name", sorted(BAD_FILES))
def test_unreadable_file_is_skipped_with_a_warning(  # noqa: PLR0913
    good_folder: Path,
    index_folder: Indexer,
    caplog: pytest.LogCaptureFixture,
    file_name: str,
) -> None:
    """A bad file is left out, counted, and named in a one-line warning."""
    (good_folder / "cat" / file_name).write_bytes(BAD_FILES[file_name])
    with caplog.at_level(logging.WARNING):
        index, skipped = index_folder(good_folder)
    assert skipped == 1.0
    assert len(index) == 6  # noqa: PLR2004
    assert f"cat/{file_name}" not in index["partition"].tolist()
    [warning] = [r.getMessage() for r in caplog.records if file_name in r.getMessage()]
    assert f"'cat/{file_name}' is not a readable image" in warning
    assert "\n" not in warning


@pytest.mark.parametrize("file_name", sorted(BAD_FILES))
def test_unreadable_file_fails_the_run_when_asked(
    good_folder: Path,
    index_folder: Indexer,
    file_name: str,
) -> None:
    """With on_invalid_image: fail, the first bad file stops the run, named."""
    (good_folder / "dog" / file_name).write_bytes(BAD_FILES[file_name])
    with pytest.raises(DatasetError, match=re.escape(f"'dog/{file_name}'")):
        index_folder(good_folder, on_invalid_image="fail")


def test_every_skipped_file_is_named_and_counted(
    good_folder: Path,
    index_folder: Indexer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Several bad files: each one is named and the count covers them all."""
    for file_name, data in BAD_FILES.items():
        (good_folder / "dog" / file_name).write_bytes(data)
    with caplog.at_level(logging.WARNING):
        index, skipped = index_folder(good_folder)
    assert skipped == len(BAD_FILES)
    assert len(index) == 6  # noqa: PLR2004
    for file_name in BAD_FILES:
        assert f"'dog/{file_name}'" in caplog.text
    assert f"Skipped {len(BAD_FILES)} unreadable files out of 12" in caplog.text


def test_decompression_bomb_is_skipped(
    good_folder: Path,
    index_folder: Indexer,
    caplog: pytest.LogCaptureFixture,
    decompression_bomb: bytes,
) -> None:
    """A tiny PNG that declares 20000x20000 pixels is rejected, not decoded."""
    (good_folder / "cat" / "bomb.png").write_bytes(decompression_bomb)
    with caplog.at_level(logging.WARNING):
        _, skipped = index_folder(good_folder)
    assert skipped == 1.0
    assert "'cat/bomb.png'" in caplog.text


def test_image_over_max_pixels_is_skipped(
    good_folder: Path,
    index_folder: Indexer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """max_pixels is the limit: a larger image is skipped, its size in the warning."""
    Image.new("RGB", (30, 20)).save(good_folder / "dog" / "large.png")
    with caplog.at_level(logging.WARNING):
        index, skipped = index_folder(
            good_folder, {**IMAGE_PARAMS, "max_pixels": 24 * 24}
        )
    assert skipped == 1.0
    assert "'dog/large.png': image of 30x20 pixels is over the limit" in caplog.text
    assert len(index) == 6  # noqa: PLR2004  the 24x24 images are within the limit


def test_class_without_readable_image_is_named(
    good_folder: Path, index_folder: Indexer
) -> None:
    """A class folder holding only stray files is an error naming the class."""
    (good_folder / "bird").mkdir()
    (good_folder / "bird" / "notes.txt").write_bytes(BAD_FILES["notes.txt"])
    with pytest.raises(InvalidImageError, match="'bird' contain no readable image"):
        index_folder(good_folder)


def test_single_class_is_an_error(
    tmp_path: Path,
    make_image_folder: ImageFolderFactory,
    index_folder: Indexer,
) -> None:
    """A classifier needs two classes; the one found is named."""
    folder = make_image_folder(tmp_path / "images", {"cat": 3})
    with pytest.raises(InvalidImageError, match=r"Only one class folder \('cat'\)"):
        index_folder(folder)


def test_file_outside_class_folders_is_skipped_with_a_warning(
    good_folder: Path,
    index_folder: Indexer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file directly in the images folder has no class: skipped, named."""
    Image.new("RGB", (8, 8)).save(good_folder / "loose.png")
    index, skipped = index_folder(good_folder)
    assert skipped == 1
    assert "loose.png" not in set(index["partition"])
    assert "'loose.png' is not inside a class folder" in caplog.text


def test_file_outside_class_folders_fails_the_run_when_asked(
    good_folder: Path, index_folder: Indexer
) -> None:
    """With on_invalid_image: fail, a loose file stops the run, named."""
    Image.new("RGB", (8, 8)).save(good_folder / "loose.png")
    with pytest.raises(InvalidImageError, match="'loose.png' is not inside a class"):
        index_folder(good_folder, on_invalid_image="fail")


HIDDEN = [
    ".DS_Store",
    ".thumbnails/0.png",
    "cat/.DS_Store",
    "cat/.ipynb_checkpoints/x.png",
]


@pytest.mark.parametrize("on_invalid_image", ["skip", "fail"])
def test_hidden_names_are_left_out_at_every_level(
    good_folder: Path,
    index_folder: Indexer,
    on_invalid_image: str,
) -> None:
    """.DS_Store, .thumbnails/, .ipynb_checkpoints/: no class, no image, no failure."""
    for name in HIDDEN:
        (good_folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(good_folder / name, format="PNG")
    index, skipped = index_folder(good_folder, on_invalid_image=on_invalid_image)
    assert sorted(index["label"].unique()) == ["cat", "dog"]
    assert len(index) == 6  # noqa: PLR2004
    assert skipped == 0


def test_a_symlinked_class_folder_is_a_class(
    tmp_path: Path,
    make_image_folder: ImageFolderFactory,
    index_folder: Indexer,
) -> None:
    images = make_image_folder(tmp_path / "images", {"cat": 3})
    elsewhere = make_image_folder(tmp_path / "elsewhere", {"dog": 3})
    (images / "dog").symlink_to(elsewhere / "dog", target_is_directory=True)
    index, skipped = index_folder(images)
    assert index["label"].value_counts().to_dict() == {"cat": 3, "dog": 3}
    assert skipped == 0


def test_a_symlink_loop_is_skipped_with_a_warning(
    good_folder: Path,
    index_folder: Indexer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (good_folder / "cat" / "again").symlink_to(good_folder, target_is_directory=True)
    index, _ = index_folder(good_folder)
    assert len(index) == 6  # noqa: PLR2004
    assert "a symlink back to a folder above it (a loop)" in caplog.text


@pytest.mark.parametrize("content", ["nothing", "hidden only", "missing"])
def test_an_empty_images_folder_says_where_class_folders_go(
    tmp_path: Path,
    index_folder: Indexer,
    content: str,
) -> None:
    folder = tmp_path / "images"
    if content != "missing":
        folder.mkdir()
    if content == "hidden only":
        (folder / ".gitkeep").touch()
    with pytest.raises(InvalidImageError, match="put one folder per class there"):
        index_folder(folder)


def test_a_failed_run_writes_no_manifest_of_a_partial_set(
    good_folder: Path, tmp_path: Path, index_folder: Indexer
) -> None:
    """With `fail`, a bad file stops the save before the manifest: image_arrays still
    holds the last complete set, or nothing on a first run."""
    arrays = ImageArrayDataset(path=str(tmp_path / "arrays"))
    (good_folder / "dog" / "truncated.png").write_bytes(BAD_FILES["truncated.png"])
    with pytest.raises(DatasetError, match="'dog/truncated.png'"):
        index_folder(good_folder, on_invalid_image="fail")
    assert not arrays.exists()

    (good_folder / "dog" / "truncated.png").unlink()
    index, _ = index_folder(good_folder, on_invalid_image="fail")
    (good_folder / "cat" / "text.png").write_bytes(BAD_FILES["text.png"])
    with pytest.raises(DatasetError, match="'cat/text.png'"):
        index_folder(good_folder, on_invalid_image="fail")
    assert sorted(arrays.load()) == index["partition"].tolist()


class CountedTextDataset(TextDataset):
    """kedro-datasets' TextDataset, counting the objects made."""

    made = 0

    def __init__(self, **kwargs: Any) -> None:
        type(self).made += 1
        super().__init__(**kwargs)


def test_listing_a_folder_makes_no_dataset_per_file(good_folder: Path) -> None:
    """Loading gives one loader per file, but a file's dataset is made only when its
    loader is called: 100 000 files would otherwise be 100 000 objects held at once."""
    CountedTextDataset.made = 0
    raw_images = ImageFolderDataset(
        path=str(good_folder),
        dataset={
            "type": CountedTextDataset,
            "fs_args": {"open_args_load": {"mode": "rb"}},
        },
    ).load()
    assert len(raw_images) == 6  # noqa: PLR2004
    listed = CountedTextDataset.made
    assert listed <= 1  # the one that Kedro's "Loading ..." debug line describes
    cat = raw_images["cat/cat_000.png"]()
    assert cat == (good_folder / "cat" / "cat_000.png").read_bytes()
    assert CountedTextDataset.made == listed + 1


class NeverCalled:
    """A file loader that fails the test if the file is read."""

    def __call__(self) -> bytes:
        raise AssertionError("the file was read")


@pytest.mark.parametrize(
    ("classes", "message"),
    [(["cat"], r"Only one class folder \('cat'\)"), ([], "no class folder")],
    ids=["one class", "no class"],
)
def test_listing_problems_stop_the_run_before_any_file_is_read(
    parameters: dict[str, Any], classes: list[str], message: str
) -> None:
    """One class folder or none is seen from the listing: no file is read first."""
    raw_images = {f"{c}/{i}.png": NeverCalled() for c in classes for i in range(3)}
    raw_images["loose.png"] = NeverCalled()
    with pytest.raises(InvalidImageError, match=message):
        preprocess_images(raw_images, parameters["preprocess_images"], IMAGE_PARAMS)


def test_a_file_outside_the_class_folders_is_never_read(
    parameters: dict[str, Any],
) -> None:
    """The listing rules out a loose file; the manifest will record why."""
    raw_images = {"cat/0.png": NeverCalled(), "dog/0.png": NeverCalled()}
    raw_images["loose.png"] = NeverCalled()
    work = preprocess_images(raw_images, parameters["preprocess_images"], IMAGE_PARAMS)
    assert sorted(work.files) == ["cat/0.png", "dog/0.png"]
    assert work.classes == ["cat", "dog"]
    assert list(work.skipped) == ["loose.png"]


class CountedLoads(TextDataset):
    """The catalog's TextDataset, recording each file it loads."""

    loaded: list[str] = []  # noqa: RUF012

    def load(self) -> bytes:
        type(self).loaded.append(self._filepath.name)
        return super().load()


@pytest.fixture
def counted_folder() -> Callable[[Path], ImageFolderDataset]:
    """raw_images as the catalog has it, recording which files are read."""
    CountedLoads.loaded = []

    def dataset(folder: Path) -> ImageFolderDataset:
        return ImageFolderDataset(
            path=str(folder),
            dataset={
                "type": CountedLoads,
                "fs_args": {"open_args_load": {"mode": "rb"}},
            },
        )

    return dataset


@pytest.mark.parametrize("on_invalid_image", ["skip", "fail"])
def test_a_file_over_max_file_bytes_is_refused_before_it_is_read(  # noqa: PLR0913
    tmp_path: Path,
    good_folder: Path,
    counted_folder: Callable[[Path], ImageFolderDataset],
    parameters: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    on_invalid_image: str,
) -> None:
    """A 600 MB file (sparse: no disk used) is skipped or fails, named with the limit,
    and never loaded: its size comes from the file system."""
    video = good_folder / "cat" / "holiday_video.png"
    with video.open("wb") as file:
        file.truncate(600_000_000)
    params = parameters["preprocess_images"] | {"on_invalid_image": on_invalid_image}
    limit = "'cat/holiday_video.png' is 600000000 bytes, over the limit of 50000000"
    if on_invalid_image == "fail":
        with pytest.raises(DatasetError, match=re.escape(limit)):
            index_raw_images(counted_folder(good_folder), tmp_path / "arrays", params)
    else:
        with caplog.at_level(logging.WARNING):
            index, skipped = index_raw_images(
                counted_folder(good_folder), tmp_path / "arrays", params
            )
        assert skipped == 1.0
        assert len(index) == 6  # noqa: PLR2004
        assert f"{limit} bytes (image.max_file_bytes)" in caplog.text
    assert "holiday_video.png" not in CountedLoads.loaded


def test_an_object_over_max_file_bytes_is_refused_from_the_listing(
    tmp_path: Path, parameters: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """On an object store the listing gives each size: a large object is never read."""
    memory = fsspec.filesystem("memory")
    for partition in ("cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"):
        memory.pipe(f"/sized/{partition}", encoded(noise(8), "PNG"))
    memory.pipe("/sized/dog/video.png", bytes(2_000))
    try:
        raw_images = ImageFolderDataset(
            path="memory://sized",
            dataset={
                "type": CountedLoads,
                "fs_args": {"open_args_load": {"mode": "rb"}},
            },
        )
        CountedLoads.loaded = []
        with caplog.at_level(logging.WARNING):
            index, skipped = index_raw_images(
                raw_images,
                tmp_path / "arrays",
                parameters["preprocess_images"],
                IMAGE_PARAMS | {"max_file_bytes": 1_000},
            )
    finally:
        memory.rm("/sized", recursive=True)
    assert skipped == 1.0
    assert len(index) == 4  # noqa: PLR2004
    assert "'dog/video.png' is 2000 bytes, over the limit of 1000" in caplog.text
    assert "video.png" not in CountedLoads.loaded
    assert len(CountedLoads.loaded) == 4  # noqa: PLR2004


def test_a_link_to_a_device_is_skipped_unread(
    tmp_path: Path,
    good_folder: Path,
    counted_folder: Callable[[Path], ImageFolderDataset],
    parameters: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A symlink to /dev/zero has no size and no end: skipped, never read."""
    (good_folder / "dog" / "zero.png").symlink_to(os.devnull.replace("null", "zero"))
    with caplog.at_level(logging.WARNING):
        index, skipped = index_raw_images(
            counted_folder(good_folder),
            tmp_path / "arrays",
            parameters["preprocess_images"],
        )
    assert skipped == 1.0
    assert "'dog/zero.png' is not a regular file" in caplog.text
    assert "zero.png" not in CountedLoads.loaded


@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "as Kedro wraps it"])
def test_a_file_that_cannot_be_read_stops_the_run_even_with_skip(
    tmp_path: Path, parameters: dict[str, Any], wrapped: bool
) -> None:
    """No permission (or a throttled S3 request) is no bad image: skipping it would
    silently shrink the training set, so the run stops, naming the file."""

    def denied() -> bytes:
        error = PermissionError(13, "Permission denied", "cat/1.png")
        if not wrapped:
            raise error
        raise DatasetError("Failed while loading data from dataset ...") from error

    raw_images = {
        "cat/0.png": lambda: encoded(noise(8), "PNG"),
        "cat/1.png": denied,
        "dog/0.png": lambda: encoded(noise(8), "PNG"),
    }
    params = parameters["preprocess_images"] | {"on_invalid_image": "skip"}
    with pytest.raises(DatasetError, match=r"Could not read 'cat/1.png': .*Permission"):
        ImageArrayDataset(path=str(tmp_path / "arrays")).save(
            preprocess_images(raw_images, params, IMAGE_PARAMS)
        )
    assert not (tmp_path / "arrays" / "manifest.json").exists()


def test_a_broken_link_is_skipped(
    tmp_path: Path, good_folder: Path, index_folder: Indexer, caplog
) -> None:
    """A link to nothing is a missing file: skipped with a warning naming it."""
    (good_folder / "cat" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with caplog.at_level(logging.WARNING):
        index, skipped = index_folder(good_folder)
    assert skipped == 1.0
    assert "'cat/gone.png' is not a readable image" in caplog.text
