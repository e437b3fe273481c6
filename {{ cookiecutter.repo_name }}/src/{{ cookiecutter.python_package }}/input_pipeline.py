"""Streaming tf.data input: images are read and preprocessed batch by batch, never all held."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from {{ cookiecutter.python_package }}.image_features import (
    check_stored_shape,
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
) -> tf.data.Dataset:
    """Batches of (images, labels): read and preprocess a batch at a time, prefetched.

    ``loaders`` give either images to preprocess (``raw_images``: streaming from the
    files) or their stored uint8 arrays (``image_arrays``: preprocessed once, read
    back as float32). One Python call per batch rather than per image: tf.data runs
    several batches in parallel threads, and Pillow releases the GIL while it decodes
    and resizes.
    """
    shape = (size, size, channels)
    if loaders and _gives_arrays(loaders[0]):
        # The image_arrays dataset: preprocessed once already, read back per batch.
        check_stored_shape(loaders, size, channels)

        def load(indices: np.ndarray) -> np.ndarray:
            return from_uint8(np.stack([loaders[i]() for i in indices]))

    else:

        def load(indices: np.ndarray) -> np.ndarray:
            return np.stack([preprocess(loaders[i](), size, channels) for i in indices])

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
