"""One `kedro run` of a freshly baked project: what it trains, tracks, logs and registers."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from helpers import EXAMPLE_CLASSES as CLASSES
from helpers import TRAINED_PACKAGE as PACKAGE
from helpers import (
    command_env,
    kedro,
    project_tracking_uri,
    registered_versions,
    run,
    run_statuses,
)
from PIL import Image

pytestmark = pytest.mark.slow
DEFAULT_PACKAGE = "image_classifier"  # the package of the `default_project` fixture


@pytest.fixture(scope="module")
def client(trained_project) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=trained_project.tracking_uri)


@pytest.fixture(scope="module")
def training_run(client) -> mlflow.entities.Run:
    experiment = client.get_experiment_by_name(PACKAGE)
    assert experiment is not None, "the experiment is named after the project"
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_metrics_are_sane(trained_project):
    """The default parameters reach at least 90 % test accuracy on the example images."""
    reporting = trained_project.path / "data" / "08_reporting"
    report = json.loads((reporting / "classification_report.json").read_text())
    assert report["accuracy"] >= 0.9
    for name in CLASSES:
        assert 0 <= report[name]["f1-score"] <= 1
        assert report[name]["support"] > 0
    for plot in ("confusion_matrix.png", "training_curves.png"):
        with Image.open(reporting / plot) as image:
            assert image.format == "PNG"
            assert min(image.size) > 100


def test_run_is_tracked_in_the_project_database(trained_project, training_run):
    """The default store is the project's SQLite database; the run has a readable name."""
    assert (trained_project.path / "mlflow.db").is_file()
    assert not (trained_project.path / "mlruns").exists()
    assert training_run.info.status == "FINISHED"
    assert training_run.info.run_name.count("-") >= 1  # e.g. "brave-owl-42"


def test_run_records_parameters_and_metrics(client, training_run):
    """Flattened parameters, per-epoch curves, final metrics and the skipped count."""
    params = training_run.data.params
    assert params["train_classifier.learning_rate"] == "0.003"
    assert params["image.size"] == "32"
    assert params["split_images.seed"] == "42"
    metrics = training_run.data.metrics
    assert metrics["test.accuracy"] >= 0.9
    for name in ("test.precision_macro", "test.recall_macro", "test.f1_macro"):
        assert 0 <= metrics[name] <= 1
    assert metrics["skipped_images"] == 0
    losses = client.get_metric_history(training_run.info.run_id, "training.loss")
    val_losses = client.get_metric_history(
        training_run.info.run_id, "training.val_loss"
    )
    assert len(losses) == len(val_losses) > 1
    assert [m.step for m in losses] == list(range(1, len(losses) + 1))


def test_run_logs_reports_and_class_names(client, training_run):
    """Plots, the per-class report and the class names are artifacts."""
    names = {a.path for a in client.list_artifacts(training_run.info.run_id)}
    assert {
        "confusion_matrix.png",
        "training_curves.png",
        "top_losses.png",
        "classification_report.json",
        "class_names.json",
    } <= names


def test_keras_file_is_stored_once_inside_the_logged_model(client, training_run):
    """Not a run artifact too: the logged model's artifacts carry the .keras file."""
    run_files = {a.path for a in client.list_artifacts(training_run.info.run_id)}
    assert not any(path.endswith(".keras") for path in run_files)
    [model] = client.search_logged_models(
        experiment_ids=[training_run.info.experiment_id]
    )
    folder = Path(mlflow.artifacts.download_artifacts(model.artifact_location))
    assert [p.name for p in folder.rglob("*.keras")] == ["classifier.keras"]


def test_training_metrics_are_logged_during_fit_from_step_1(client, training_run):
    """Every epoch of every Keras metric, at steps 1..N; none at step 0."""
    run_id = training_run.info.run_id
    steps = {
        name: [m.step for m in client.get_metric_history(run_id, f"training.{name}")]
        for name in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    epochs = len(steps["loss"])
    assert epochs > 1
    assert all(s == list(range(1, epochs + 1)) for s in steps.values()), steps


def test_test_metrics_include_imbalance_aware_figures(training_run):
    """Balanced accuracy and macro-F1 beside accuracy; no top-5 with three classes."""
    metrics = training_run.data.metrics
    assert 0.9 <= metrics["test.balanced_accuracy"] <= 1
    assert 0.9 <= metrics["test.f1_macro"] <= 1
    assert not any(name.startswith("test.top_") for name in metrics)


def test_image_index_is_the_runs_dataset_input_and_its_digest_is_stable(
    trained_project, training_run, project_copy
):
    """The run records its images with a digest; a new run on them shows the same one."""
    [logged] = training_run.inputs.dataset_inputs
    assert logged.dataset.name == "image_index"
    index = pd.read_csv(
        trained_project.path / "data/02_intermediate/image_index.csv",
        dtype={"label": str},
        keep_default_na=False,
    )
    assert logged.dataset.digest == mlflow.data.from_pandas(index).digest
    assert {tag.key: tag.value for tag in logged.tags}["mlflow.data.context"] == (
        "training"
    )

    kedro("run", "--pipeline", "data_processing", cwd=project_copy)
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    experiment = client.get_experiment_by_name(PACKAGE)
    [latest, _] = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"]
    )
    [again] = latest.inputs.dataset_inputs
    assert again.dataset.digest == logged.dataset.digest


def test_run_logs_and_registers_one_model(client, training_run):
    """`kedro run` logs a KedroPipelineModel and registers it under the project's name."""
    models = client.search_logged_models(
        experiment_ids=[training_run.info.experiment_id]
    )
    assert len(models) == 1
    assert models[0].source_run_id == training_run.info.run_id
    versions = client.search_model_versions(f"name='{PACKAGE}'")
    assert [(int(v.version), v.run_id) for v in versions] == [
        (1, training_run.info.run_id)
    ]


def test_logged_model_signature_is_the_payload_and_takes_no_params(trained_project):
    """One binary `image` column and no request parameters; an input example is logged."""
    mlflow.set_tracking_uri(trained_project.tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{PACKAGE}/1")
    assert info.signature.inputs.to_dict() == [
        {"type": "binary", "name": "image", "required": True}
    ]
    assert info.signature.params is None
    assert info.saved_input_example_info is not None


def test_logged_model_declares_its_output_columns(trained_project):
    """label, confidence and one probability per class, in the model's signature."""
    mlflow.set_tracking_uri(trained_project.tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{PACKAGE}@champion")
    assert info.signature.outputs.to_dict() == [
        {"type": "string", "name": "label", "required": True},
        {"type": "double", "name": "confidence", "required": True},
        *(
            {"type": "double", "name": f"probability_{name}", "required": True}
            for name in CLASSES
        ),
    ]


def test_registered_model_is_described_tagged_and_champion(client, training_run):
    """What the MLflow UI shows: description, tags, the champion alias, the name."""
    version = client.get_model_version_by_alias(PACKAGE, "champion")
    assert int(version.version) == 1
    assert version.run_id == training_run.info.run_id
    for text in (version.description, client.get_registered_model(PACKAGE).description):
        assert "circle, square, triangle" in text
        assert "32x32" in text
        assert "dataframe_records" in text
    assert version.tags["classes"] == ",".join(CLASSES)
    assert version.tags["backbone"] == "small_cnn"
    assert len(version.tags["data_digest"]) >= 8  # noqa: PLR2004
    assert len(version.tags["test_digest"]) >= 8  # noqa: PLR2004
    model = client.get_logged_model(version.source.removeprefix("models:/"))
    assert model.name == PACKAGE


def test_model_page_shows_the_kept_epoch_and_test_metrics(client, training_run):
    """The logged model's metrics (its MLflow page) are the best epoch's and the test's,
    not those of the first epoch."""
    run_id = training_run.info.run_id
    [model] = client.search_logged_models(
        experiment_ids=[training_run.info.experiment_id]
    )
    metrics = {m.key: m for m in model.metrics}
    test = {k: v for k, v in training_run.data.metrics.items() if k.startswith("test.")}
    assert {k: metrics[k].value for k in test} == test
    val_losses = client.get_metric_history(run_id, "training.val_loss")
    best = min(val_losses, key=lambda m: m.value)
    assert metrics["training.val_loss"].step == best.step > 0
    assert metrics["training.val_loss"].value == best.value
    accuracy = client.get_metric_history(run_id, "training.accuracy")
    assert metrics["training.accuracy"].value == accuracy[best.step - 1].value


def test_logged_model_pins_its_requirements(trained_project):
    """Serving dependencies are explicit and pinned to the training environment."""
    mlflow.set_tracking_uri(trained_project.tracking_uri)
    folder = mlflow.artifacts.download_artifacts(f"models:/{PACKAGE}/1")
    requirements = (Path(folder) / "requirements.txt").read_text().split()
    pinned = {line.split("==")[0] for line in requirements}
    expected = {"kedro", "kedro-datasets", "kedro-mlflow", "mlflow", "tensorflow"}
    assert expected | {"keras", "pillow"} <= pinned
    assert all("==" in line for line in requirements)


PREDICT_ELSEWHERE = """
import importlib.util, json, sys
import mlflow, pandas as pd
assert importlib.util.find_spec(sys.argv[2]) is None, "the project package is importable"
model = mlflow.pyfunc.load_model(sys.argv[1])
files = json.loads(sys.argv[3])
payload = pd.DataFrame({"image": [open(f, "rb").read() for f in files]})
print(model.predict(payload).to_json(orient="records"))
"""


def test_logged_model_predicts_from_another_directory(trained_project, tmp_path):
    """The model loads and predicts where the project package cannot be imported."""
    test_split = pd.read_csv(
        trained_project.path / "data" / "05_model_input" / "test_split.csv"
    )
    raw = trained_project.path / "data" / "01_raw" / "images"
    files = [str(raw / partition) for partition in test_split["partition"]]
    result = run(
        [
            sys.executable,
            "-c",
            PREDICT_ELSEWHERE,
            f"models:/{PACKAGE}/1",
            PACKAGE,
            json.dumps(files),
        ],
        cwd=tmp_path,
        MLFLOW_TRACKING_URI=trained_project.tracking_uri,
        PYTHONPATH="",
    )
    predictions = pd.DataFrame(json.loads(result.stdout.strip().splitlines()[-1]))
    assert len(predictions) == len(files)
    assert set(predictions["label"]) <= set(CLASSES)
    assert predictions["confidence"].between(0, 1).all()
    probabilities = predictions[[f"probability_{c}" for c in CLASSES]]
    assert (probabilities.sum(axis=1) - 1).abs().max() < 1e-4
    accuracy = (
        predictions["label"].to_numpy() == test_split["label"].to_numpy()
    ).mean()
    assert accuracy >= 0.9


def test_failed_run_is_marked_failed_and_registers_nothing(project_copy):
    """A run on an image folder with a single class fails, is FAILED, registers nothing."""
    images = project_copy / "data" / "01_raw" / "images"
    for extra_class in ("square", "triangle"):
        shutil.rmtree(images / extra_class)
    result = kedro("run", cwd=project_copy, expect_success=False)
    assert "Only one class folder ('circle')" in result.stdout + result.stderr

    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert run_statuses(client, PACKAGE) == ["FAILED", "FINISHED"]
    assert registered_versions(client, PACKAGE) == [1]


def sigterm_kedro_run(
    project: Path, *args: str, after: str, then: Callable[[], None] = lambda: None
) -> subprocess.CompletedProcess[str]:
    """`kedro run ARGS`, sent SIGTERM once a line of its output contains ``after`` and
    ``then`` has returned: its exit status and the rest of its output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", *args],
        cwd=project,
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in process.stdout:
            if after in line:
                break
        then()
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, rest)


def test_interrupted_run_is_marked_killed_and_registers_nothing(project_copy):
    """SIGTERM during training (how orchestrators stop jobs) leaves a KILLED run."""
    result = sigterm_kedro_run(project_copy, after="Epoch 2/")
    assert result.returncode == 128 + signal.SIGTERM, result.stdout[-3000:]

    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert run_statuses(client, PACKAGE) == ["FINISHED", "KILLED"]
    assert registered_versions(client, PACKAGE) == [1]


def kedro_one_line_logs(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """A kedro command whose log lines are not wrapped (rich wraps at 80 columns)."""
    return kedro(*args, cwd=cwd, COLUMNS="1000", **kwargs)


def assert_one_line_error(result: subprocess.CompletedProcess, error: str) -> None:
    """The command's last line is ``error``, and no traceback was printed."""
    assert result.stderr.strip().splitlines()[-1] == error
    assert "Traceback" not in result.stdout + result.stderr


def test_a_bad_parameter_stops_the_cli_in_one_line(project_copy):
    """`kedro run --params` with a bad value: one line naming it, and no MLflow run."""
    result = kedro_one_line_logs(
        "run",
        "--params",
        "train_classifier.epochs=0",
        cwd=project_copy,
        expect_success=False,
    )
    assert_one_line_error(
        result, "Error: train_classifier.epochs must be an integer >= 1, got 0"
    )
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert run_statuses(client, PACKAGE) == ["FINISHED"]


def test_a_partial_run_at_another_image_size_says_to_rebuild_the_arrays(project_copy):
    """Training on image_arrays stored at the default 32 px with `image.size=64`: one
    line naming the parameter and the command that rebuilds them, no TensorFlow error."""
    result = kedro_one_line_logs(
        "run",
        "--from-nodes",
        "train_classifier",
        "--params",
        "image.size=64",
        cwd=project_copy,
        expect_success=False,
    )
    assert_one_line_error(
        result,
        "Error: image.size 64 does not match the stored image_arrays (32x32x3): "
        "run `kedro run` to rebuild them",
    )
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert registered_versions(client, PACKAGE) == [1]


@pytest.mark.parametrize(
    "part",
    [["--from-nodes", "predict_test_images"], ["--to-nodes", "split_images"]],
    ids=["evaluation-only", "data-processing-only"],
)
def test_a_partial_run_logs_and_registers_no_model(project_copy, part):
    """A run that does not train cannot register the model file left on disk."""
    result = kedro_one_line_logs("run", *part, cwd=project_copy)
    output = result.stdout + result.stderr
    assert "so it logs and registers no model; run `kedro run`" in output
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert registered_versions(client, PACKAGE) == [1]
    experiment = client.get_experiment_by_name(PACKAGE)
    assert len(client.search_logged_models([experiment.experiment_id])) == 1


def test_a_run_from_training_registers_with_the_earlier_runs_data(project_copy):
    """`kedro run --from-nodes train_classifier` retrains on the stored splits: the new
    version gets its output columns and the digests of the images it was trained on."""
    result = kedro_one_line_logs(
        "run",
        "--from-nodes",
        "train_classifier",
        "--params",
        "train_classifier.epochs=1,register_model.minimum=0",
        cwd=project_copy,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert registered_versions(client, PACKAGE) == [1, 2]
    first, second = (client.get_model_version(PACKAGE, v) for v in ("1", "2"))
    for tag in ("data_digest", "test_digest", "classes"):
        assert second.tags[tag] == first.tags[tag]
    mlflow.set_tracking_uri(project_tracking_uri(project_copy))
    outputs = mlflow.models.get_model_info(f"models:/{PACKAGE}/2").signature.outputs
    assert [column["name"] for column in outputs.to_dict()][2:] == [
        f"probability_{name}" for name in CLASSES
    ]


def test_a_model_below_the_gate_is_logged_not_registered(project_copy):
    """The gate's minimum is a parameter; a refused model says why."""
    result = kedro_one_line_logs(
        "run",
        "--params",
        "train_classifier.epochs=1,register_model.minimum=1.0",
        cwd=project_copy,
    )
    output = result.stdout + result.stderr
    assert f"but not registered as '{PACKAGE}': test.accuracy" in output
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert registered_versions(client, PACKAGE) == [1]
    experiment = client.get_experiment_by_name(PACKAGE)
    assert len(client.search_logged_models([experiment.experiment_id])) == 2  # noqa: PLR2004


def test_champion_stays_on_the_better_version(project_copy):
    """A worse model is registered, but `champion`, and so `kedro serve`, stay on v1."""
    result = kedro_one_line_logs(
        "run",
        "--params",
        "train_classifier.epochs=1,register_model.minimum=0",
        cwd=project_copy,
    )
    output = result.stdout + result.stderr
    assert "'champion' stays on version 1: its test.accuracy" in output
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    assert registered_versions(client, PACKAGE) == [1, 2]
    assert int(client.get_model_version_by_alias(PACKAGE, "champion").version) == 1


def test_sigterm_while_the_model_is_logged_leaves_no_pending_model(project_copy):
    """The signal lands while MLflow writes the model (PENDING): it ends FAILED."""
    client = mlflow.MlflowClient(project_tracking_uri(project_copy))
    experiment_id = client.get_experiment_by_name(PACKAGE).experiment_id
    statuses: list[str] = []

    def wait_for_a_pending_model() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses[:] = [
                m.status for m in client.search_logged_models([experiment_id])
            ]
            if "PENDING" in statuses or statuses.count("READY") > 1:
                return
            time.sleep(0.02)

    result = sigterm_kedro_run(
        project_copy,
        "--params",
        "train_classifier.epochs=1",
        after="Pipeline execution completed",
        then=wait_for_a_pending_model,
    )
    assert "PENDING" in statuses, f"the model was logged before the signal: {statuses}"
    assert result.returncode == 128 + signal.SIGTERM, result.stdout[-3000:]
    statuses = sorted(m.status for m in client.search_logged_models([experiment_id]))
    assert statuses == ["FAILED", "READY"]
    assert run_statuses(client, PACKAGE) == ["FINISHED", "KILLED"]
    assert registered_versions(client, PACKAGE) == [1]


def test_image_folders_follow_one_rule_end_to_end(project_copy, tmp_path):
    """Hidden names left out, a symlinked class folder kept, even with `fail`."""
    images = project_copy / "data" / "01_raw" / "images"
    moved = shutil.move(images / "triangle", tmp_path / "triangle")
    (images / "triangle").symlink_to(moved, target_is_directory=True)
    some_image = next((images / "square").iterdir())
    for hidden in (".thumbnails/a.png", "circle/.ipynb_checkpoints/a.png"):
        (images / hidden).parent.mkdir(parents=True)
        shutil.copy(some_image, images / hidden)
    (images / "circle" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    kedro_one_line_logs(
        "run",
        "--params",
        "train_classifier.epochs=1,preprocess_images.on_invalid_image=fail",
        cwd=project_copy,
    )
    class_names = project_copy / "data" / "06_models" / "class_names.json"
    assert json.loads(class_names.read_text()) == CLASSES
    index = pd.read_csv(project_copy / "data" / "02_intermediate" / "image_index.csv")
    assert not index["partition"].str.contains("/.", regex=False).any()
    assert (index["label"] == "triangle").sum() == 150  # noqa: PLR2004


def test_batch_inference_without_a_registered_model_says_to_train_first(
    default_project, tmp_path
):
    project = Path(shutil.copytree(default_project, tmp_path / "project"))
    images = project / "data" / "01_raw"
    shutil.copy(next((images / "images" / "circle").iterdir()), images / "new_images")
    result = kedro_one_line_logs(
        "run", "--pipeline", "batch_inference", cwd=project, expect_success=False
    )
    output = result.stdout + result.stderr
    assert f"No ready version of the model '{DEFAULT_PACKAGE}' is registered" in output
    assert "train one with `kedro run` first" in output
