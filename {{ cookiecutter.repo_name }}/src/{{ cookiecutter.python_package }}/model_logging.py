"""How each training run logs its model: signature, input example, requirements, code."""

from __future__ import annotations

import io
import logging
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from PIL import Image

from {{ cookiecutter.python_package }}.payload import (
    IMAGE_COLUMN,
    probability_column,
)

PACKAGE_FOLDER = Path(__file__).resolve().parent
logger = logging.getLogger(__name__)

# What the logged model imports when it loads and predicts, pinned to this environment.
# TensorFlow is looked up by its module: it installs as tensorflow, tensorflow-cpu,
# tensorflow-macos, tf-nightly...
TENSORFLOW_MODULE = "tensorflow"
SERVING_DISTRIBUTIONS = (
    "kedro",
    "kedro-datasets",
    "kedro-mlflow",
    "mlflow",
    "keras",
    "pillow",
    "numpy",
    "pandas",
    "cloudpickle",
)


def model_signature(class_names: list[str] | None = None) -> ModelSignature:
    """One binary ``image`` column and no parameters, so a client cannot change how the
    model runs; with the class names, also the output: label, confidence, probabilities."""
    inputs = Schema([ColSpec("binary", IMAGE_COLUMN)])
    if class_names is None:
        return ModelSignature(inputs=inputs)
    outputs = Schema(
        [
            ColSpec("string", "label"),
            ColSpec("double", "confidence"),
            *(ColSpec("double", probability_column(name)) for name in class_names),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example() -> pd.DataFrame:
    """A request of one small PNG, logged so MLflow shows clients the payload format."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(buffer, format="PNG")
    return pd.DataFrame({IMAGE_COLUMN: [buffer.getvalue()]})


def tensorflow_distributions() -> list[str]:
    """The installed distributions that provide the ``tensorflow`` module.

    The usual name is tried first: scanning every installed distribution, the general
    lookup, adds ~0.4 s to each Kedro command (the registry logs these requirements).
    """
    try:
        version(TENSORFLOW_MODULE)
    except PackageNotFoundError:
        return packages_distributions().get(TENSORFLOW_MODULE, [])
    return [TENSORFLOW_MODULE]


def pip_requirements() -> list[str]:
    """The serving dependencies at the versions installed here; a missing one is left out with a warning."""
    tensorflow = tensorflow_distributions()
    if not tensorflow:
        logger.warning(
            "No installed distribution provides the '%s' module: the logged model's "
            "requirements leave TensorFlow out; install it where the model is served.",
            TENSORFLOW_MODULE,
        )
    requirements = []
    for name in dict.fromkeys([*SERVING_DISTRIBUTIONS, *tensorflow]):
        try:
            requirements.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            logger.warning(
                "'%s' is not installed: the logged model's requirements leave it out.",
                name,
            )
    return requirements


def log_model_kwargs() -> dict[str, Any]:
    """Arguments for ``mlflow.pyfunc.log_model`` that make the model safe and portable.

    The project's hooks complete them during the run: the model's name (the registered
    model's), the output columns once the class names are known, and the step of the
    epoch whose weights the model keeps. They register the model themselves, after a
    gate (registration.py), so no ``registered_model_name`` here.
    """
    return {
        "name": "model",
        "signature": model_signature(),
        "input_example": input_example(),
        "pip_requirements": pip_requirements(),
        # Bundle this package so the model loads where the project is not installed.
        "code_paths": [str(PACKAGE_FOLDER)],
    }
