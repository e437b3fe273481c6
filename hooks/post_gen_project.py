"""Remove what the answers left out of the generated project."""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLE_IMAGES = Path("data", "01_raw", "images")


def remove_example_images(project: Path) -> None:
    """Delete the embedded example class folders, keeping an empty images folder."""
    images = project / EXAMPLE_IMAGES
    for class_folder in images.iterdir():
        if class_folder.is_dir():
            shutil.rmtree(class_folder)


if __name__ == "__main__":
    # cookiecutter renders this file with Jinja, then runs it in the generated project.
    if "{{ cookiecutter.__example_data }}" != "True":  # noqa: PLR0133
        remove_example_images(Path.cwd())
