"""The tf.data input: batches of stored arrays or of image files, shuffled by index."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.python_package }}.input_pipeline import (
    array_batches,
    image_batches,
)


def _all_batches(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Every image and label of a dataset, in the order it yields them."""
    images, labels = zip(*dataset.as_numpy_iterator(), strict=True)
    return np.concatenate(images), np.concatenate(labels)


@pytest.fixture
def loaders(tmp_path: Path, make_image_folder, load_partitions) -> list:
    """Loaders of 9 real image files, as the raw_images catalog entry gives them."""
    folder = make_image_folder(tmp_path / "images", {"a": 5, "b": 4})
    partitions = load_partitions(folder)
    return [partitions[name] for name in sorted(partitions)]


def test_every_image_comes_once_per_epoch(loaders: list) -> None:
    """Shuffled batches hold each image exactly once, the last batch partial."""
    batches = image_batches(
        loaders, list(range(9)), size=16, channels=1, batch_size=4, shuffle_seed=1
    )
    sizes = [len(labels) for _, labels in batches.as_numpy_iterator()]
    _, labels = _all_batches(batches)
    assert sizes == [4, 4, 1]
    assert sorted(labels) == list(range(9))


def test_stored_arrays_are_read_only_as_batches_are(
    tmp_path: Path, make_image_folder, load_image_arrays, parameters: dict[str, Any]
) -> None:
    """Building the input reads nothing (no loader is called to guess its kind); each
    epoch reads every stored array once."""
    image = parameters["image"]
    folder = make_image_folder(tmp_path / "images", {"a": 5, "b": 4})
    arrays = load_image_arrays(folder, tmp_path / "arrays", image)
    reads: Counter[str] = Counter()

    def counted(partition: str) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            reads[partition] += 1
            return arrays[partition]()

        return load

    batches = array_batches(
        [counted(p) for p in sorted(arrays)],
        list(range(9)),
        size=image["size"],
        channels=image["channels"],
        batch_size=4,
    )
    assert not reads
    images, _ = _all_batches(batches)
    assert reads == dict.fromkeys(arrays, 1)
    assert images.dtype == np.float32
    assert 0.0 <= images.min() <= images.max() <= 1.0
