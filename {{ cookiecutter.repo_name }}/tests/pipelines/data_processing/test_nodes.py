"""Indexing and validating raw image folders, and splitting them for training."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest
from kedro_datasets.text import TextDataset
from PIL import Image

from {{ cookiecutter.python_package }}.image_features import (
    ImageArrayDataset,
)
from {{ cookiecutter.python_package }}.image_folders import (
    ImageFolderDataset,
)
from {{ cookiecutter.python_package }}.pipelines.data_processing.nodes import (
    InvalidImageError,
    index_images,
    list_class_names,
    split_images,
)
from {{ cookiecutter.python_package }}.pipelines.features.nodes import (
    preprocess_images,
)

ImageFolderFactory = Callable[[Path, dict[str, int]], Path]
PartitionLoader = Callable[[Path], dict[str, Callable[[], bytes]]]
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


IMAGE_PARAMS = {"size": 8, "channels": 3, "max_pixels": 40_000_000}  # params:image


@pytest.fixture
def index_params(parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's preprocess_images parameters (where on_invalid_image lives)."""
    return parameters["preprocess_images"]


def index_raw_images(
    raw_images: dict[str, Callable[[], bytes]],
    arrays: Path,
    params: dict[str, Any],
    image: dict[str, int] = IMAGE_PARAMS,
) -> tuple[pd.DataFrame, float]:
    """What `kedro run` does: the features node and image_arrays read and check each
    file once, then index_images indexes the files kept."""
    dataset = ImageArrayDataset(path=str(arrays))
    dataset.save(preprocess_images(raw_images, params, image))
    return index_images(raw_images, dataset.load())


@pytest.fixture
def index_folder(
    tmp_path: Path, load_partitions: PartitionLoader, index_params: dict[str, Any]
) -> Indexer:
    """Index a folder as `kedro run` does; keyword arguments change the parameters."""

    def index(
        folder: Path, image: dict[str, int] = IMAGE_PARAMS, **params: Any
    ) -> tuple[pd.DataFrame, float]:
        raw_images = load_partitions(folder)
        return index_raw_images(
            raw_images, tmp_path / "arrays", {**index_params, **params}, image
        )

    return index


@pytest.fixture
def split_params(parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's split_images parameters."""
    return parameters["split_images"]


@pytest.fixture
def good_folder(tmp_path: Path, make_image_folder: ImageFolderFactory) -> Path:
    """Two classes of three readable images each."""
    return make_image_folder(tmp_path / "images", {"cat": 3, "dog": 3})


def image_table(images_per_class: dict[str, int]) -> pd.DataFrame:
    """An image index as index_images returns it, without any files behind it."""
    labels = [label for label, count in images_per_class.items() for _ in range(count)]
    partitions = [f"{label}/{i:03d}.png" for i, label in enumerate(labels)]
    return pd.DataFrame({"partition": partitions, "label": labels})


def test_index_images_lists_every_image_with_its_class(
    good_folder: Path, index_folder: Indexer
) -> None:
    """Each file under a class folder becomes one (partition, label) row."""
    index, skipped = index_folder(good_folder)
    assert list(index.columns) == ["partition", "label"]
    assert index["label"].tolist() == ["cat"] * 3 + ["dog"] * 3
    assert index["partition"].tolist()[:2] == ["cat/cat_000.png", "cat/cat_001.jpg"]
    assert skipped == 0.0


def test_images_on_an_fsspec_filesystem_are_indexed(
    tmp_path: Path, raw_images_entry: dict[str, Any], index_params: dict[str, Any]
) -> None:
    """raw_images may point at any fsspec URL, not only a local folder."""
    memory = fsspec.filesystem("memory")
    partitions = ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    for partition in partitions:
        memory.pipe(f"/shapes/{partition}", encoded(noise(8), "PNG"))
    try:
        memory.pipe("/shapes/.thumbnails/0.png", encoded(noise(8), "PNG"))
        raw_images = ImageFolderDataset(
            path="memory://shapes", dataset=raw_images_entry["dataset"]
        ).load()
        index, skipped = index_raw_images(raw_images, tmp_path / "arrays", index_params)
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
    with pytest.raises(InvalidImageError, match=re.escape(f"'dog/{file_name}'")):
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


def test_list_class_names_is_sorted_and_unique() -> None:
    """Class names are sorted, so a class's index in the model output is stable."""
    index = image_table({"zebra": 2, "ant": 1, "mole": 2})
    assert list_class_names(index) == ["ant", "mole", "zebra"]


def test_split_images_respects_fractions_per_class(
    split_params: dict[str, Any],
) -> None:
    """Train, validation and test hold 70/15/15 % of every class, with no overlap."""
    index = image_table({"a": 20, "b": 20, "c": 20})
    train, validation, test = split_images(index, split_params)
    for split, count in ((train, 14), (validation, 3), (test, 3)):
        assert split["label"].value_counts().to_dict() == dict.fromkeys("abc", count)
    partitions = [*train["partition"], *validation["partition"], *test["partition"]]
    assert sorted(partitions) == sorted(index["partition"])


def test_split_images_is_deterministic_for_a_seed(split_params: dict[str, Any]) -> None:
    """The same seed gives the same split; another seed gives another split."""
    index = image_table({"a": 20, "b": 20, "c": 20})
    first = split_images(index, split_params)
    again = split_images(index, split_params)
    other = split_images(index, {**split_params, "seed": split_params["seed"] + 1})
    for split, same in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(split, same)
    assert set(first[0]["partition"]) != set(other[0]["partition"])


def test_split_images_does_not_change_its_input(split_params: dict[str, Any]) -> None:
    """The index the node receives is left as it was."""
    index = image_table({"a": 10, "b": 10})
    before = index.copy()
    split_images(index, split_params)
    pd.testing.assert_frame_equal(index, before)


@pytest.mark.parametrize("small_count", [1, 2])
def test_split_images_names_a_class_too_small_to_split(
    split_params: dict[str, Any], small_count: int
) -> None:
    """A class without enough images for three splits is named in the error."""
    index = image_table({"a": 10, "b": 10, "rare": small_count})
    with pytest.raises(InvalidImageError, match="Class 'rare' has only"):
        split_images(index, split_params)


@pytest.mark.parametrize(
    ("validation", "test"), [(0, 0.15), (0.15, 0), (0.5, 0.5)], ids=str
)
def test_split_fractions_are_checked(
    split_params: dict[str, Any], validation: float, test: float
) -> None:
    """Fractions of 0 or summing to 1 or more name the parameters."""
    index = image_table({"a": 20, "b": 20})
    params = {**split_params, "validation_fraction": validation, "test_fraction": test}
    with pytest.raises(ValueError, match="split_images.validation_fraction"):
        split_images(index, params)


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


def test_a_class_too_small_gets_advice(split_params: dict[str, Any]) -> None:
    index = image_table({"a": 20, "b": 20, "rare": 1})
    with pytest.raises(InvalidImageError) as error:
        split_images(index, split_params)
    message = str(error.value)
    assert "a class needs at least 7 images" in message
    assert "add images to 'rare'" in message
    assert "split_images.validation_fraction" in message


def test_a_failed_run_writes_no_manifest_of_a_partial_set(
    good_folder: Path, tmp_path: Path, index_folder: Indexer
) -> None:
    """With `fail`, a bad file stops the save before the manifest: image_arrays still
    holds the last complete set, or nothing on a first run."""
    arrays = ImageArrayDataset(path=str(tmp_path / "arrays"))
    (good_folder / "dog" / "truncated.png").write_bytes(BAD_FILES["truncated.png"])
    with pytest.raises(InvalidImageError, match="'dog/truncated.png'"):
        index_folder(good_folder, on_invalid_image="fail")
    assert not arrays.exists()

    (good_folder / "dog" / "truncated.png").unlink()
    index, _ = index_folder(good_folder, on_invalid_image="fail")
    (good_folder / "cat" / "text.png").write_bytes(BAD_FILES["text.png"])
    with pytest.raises(InvalidImageError, match="'cat/text.png'"):
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
