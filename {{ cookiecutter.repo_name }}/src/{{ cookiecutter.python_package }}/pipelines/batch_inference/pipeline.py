"""New image files -> the registered model -> a predictions table.

Run it with ``kedro run --pipeline batch_inference``. The files' bytes go to the
logged MLflow model unchanged, so they are preprocessed exactly as a served request.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import predict_images


def create_pipeline(**kwargs) -> Pipeline:
    """Create the batch inference pipeline."""
    return Pipeline(
        [
            Node(
                func=predict_images,
                inputs=["new_images", "registered_model", "params:predict_images"],
                outputs="batch_predictions",
                name="predict_images",
            ),
        ]
    )
