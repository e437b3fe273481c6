"""Score the held-out test images and report metrics, a confusion matrix and curves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from {{ cookiecutter.python_package }}.image_features import (
    ArrayLoader,
)
from {{ cookiecutter.python_package }}.input_pipeline import (
    array_batches,
    loader_errors_raised,
)
from {{ cookiecutter.python_package }}.keras_model import (
    SharedKerasModel,
)
from {{ cookiecutter.python_package }}.payload import (
    probability_column,
)

MetricHistory = dict[str, list[dict[str, float]]]


def predict_test_images(
    classifier: SharedKerasModel,
    image_arrays: Mapping[str, ArrayLoader],
    test_split: pd.DataFrame,
    class_names: list[str],
    image: dict[str, int],
    params: dict[str, Any],
) -> pd.DataFrame:
    """Predict every test image: true and predicted label, confidence, probabilities."""
    batches = array_batches(
        loaders=[image_arrays[p] for p in test_split["partition"]],
        labels=np.zeros(len(test_split), dtype=np.int32),
        size=image["size"],
        channels=image["channels"],
        batch_size=params["batch_size"],
    )
    with loader_errors_raised():
        probabilities = np.concatenate(
            [
                classifier.predict_proba(batch)
                for batch, _ in batches.as_numpy_iterator()
            ]
        )
    return pd.DataFrame(
        {
            "partition": test_split["partition"].to_numpy(),
            "label": test_split["label"].to_numpy(),
            "predicted": np.asarray(class_names)[probabilities.argmax(axis=1)],
            "confidence": probabilities.max(axis=1),
            **{
                probability_column(name): probabilities[:, index]
                for index, name in enumerate(class_names)
            },
        }
    )


def compute_test_metrics(
    test_predictions: pd.DataFrame, class_names: list[str], params: dict[str, Any]
) -> MetricHistory:
    """Accuracy, balanced accuracy, macro averages and, with many classes, top-k."""
    truth, predicted = test_predictions["label"], test_predictions["predicted"]
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, predicted, average="macro", zero_division=0
    )
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "balanced_accuracy": balanced_accuracy_score(truth, predicted),
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
    }
    top_k = params["top_k"]
    if len(class_names) > top_k:  # with fewer classes, top-k accuracy is always 1
        probabilities = test_predictions[[probability_column(c) for c in class_names]]
        metrics[f"top_{top_k}_accuracy"] = top_k_accuracy_score(
            truth, probabilities.to_numpy(), k=top_k, labels=class_names
        )
    # One value each, at step 0: training's per-epoch metrics use steps 1, 2, ...
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


def plot_top_losses(
    test_predictions: pd.DataFrame,
    image_arrays: Mapping[str, ArrayLoader],
    class_names: list[str],
    params: dict[str, Any],
) -> Figure:
    """The test images the model got most confidently wrong, as the model saw them
    (image_arrays' arrays, stored or made again from the raw files), true and predicted
    labels."""
    wrong = test_predictions[test_predictions["label"] != test_predictions["predicted"]]
    true_probability = [
        row[probability_column(row["label"])] for _, row in wrong.iterrows()
    ]
    worst = wrong.assign(true_probability=true_probability).nsmallest(
        params["count"], "true_probability"
    )
    columns = max(1, min(params["columns"], len(worst)))
    rows = max(1, -(-len(worst) // columns))  # ceiling division
    figure = Figure(figsize=(2.5 * columns, 2.8 * rows))
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.set_axis_off()
    if worst.empty:
        axes[0].text(0.5, 0.5, "No test image is misclassified", ha="center")
    for ax, (_, row) in zip(axes, worst.iterrows(), strict=False):
        pixels = image_arrays[row["partition"]]()  # uint8 (size, size, channels)
        if pixels.shape[2] == 1:
            ax.imshow(pixels[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(pixels)
        ax.set_title(
            f"true: {row['label']} ({row['true_probability']:.2f})\n"
            f"predicted: {row['predicted']} ({row['confidence']:.2f})",
            fontsize=8,
        )
    figure.suptitle("Top losses: most confidently wrong test images")
    figure.tight_layout()
    return figure
