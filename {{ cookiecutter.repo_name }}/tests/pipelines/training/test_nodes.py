"""The network that build_model makes, class weights, and what training logs to MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError

from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    build_model,
    class_weights,
    train_classifier,
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


def test_no_augmentation_by_default(project_parameters: dict[str, Any]) -> None:
    """The default network has no random transform: none can change a real class."""
    params = project_parameters["train_classifier"]
    assert params["augmentation"] == {"flip": "none", "rotation": 0.0, "zoom": 0.0}
    model = build_model(2, 32, 3, params)
    assert "augmentation" not in [layer.name for layer in model.layers]


def test_small_cnn_pools_so_its_size_does_not_grow_with_the_image(
    training_params: dict[str, Any],
) -> None:
    """Mean and max pooling, not Flatten: the same weights at 32 and 256 pixels."""
    small, large = (build_model(3, size, 3, training_params) for size in (32, 256))
    kinds = {type(layer).__name__ for layer in small.layers}
    assert {"GlobalAveragePooling2D", "GlobalMaxPooling2D"} <= kinds
    assert "Flatten" not in kinds
    assert small.count_params() == large.count_params()
    filters = training_params["network"]["conv_filters"][-1]
    assert small.get_layer("pooled").output.shape == (None, 2 * filters)


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


def test_balanced_class_weights_make_a_rare_class_count_as_much() -> None:
    """scikit-learn's balanced weights: n_images / (n_classes * n_images_of_class)."""
    split = pd.DataFrame({"label": ["cat"] * 6 + ["dog"] * 2})
    assert class_weights(split, ["cat", "dog"], "balanced") == {0: 8 / 12, 1: 8 / 4}
    assert class_weights(split, ["cat", "dog"], None) is None


@pytest.fixture
def tiny_training_inputs(
    tmp_path: Path, make_image_folder, load_image_arrays, parameters: dict[str, Any]
) -> dict[str, Any]:
    """train_classifier's data inputs: 9 shape images of two classes, all in both splits."""
    folder = make_image_folder(tmp_path / "images", {"circle": 5, "square": 4})
    image_arrays = load_image_arrays(folder, tmp_path / "arrays", parameters["image"])
    split = pd.DataFrame(
        {
            "partition": sorted(image_arrays),
            "label": [name.split("/")[0] for name in sorted(image_arrays)],
        }
    )
    return {
        "image_arrays": image_arrays,
        "train_split": split,
        "validation_split": split,
        "class_names": ["circle", "square"],
    }


def test_training_logs_every_epoch_to_the_active_run(
    mlflow_run: mlflow.ActiveRun,
    tiny_training_inputs: dict[str, Any],
    parameters: dict[str, Any],
) -> None:
    """Each epoch's metrics reach MLflow as it ends, at steps 1, 2, ... (never 0)."""
    params = parameters["train_classifier"]
    params.update(epochs=3, class_weight="balanced")
    params["early_stopping"]["patience"] = 10
    _, history = train_classifier(
        **tiny_training_inputs, image=parameters["image"], params=params
    )
    client = mlflow.MlflowClient()
    run_id = mlflow_run.info.run_id
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        logged = client.get_metric_history(run_id, f"training.{name}")
        assert [m.step for m in logged] == [1, 2, 3]
        np.testing.assert_allclose([m.value for m in logged], history[name])
    best = int(np.argmin(history["val_loss"]))
    assert history["kept_weights"] == [float(epoch == best) for epoch in range(3)]


def test_a_loaders_error_stops_training_as_itself(
    tiny_training_inputs: dict[str, Any], parameters: dict[str, Any]
) -> None:
    """A stored array damaged since the features step: training stops with the
    loader's error naming it, not TensorFlow's error around it."""
    arrays = tiny_training_inputs["image_arrays"]
    damaged = arrays[sorted(arrays)[0]].location
    Path(damaged).write_bytes(Path(damaged).read_bytes()[:100])
    params = parameters["train_classifier"] | {"epochs": 1}
    with pytest.raises(DatasetError, match=f"stored array '{damaged}' is damaged"):
        train_classifier(
            **tiny_training_inputs, image=parameters["image"], params=params
        )
