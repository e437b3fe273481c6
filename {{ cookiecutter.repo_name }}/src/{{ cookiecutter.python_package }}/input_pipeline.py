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
    """Batches of (image, label): load and preprocess in parallel, batch, prefetch."""

    def load(index: np.int64) -> np.ndarray:
        return preprocess(loaders[index](), size, channels)

    def load_tensor(index: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.numpy_function(load, [index], tf.float32, stateful=False)
        return tf.ensure_shape(image, (size, size, channels)), label

    examples = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(loaders)), np.asarray(labels, dtype=np.int32))
    )
    if shuffle_seed is not None:
        # Only indices are shuffled, so the buffer holds no images.
        examples = examples.shuffle(len(loaders), seed=shuffle_seed)
    return (
        examples.map(load_tensor, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
