"""A catalog dataset that records the table it saves as an MLflow dataset input."""

from __future__ import annotations

import warnings
from typing import Any

import mlflow
import pandas as pd
from kedro.io import AbstractDataset


class MlflowInputDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Save a table with the wrapped dataset, and log it as an input of the active run.

    Like kedro-mlflow's ``MlflowArtifactDataset``, it wraps any pandas dataset. MLflow
    stores the table's digest (a hash of its rows) and schema, not its rows: two runs on
    the same images show the same digest. Without an active run it only saves.

    Example::

        image_index:
          type: <package>.mlflow_datasets.MlflowInputDataset
          name: image_index
          context: training
          dataset:
            type: pandas.CSVDataset
            filepath: data/02_intermediate/image_index.csv
    """

    def __init__(
        self,
        *,
        dataset: dict[str, Any],
        name: str,
        context: str = "training",
        targets: str | None = "label",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._dataset = AbstractDataset.from_config(name, dataset)
        self._name = name
        self._context = context
        self._targets = targets
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        return self._dataset.load()

    def save(self, data: pd.DataFrame) -> None:
        self._dataset.save(data)
        if mlflow.active_run() is None:
            return
        targets = self._targets if self._targets in data.columns else None
        source = getattr(self._dataset, "_filepath", None)
        with warnings.catch_warnings():
            # MLflow registers its local-file source class twice and warns about it.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways")
            recorded = mlflow.data.from_pandas(
                data,
                source=str(source) if source is not None else None,
                name=self._name,
                targets=targets,
            )
        mlflow.log_input(recorded, context=self._context)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {
            "dataset": self._dataset._describe(),  # noqa: SLF001
            "name": self._name,
            "context": self._context,
        }
