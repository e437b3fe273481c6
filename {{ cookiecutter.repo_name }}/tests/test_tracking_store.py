"""Where runs are recorded: mlflow.yml read as Kedro reads it, and a new store made safely."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import mlflow
from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf

from {{ cookiecutter.python_package }} import settings
from {{ cookiecutter.python_package }}.hooks import (
    TrackingStoreHooks,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESOLVER_NAMES = [*settings.RESOLVERS, "km.random_name"]


def tracking_uri() -> str:
    """mlflow.yml's tracking URI, resolved by Kedro's loader with the project's settings."""
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), **settings.CONFIG_LOADER_ARGS
    )
    return loader["mlflow"]["server"]["mlflow_tracking_uri"]


def test_mlflow_tracking_uri_in_the_environment_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example.com:5000")
    assert tracking_uri() == "http://mlflow.example.com:5000"


def test_an_empty_mlflow_tracking_uri_counts_as_unset(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert tracking_uri() == default != ""


def test_the_default_store_is_at_the_project_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # whatever the working directory
    default = tracking_uri()
    if default.startswith("sqlite:///"):
        assert default == f"sqlite:///{PROJECT_ROOT.as_posix()}/mlflow.db"


def test_kedro_does_not_register_the_project_resolvers_again(monkeypatch):
    """They are registered with OmegaConf's current API already: Kedro would use the
    deprecated register_new_resolver, which warns on every command."""
    registered_the_old_way = []

    def register_new_resolver(name, resolver, **kwargs):
        registered_the_old_way.append(name)

    monkeypatch.setattr(OmegaConf, "register_new_resolver", register_new_resolver)
    OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), **settings.CONFIG_LOADER_ARGS
    )
    assert all(OmegaConf.has_resolver(name) for name in RESOLVER_NAMES)
    assert not set(registered_the_old_way) & set(RESOLVER_NAMES)


def test_only_kedros_own_deprecated_resolver_calls_are_silenced():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings.ignore_kedros_deprecated_resolver_calls()  # pytest reset it
        tracking_uri()
        assert not [w for w in caught if "register_new_resolver" in str(w.message)]

        OmegaConf.register_new_resolver("tracking_store_test", lambda: "x")
        OmegaConf.clear_resolver("tracking_store_test")
    assert [w for w in caught if "register_new_resolver" in str(w.message)]


# Each process creates a Kedro session's context, which runs the project's hooks and
# kedro-mlflow's, as `kedro run` does. All start at once: each says it is ready, then
# waits for the go.
FIRST_USE = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    project, signals = Path(sys.argv[1]), Path(sys.argv[2])
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        (signals / f"ready-{os.getpid()}").touch()
        while not (signals / "go").exists():
            time.sleep(0.01)
        session.load_context()
    """
)


def test_first_runs_at_once_on_a_new_store(tmp_path, monkeypatch):
    """Without a lock, MLflow's table creation races: "table ... already exists"."""
    store = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, str(PROJECT_ROOT), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("ready-*"))) < len(processes):
        assert time.monotonic() < deadline, "the processes never got ready"
        assert all(process.poll() is None for process in processes), "one exited"
        time.sleep(0.05)
    (tmp_path / "go").touch()

    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-4000:]
    experiments = mlflow.MlflowClient(store).search_experiments()
    names = [experiment.name for experiment in experiments]
    assert "{{ cookiecutter.python_package }}" in names


def test_a_null_tracking_uri_is_left_to_kedro_mlflow(tmp_path, monkeypatch):
    """mlflow_tracking_uri: null (kedro-mlflow then reads MLFLOW_TRACKING_URI) creates
    no store and keeps MLflow's own artifact location."""
    monkeypatch.chdir(tmp_path)
    context = SimpleNamespace(
        config_loader={"mlflow": {"server": {"mlflow_tracking_uri": None}}}
    )
    TrackingStoreHooks().after_context_created(context)
    assert list(tmp_path.iterdir()) == []
    assert settings.artifacts_beside(None) is None
