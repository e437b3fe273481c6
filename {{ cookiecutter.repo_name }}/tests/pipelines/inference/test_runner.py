"""The logged model's runner: Kedro's results, without Kedro's lines unless asked."""

from __future__ import annotations

import io
import logging
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner as KedroSequentialRunner
from PIL import Image

from {{ cookiecutter.python_package }}.keras_model import (
    SharedKerasModel,
)
from {{ cookiecutter.python_package }}.payload import (
    InvalidPayloadError,
)
from {{ cookiecutter.python_package }}.pipelines.inference import (
    create_pipeline,
)
from {{ cookiecutter.python_package }}.pipelines.inference.runner import (
    VERBOSE_VARIABLE,
    SequentialRunner,
)
from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    build_model,
)

CLASS_NAMES = ["cat", "dog"]


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 12), colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def classifier(fast_parameters: dict[str, Any]) -> SharedKerasModel:
    """A tiny untrained network of the project's architecture."""
    image = fast_parameters["image"]
    return SharedKerasModel(
        build_model(
            len(CLASS_NAMES),
            image["size"],
            image["channels"],
            fast_parameters["train_classifier"],
        )
    )


def catalog_of(
    images: list[bytes], classifier: SharedKerasModel, parameters: dict[str, Any]
) -> DataCatalog:
    """The catalog kedro-mlflow's model gives its runner on each predict."""
    catalog = DataCatalog(
        datasets={
            "classifier": MemoryDataset(classifier, copy_mode="assign"),
            "class_names": MemoryDataset(CLASS_NAMES),
        }
    )
    catalog["images_to_score"] = pd.DataFrame({"image": images})
    catalog["params:image"] = parameters["image"]
    catalog["params:preprocess_payload"] = parameters["preprocess_payload"]
    return catalog


def predict(
    runner: Any, images: list[bytes], classifier: SharedKerasModel, parameters: dict
) -> pd.DataFrame:
    outputs = runner.run(create_pipeline(), catalog_of(images, classifier, parameters))
    return outputs["predictions"].load()


def kedro_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("kedro")]


def test_same_predictions_as_kedros_runner_and_no_kedro_lines(
    classifier: SharedKerasModel,
    fast_parameters: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The inference pipeline gives Kedro's runner's table, and logs nothing."""
    monkeypatch.delenv(VERBOSE_VARIABLE, raising=False)
    images = [png((250, 20, 20)), png((20, 20, 250)), png((90, 90, 90))]
    expected = predict(KedroSequentialRunner(), images, classifier, fast_parameters)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        ours = predict(SequentialRunner(), images, classifier, fast_parameters)
    pd.testing.assert_frame_equal(ours, expected)
    assert kedro_lines(caplog) == []


def test_kedro_lines_come_back_when_asked(
    classifier: SharedKerasModel,
    fast_parameters: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MODEL_KEDRO_LOGS=1 runs Kedro's own runner, with its per-node lines."""
    monkeypatch.setenv(VERBOSE_VARIABLE, "1")
    with caplog.at_level(logging.INFO):
        predict(SequentialRunner(), [png((1, 2, 3))], classifier, fast_parameters)
    assert any(
        line.startswith("Running node: classify") for line in kedro_lines(caplog)
    )


def test_a_refused_payload_reaches_the_caller_unchanged(
    classifier: SharedKerasModel, fast_parameters: dict[str, Any]
) -> None:
    """The row-naming rejection is what the server and batch inference look for."""
    with pytest.raises(InvalidPayloadError, match="row 1: not an image file"):
        predict(SequentialRunner(), [png((1, 2, 3)), b"x"], classifier, fast_parameters)


def test_keeps_the_name_kedro_mlflow_looks_for() -> None:
    """kedro-mlflow 2.0.3 replaces a runner of another class name on every predict."""
    assert type(SequentialRunner()).__name__ == "SequentialRunner"
