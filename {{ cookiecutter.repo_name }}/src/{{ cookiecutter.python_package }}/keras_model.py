"""The trained classifier as the catalog loads it, for evaluation and for serving."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from kedro_datasets.tensorflow import TensorFlowModelDataset


class SharedKerasModel:
    """A loaded Keras model that deep copies share instead of duplicating.

    kedro-mlflow deep-copies its catalog on every ``predict``; copying a Keras model
    re-serialises it and re-traces its graph, which would cost more than the prediction.
    The model is never changed after loading, so sharing it is safe.
    """

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedKerasModel:
        return self

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for a batch of preprocessed images, one row per image."""
        # Keras compiles this call once; an eager model(images) costs ~4x more per call.
        return self.model.predict_on_batch(images)


class KerasModelDataset(TensorFlowModelDataset):
    """A ``.keras`` file saved from a Keras model and loaded as a ``SharedKerasModel``."""

    def load(self) -> SharedKerasModel:
        return SharedKerasModel(super().load())
