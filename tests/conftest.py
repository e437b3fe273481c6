"""Session fixtures: bake the default project once, train it once, share both."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import TEMPLATE, TRAINED_PACKAGE, bake_ok, kedro, project_tracking_uri


def pytest_configure(config: pytest.Config) -> None:
    """Bake this repository's template wherever pytest is started from."""
    config.option.template = str(TEMPLATE)


@pytest.fixture(autouse=True)
def _no_mlflow_or_telemetry_leaks(monkeypatch):
    """No MLflow variable from the caller's shell; Kedro never asks for telemetry."""
    for name in list(os.environ):
        if name.startswith("MLFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def default_project(cookies_session) -> Path:
    """A project baked with every default answer. Tests must not modify it."""
    return bake_ok(cookies_session)


@dataclass(frozen=True)
class TrainedProject:
    path: Path
    output: str

    @property
    def tracking_uri(self) -> str:
        return project_tracking_uri(self.path)


@pytest.fixture(scope="session")
def trained_project(cookies_session) -> TrainedProject:
    """A default project after one `kedro run`: the one training run tests share."""
    path = bake_ok(cookies_session, project_name="Trained Shapes")
    assert path.name.replace("-", "_") == TRAINED_PACKAGE
    result = kedro("run", cwd=path)
    return TrainedProject(path=path, output=result.stdout + result.stderr)


@pytest.fixture
def project_copy(trained_project, tmp_path) -> Path:
    """A copy of the trained project, with its database, for runs that add to it."""
    return Path(shutil.copytree(trained_project.path, tmp_path / "project"))
