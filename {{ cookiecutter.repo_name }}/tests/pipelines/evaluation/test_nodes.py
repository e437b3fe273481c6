"""Metrics, report and plots computed from test-set predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from matplotlib.figure import Figure
from PIL import Image

from {{ cookiecutter.python_package }}.keras_model import (
    SharedKerasModel,
)
from {{ cookiecutter.python_package }}.pipelines.evaluation.nodes import (
    compute_test_metrics,
    plot_confusion_matrix,
    plot_top_losses,
    plot_training_curves,
    predict_test_images,
    report_per_class,
)
from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    build_model,
)

CLASS_NAMES = ["cat", "dog", "fox"]


@pytest.fixture
def test_predictions() -> pd.DataFrame:
    """Four test images, three predicted right; no image of 'fox'."""
    return pd.DataFrame(
        {
            "partition": ["cat/1.png", "cat/2.png", "dog/1.png", "dog/2.png"],
            "label": ["cat", "cat", "dog", "dog"],
            "predicted": ["cat", "dog", "dog", "dog"],
            "confidence": [0.9, 0.6, 0.8, 0.7],
            "probability_cat": [0.9, 0.3, 0.1, 0.2],
            "probability_dog": [0.05, 0.6, 0.8, 0.7],
            "probability_fox": [0.05, 0.1, 0.1, 0.1],
        }
    )


@pytest.fixture
def metric_params() -> dict[str, int]:
    return {"top_k": 5}


@pytest.fixture
def training_history() -> dict[str, list[float]]:
    """Keras' history of two epochs."""
    return {
        "loss": [1.0, 0.5],
        "accuracy": [0.4, 0.8],
        "val_loss": [1.1, 0.7],
        "val_accuracy": [0.3, 0.6],
    }


def test_compute_test_metrics(
    test_predictions: pd.DataFrame, metric_params: dict[str, int]
) -> None:
    """Accuracy, balanced accuracy and macro averages, as metric histories at step 0."""
    metrics = compute_test_metrics(test_predictions, CLASS_NAMES, metric_params)
    assert set(metrics) == {
        "accuracy",
        "balanced_accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
    }
    assert metrics["accuracy"] == [{"value": 0.75, "step": 0}]
    assert metrics["balanced_accuracy"][0]["value"] == pytest.approx((0.5 + 1) / 2)
    assert metrics["recall_macro"][0]["value"] == pytest.approx(0.75)
    assert metrics["precision_macro"][0]["value"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["f1_macro"][0]["value"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_top_k_accuracy_with_more_classes_than_k() -> None:
    """With 7 classes, top-5 accuracy: whether the true class is among the 5 likeliest."""
    class_names = [f"c{i}" for i in range(7)]
    probabilities = np.array(
        [[0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05], [0.4, 0.2, 0.1, 0.1, 0.1, 0.06, 0.04]]
    )
    predictions = pd.DataFrame(
        {
            "label": ["c1", "c6"],  # second place, then last place
            "predicted": ["c0", "c0"],
            **{
                f"probability_{c}": probabilities[:, i]
                for i, c in enumerate(class_names)
            },
        }
    )
    metrics = compute_test_metrics(predictions, class_names, {"top_k": 5})
    assert metrics["top_5_accuracy"] == [{"value": 0.5, "step": 0}]
    assert metrics["accuracy"][0]["value"] == 0.0


def test_report_per_class_covers_every_class(test_predictions: pd.DataFrame) -> None:
    """Every class is reported, even one absent from the test set."""
    report = report_per_class(test_predictions, CLASS_NAMES)
    assert {"cat", "dog", "fox", "accuracy", "macro avg"} <= set(report)
    assert report["cat"]["recall"] == 0.5  # noqa: PLR2004
    assert report["fox"]["support"] == 0


def test_plot_confusion_matrix(test_predictions: pd.DataFrame) -> None:
    """A figure of a square matrix with one row per class."""
    figure = plot_confusion_matrix(test_predictions, CLASS_NAMES)
    assert isinstance(figure, Figure)
    [axes] = figure.axes
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert labels == CLASS_NAMES


def test_plot_training_curves(training_history: dict[str, list[float]]) -> None:
    """Loss and accuracy side by side, training and validation in each."""
    figure = plot_training_curves(training_history)
    assert [axes.get_title() for axes in figure.axes] == ["loss", "accuracy"]
    assert all(len(axes.get_lines()) == 2 for axes in figure.axes)  # noqa: PLR2004


def test_plot_top_losses_shows_the_most_confidently_wrong(
    test_predictions: pd.DataFrame,
) -> None:
    """Only misclassified images, the lowest true-class probability first, both labels."""
    # dog/1.png predicted cat, more confidently wrong than cat/2.png
    columns = ["predicted", "confidence", "probability_cat", "probability_dog"]
    test_predictions.loc[2, columns] = ["cat", 0.95, 0.95, 0.05]
    image_arrays = {
        name: lambda: np.zeros((8, 8, 3), np.uint8)
        for name in test_predictions["partition"]
    }
    figure = plot_top_losses(
        test_predictions, image_arrays, CLASS_NAMES, {"count": 9, "columns": 3}
    )
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == [
        "true: dog (0.05)\npredicted: cat (0.95)",
        "true: cat (0.30)\npredicted: dog (0.60)",
    ]


@pytest.mark.parametrize("channels", [3, 1])
def test_plot_top_losses_shows_the_stored_arrays(
    test_predictions: pd.DataFrame, channels: int
) -> None:
    """Each wrong image is drawn from its stored array, as the model saw it."""
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8, channels), np.uint8)
    image_arrays = {name: lambda: pixels for name in test_predictions["partition"]}
    figure = plot_top_losses(
        test_predictions, image_arrays, CLASS_NAMES, {"count": 1, "columns": 1}
    )
    [shown] = figure.axes[0].get_images()
    np.testing.assert_array_equal(shown.get_array(), pixels.squeeze())


def test_plot_top_losses_without_mistakes(test_predictions: pd.DataFrame) -> None:
    """Every prediction right: a figure that says so."""
    right = test_predictions[test_predictions["label"] == test_predictions["predicted"]]
    figure = plot_top_losses(right, {}, CLASS_NAMES, {"count": 9, "columns": 3})
    [axes] = figure.axes
    assert axes.texts[0].get_text() == "No test image is misclassified"


def test_a_raw_file_changed_since_the_features_step_stops_prediction_as_itself(
    tmp_path: Path, make_image_folder, load_image_arrays, parameters: dict[str, Any]
) -> None:
    """Streaming from the raw files (store_arrays false), a test image rewritten since
    the features step: the loader's error naming it, not TensorFlow's around it."""
    image = parameters["image"]
    folder = make_image_folder(tmp_path / "images", {"cat": 2, "dog": 2})
    image_arrays = load_image_arrays(
        folder, tmp_path / "arrays", image, store_arrays=False
    )
    partitions = sorted(image_arrays)
    changed = image_arrays[partitions[0]].location
    Image.new("RGB", (24, 24), "red").save(changed)
    model = build_model(
        2, image["size"], image["channels"], parameters["train_classifier"]
    )
    test_split = pd.DataFrame(
        {"partition": partitions, "label": [p.split("/")[0] for p in partitions]}
    )
    with pytest.raises(DatasetError, match=f"'{changed}' changed since the features"):
        predict_test_images(
            SharedKerasModel(model),
            image_arrays,
            test_split,
            ["cat", "dog"],
            image,
            {"batch_size": 2},
        )
