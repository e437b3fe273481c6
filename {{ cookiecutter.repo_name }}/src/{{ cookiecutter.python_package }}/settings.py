"""Project settings: only what differs from Kedro's defaults.
See https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path

from kedro_mlflow.config.resolvers import resolve_random_name
from omegaconf import OmegaConf

# The hooks import TensorFlow and Keras: ~500k objects that live as long as the
# process. Python's garbage collector would walk all of them at each full collection
# while they load (~1 s of every `kedro run`), so it waits until they are in, and
# then leaves them out of its collections (gc.freeze).
collecting = gc.isenabled()
gc.disable()
try:
    from {{ cookiecutter.python_package }}.hooks import (
        SQLITE_PREFIX,
        InterruptedRunHooks,
        ModelRegistrationHooks,
        ParameterCheckHooks,
        TrackingStoreHooks,
    )
    from {{ cookiecutter.python_package }}.multi_worker import (
        ChiefOnlyTrackingHooks,
    )
finally:
    gc.freeze()
    if collecting:
        gc.enable()

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def env_or_default(name: str, default: str) -> str:
    """The environment variable ``name`` if set and not empty (as MLflow reads it), else ``default``."""
    return os.environ.get(name) or default


def artifacts_beside(tracking_uri: str | None) -> str | None:
    """Keep artifacts next to a SQLite tracking database; a server chooses its own."""
    if tracking_uri and tracking_uri.startswith(SQLITE_PREFIX):
        # SQLite reads a relative path from the working directory: so do we.
        database = Path(tracking_uri.removeprefix(SQLITE_PREFIX)).resolve()
        return (database.parent / "mlartifacts").as_uri()
    return None


# Used by mlflow.yml: MLFLOW_TRACKING_URI wins, and the default store and its
# artifacts sit at the project root whatever the working directory.
RESOLVERS = {
    "env_or_default": env_or_default,
    "project_root": PROJECT_ROOT.as_posix,
    "artifacts_beside": artifacts_beside,
}
# Registered here with OmegaConf's current API: Kedro skips resolvers that exist, and
# would otherwise register them with the deprecated register_new_resolver, which
# warns on every command.
for name, resolver in RESOLVERS.items():
    OmegaConf.register_resolver(name, resolver, replace=True)
# kedro-mlflow's run names in mlflow.yml, registered as kedro-mlflow does (cached), but
# before TrackingStoreHooks reads mlflow.yml, which comes before kedro-mlflow's hook.
OmegaConf.register_resolver(
    "km.random_name", resolve_random_name, replace=True, use_cache=True
)


def ignore_kedros_deprecated_resolver_calls() -> None:
    """Silence the warning Kedro 1.7's own resolvers (globals, runtime_params) give on every config load; from any other caller it still shows."""
    warnings.filterwarnings(
        "ignore",
        message=r"register_new_resolver\(\) is deprecated",
        category=UserWarning,
        module=r"kedro\.config\.omegaconf_config",
    )


ignore_kedros_deprecated_resolver_calls()

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": RESOLVERS,
    # kedro-mlflow adds this pattern itself, later than TrackingStoreHooks reads it.
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"]},
}

HOOKS = (
    TrackingStoreHooks(),
    ParameterCheckHooks(),
    ModelRegistrationHooks(),
    InterruptedRunHooks(),
    ChiefOnlyTrackingHooks(),
)
