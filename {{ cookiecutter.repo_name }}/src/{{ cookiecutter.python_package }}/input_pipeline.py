"""Streaming tf.data input: images are read and preprocessed batch by batch, never all held."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from {{ cookiecutter.python_package }}.image_features import (
    from_uint8,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    preprocess,
)

ImageLoader = Callable[[], Image.Image | np.ndarray]


def _gives_arrays(loader: ImageLoader) -> bool:
    """Whether ``loader`` returns stored uint8 arrays rather than images to preprocess."""
    return isinstance(loader(), np.ndarray)


def image_batches(
    loaders: Sequence[ImageLoader],
    labels: Sequence[int],
    size: int,
    channels: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    cache_file: Path | None = None,
) -> tf.data.Dataset:
    """Batches of (images, labels): read and preprocess a batch at a time, prefetched.

    ``loaders`` give either images to preprocess (``raw_images``: streaming from the
    files) or their stored uint8 arrays (``image_arrays``: preprocessed once, read
    back as float32). One Python call per batch rather than per image: tf.data runs
    several batches in parallel threads, and Pillow releases the GIL while it decodes
    and resizes. With ``cache_file`` and images to preprocess, every image is
    preprocessed once into that file, and each epoch reads it back.
    """
    shape = (size, size, channels)
    if loaders and _gives_arrays(loaders[0]):
        # The image_arrays dataset: preprocessed once already, read back per batch.
        def load(indices: np.ndarray) -> np.ndarray:
            return from_uint8(np.stack([loaders[i]() for i in indices]))

    elif cache_file is None:

        def load(indices: np.ndarray) -> np.ndarray:
            return np.stack([preprocess(loaders[i](), size, channels) for i in indices])

    else:
        _write_cache(loaders, size, channels, cache_file)

        def load(indices: np.ndarray) -> np.ndarray:
            return _read_cache(cache_file, indices, shape)

    def load_tensor(
        indices: tf.Tensor, batch_labels: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.numpy_function(load, [indices], tf.float32, stateful=False)
        return tf.ensure_shape(images, (None, *shape)), batch_labels

    examples = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(loaders)), np.asarray(labels, dtype=np.int32))
    )
    if shuffle_seed is not None:
        # Only indices are shuffled, so the buffer holds no images.
        examples = examples.shuffle(len(loaders), seed=shuffle_seed)
    return (
        examples.batch(batch_size)
        .map(load_tensor, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def _write_cache(
    loaders: Sequence[ImageLoader], size: int, channels: int, cache_file: Path
) -> None:
    """Preprocess every image once, in order, into ``cache_file`` (float32 arrays)."""
    batches = image_batches(loaders, np.zeros(len(loaders)), size, channels, 64)
    with cache_file.open("wb") as cache:
        for images, _ in batches.as_numpy_iterator():
            cache.write(images.tobytes())


def _read_cache(
    cache_file: Path, indices: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """The preprocessed images at ``indices`` of ``cache_file``."""
    item_bytes = int(np.prod(shape)) * 4
    with cache_file.open("rb") as cache:
        arrays = []
        for index in indices:
            cache.seek(int(index) * item_bytes)
            arrays.append(np.frombuffer(cache.read(item_bytes), dtype=np.float32))
    return np.stack(arrays).reshape(-1, *shape)
