"""The GPU switches, checked on the CPU: mixed precision and XLA train correct models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

from {{ cookiecutter.python_package }}.image_features import (
    from_uint8,
)
from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    train_classifier,
)


@pytest.fixture
def shapes(
    tmp_path: Path, make_image_folder, load_image_arrays, parameters: dict[str, Any]
) -> dict[str, Any]:
    """The stored arrays of 3 classes of real images, split into train and validation."""
    folder = make_image_folder(tmp_path / "images", {"a": 8, "b": 8, "c": 8})
    arrays = load_image_arrays(folder, tmp_path / "arrays", parameters["image"])
    index = pd.DataFrame(
        {"partition": sorted(arrays), "label": [p[0] for p in sorted(arrays)]}
    )
    return {
        "image_arrays": arrays,
        "train_split": index.iloc[::2].reset_index(drop=True),
        "validation_split": index.iloc[1::2].reset_index(drop=True),
        "class_names": ["a", "b", "c"],
    }


def _train(shapes: dict[str, Any], parameters: dict[str, Any], **switches: bool):
    params = dict(parameters["train_classifier"], **switches)
    params["augmentation"] = {"flip": "none", "rotation": 0.0, "zoom": 0.0}
    return train_classifier(**shapes, image=parameters["image"], params=params)


def _validation_images(shapes: dict[str, Any]) -> np.ndarray:
    return from_uint8(
        np.stack(
            [
                shapes["image_arrays"][p]()
                for p in shapes["validation_split"]["partition"]
            ]
        )
    )


def test_switches_are_off_by_default(project_parameters: dict[str, Any]) -> None:
    training = project_parameters["train_classifier"]
    assert training["mixed_precision"] is False
    assert training["jit_compile"] is False


@pytest.mark.parametrize(
    "switches",
    [{"mixed_precision": True}, {"jit_compile": True}],
    ids=["mixed_precision", "jit_compile"],
)
def test_switch_trains_a_float32_model_close_to_the_default(
    shapes: dict[str, Any], parameters: dict[str, Any], switches: dict[str, bool]
) -> None:
    """Same seed, same data: the switched model trains (finite, falling loss), outputs
    float32 probabilities, and predicts close to the model trained without it."""
    parameters["train_classifier"]["epochs"] = 3
    reference, _ = _train(shapes, parameters)
    model, history = _train(shapes, parameters, **switches)

    assert all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < history["loss"][0]
    assert model.output.dtype == "float32"
    assert model.jit_compile is switches.get("jit_compile", False)
    images = _validation_images(shapes)
    probabilities = model.predict_on_batch(images)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    expected = reference.predict_on_batch(images)
    np.testing.assert_allclose(probabilities, expected, atol=0.05)
    if switches.get("mixed_precision"):
        policies = {layer.dtype_policy.name for layer in model.layers[1:-1]}
        assert "mixed_float16" in policies
        assert model.layers[-1].dtype_policy.name == "float32"
        assert keras.config.dtype_policy().name == "float32"  # restored after
