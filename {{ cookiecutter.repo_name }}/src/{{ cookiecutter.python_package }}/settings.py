"""Project settings: only what differs from Kedro's defaults.
See https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from __future__ import annotations

from pathlib import Path

from omegaconf.resolvers import oc

from {{ cookiecutter.python_package }}.hooks import (
    InterruptedRunHooks,
    ModelRegistrationHooks,
    ParameterCheckHooks,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQLITE_PREFIX = "sqlite:///"


def artifacts_beside(tracking_uri: str) -> str | None:
    """Keep artifacts next to a SQLite tracking database; a server chooses its own."""
    if tracking_uri.startswith(SQLITE_PREFIX):
        # SQLite reads a relative path from the working directory: so do we.
        database = Path(tracking_uri.removeprefix(SQLITE_PREFIX)).resolve()
        return (database.parent / "mlartifacts").as_uri()
    return None


CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Used by mlflow.yml: MLFLOW_TRACKING_URI wins, and the default store and its
    # artifacts sit at the project root whatever the working directory.
    "custom_resolvers": {
        "oc.env": oc.env,
        "project_root": PROJECT_ROOT.as_posix,
        "artifacts_beside": artifacts_beside,
    },
}

HOOKS = (ParameterCheckHooks(), ModelRegistrationHooks(), InterruptedRunHooks())
