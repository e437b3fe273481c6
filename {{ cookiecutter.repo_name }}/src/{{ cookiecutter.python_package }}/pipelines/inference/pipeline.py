"""The pipeline inside the logged model: encoded images -> predictions.

``pipeline_registry.py`` bundles it with the training outputs it needs (the Keras model
and the class names) into one MLflow model, so serving preprocesses exactly as training.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import classify, preprocess_payload


def create_pipeline(**kwargs) -> Pipeline:
    """Create the inference pipeline."""
    return Pipeline(
        [
            Node(
                func=preprocess_payload,
                inputs=["images_to_score", "params:image", "params:preprocess_payload"],
                outputs="preprocessed_images",
                name="preprocess_payload",
            ),
            Node(
                func=classify,
                inputs=["preprocessed_images", "classifier", "class_names"],
                outputs="predictions",
                name="classify",
            ),
        ]
    )
