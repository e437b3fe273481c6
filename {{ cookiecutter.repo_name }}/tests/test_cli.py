"""`kedro serve`: the registered version it picks (champion, latest or chosen) and its options."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import mlflow
import pytest
from click.testing import CliRunner

from {{ cookiecutter.python_package }}.cli import (
    registered_model_uri,
    serve,
)

NAME = "shapes"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[mlflow.MlflowClient]:
    """A registry in a temporary SQLite store with three versions of NAME; v2 is champion."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    for _ in range(3):
        client.create_model_version(NAME, source=str(tmp_path / "model"))
    client.set_registered_model_alias(NAME, "champion", "2")
    yield client
    mlflow.set_tracking_uri(previous)


def test_champion_by_default(registry: mlflow.MlflowClient) -> None:
    assert registered_model_uri(NAME) == f"models:/{NAME}/2"


def test_latest_version_without_champion(registry: mlflow.MlflowClient) -> None:
    registry.delete_registered_model_alias(NAME, "champion")
    assert registered_model_uri(NAME) == f"models:/{NAME}/3"


def test_chosen_version_or_alias(registry: mlflow.MlflowClient) -> None:
    assert registered_model_uri(NAME, version=1) == f"models:/{NAME}/1"
    assert registered_model_uri(NAME, alias="champion") == f"models:/{NAME}/2"


@pytest.mark.parametrize(
    ("name", "version", "alias", "message"),
    [
        (NAME, 9, None, "Cannot find version 9 of the model 'shapes'"),
        (NAME, None, "staging", "Cannot find the alias 'staging' of the model"),
        ("other", None, None, "No ready version of the model 'other' is registered"),
    ],
    ids=["no-such-version", "no-such-alias", "nothing-registered"],
)
def test_missing_version_is_a_clear_error(
    registry: mlflow.MlflowClient,
    name: str,
    version: int | None,
    alias: str | None,
    message: str,
) -> None:
    with pytest.raises(click.ClickException, match=message) as error:
        registered_model_uri(name, version, alias)
    assert "sqlite:///" in error.value.message  # says which store it looked in


@pytest.mark.parametrize("workers", ["0", "-1", "two"])
def test_workers_must_be_a_positive_count(workers: str) -> None:
    """`kedro serve --workers` is refused, naming the option, before anything loads."""
    result = CliRunner().invoke(serve, ["--workers", workers])
    assert result.exit_code == 2  # noqa: PLR2004  click's usage error
    assert "Invalid value for '--workers'" in result.output
