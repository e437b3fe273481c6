"""The embedded example images are exactly what scripts/make_example_images.py draws."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from helpers import TEMPLATE, TEMPLATE_DIR_NAME
from PIL import Image

SHIPPED = TEMPLATE / TEMPLATE_DIR_NAME / "data" / "01_raw" / "images"


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "make_example_images", TEMPLATE / "scripts" / "make_example_images.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_shipped_images_are_the_script_output(tmp_path):
    """Regenerating gives the same files and pixels (JPEG within decoder rounding)."""
    script = _load_script()
    written = script.make_example_images(tmp_path)
    regenerated = sorted(p.relative_to(tmp_path) for p in written)
    shipped = sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*") if p.is_file())
    assert regenerated == shipped
    assert {p.parts[0] for p in shipped} == set(script.CLASSES)
    for relative in shipped:
        difference = np.abs(_pixels(tmp_path / relative) - _pixels(SHIPPED / relative))
        assert difference.mean() < 1.0, relative
