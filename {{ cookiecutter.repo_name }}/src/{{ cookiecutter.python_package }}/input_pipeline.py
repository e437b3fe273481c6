"""Streaming tf.data input: images are read and preprocessed batch by batch, never all held."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image

from {{ cookiecutter.python_package }}.preprocessing import preprocess

ImageLoader = Callable[[], Image.Image]


def image_batches(
    loaders: Sequence[ImageLoader],
    labels: Sequence[int],
    size: int,
    channels: int,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of (images, labels): read and preprocess a batch at a time, prefetched.

    One Python call per batch rather than per image: tf.data runs several batches in
    parallel threads, and Pillow releases the GIL while it decodes and resizes.
    """

    def load(indices: np.ndarray) -> np.ndarray:
        return np.stack([preprocess(loaders[i](), size, channels) for i in indices])

    def load_tensor(
        indices: tf.Tensor, batch_labels: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.numpy_function(load, [indices], tf.float32, stateful=False)
        return tf.ensure_shape(images, (None, size, size, channels)), batch_labels

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
