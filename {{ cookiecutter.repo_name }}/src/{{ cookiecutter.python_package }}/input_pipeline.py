"""tf.data input: images read a batch at a time, shuffled by index, prefetched.

Training and evaluation read ``image_arrays``' loaders (``array_batches``): stored
uint8 arrays, or with ``store_arrays: false`` raw files preprocessed as each is read.
They consume the batches inside ``loader_errors_raised()``, so that a loader's error
reaches them as itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import tensorflow as tf

from {{ cookiecutter.python_package }}.image_features import (
    ArrayLoader,
    check_stored_shape,
    from_uint8,
)

# The last errors image loaders raised in tf.data's threads: tf.data gives its caller
# only a TensorFlow error, with the loader's message and traceback in its own.
_recent_loader_errors: deque[Exception] = deque(maxlen=32)


@contextmanager
def loader_errors_raised() -> Iterator[None]:
    """Inside, TensorFlow's error around a loader's error (a raw file changed or
    deleted since the features step checked it, a stored array gone or damaged) is
    replaced by that error itself: the one whose message TensorFlow's holds. Any
    other error passes unchanged."""
    try:
        yield
    except tf.errors.OpError as tensorflow_error:
        for error in reversed(_recent_loader_errors):
            if str(error) and str(error) in tensorflow_error.message:
                raise error from error.__cause__
        raise


def array_batches(
    loaders: Sequence[ArrayLoader],
    labels: Sequence[int],
    size: int,
    channels: int,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of (images, labels) from stored uint8 arrays, read back as float32."""
    check_stored_shape(loaders, size, channels)

    def load(indices: np.ndarray) -> np.ndarray:
        return from_uint8(np.stack([loaders[i]() for i in indices]))

    return _batches(load, labels, (size, size, channels), batch_size, shuffle_seed)


def _batches(
    load: Callable[[np.ndarray], np.ndarray],
    labels: Sequence[int],
    shape: tuple[int, int, int],
    batch_size: int,
    shuffle_seed: int | None,
) -> tf.data.Dataset:
    """Batches of ``load(indices)`` and their labels, in parallel threads, prefetched.

    One Python call per batch rather than per image: tf.data runs several batches in
    parallel threads, and NumPy and Pillow release the GIL while they read and decode.
    """

    def load_or_record(indices: np.ndarray) -> np.ndarray:
        try:
            return load(indices)
        except Exception as error:
            _recent_loader_errors.append(error)
            raise

    def load_tensor(
        indices: tf.Tensor, batch_labels: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        images = tf.numpy_function(
            load_or_record, [indices], tf.float32, stateful=False
        )
        return tf.ensure_shape(images, (None, *shape)), batch_labels

    examples = tf.data.Dataset.from_tensor_slices(
        (np.arange(len(labels)), np.asarray(labels, dtype=np.int32))
    )
    if shuffle_seed is not None:
        # Only indices are shuffled, so the buffer holds no images.
        examples = examples.shuffle(len(labels), seed=shuffle_seed)
    return (
        examples.batch(batch_size)
        .map(load_tensor, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
