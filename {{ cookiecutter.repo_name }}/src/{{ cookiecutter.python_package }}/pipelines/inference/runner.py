"""The runner of the logged model: the inference pipeline on each ``predict``, quietly.

kedro-mlflow's model runs a Kedro runner on every request. Kedro's own runner logs
about 20 INFO lines per run (each dataset loaded and saved, each node) and costs
about a millisecond, as much as a small network's prediction. This one runs the
same nodes in the same order with neither. Set ``MODEL_KEDRO_LOGS=1`` in the
environment of the process that loads the model to run Kedro's runner, with its lines.
"""

from __future__ import annotations

import os
from typing import Any

from kedro.io import MemoryDataset
from kedro.runner import SequentialRunner as KedroSequentialRunner

VERBOSE_VARIABLE = "MODEL_KEDRO_LOGS"


class SequentialRunner(KedroSequentialRunner):
    """Kedro's ``SequentialRunner`` without its per-request logs and bookkeeping.

    It keeps Kedro's class name on purpose: kedro-mlflow 2.0.3 uses the model's runner
    only when that name is ``SequentialRunner``, and builds a new Kedro one otherwise.
    Each node takes its inputs as a list and returns its outputs in order, as the
    inference pipeline's nodes do.
    """

    def run(  # noqa: PLR0913  Kedro's signature
        self,
        pipeline: Any,
        catalog: Any,
        hook_manager: Any = None,
        run_id: str | None = None,
        only_missing_outputs: bool = False,
    ) -> dict[str, MemoryDataset]:
        """Run ``pipeline``'s nodes on ``catalog``'s data; return its outputs' datasets."""
        if os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0"):
            return super().run(
                pipeline, catalog, hook_manager, run_id, only_missing_outputs
            )
        data = {name: catalog[name].load() for name in pipeline.inputs()}
        for node in pipeline.nodes:  # sorted so that each node's inputs exist
            outputs = node.func(*(data[name] for name in node.inputs))
            names = node.outputs
            results = [outputs] if len(names) == 1 else outputs
            data.update(zip(names, results, strict=True))
        return {
            name: MemoryDataset(data[name], copy_mode="assign")
            for name in pipeline.outputs()
        }
