"""The network that build_model makes from the training parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    build_model,
)


@pytest.fixture
def training_params(parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's train_classifier parameters, with a tiny network."""
    return parameters["train_classifier"]


@pytest.mark.parametrize("channels", [1, 3])
def test_build_model_outputs_one_probability_per_class(
    training_params: dict[str, Any], channels: int
) -> None:
    """The network takes (size, size, channels) images and outputs a softmax."""
    model = build_model(4, 16, channels, training_params)
    assert model.input_shape == (None, 16, 16, channels)
    assert model.output_shape == (None, 4)
    batch = np.random.default_rng(0).random((2, 16, 16, channels), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(model(batch)).sum(axis=1), 1.0, atol=1e-5)


def test_build_model_without_augmentation(training_params: dict[str, Any]) -> None:
    """Turning every augmentation off (flip none, rotation 0, zoom 0) is allowed."""
    training_params["augmentation"] = {"flip": "none", "rotation": 0.0, "zoom": 0.0}
    model = build_model(2, 16, 3, training_params)
    assert "augmentation" not in [layer.name for layer in model.layers]
    assert model.output_shape == (None, 2)


def test_augmentation_is_off_at_inference(training_params: dict[str, Any]) -> None:
    """Random flips, rotations and zooms change nothing outside training."""
    training_params["augmentation"] = {
        "flip": "horizontal_and_vertical",
        "rotation": 0.2,
        "zoom": 0.2,
    }
    model = build_model(3, 16, 3, training_params)
    batch = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    first = np.asarray(model(batch, training=False))
    np.testing.assert_array_equal(first, np.asarray(model(batch, training=False)))
    assert not np.allclose(first, np.asarray(model(batch, training=True)))
