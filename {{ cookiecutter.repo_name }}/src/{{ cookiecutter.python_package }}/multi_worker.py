"""Multi-worker training: every worker runs `kedro run`, only the chief records it."""

from __future__ import annotations

import json
import logging
import os

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines

logger = logging.getLogger(__name__)


def is_chief(tf_config: str | None) -> bool:
    """Whether this process is the chief of a TF_CONFIG cluster (or has no cluster).

    As in TensorFlow: the task of type ``chief`` if the cluster has one, else worker 0.
    """
    if not tf_config:
        return True
    try:
        config = json.loads(tf_config)
        task_type, index = config["task"]["type"], int(config["task"]["index"])
        has_chief = bool(config["cluster"].get("chief"))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(
            f"TF_CONFIG is not a TensorFlow cluster description ({error!r}): expected "
            '{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": 0}}'
        ) from error
    if has_chief:
        return task_type == "chief"
    return task_type == "worker" and index == 0


class ChiefOnlyTrackingHooks:
    """On a worker that is not the chief, turn kedro-mlflow's tracking off.

    Every worker of a multi-worker training runs the same pipeline; without this, each
    one would open an MLflow run, log the same model and register a version of it.
    """

    @hook_impl(trylast=True)  # after kedro-mlflow has read mlflow.yml
    def after_context_created(self, context: KedroContext) -> None:
        if is_chief(os.environ.get("TF_CONFIG")):
            return
        mlflow_config = getattr(context, "mlflow", None)
        if mlflow_config is None:  # kedro-mlflow disabled for this project
            return
        disabled = mlflow_config.tracking.disable_tracking.pipelines
        disabled.extend(sorted({"__default__", *pipelines} - set(disabled)))
        logger.info(
            "Not the chief worker of TF_CONFIG: this run logs nothing to MLflow"
        )
