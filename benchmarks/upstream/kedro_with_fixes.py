"""Kedro's CLI with the dynaconf and MLflow fixes of this folder, applied in memory.

    python benchmarks/upstream/kedro_with_fixes.py run --env ENV --params ...

The same as ``python -m kedro ...``, after two changes that behave as the patches
beside this file do (comparison 2 runs it as a third side, alternately):

- ``dynaconf-stack-filenames.patch``: dynaconf takes the file of each frame of the
  stack from the frame itself. ``inspect.stack()`` also reads every frame's source
  lines and walks ``sys.modules``; Kedro's settings load calls it four times.
- ``mlflow-requirement-check.patch``: MLflow's requirement check at ``log_model`` maps
  a package to its module only when the package's metadata has no version. The map is
  a scan of every installed distribution's files.

One difference with ``python -m kedro`` is left: dynaconf's ``find_file`` looks for
the settings files it does not find (``<package>.main_settings``) under this script's
folder and its parents too, a few ``os.path.exists`` calls.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import importlib_metadata
from dynaconf.loaders import py_loader
from dynaconf.utils import files
from kedro.framework.cli import main as kedro_main
from mlflow.utils import requirements_utils


def frame_filenames(context: int = 1) -> list[SimpleNamespace]:
    """What dynaconf reads of ``inspect.stack()``, each frame's ``filename``, taken from
    the frames (``context`` is ignored: no source line is read)."""
    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        frames.append(SimpleNamespace(filename=frame.f_code.co_filename))
        frame = frame.f_back
    return frames


def fix_dynaconf() -> None:
    """The two dynaconf modules that call ``inspect.stack()`` get ``frame_filenames``."""
    frames_only = SimpleNamespace(stack=frame_filenames)
    files.inspect = frames_only
    py_loader.inspect = frames_only


def fix_mlflow() -> None:
    """MLflow's requirement check maps a package to its module only for a package
    without metadata: ``_PACKAGES_TO_MODULES``, which only that check reads, becomes
    a lookup that builds MLflow's map on the first such package."""
    build_map = requirements_utils._init_packages_to_modules_map

    class ModulesOfPackagesWithoutMetadata(dict):
        def get(self, package: str, default: Any = None) -> Any:
            try:
                importlib_metadata.version(package)
            except importlib_metadata.PackageNotFoundError:
                build_map()  # MLflow's own map then replaces this object
                return requirements_utils._PACKAGES_TO_MODULES.get(package, default)
            return default

    requirements_utils._init_packages_to_modules_map = lambda: None
    requirements_utils._PACKAGES_TO_MODULES = ModulesOfPackagesWithoutMetadata()


def main() -> None:
    fix_dynaconf()
    fix_mlflow()
    sys.argv[0] = "kedro"
    kedro_main()


if __name__ == "__main__":
    main()
