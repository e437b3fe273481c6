"""Metrics, report and plots computed from test-set predictions."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from {{ cookiecutter.python_package }}.pipelines.evaluation.nodes import (
    compute_test_metrics,
    plot_confusion_matrix,
    plot_training_curves,
    report_per_class,
    training_metrics,
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
        }
    )


@pytest.fixture
def training_history() -> dict[str, list[float]]:
    """Keras' history of two epochs."""
    return {
        "loss": [1.0, 0.5],
        "accuracy": [0.4, 0.8],
        "val_loss": [1.1, 0.7],
        "val_accuracy": [0.3, 0.6],
    }


def test_compute_test_metrics(test_predictions: pd.DataFrame) -> None:
    """Accuracy and macro averages, as kedro-mlflow metric histories at step 0."""
    metrics = compute_test_metrics(test_predictions)
    assert set(metrics) == {"accuracy", "precision_macro", "recall_macro", "f1_macro"}
    assert metrics["accuracy"] == [{"value": 0.75, "step": 0}]
    assert metrics["recall_macro"][0]["value"] == pytest.approx(0.75)
    assert metrics["precision_macro"][0]["value"] == pytest.approx((1 + 2 / 3) / 2)


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


def test_training_metrics_has_one_step_per_epoch(
    training_history: dict[str, list[float]],
) -> None:
    """Per-epoch values become kedro-mlflow's [{value, step}] histories."""
    metrics = training_metrics(training_history)
    assert set(metrics) == set(training_history)
    assert metrics["val_loss"] == [{"value": 1.1, "step": 0}, {"value": 0.7, "step": 1}]
