"""Checked images -> index -> class names and stratified train/validation/test splits."""

from kedro.pipeline import Node, Pipeline

from .nodes import index_images, list_class_names, split_images


def create_pipeline(**kwargs) -> Pipeline:
    """Create the data processing pipeline."""
    return Pipeline(
        [
            Node(
                func=index_images,
                inputs="image_arrays",
                outputs=["image_index", "skipped_image_count"],
                name="index_images",
            ),
            Node(
                func=list_class_names,
                inputs="image_index",
                outputs="class_names",
                name="list_class_names",
            ),
            Node(
                func=split_images,
                inputs=["image_index", "params:split_images"],
                outputs=["train_split", "validation_split", "test_split"],
                name="split_images",
            ),
        ]
    )
