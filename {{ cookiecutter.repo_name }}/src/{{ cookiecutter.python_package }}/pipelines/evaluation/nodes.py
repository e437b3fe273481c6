"""Score the held-out test images and report metrics, a confusion matrix and curves."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    classification_report,
    precision_recall_fscore_support,
)

from {{ cookiecutter.python_package }}.input_pipeline import (
    image_batches,
)
from {{ cookiecutter.python_package }}.keras_model import (
    SharedKerasModel,
)

MetricHistory = dict[str, list[dict[str, float]]]


def predict_test_images(
    classifier: SharedKerasModel,
    raw_images: Mapping[str, Callable[[], Image.Image]],
    test_split: pd.DataFrame,
    class_names: list[str],
    image: dict[str, int],
    params: dict[str, Any],
) -> pd.DataFrame:
    """Predict every test image: true label, predicted label, confidence."""
    batches = image_batches(
        loaders=[raw_images[p] for p in test_split["partition"]],
        labels=np.zeros(len(test_split), dtype=np.int32),
        size=image["size"],
        channels=image["channels"],
        batch_size=params["batch_size"],
    )
    probabilities = np.concatenate(
        [classifier.predict_proba(batch) for batch, _ in batches.as_numpy_iterator()]
    )
    return pd.DataFrame(
        {
            "partition": test_split["partition"].to_numpy(),
            "label": test_split["label"].to_numpy(),
            "predicted": np.asarray(class_names)[probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1),
        }
    )


def compute_test_metrics(test_predictions: pd.DataFrame) -> MetricHistory:
    """Accuracy and macro-averaged precision, recall and F1 on the test set."""
    truth, predicted = test_predictions["label"], test_predictions["predicted"]
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="macro", zero_division=0
    )
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
    }
    return {
        name: [{"value": float(value), "step": 0}] for name, value in metrics.items()
    }


def report_per_class(
    test_predictions: pd.DataFrame, class_names: list[str]
) -> dict[str, Any]:
    """scikit-learn's classification report: precision, recall, F1, support per class."""
    return classification_report(
        test_predictions["label"],
        test_predictions["predicted"],
        labels=class_names,
        output_dict=True,
        zero_division=0,
    )


def plot_confusion_matrix(
    test_predictions: pd.DataFrame, class_names: list[str]
) -> Figure:
    """The test set's confusion matrix, true classes in rows."""
    figure = Figure(figsize=(5, 5))
    display = ConfusionMatrixDisplay.from_predictions(
        test_predictions["label"],
        test_predictions["predicted"],
        labels=class_names,
        xticks_rotation=45,
        colorbar=False,
        ax=figure.subplots(),
    )
    display.ax_.set_title("Test set confusion matrix")
    figure.tight_layout()
    return figure


def plot_training_curves(training_history: dict[str, list[float]]) -> Figure:
    """Loss and accuracy per epoch, on training and validation data."""
    figure = Figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = training_history.get(prefix + metric, [])
            ax.plot(range(1, len(values) + 1), values, style, label=prefix + metric)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
    figure.tight_layout()
    return figure


def training_metrics(training_history: dict[str, list[float]]) -> MetricHistory:
    """Keras' {metric: [value per epoch]} as kedro-mlflow's {metric: [{value, step}]}."""
    return {
        name: [{"value": value, "step": epoch} for epoch, value in enumerate(values)]
        for name, values in training_history.items()
    }
