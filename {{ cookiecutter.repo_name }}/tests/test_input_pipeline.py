"""The tf.data input: batches of image_arrays' loaders, shuffled by index."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from kedro.io import DatasetError
from PIL import Image

from {{ cookiecutter.python_package }}.image_features import (
    ArrayLoader,
    StreamedArrayLoader,
)
from {{ cookiecutter.python_package }}.input_pipeline import (
    array_batches,
    loader_errors_raised,
)


def _all_batches(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Every image and label of a dataset, in the order it yields them."""
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture(params=[True, False], ids=["stored", "streamed"])
def nine_loaders(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    make_image_folder,
    load_image_arrays,
    parameters: dict[str, Any],
) -> list[ArrayLoader]:
    """image_arrays' loaders of 9 images of two classes, in partition order: stored
    arrays, or (store_arrays false) the raw files read again."""
    folder = make_image_folder(tmp_path / "images", {"a": 5, "b": 4})
    arrays = load_image_arrays(
        folder, tmp_path / "arrays", parameters["image"], request.param
    )
    return [arrays[p] for p in sorted(arrays)]


def test_every_image_comes_once_per_epoch(
    nine_loaders: list[ArrayLoader], parameters: dict[str, Any]
) -> None:
    """Shuffled batches hold each image exactly once, the last batch partial."""
    image = parameters["image"]
    batches = array_batches(
        nine_loaders,
        list(range(9)),
        size=image["size"],
        channels=image["channels"],
        batch_size=4,
        shuffle_seed=1,
    )
    sizes = [len(labels) for _, labels in batches.as_numpy_iterator()]
    _, labels = _all_batches(batches)
    assert sizes == [4, 4, 1]
    assert sorted(labels) == list(range(9))


@dataclass(frozen=True)
class CountedLoader(ArrayLoader):
    """A stored array's loader that counts its reads."""

    reads: Counter[str] = field(default_factory=Counter)

    def __call__(self) -> np.ndarray:
        self.reads[self.location] += 1
        return super().__call__()


def test_stored_arrays_are_read_only_as_batches_are(
    tmp_path: Path, make_image_folder, load_image_arrays, parameters: dict[str, Any]
) -> None:
    """Building the input reads nothing (no loader is called to guess its kind); each
    epoch reads every stored array once."""
    image = parameters["image"]
    folder = make_image_folder(tmp_path / "images", {"a": 5, "b": 4})
    arrays = load_image_arrays(folder, tmp_path / "arrays", image)
    reads: Counter[str] = Counter()
    loaders = [
        CountedLoader(a.fs, a.location, a.shape, a.sha256, reads)
        for a in (arrays[p] for p in sorted(arrays))
    ]
    batches = array_batches(
        loaders,
        list(range(9)),
        size=image["size"],
        channels=image["channels"],
        batch_size=4,
    )
    assert not reads
    images, _ = _all_batches(batches)
    assert reads == {loader.location: 1 for loader in loaders}
    assert images.dtype == np.float32
    assert 0.0 <= images.min() <= images.max() <= 1.0


def test_a_loaders_error_reaches_the_caller_as_itself(
    nine_loaders: list[ArrayLoader], parameters: dict[str, Any]
) -> None:
    """A stored array deleted, or a raw file changed since the features step: inside
    loader_errors_raised() the loader's own error, not TensorFlow's around it."""
    image = parameters["image"]
    broken = nine_loaders[0]
    if isinstance(broken, StreamedArrayLoader):
        Image.new("RGB", (24, 24), "red").save(broken.location)
        expected = f"'{broken.location}' changed since the features step checked it"
    else:
        Path(broken.location).unlink()
        expected = f"stored array '{broken.location}' is gone: run `kedro run`"
    batches = array_batches(
        nine_loaders,
        list(range(9)),
        size=image["size"],
        channels=image["channels"],
        batch_size=2,
    )
    with pytest.raises(tf.errors.OpError):
        _all_batches(batches)
    with pytest.raises(DatasetError) as raised, loader_errors_raised():
        _all_batches(batches)
    assert str(raised.value).startswith(expected)
    assert raised.value.__suppress_context__  # TensorFlow's error is not shown with it


def test_other_tensorflow_errors_pass_unchanged(
    tmp_path: Path, make_image_folder, load_image_arrays, parameters: dict[str, Any]
) -> None:
    """A TensorFlow error of the model's own, after a loader's error was recorded, is
    not replaced by that loader's error."""
    image = parameters["image"]
    arrays = load_image_arrays(
        make_image_folder(tmp_path / "images", {"a": 1, "b": 1}),
        tmp_path / "arrays",
        image,
    )
    loaders = [arrays[p] for p in sorted(arrays)]
    Path(loaders[0].location).unlink()
    batches = array_batches(
        loaders, [0, 0], image["size"], image["channels"], batch_size=2
    )
    with pytest.raises(tf.errors.OpError):
        _all_batches(batches)  # records the loader's error
    with pytest.raises(tf.errors.InvalidArgumentError), loader_errors_raised():
        tf.debugging.check_numerics(tf.constant([np.nan]), "not a number")
