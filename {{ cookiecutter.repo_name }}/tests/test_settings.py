"""What importing the project's settings leaves behind in the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SOURCE_FOLDER = Path(__file__).resolve().parents[1] / "src"
IMPORT_SETTINGS = """
import gc
import {{ cookiecutter.python_package }}.settings
print(gc.isenabled(), gc.get_freeze_count())
"""
# TensorFlow and Keras alone leave ~500k objects.
AT_LEAST_FROZEN = 100_000


def test_the_collector_runs_again_once_the_heavy_imports_are_frozen():
    """settings.py pauses garbage collection while TensorFlow and Keras load: it must
    resume, with the imported objects left out of later collections."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_SETTINGS],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SOURCE_FOLDER)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    enabled, frozen = result.stdout.split()[-2:]
    assert enabled == "True"
    assert int(frozen) > AT_LEAST_FROZEN
