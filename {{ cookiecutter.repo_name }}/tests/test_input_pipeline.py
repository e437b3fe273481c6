"""The streaming training input: batches, shuffling and the on-disk cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from {{ cookiecutter.python_package }}.input_pipeline import (
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
