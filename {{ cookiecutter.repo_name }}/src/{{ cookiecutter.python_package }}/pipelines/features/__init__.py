"""Read, check and preprocess every raw image once per content, into the feature layer."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
