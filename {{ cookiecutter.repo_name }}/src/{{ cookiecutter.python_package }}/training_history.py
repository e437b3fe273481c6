"""Training's history: Keras's metrics per epoch, and the epoch whose weights were kept.

Saved as ``training_history.json``; every entry is one value per epoch run, across both
phases of fine-tuning.
"""

from __future__ import annotations

# 1.0 at the epoch whose weights the trained model holds, 0.0 at every other epoch.
KEPT_WEIGHTS = "kept_weights"

TrainingHistory = dict[str, list[float]]


def flag_kept_epoch(history: TrainingHistory, epoch: int) -> TrainingHistory:
    """``history`` with its ``KEPT_WEIGHTS`` entry flagging ``epoch`` (from 0)."""
    epochs = len(next(iter(history.values()), []))
    flags = [float(index == epoch) for index in range(epochs)]
    return {**history, KEPT_WEIGHTS: flags}


def kept_epoch(history: TrainingHistory) -> int:
    """The epoch (from 0) whose weights the trained model holds."""
    return history[KEPT_WEIGHTS].index(1.0)
