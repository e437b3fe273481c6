"""Trained classifier + test split -> metrics, per-class report and plots, all tracked.

Per-epoch training metrics reach MLflow during ``fit``, from the training callback.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    compute_test_metrics,
    plot_confusion_matrix,
    plot_top_losses,
    plot_training_curves,
    predict_test_images,
    report_per_class,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Create the evaluation pipeline."""
    return Pipeline(
        [
            Node(
                func=predict_test_images,
                inputs=[
                    "classifier",
                    "image_arrays",
                    "test_split",
                    "class_names",
                    "params:image",
                    "params:predict_test_images",
                ],
                outputs="test_predictions",
                name="predict_test_images",
            ),
            Node(
                func=compute_test_metrics,
                inputs=[
                    "test_predictions",
                    "class_names",
                    "params:compute_test_metrics",
                ],
                outputs="test_metrics",
                name="compute_test_metrics",
            ),
            Node(
                func=report_per_class,
                inputs=["test_predictions", "class_names"],
                outputs="classification_report",
                name="report_per_class",
            ),
            Node(
                func=plot_confusion_matrix,
                inputs=["test_predictions", "class_names"],
                outputs="confusion_matrix_plot",
                name="plot_confusion_matrix",
            ),
            Node(
                func=plot_training_curves,
                inputs="training_history",
                outputs="training_curves_plot",
                name="plot_training_curves",
            ),
            Node(
                func=plot_top_losses,
                inputs=[
                    "test_predictions",
                    "image_arrays",
                    "class_names",
                    "params:plot_top_losses",
                ],
                outputs="top_losses_plot",
                name="plot_top_losses",
            ),
        ]
    )
