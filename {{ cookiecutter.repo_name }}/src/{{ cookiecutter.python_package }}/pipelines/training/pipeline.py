"""Stored image arrays -> trained Keras classifier and its training history."""

from kedro.pipeline import Node, Pipeline

from .nodes import train_classifier


def create_pipeline(**kwargs) -> Pipeline:
    """Create the training pipeline."""
    return Pipeline(
        [
            Node(
                func=train_classifier,
                inputs=[
                    "image_arrays",
                    "train_split",
                    "validation_split",
                    "class_names",
                    "params:image",
                    "params:train_classifier",
                ],
                outputs=["classifier", "training_history"],
                name="train_classifier",
            ),
        ]
    )
