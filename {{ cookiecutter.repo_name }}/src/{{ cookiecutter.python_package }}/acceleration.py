"""GPU switches of training: mixed precision (float16 compute) and XLA compilation.

Both are true/false parameters, checked with every other one in parameter_checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras

MIXED_PRECISION = "mixed_float16"


def jit_compile(params: dict[str, Any]) -> bool:
    """Whether Keras compiles the training step with XLA (train_classifier.jit_compile)."""
    return params["jit_compile"]


@contextlib.contextmanager
def _dtype_policy(name: str) -> Iterator[None]:
    """Keras's global dtype policy set to ``name`` while inside, restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_with_precision(
    build: Callable[[], keras.Model], params: dict[str, Any]
) -> keras.Model:
    """Call ``build``, with float16 compute and float32 weights when
    train_classifier.mixed_precision is true; the output layer always stays float32.

    The probabilities are computed in float32 (a float16 softmax loses precision and
    can overflow), so the model's output dtype is the same either way. Keras wraps the
    optimizer in a loss-scaling one when such a model is compiled.
    """
    if not params["mixed_precision"]:
        return build()
    with _dtype_policy(MIXED_PRECISION):
        return _float32_output(build())


def _float32_output(model: keras.Model) -> keras.Model:
    """The same model, its last layer rebuilt to compute in float32, weights kept."""
    last = model.layers[-1]
    config = last.get_config()
    config["dtype"] = "float32"
    rebuilt = type(last).from_config(config)
    outputs = rebuilt(last.input)
    rebuilt.set_weights(last.get_weights())
    return keras.Model(model.inputs, outputs, name=model.name)
