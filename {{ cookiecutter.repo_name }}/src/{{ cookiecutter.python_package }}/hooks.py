"""Project hooks."""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from mlflow.entities import RunStatus


def _end_interrupted_run() -> None:
    """Mark a run still open at exit KILLED: only an interrupted `kedro run` leaves one."""
    # The same run can sit on MLflow's run stack more than once: end every entry.
    while mlflow.active_run():
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into a normal exit, so that exit handlers run."""
    sys.exit(128 + signum)


class InterruptedRunHooks:
    """kedro-mlflow marks failed runs FAILED; this marks interrupted ones KILLED.

    Without it, MLflow closes a run cut short by Ctrl-C or SIGTERM as FINISHED.
    """

    @hook_impl
    def before_pipeline_run(self) -> None:
        """Close the run as KILLED if the process stops before the pipeline ends."""
        # Registered after MLflow's own exit handler, so it runs first; once only.
        atexit.unregister(_end_interrupted_run)
        atexit.register(_end_interrupted_run)
        in_main_thread = threading.current_thread() is threading.main_thread()
        if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
