"""Project settings: only what differs from Kedro's defaults.
See https://docs.kedro.org/en/stable/configure/configuration_basics/"""

from pathlib import Path

from omegaconf.resolvers import oc

PROJECT_ROOT = Path(__file__).resolve().parents[2]

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {
        # mlflow.yml reads MLFLOW_TRACKING_URI and places the default store at the
        # project root, whatever the working directory.
        "oc.env": oc.env,
        "project_root": lambda: PROJECT_ROOT.as_posix(),
    },
}
