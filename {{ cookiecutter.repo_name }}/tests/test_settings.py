"""What importing the project's settings leaves behind in the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE_FOLDER = Path(__file__).resolve().parents[1] / "src"
IMPORT_SETTINGS = """
import gc
{before}
import {{ cookiecutter.python_package }}.settings
print(gc.isenabled(), gc.get_freeze_count())
"""
# TensorFlow and Keras alone leave ~500k objects.
AT_LEAST_FROZEN = 100_000


@pytest.mark.parametrize("collecting", [True, False], ids=["gc-on", "gc-off"])
def test_heavy_imports_are_frozen_and_the_collector_left_as_it_was(collecting):
    """settings.py pauses garbage collection while TensorFlow and Keras load: it must
    be back as the process had it, with the imported objects left out of collections."""
    before = "" if collecting else "gc.disable()"
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_SETTINGS.format(before=before)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SOURCE_FOLDER)},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    enabled, frozen = result.stdout.split()[-2:]
    assert enabled == str(collecting)
    assert int(frozen) > AT_LEAST_FROZEN
