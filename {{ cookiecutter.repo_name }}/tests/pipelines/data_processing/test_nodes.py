"""Indexing the images the features step kept, and splitting them for training."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from {{ cookiecutter.python_package }}.image_features import (
    ImageArrayDataset,
)
from {{ cookiecutter.python_package }}.image_folders import (
    InvalidImageError,
)
from {{ cookiecutter.python_package }}.pipelines.data_processing.nodes import (
    index_images,
    list_class_names,
    split_images,
)
from {{ cookiecutter.python_package }}.pipelines.features.nodes import (
    preprocess_images,
)

ImageFolderFactory = Callable[[Path, dict[str, int]], Path]
PartitionLoader = Callable[[Path], dict[str, Callable[[], bytes]]]


@pytest.fixture
def split_params(parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's split_images parameters."""
    return parameters["split_images"]


def image_table(images_per_class: dict[str, int]) -> pd.DataFrame:
    """An image index as index_images returns it, without any files behind it."""
    labels = [label for label, count in images_per_class.items() for _ in range(count)]
    partitions = [f"{label}/{i:03d}.png" for i, label in enumerate(labels)]
    return pd.DataFrame({"partition": partitions, "label": labels})


@pytest.fixture
def save_features(
    tmp_path: Path, load_partitions: PartitionLoader, parameters: dict[str, Any]
) -> Callable[[Path], ImageArrayDataset]:
    """Run the features step on a folder (bad files skipped): its image_arrays."""

    def save(folder: Path) -> ImageArrayDataset:
        arrays = ImageArrayDataset(path=str(tmp_path / "arrays"))
        arrays.save(
            preprocess_images(
                load_partitions(folder),
                parameters["preprocess_images"] | {"on_invalid_image": "skip"},
                parameters["image"],
            )
        )
        return arrays

    return save


def test_index_is_the_features_step_files_not_a_new_listing(
    tmp_path: Path,
    make_image_folder: ImageFolderFactory,
    save_features: Callable[[Path], ImageArrayDataset],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`kedro run --pipeline data_processing` after files were added and deleted
    indexes what image_arrays holds: no deleted file, no readable file called
    skipped."""
    folder = make_image_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    arrays = save_features(folder)
    kept = sorted(arrays.load())
    (folder / "cat" / "cat_000.png").rename(tmp_path / "moved.png")
    (folder / "dog" / "zz_new.png").write_bytes((tmp_path / "moved.png").read_bytes())
    with caplog.at_level(logging.WARNING):
        index, skipped = index_images(arrays.load())
    assert index["partition"].tolist() == kept
    assert "cat/cat_000.png" in kept
    assert skipped == 0.0
    assert "Skipped" not in caplog.text


def test_skipped_files_and_empty_classes_come_from_the_manifest(
    tmp_path: Path,
    make_image_folder: ImageFolderFactory,
    save_features: Callable[[Path], ImageArrayDataset],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The count and the classes are those the features step saw, whatever the folder
    holds now."""
    folder = make_image_folder(tmp_path / "images", {"cat": 3, "dog": 3})
    (folder / "cat" / "text.png").write_bytes(b"this is not an image\n")
    arrays = save_features(folder)
    (folder / "cat" / "text.png").unlink()
    with caplog.at_level(logging.WARNING):
        index, skipped = index_images(arrays.load())
    assert skipped == 1.0
    assert len(index) == 6  # noqa: PLR2004
    assert "Skipped 1 unreadable files out of 7" in caplog.text
    [reason] = arrays.load().skipped.values()
    assert reason.startswith("'cat/text.png' is not a readable image")

    (folder / "bird").mkdir()
    (folder / "bird" / "notes.txt").write_bytes(b"labelled by Ann\n")
    arrays = save_features(folder)
    (folder / "bird" / "notes.txt").unlink()
    (folder / "bird").rmdir()
    with pytest.raises(InvalidImageError, match="'bird' contain no readable image"):
        index_images(arrays.load())


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


def test_a_class_too_small_gets_advice(split_params: dict[str, Any]) -> None:
    index = image_table({"a": 20, "b": 20, "rare": 1})
    with pytest.raises(InvalidImageError) as error:
        split_images(index, split_params)
    message = str(error.value)
    assert "a class needs at least 7 images" in message
    assert "add images to 'rare'" in message
    assert "split_images.validation_fraction" in message
