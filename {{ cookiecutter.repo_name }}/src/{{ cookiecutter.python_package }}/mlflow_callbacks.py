"""The one place where training talks to MLflow while ``fit`` runs."""

from __future__ import annotations

from typing import Any

import keras
import mlflow


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Log each epoch's metrics to the active MLflow run as soon as the epoch ends.

    Steps count epochs from 1, across both phases of fine-tuning: MLflow attaches the
    metrics of one step to the logged model, and step 0 would be no epoch's (the
    project's hooks choose the kept epoch's step). Without an active run (tests, a
    plain Python call) it logs nothing.
    """

    def __init__(self, prefix: str = "training") -> None:
        super().__init__()
        self.prefix = prefix

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if mlflow.active_run() is None or not logs:
            return
        metrics = {f"{self.prefix}.{name}": float(v) for name, v in logs.items()}
        mlflow.log_metrics(metrics, step=epoch + 1)
