"""Project hooks: parameters checked first, models registered on merit, runs closed right.

Kedro calls plugin hooks (kedro-mlflow's) before the project's, so the project's
``after_pipeline_run`` finds the model already logged; ``tryfirst``/``trylast`` make
that order explicit where it matters.
"""

from __future__ import annotations

import atexit
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from filelock import FileLock
from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline
from kedro_mlflow.pipeline.pipeline_ml import PipelineML
from mlflow.entities import LoggedModelStatus, RunStatus

from {{ cookiecutter.python_package }}.model_logging import (
    model_signature,
)
from {{ cookiecutter.python_package }}.parameter_checks import (
    check_parameters,
)
from {{ cookiecutter.python_package }}.pipeline_registry import (
    TRAINED_MODEL,
)
from {{ cookiecutter.python_package }}.registration import (
    TrainedModel,
    find_logged_model,
    link_metrics_to_model,
    register,
    registered_model_name,
)
from {{ cookiecutter.python_package }}.training_history import (
    kept_epoch,
)

logger = logging.getLogger(__name__)

TEST_METRIC_PREFIX = "test."
# What registration needs from the run: the model's classes, the epoch it keeps, and
# the digests of its images and of its test set.
RECORDED_OUTPUTS = ("class_names", "training_history", "image_index", "test_split")
SQLITE_PREFIX = "sqlite:///"


class ParameterCheckHooks:
    """Refuse a bad parameter before any work, in one line that names it."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow opens a run
    def before_pipeline_run(self, pipeline: Pipeline, catalog: DataCatalog) -> None:
        inputs = pipeline.inputs()
        if isinstance(pipeline, PipelineML):
            # The inference pipeline's parameters are baked into the logged model.
            inputs |= pipeline.inference.inputs()
        used = {
            name.removeprefix("params:").split(".")[0]
            for name in inputs
            if name.startswith("params:")
        }
        check_parameters(catalog.load("parameters"), used)


def _digest(table: Any) -> str | None:
    """MLflow's digest of a table, as its dataset inputs show it."""
    if not isinstance(table, pd.DataFrame):
        return None
    return mlflow.data.from_pandas(table).digest


class ModelRegistrationHooks:
    """Complete the logged model's description during the run; register it after.

    The model's output columns need the class names, and its metrics the epoch whose
    weights it keeps: both are known only once the nodes have run, and kedro-mlflow
    reads ``log_model_kwargs`` at the end of the run, in its own after_pipeline_run.
    """

    def __init__(self) -> None:
        self._pipeline: PipelineML | None = None
        self._outputs: dict[str, Any] = {}
        self._trained = False
        self._run_id: str | None = None

    @hook_impl
    def before_pipeline_run(self, pipeline: Pipeline, catalog: DataCatalog) -> None:
        self._outputs = {}
        self._trained = False
        self._pipeline = pipeline if isinstance(pipeline, PipelineML) else None
        active = mlflow.active_run()  # opened by kedro-mlflow's hook, called first
        self._run_id = active.info.run_id if active else None
        if self._pipeline is None:
            return
        self._pipeline.log_model_kwargs["name"] = registered_model_name(catalog)
        # A partial run (`kedro run --from-nodes train_classifier`) reads what it does
        # not make from an earlier run's files.
        earlier = {
            name: catalog.load(name)
            for name in RECORDED_OUTPUTS
            if name not in pipeline.all_outputs() and catalog.exists(name)
        }
        self._record(earlier)

    @hook_impl
    def after_node_run(self, outputs: dict[str, Any]) -> None:
        if self._pipeline is not None:
            self._record(outputs)

    def _record(self, outputs: dict[str, Any]) -> None:
        """Keep what registration needs, and complete the model's logging arguments."""
        for name in RECORDED_OUTPUTS:
            if name in outputs:
                self._outputs[name] = outputs[name]
        self._trained = self._trained or TRAINED_MODEL in outputs
        kwargs = self._pipeline.log_model_kwargs
        if "class_names" in outputs:
            kwargs["signature"] = model_signature(outputs["class_names"])
        if "training_history" in outputs:
            # MLflow attaches the run's metrics at this step to the logged model;
            # training's callback logs epoch i (from 0) at step i + 1.
            kwargs["step"] = kept_epoch(outputs["training_history"]) + 1

    @hook_impl(trylast=True)  # after kedro-mlflow has logged the model
    def after_pipeline_run(self, catalog: DataCatalog) -> None:
        if self._pipeline is None or self._run_id is None:
            return
        if not self._trained:
            logger.warning("Nothing registered: this run did not train the model")
            return
        client = mlflow.MlflowClient()
        run = client.get_run(self._run_id)
        name = registered_model_name(catalog)
        # The model kedro-mlflow logged, named in before_pipeline_run.
        logged = find_logged_model(client, run, name)
        parameters = catalog.load("parameters")
        model = TrainedModel(
            run_id=self._run_id,
            model_id=logged.model_id,
            class_names=list(self._outputs["class_names"]),
            image=parameters["image"],
            backbone=parameters["train_classifier"]["network"].get("backbone"),
            data_digest=_digest(self._outputs.get("image_index")),
            test_digest=_digest(self._outputs.get("test_split")),
        )
        test_metrics = {
            key: value
            for key, value in run.data.metrics.items()
            if key.startswith(TEST_METRIC_PREFIX)
        }
        link_metrics_to_model(client, model, test_metrics)
        register(client, name, model, run.data.metrics, parameters["register_model"])


_SIGNALS_RECEIVED: list[int] = []


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """Turn SIGTERM into a normal exit, so that exit handlers run."""
    _SIGNALS_RECEIVED.append(signum)
    sys.exit(128 + signum)


class InterruptedRunHooks:
    """kedro-mlflow marks failed runs FAILED; this marks interrupted ones KILLED.

    Without it, MLflow's exit handler closes a run cut short by Ctrl-C or SIGTERM
    as FINISHED, and it looks like a good run that logged no model. A model whose
    logging was cut short is marked FAILED rather than left PENDING.
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

    @hook_impl(trylast=True)  # after kedro-mlflow's, before ModelRegistrationHooks'
    def after_pipeline_run(self) -> None:
        if _SIGNALS_RECEIVED:
            # The exit raised by the handler can be lost, when it lands in code that
            # ignores errors (a __del__, a callback): stop before registering anything.
            sys.exit(128 + _SIGNALS_RECEIVED[-1])
        self._pipeline_running = False

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._pipeline_running = False

    def _end_interrupted_run(self) -> None:
        """At exit, close the run of a pipeline that never finished as KILLED."""
        if not self._pipeline_running:
            return
        # The same run can sit on MLflow's run stack more than once: end every entry.
        while active := mlflow.active_run():
            fail_pending_models(mlflow.MlflowClient(), active)
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
        # null: kedro-mlflow reads MLFLOW_TRACKING_URI, else MLflow's default store.
        if tracking_uri and tracking_uri.startswith(SQLITE_PREFIX):
            experiment = config.get("tracking", {}).get("experiment", {})
            create_sqlite_store(tracking_uri, experiment)


def create_sqlite_store(tracking_uri: str, experiment: dict[str, Any]) -> None:
    """Create the store's tables and mlflow.yml's experiment, one process at a time."""
    database = Path(tracking_uri.removeprefix(SQLITE_PREFIX))
    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{database}.lock"):
        client = mlflow.MlflowClient(tracking_uri)
        client.search_experiments(max_results=1)  # creates the tables of a new store
        name = experiment.get("name")
        if name and client.get_experiment_by_name(name) is None:
            client.create_experiment(
                name, **(experiment.get("create_experiment_kwargs") or {})
            )


def fail_pending_models(client: mlflow.MlflowClient, run: mlflow.ActiveRun) -> None:
    """Mark FAILED the models of ``run`` whose logging never finished."""
    for model in client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
    ):
        if model.status == LoggedModelStatus.PENDING:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
