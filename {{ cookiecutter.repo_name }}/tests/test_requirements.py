"""The logged model's pip requirements follow the installed distributions."""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, packages_distributions, version

import pytest

from {{ cookiecutter.python_package }} import model_logging


def test_every_requirement_is_pinned_to_this_environment():
    (tensorflow,) = packages_distributions()["tensorflow"]
    requirements = model_logging.pip_requirements()
    assert f"{tensorflow}=={version(tensorflow)}" in requirements
    assert f"keras=={version('keras')}" in requirements
    assert all("==" in requirement for requirement in requirements)


def test_the_usual_tensorflow_distribution_needs_no_scan(monkeypatch):
    """Found by its name: no scan of every installed distribution (~0.4 s a command)."""

    def scan() -> dict[str, list[str]]:
        raise AssertionError("packages_distributions() was called")

    monkeypatch.setattr(model_logging, "packages_distributions", scan)
    assert f"tensorflow=={version('tensorflow')}" in model_logging.pip_requirements()


@pytest.mark.parametrize("name", ["tensorflow-cpu", "tensorflow-macos", "tf-nightly"])
def test_tensorflow_under_another_distribution_name(tensorflow_installed_as, name):
    tensorflow_installed_as(name, tensorflow_version="2.21.0")
    requirements = model_logging.pip_requirements()
    assert f"{name}==2.21.0" in requirements
    assert not any(line.startswith("tensorflow==") for line in requirements)


def test_no_tensorflow_distribution_is_a_warning_not_an_error(
    tensorflow_installed_as, caplog
):
    tensorflow_installed_as()  # e.g. TensorFlow built from source on sys.path
    with caplog.at_level(logging.WARNING, logger=model_logging.__name__):
        requirements = model_logging.pip_requirements()
    assert f"keras=={version('keras')}" in requirements
    assert not any(line.startswith("tensorflow") for line in requirements)
    assert "No installed distribution provides the 'tensorflow' module" in caplog.text


def test_a_missing_serving_distribution_is_left_out(monkeypatch, caplog):
    def version_without_cloudpickle(name: str) -> str:
        if name == "cloudpickle":
            raise PackageNotFoundError(name)
        return version(name)

    monkeypatch.setattr(model_logging, "version", version_without_cloudpickle)
    with caplog.at_level(logging.WARNING, logger=model_logging.__name__):
        requirements = model_logging.pip_requirements()
    assert not any(line.startswith("cloudpickle") for line in requirements)
    assert "'cloudpickle' is not installed" in caplog.text
