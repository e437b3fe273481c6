"""The one place where training talks to MLflow while ``fit`` runs."""

from __future__ import annotations

from typing import Any

import keras
import mlflow


class MlflowEpochMetrics(keras.callbacks.Callback):
    """Log each epoch's metrics to the active MLflow run as soon as the epoch ends.

    Steps count epochs from 1, across both phases of fine-tuning, so that step 0 holds
    only the test metrics; the project's hooks attach the kept epoch's step to the
    logged model. Without an active run (tests, a plain Python call) it logs nothing.
    """

    def __init__(self, prefix: str = "training") -> None:
        super().__init__()
        self.prefix = prefix

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if mlflow.active_run() is None or not logs:
            return
        metrics = {f"{self.prefix}.{name}": float(v) for name, v in logs.items()}
        mlflow.log_metrics(metrics, step=epoch + 1)
