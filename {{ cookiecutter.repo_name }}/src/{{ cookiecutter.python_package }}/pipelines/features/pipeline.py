"""Raw image files -> checked, preprocessed uint8 arrays, stored by content (04_feature)."""

from kedro.pipeline import Node, Pipeline

from .nodes import preprocess_images


def create_pipeline(**kwargs) -> Pipeline:
    """Create the features pipeline."""
    return Pipeline(
        [
            Node(
                func=preprocess_images,
                inputs=["raw_images", "params:preprocess_images", "params:image"],
                outputs="image_arrays",
                name="preprocess_images",
            ),
        ]
    )
