"""Guard: `kedro run` trains and logs a servable model.

The default pipeline must be kedro-mlflow's PipelineML itself (``PipelineML + other``
is a plain pipeline that logs nothing), and one short real run of it, in a copy of
this project with a few tiny images and a tracking store under ``tmp_path``, must log
a model that loads with ``mlflow.pyfunc`` and classifies image file bytes.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_mlflow.pipeline.pipeline_ml import PipelineML

from {{ cookiecutter.python_package }}.payload import (
    IMAGE_COLUMN,
)
from {{ cookiecutter.python_package }}.pipeline_registry import (
    register_pipelines,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"circle": 12, "square": 12, "triangle": 12}
DATA_LAYERS = [
    "01_raw/new_images",
    "02_intermediate",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
]


@pytest.fixture
def project(tmp_path, make_image_folder) -> Path:
    """This project's code and configuration, with tiny images instead of its data."""
    copied = tmp_path / "project"
    shutil.copytree(
        PROJECT_ROOT,
        copied,
        ignore=shutil.ignore_patterns(
            "data", "mlflow.db*", "mlartifacts", ".git", ".venv", "*.log", "__pycache__"
        ),
    )
    for layer in DATA_LAYERS:
        (copied / "data" / layer).mkdir(parents=True)
    make_image_folder(copied / "data/01_raw/images", CLASSES)
    return copied


@pytest.fixture
def tracking_store(tmp_path, monkeypatch):
    """A fresh SQLite store under tmp_path; MLflow's global state restored after.

    The run sets MLflow's active experiment, which later tests would otherwise use in
    their own stores; MLflow has no public way to forget it.
    """
    previous = mlflow.get_tracking_uri()
    store = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    yield store
    while mlflow.active_run():
        mlflow.end_run()
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def one_epoch(fast_parameters) -> dict[str, Any]:
    """The fast parameters with a single epoch, passed as `kedro run --params` are."""
    parameters = copy.deepcopy(fast_parameters)
    parameters["train_classifier"]["epochs"] = 1
    return parameters


def test_the_default_pipeline_is_the_pipeline_ml_itself(project):
    bootstrap_project(project)
    assert isinstance(pipelines["__default__"], PipelineML)


def test_registering_pipelines_never_fails_on_the_tensorflow_distribution(
    project, tensorflow_installed_as
):
    """Whatever TensorFlow installs as (or none found), `kedro` commands still work."""
    bootstrap_project(project)
    tensorflow_installed_as()
    assert isinstance(register_pipelines()["__default__"], PipelineML)


def test_a_short_run_logs_a_model_that_classifies_image_bytes(
    project, tracking_store, one_epoch, make_image_folder, tmp_path
):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, runtime_params=one_epoch) as session:
        session.run()

    mlflow.set_tracking_uri(tracking_store)
    experiments = [e.experiment_id for e in mlflow.search_experiments()]
    (run,) = mlflow.search_runs(experiments, output_format="list")
    assert run.info.status == "FINISHED"
    (logged,) = mlflow.search_logged_models(experiments, output_format="list")
    assert logged.source_run_id == run.info.run_id
    model = mlflow.pyfunc.load_model(logged.model_uri)

    images = make_image_folder(tmp_path / "requests", {"square": 2})
    request = pd.DataFrame(
        {IMAGE_COLUMN: [path.read_bytes() for path in sorted(images.rglob("*.*"))]}
    )
    predictions = model.predict(request)
    assert len(predictions) == len(request)
    assert set(predictions["label"]) <= set(CLASSES)
    assert predictions["confidence"].between(0, 1).all()
    assert {f"probability_{name}" for name in CLASSES} <= set(predictions.columns)
