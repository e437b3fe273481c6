"""Registration on merit: the gate, the champion, the served version, partial runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from kedro.framework.startup import bootstrap_project
from kedro.io import DatasetError
from kedro_mlflow.pipeline.pipeline_ml import PipelineML
from mlflow.entities import LoggedModelStatus

from {{ cookiecutter.python_package }}.hooks import (
    fail_pending_models,
)
from {{ cookiecutter.python_package }}.model_logging import (
    model_signature,
)
from {{ cookiecutter.python_package }}.pipeline_registry import (
    register_pipelines,
)
from {{ cookiecutter.python_package }}.registration import (
    CHAMPION,
    MissingLoggedModelError,
    RegisteredModelDataset,
    RegistryLookupError,
    TrainedModel,
    chance_minimum,
    find_logged_model,
    gate_refusal,
    move_champion,
    register,
    served_version,
)

NAME = "shapes"
GATE = {"metric": "test.accuracy", "minimum": None}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[mlflow.MlflowClient]:
    """An empty MLflow store under tmp_path, as the global tracking URI."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield mlflow.MlflowClient()
    mlflow.set_tracking_uri(previous)


def version_with(
    client: mlflow.MlflowClient, accuracy: float, **tags: str
) -> mlflow.entities.model_registry.ModelVersion:
    """A registered version whose run has this test accuracy and these tags."""
    with mlflow.start_run() as run:
        mlflow.log_metric("test.accuracy", accuracy)
    try:
        client.create_registered_model(NAME)
    except mlflow.exceptions.MlflowException:
        pass
    tags = {"classes": "a,b,c", "test_digest": "t1"} | tags
    return client.create_model_version(
        NAME, source="/nonexistent/model", run_id=run.info.run_id, tags=tags
    )


def champion(client: mlflow.MlflowClient) -> str:
    """The version number that has the alias champion."""
    return client.get_model_version_by_alias(NAME, CHAMPION).version


@pytest.mark.parametrize(("classes", "minimum"), [(2, 0.625), (3, 0.5), (10, 0.325)])
def test_default_minimum_is_clearly_above_chance(classes: int, minimum: float) -> None:
    assert chance_minimum(classes) == pytest.approx(minimum)


def test_an_untrained_model_fails_the_gate() -> None:
    """An epochs=0 model scored 0.357 on three classes: refused, with the reason."""
    refusal = gate_refusal({"test.accuracy": 0.357}, 3, GATE)
    assert refusal.startswith("test.accuracy 0.3570 is below the minimum 0.5000")


def test_a_trained_model_passes_the_gate() -> None:
    assert gate_refusal({"test.accuracy": 0.95}, 3, GATE) is None


def test_the_gate_minimum_and_metric_are_parameters() -> None:
    gate = {"metric": "test.f1_macro", "minimum": 0.99}
    assert "below the minimum 0.9900" in gate_refusal({"test.f1_macro": 0.98}, 3, gate)
    assert "no metric 'test.f1_macro'" in gate_refusal({"test.accuracy": 1}, 3, gate)


def test_champion_moves_to_the_first_and_to_a_better_version(
    client: mlflow.MlflowClient,
) -> None:
    first = version_with(client, 0.8)
    move_champion(client, NAME, first, 0.8, "test.accuracy")
    assert champion(client) == first.version
    tie = version_with(client, 0.8)
    move_champion(client, NAME, tie, 0.8, "test.accuracy")
    assert champion(client) == tie.version


def test_champion_stays_on_a_better_version(
    client: mlflow.MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    good = version_with(client, 0.9)
    move_champion(client, NAME, good, 0.9, "test.accuracy")
    worse = version_with(client, 0.7)
    move_champion(client, NAME, worse, 0.7, "test.accuracy")
    assert champion(client) == good.version
    assert "stays on version 1: its test.accuracy 0.7000 is below" in caplog.text


def test_champion_is_not_compared_across_test_sets(
    client: mlflow.MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Another test split makes the figures incomparable: the champion stays, saying why."""
    old = version_with(client, 0.6)
    move_champion(client, NAME, old, 0.6, "test.accuracy")
    other = version_with(client, 0.9, test_digest="t2")
    move_champion(client, NAME, other, 0.9, "test.accuracy")
    assert champion(client) == old.version
    assert "tested on other images" in caplog.text


def test_champion_moves_to_a_model_of_other_classes(
    client: mlflow.MlflowClient,
) -> None:
    """New classes are a new task: the old champion cannot do it."""
    old = version_with(client, 0.99)
    move_champion(client, NAME, old, 0.99, "test.accuracy")
    new = version_with(client, 0.7, classes="cat,dog", test_digest="t9")
    move_champion(client, NAME, new, 0.7, "test.accuracy")
    assert champion(client) == new.version


def test_served_version_is_champion_else_latest(client: mlflow.MlflowClient) -> None:
    for accuracy in (0.9, 0.8, 0.7):
        version_with(client, accuracy)
    version, reason = served_version(NAME)
    assert int(version.version) == 3  # noqa: PLR2004
    assert reason == f"the latest, as no version has the alias '{CHAMPION}'"
    client.set_registered_model_alias(NAME, CHAMPION, "1")
    version, reason = served_version(NAME)
    assert (int(version.version), reason) == (1, f"alias '{CHAMPION}'")
    assert int(served_version(NAME, version=2)[0].version) == 2  # noqa: PLR2004


def test_batch_inference_without_a_registered_model_says_to_train_first(
    client: mlflow.MlflowClient,
) -> None:
    with pytest.raises(DatasetError, match="train one with `kedro run` first"):
        RegisteredModelDataset(model_name=NAME).load()
    with pytest.raises(
        RegistryLookupError, match=f"No ready version of the model '{NAME}'"
    ):
        served_version(NAME)


def test_the_dataset_is_read_only() -> None:
    with pytest.raises(DatasetError, match="read-only"):
        RegisteredModelDataset(model_name=NAME).save("a model")


def test_an_interrupted_log_leaves_no_pending_model(
    client: mlflow.MlflowClient,
) -> None:
    """A model whose logging was cut short is marked FAILED, not left PENDING."""
    with mlflow.start_run() as run:
        pending = mlflow.initialize_logged_model(name=NAME)
        assert (
            client.get_logged_model(pending.model_id).status
            == LoggedModelStatus.PENDING
        )
        fail_pending_models(client, run)
    assert client.get_logged_model(pending.model_id).status == LoggedModelStatus.FAILED


def test_a_run_without_its_logged_model_is_one_clear_error(
    client: mlflow.MlflowClient,
) -> None:
    """Not max()'s bare ValueError: the run, the model's name and where it was sought."""
    with mlflow.start_run() as run:
        mlflow.initialize_logged_model(name="another_model")
    with pytest.raises(MissingLoggedModelError) as error:
        find_logged_model(client, client.get_run(run.info.run_id), NAME)
    message = str(error.value)
    assert f"Run {run.info.run_id} trained the model but logged no model named" in (
        message
    )
    assert f"'{NAME}'" in message
    assert "\n" not in message


def trained_model(
    client: mlflow.MlflowClient, metrics: dict[str, float]
) -> TrainedModel:
    """A logged model of a run with these test metrics, as a training run leaves it."""
    with mlflow.start_run() as run:
        mlflow.log_metrics(metrics)
        logged = mlflow.initialize_logged_model(name=NAME)
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    return TrainedModel(
        run_id=run.info.run_id,
        model_id=logged.model_id,
        class_names=["a", "b", "c"],
        image={"size": 32, "channels": 3},
        backbone=None,
        data_digest="d1",
        test_digest="t1",
    )


TEST_METRICS = {
    "test.accuracy": 0.9,
    "test.balanced_accuracy": 0.85,
    "test.f1_macro": 0.8,
    "test.precision_macro": 0.7,
}


def test_registering_says_how_good_the_model_is_and_how_to_serve_it(
    client: mlflow.MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    """What `kedro run` ends with: the test figures that matter, the model's URI and
    the command that serves it."""
    model = trained_model(client, TEST_METRICS)
    with caplog.at_level(logging.INFO):
        register(client, NAME, model, TEST_METRICS, GATE)
    assert caplog.messages == [
        f"Registered version 1 of '{NAME}' (models:/{NAME}/1): test accuracy 0.9000, "
        "balanced accuracy 0.8500, macro-F1 0.8000",
        f"'{CHAMPION}' now points to version 1 (models:/{NAME}@{CHAMPION}): "
        "serve it with `kedro serve`",
    ]


def test_a_refused_model_still_shows_its_test_metrics(
    client: mlflow.MlflowClient, caplog: pytest.LogCaptureFixture
) -> None:
    model = trained_model(client, TEST_METRICS)
    register(client, NAME, model, TEST_METRICS, GATE | {"minimum": 0.95})
    [message] = caplog.messages
    assert message.startswith(
        f"The model is logged (models:/{model.model_id}; test accuracy 0.9000, "
        f"balanced accuracy 0.8500, macro-F1 0.8000) but not registered as '{NAME}': "
        "test.accuracy 0.9000 is below the minimum 0.9500"
    )


def test_output_schema_names_label_confidence_and_each_class() -> None:
    signature = model_signature(["cat", "dog"])
    assert [c["name"] for c in signature.outputs.to_dict()] == [
        "label",
        "confidence",
        "probability_cat",
        "probability_dog",
    ]
    assert signature.inputs.to_dict() == [
        {"type": "binary", "name": "image", "required": True}
    ]


@pytest.fixture(scope="module")
def default_pipeline() -> PipelineML:
    """The project's default pipeline, as `kedro run` gets it."""
    bootstrap_project(Path(__file__).resolve().parents[1])
    return register_pipelines()["__default__"]


@pytest.mark.parametrize(
    "part",
    [{"from_nodes": ["predict_test_images"]}, {"to_nodes": ["split_images"]}],
    ids=["evaluation-only", "data-processing-only"],
)
def test_a_run_that_does_not_train_logs_no_model(
    default_pipeline: PipelineML, part: dict[str, list[str]]
) -> None:
    """Kedro filters the default pipeline: a part without training is a plain one."""
    filtered = default_pipeline.filter(**part)
    assert not isinstance(filtered, PipelineML)
    assert "train_classifier" not in {node.name for node in filtered.nodes}


def test_a_run_that_trains_logs_the_model(default_pipeline: PipelineML) -> None:
    filtered = default_pipeline.filter(from_nodes=["train_classifier"])
    assert isinstance(filtered, PipelineML)
