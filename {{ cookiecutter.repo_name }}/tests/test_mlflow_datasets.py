"""The image index recorded as an MLflow dataset input of the run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from {{ cookiecutter.python_package }}.mlflow_datasets import (
    MlflowInputDataset,
)

INDEX = pd.DataFrame(
    {
        "partition": ["cat/1.png", "cat/2.png", "dog/1.png"],
        "label": ["cat", "cat", "dog"],
    }
)


def index_dataset(folder: Path) -> MlflowInputDataset:
    """The catalog's image_index entry, writing under ``folder``."""
    return MlflowInputDataset(
        name="image_index",
        context="training",
        dataset={"type": "pandas.CSVDataset", "filepath": str(folder / "index.csv")},
    )


def logged_inputs(run_id: str) -> list[mlflow.entities.DatasetInput]:
    return mlflow.MlflowClient().get_run(run_id).inputs.dataset_inputs


def test_saving_logs_the_table_as_a_run_input(
    mlflow_run: mlflow.ActiveRun, tmp_path: Path
) -> None:
    """The run gets one dataset input, named, with a digest, a schema and its context."""
    dataset = index_dataset(tmp_path)
    dataset.save(INDEX)
    pd.testing.assert_frame_equal(dataset.load(), INDEX)
    [logged] = logged_inputs(mlflow_run.info.run_id)
    assert logged.dataset.name == "image_index"
    assert logged.dataset.digest
    assert "partition" in logged.dataset.schema
    assert [(tag.key, tag.value) for tag in logged.tags] == [
        ("mlflow.data.context", "training")
    ]


def test_same_images_same_digest_other_images_another(
    mlflow_run: mlflow.ActiveRun, tmp_path: Path
) -> None:
    """Two runs on the same images share the digest; one more image changes it."""
    index_dataset(tmp_path / "first").save(INDEX)
    with mlflow.start_run(nested=True) as second:
        index_dataset(tmp_path / "second").save(INDEX.copy())
    with mlflow.start_run(nested=True) as third:
        more = pd.concat(
            [INDEX, pd.DataFrame({"partition": ["dog/2.png"], "label": ["dog"]})]
        )
        index_dataset(tmp_path / "third").save(more)
    digests = [
        logged_inputs(run_id)[0].dataset.digest
        for run_id in (mlflow_run.info.run_id, second.info.run_id, third.info.run_id)
    ]
    assert digests[0] == digests[1] != digests[2]


def test_without_an_active_run_it_only_saves(tmp_path: Path) -> None:
    assert mlflow.active_run() is None
    dataset = index_dataset(tmp_path)
    dataset.save(INDEX)
    assert (tmp_path / "index.csv").is_file()
