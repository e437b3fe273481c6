"""Project hooks."""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import mlflow
from filelock import FileLock
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from mlflow.entities import RunStatus

SQLITE_PREFIX = "sqlite:///"


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into a normal exit, so that exit handlers run."""
    sys.exit(128 + signum)


class InterruptedRunHooks:
    """kedro-mlflow marks failed runs FAILED; this marks interrupted ones KILLED.

    Without it, MLflow's exit handler closes a run cut short by Ctrl-C or SIGTERM
    as FINISHED, and it looks like a good run that logged no model.
    """

    def __init__(self) -> None:
        self._pipeline_running = False

    @hook_impl
    def before_pipeline_run(self) -> None:
        """Watch for an exit before the pipeline ends."""
        self._pipeline_running = True
        # Registered after MLflow's own exit handler, so it runs first; once only.
        atexit.unregister(self._end_interrupted_run)
        atexit.register(self._end_interrupted_run)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._pipeline_running = False

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._pipeline_running = False

    def _end_interrupted_run(self) -> None:
        """At exit, close the run of a pipeline that never finished as KILLED."""
        if not self._pipeline_running:
            return
        # The same run can sit on MLflow's run stack more than once: end every entry.
        while mlflow.active_run():
            mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))


class TrackingStoreHooks:
    """Create a new SQLite tracking store and the experiment under a file lock, first.

    MLflow creates the tables of a new database, and kedro-mlflow the experiment, on
    first use; two first runs at once would both try, and one would fail with
    "table ... already exists".
    """

    @hook_impl(tryfirst=True)  # before kedro-mlflow's own hook
    def after_context_created(self, context: KedroContext) -> None:
        config = context.config_loader["mlflow"]
        tracking_uri = config["server"]["mlflow_tracking_uri"]
        if tracking_uri.startswith(SQLITE_PREFIX):
            create_sqlite_store(tracking_uri, config["tracking"]["experiment"])


def create_sqlite_store(tracking_uri: str, experiment: dict[str, Any]) -> None:
    """Create the store's tables and the experiment, one process at a time."""
    database = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{database}.lock"):
        client = mlflow.MlflowClient(tracking_uri)
        if client.get_experiment_by_name(experiment["name"]) is None:
            client.create_experiment(
                experiment["name"], **experiment["create_experiment_kwargs"]
            )
