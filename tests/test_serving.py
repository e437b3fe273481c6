"""The trained model in use: `kedro serve` and `mlflow models serve` answering real
HTTP clients, good and bad, on a free loopback port; and batch inference on a folder.

Every server is a subprocess in its own process group, started by a fixture and
killed with its group afterwards. All of it reuses the session's one training run.
"""

from __future__ import annotations

import base64
import functools
import io
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from helpers import BIN, command_env, kedro, project_tracking_uri, run, run_statuses
from helpers import EXAMPLE_CLASSES as CLASSES
from helpers import TRAINED_PACKAGE as PACKAGE
from PIL import Image
from serving_helpers import Server, start_server, stop_server

pytestmark = pytest.mark.slow

PROBABILITIES = [f"probability_{name}" for name in CLASSES]
MARKER = "PAYLOAD-MARKER"  # inside bad payloads; no response may repeat it
MAX_IMAGE_BYTES = 10_000_000  # conf/base/parameters_inference.yml


@pytest.fixture(scope="module")
def kedro_server(trained_project, tmp_path_factory) -> Iterator[Server]:
    """`kedro serve` in the trained project: the latest registered version."""
    log = tmp_path_factory.mktemp("kedro-serve") / "server.log"
    server = start_server(
        [sys.executable, "-m", "kedro", "serve"], cwd=trained_project.path, log=log
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def mlflow_server(trained_project, tmp_path_factory) -> Iterator[Server]:
    """Plain `mlflow models serve`, from a directory where the package is unknown."""
    folder = tmp_path_factory.mktemp("mlflow-serve")
    model = f"models:/{PACKAGE}/1"
    server = start_server(
        [str(BIN / "mlflow"), "models", "serve", "-m", model, "--env-manager", "local"]
        + ["--host", "127.0.0.1"],
        cwd=folder,
        log=folder / "server.log",
        MLFLOW_TRACKING_URI=trained_project.tracking_uri,
        KEDRO_LOGGING_CONFIG=str(trained_project.path / "conf/logging_serving.yml"),
        PYTHONPATH="",
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def test_images(trained_project) -> pd.DataFrame:
    """The test split's files, labels and base64 contents."""
    split = pd.read_csv(
        trained_project.path / "data/05_model_input/test_split.csv",
        dtype={"label": str},
    )
    raw = trained_project.path / "data/01_raw/images"
    split["path"] = [raw / partition for partition in split["partition"]]
    split["base64"] = [encode(path.read_bytes()) for path in split["path"]]
    return split


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def records(*images: str) -> dict:
    return {"dataframe_records": [{"image": image} for image in images]}


def split_format(*images: str) -> dict:
    return {"dataframe_split": {"columns": ["image"], "data": [[i] for i in images]}}


def predictions_of(response: requests.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text[:2000]
    return pd.DataFrame(response.json()["predictions"])


def assert_predictions_are_sane(predictions: pd.DataFrame, count: int) -> None:
    assert list(predictions.columns) == ["label", "confidence", *PROBABILITIES]
    assert len(predictions) == count
    assert predictions["label"].isin(CLASSES).all()
    assert predictions["confidence"].between(0, 1).all()
    np.testing.assert_allclose(predictions[PROBABILITIES].sum(axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(
        predictions["confidence"], predictions[PROBABILITIES].max(axis=1)
    )


# --- kedro serve: real images --------------------------------------------------


def test_kedro_serve_classifies_real_image_files(kedro_server, test_images):
    """The test split's PNG and JPEG files: known classes, in every supported format."""
    images = test_images["base64"].tolist()
    by_records = predictions_of(kedro_server.post(records(*images)))
    assert_predictions_are_sane(by_records, len(images))
    accuracy = (by_records["label"] == test_images["label"]).mean()
    assert accuracy >= 0.9
    by_split = predictions_of(kedro_server.post(split_format(*images)))
    pd.testing.assert_frame_equal(by_split, by_records)
    one = predictions_of(kedro_server.post(records(images[0])))
    pd.testing.assert_frame_equal(one, by_records.iloc[:1], rtol=1e-4)
    table = io.BytesIO()  # Parquet: the files' bytes themselves, no base64
    pd.DataFrame({"image": [p.read_bytes() for p in test_images["path"]]}).to_parquet(
        table
    )
    by_parquet = predictions_of(
        requests.post(
            f"{kedro_server.url}/invocations",
            data=table.getvalue(),
            headers={"Content-Type": "application/vnd.apache.parquet"},
            timeout=60,
        )
    )
    pd.testing.assert_frame_equal(by_parquet, by_records)


def test_kedro_serve_ignores_a_runner_sent_by_a_client(kedro_server, test_images):
    """The signature takes no parameters: `builtins.exit` as runner changes nothing."""
    body = records(test_images["base64"][0]) | {"params": {"runner": "builtins.exit"}}
    assert_predictions_are_sane(predictions_of(kedro_server.post(body)), 1)
    assert kedro_server.is_up()
    assert kedro_server.process.poll() is None


# --- kedro serve: bad payloads ---------------------------------------------------


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


@functools.cache
def bad_payloads(good: str) -> dict[str, tuple[dict, str]]:
    """Each bad payload with what its error message must say."""
    not_an_image = encode(f"{MARKER} is not an image".encode())
    # Bytes after a PNG's end are ignored by decoders: a valid image over the limit.
    over_bytes = encode(png((8, 8)) + MARKER.encode() * (MAX_IMAGE_BYTES // 10))
    over_pixels = encode(png((8000, 6000), mode="1"))  # 48 Mpixels, a few kB
    return {
        "invalid-base64": (
            records(f"{MARKER}!!"),
            "row 0: 'image' is not valid base64",
        ),
        "not-an-image": (records(not_an_image), "row 0: not an image file"),
        "no-image-column": (
            {"dataframe_records": [{"picture": good}]},
            "row 0 has no 'image' field",
        ),
        "no-image-column-split": (
            {"dataframe_split": {"columns": ["picture"], "data": [[good]]}},
            "has no 'image' column",
        ),
        "empty-batch": (records(), "the request has no rows"),
        "over-byte-limit": (
            records(over_bytes),
            f"over the limit of {MAX_IMAGE_BYTES} bytes",
        ),
        "over-pixel-limit": (
            records(over_pixels),
            "8000x6000 pixels is over the limit",
        ),
        "one-bad-row": (
            records(good, good, not_an_image, good),
            "row 2: not an image file",
        ),
        "inputs-format": ({"inputs": {"image": [good]}}, "'inputs' is not supported"),
    }


BAD_PAYLOADS = list(bad_payloads("x"))


@pytest.mark.parametrize("name", BAD_PAYLOADS)
def test_kedro_serve_refuses_a_bad_payload_in_one_line(kedro_server, test_images, name):
    """4xx, one line naming the problem, no payload, no stack trace; still serving."""
    good = test_images["base64"][0]
    body, message = bad_payloads(good)[name]
    response = kedro_server.post(body)
    assert response.status_code == 400, response.text[:2000]
    error = response.json()
    assert set(error) == {"error_code", "message"}
    assert message in error["message"]
    assert "\n" not in error["message"]
    assert MARKER not in response.text
    assert good not in response.text
    assert "Traceback" not in response.text
    assert kedro_server.is_up()
    assert_predictions_are_sane(predictions_of(kedro_server.post(records(good))), 1)


def test_kedro_serve_takes_8_clients_at_once(kedro_server, test_images):
    """8 clients x 50 requests: every one answered, right, and in bounded time."""
    images = test_images["base64"].tolist()[:8]
    expected = predictions_of(kedro_server.post(records(*images)))["label"].tolist()

    def client(index: int) -> list[str]:
        session = requests.Session()
        labels = []
        for _ in range(50):
            response = session.post(
                f"{kedro_server.url}/invocations",
                json=records(images[index]),
                timeout=60,
            )
            labels.append(predictions_of(response)["label"][0])
        return labels

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(client, range(8)))
    elapsed = time.monotonic() - started
    assert [len(labels) for labels in answers] == [50] * 8
    assert answers == [[label] * 50 for label in expected]
    assert elapsed < 120, f"400 requests took {elapsed:.0f} s"
    assert kedro_server.process.poll() is None


def test_kedro_serve_names_a_missing_version(trained_project):
    """A version that is not registered: a one-line error, no server."""
    result = kedro(
        "serve", "--version", "9", cwd=trained_project.path, expect_success=False
    )
    output = result.stdout + result.stderr
    assert f"Cannot find version 9 of the model '{PACKAGE}'" in output
    assert "Traceback" not in output


def test_kedro_serve_logs_no_kedro_lines_per_request(kedro_server, test_images):
    """The model's pipeline runs on every request, quietly: the log does not grow."""
    before = kedro_server.log.read_text()
    for _ in range(5):
        predictions_of(kedro_server.post(records(test_images["base64"][0])))
    added = kedro_server.log.read_text()[len(before) :]
    assert "Running node" not in added
    assert "Loading data from" not in added


# --- several workers ------------------------------------------------------------------


def test_kedro_serve_workers_each_load_the_model_once(
    trained_project, test_images, tmp_path
):
    """`--workers 2`: two processes answer, and each loaded the model once.

    Started from a subfolder with MLFLOW_TRACKING_URI set empty (the project's
    "unset"): the workers must use the project's store, not MLflow's default, a new
    database in the working directory.
    """
    server = start_server(
        [sys.executable, "-m", "kedro", "serve", "--workers", "2"],
        cwd=trained_project.path / "notebooks",
        log=tmp_path / "server.log",
        MLFLOW_TRACKING_URI="",
    )
    try:
        body = records(*test_images["base64"].tolist()[:4])

        def worker_of_one_request(_: int) -> str:
            response = requests.post(f"{server.url}/invocations", json=body, timeout=60)
            assert_predictions_are_sane(predictions_of(response), 4)
            return response.headers["X-Worker-Pid"]

        answered: set[str] = set()
        deadline = time.monotonic() + 120  # the second worker may still be loading
        with ThreadPoolExecutor(max_workers=8) as pool:
            while len(answered) < 2 and time.monotonic() < deadline:
                answered |= set(pool.map(worker_of_one_request, range(16)))
        loads = re.findall(r"Worker (\d+) loaded models:/", server.log.read_text())
    finally:
        stop_server(server)
    assert len(answered) == 2, f"only worker(s) {answered} answered"
    assert sorted(loads) == sorted(answered), server.log.read_text()[-3000:]
    assert not (trained_project.path / "notebooks" / "mlflow.db").exists()


# --- the model in a notebook or script ------------------------------------------------

PREDICT_SCRIPT = """
import base64, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
frame = pd.DataFrame({"image": [base64.b64decode(sys.argv[2])]})
print("PREDICT-START", flush=True)
for _ in range(3):
    model.predict(frame)
print("PREDICT-END", flush=True)
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "MODEL_KEDRO_LOGS"])
def test_loaded_model_predicts_quietly_unless_asked(
    trained_project, test_images, tmp_path, verbose
):
    """`mlflow.pyfunc.load_model(uri).predict(df)` in a plain Python process: no
    output at all while predicting, unless MODEL_KEDRO_LOGS=1 asks for Kedro's lines."""
    env = command_env(MLFLOW_TRACKING_URI=trained_project.tracking_uri, PYTHONPATH="")
    if verbose:
        env["MODEL_KEDRO_LOGS"] = "1"
    script = [sys.executable, "-u", "-c", PREDICT_SCRIPT]
    result = subprocess.run(
        [*script, f"models:/{PACKAGE}/1", test_images["base64"][0]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    during = result.stdout.split("PREDICT-START")[1].split("PREDICT-END")[0]
    lines = during.strip().splitlines()
    if verbose:
        assert during.count("Running node") == 3 * 2, during  # two nodes, 3 predicts
    else:
        assert lines == [], during


# --- plain mlflow models serve ------------------------------------------------------


def test_mlflow_models_serve_gives_the_same_predictions(
    mlflow_server, kedro_server, test_images
):
    """The logged model alone, package not importable: same answers for good requests."""
    images = test_images["base64"].tolist()[:10]
    for body in (records(*images), split_format(*images)):
        plain = predictions_of(mlflow_server.post(body))
        ours = predictions_of(kedro_server.post(body))
        pd.testing.assert_frame_equal(plain, ours, rtol=1e-5)


def test_mlflow_models_serve_survives_bad_payloads_and_a_runner(
    mlflow_server, test_images
):
    """MLflow's own errors are 4xx with stack traces, but the server keeps serving."""
    good = test_images["base64"][0]
    for name, (body, _) in bad_payloads(good).items():
        response = mlflow_server.post(body)
        assert 400 <= response.status_code < 500, name
    exit_request = records(good) | {"params": {"runner": "builtins.exit"}}
    assert_predictions_are_sane(predictions_of(mlflow_server.post(exit_request)), 1)
    assert mlflow_server.is_up()
    assert mlflow_server.process.poll() is None


def test_mlflow_decodes_base64_only_in_dataframe_formats(mlflow_server, test_images):
    """With `inputs` the model gets the base64 text, not the file, as the README says."""
    good = test_images["base64"][0]
    assert_predictions_are_sane(predictions_of(mlflow_server.post(records(good))), 1)
    response = mlflow_server.post({"inputs": {"image": [good]}})
    assert response.status_code == 400
    assert "row 0: not an image file" in response.text


# --- a serving container's contents, without Docker ---------------------------------


@pytest.fixture(scope="module")
def container_server(trained_project, tmp_path_factory) -> Iterator[Server]:
    """What the README's container would run, minus Docker (there is no engine here):
    `mlflow models generate-dockerfile`'s model folder, served by
    `python -m <package>.serving` with the package from the model's code/ folder."""
    folder = tmp_path_factory.mktemp("container")
    run(
        [str(BIN / "mlflow"), "models", "generate-dockerfile"]
        + ["-m", f"models:/{PACKAGE}/1", "-d", str(folder / "build")],
        cwd=folder,
        MLFLOW_TRACKING_URI=trained_project.tracking_uri,
    )
    assert "COPY model_dir /opt/ml/model" in (folder / "build/Dockerfile").read_text()
    model = folder / "build/model_dir"
    assert (model / "code" / PACKAGE / "serving.py").is_file()
    server = start_server(
        [sys.executable, "-m", f"{PACKAGE}.serving", str(model), "--host", "127.0.0.1"],
        cwd=folder,
        log=folder / "server.log",
        PYTHONPATH=str(model / "code"),
    )
    yield server
    stop_server(server)


def test_container_server_keeps_the_error_contract(container_server, test_images):
    """What a container would run: the same predictions and the same one-line errors."""
    good = test_images["base64"][0]
    assert_predictions_are_sane(predictions_of(container_server.post(records(good))), 1)
    body, message = bad_payloads(good)["one-bad-row"]
    response = container_server.post(body)
    assert response.status_code == 400
    error = response.json()
    assert error["error_code"] == "INVALID_PARAMETER_VALUE"
    assert error["message"].startswith(message)
    assert good not in response.text


# --- batch inference ------------------------------------------------------------------


def test_batch_inference_writes_one_row_per_file(
    project_copy, kedro_server, test_images
):
    """`kedro run --pipeline batch_inference` on a folder: the server's predictions."""
    batch_project = project_copy
    folder = batch_project / "data/01_raw/new_images"
    sample = test_images.iloc[:12]
    names = []
    for index, path in enumerate(sample["path"]):
        name = f"{'sub/' if index % 3 == 0 else ''}{index:02d}_{path.name}"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / name)
        names.append(name)
    (folder / "notes.txt").write_text(f"{MARKER}: not an image\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")

    result = kedro("run", "--pipeline", "batch_inference", cwd=batch_project)
    # The model's own pipeline runs quietly inside the run's one node.
    assert (result.stdout + result.stderr).count("Running node") == 1

    table = pd.read_csv(
        batch_project / "data/07_model_output/batch_predictions.csv",
        dtype={"file": str, "label": str, "error": str},
        keep_default_na=False,
        na_values=[""],
    )
    columns = ["file", "label", "confidence", *PROBABILITIES, "error"]
    assert list(table.columns) == columns
    assert table["file"].tolist() == sorted([*names, "notes.txt"])
    bad = table.set_index("file").loc["notes.txt"]
    assert bad["error"].startswith("not an image file")
    assert pd.isna(bad["label"])

    served = predictions_of(kedro_server.post(records(*sample["base64"])))
    served.index = names
    for name in names:  # row by row: what a client of the server would get
        row = table.set_index("file").loc[name]
        assert row["label"] == served.loc[name, "label"]
        assert pd.isna(row["error"])
        np.testing.assert_allclose(
            row[["confidence", *PROBABILITIES]].astype(float),
            served.loc[name, ["confidence", *PROBABILITIES]].astype(float),
            rtol=1e-5,
        )
    labels = dict(zip(names, sample["label"], strict=True))
    accuracy = np.mean([labels[n] == served.loc[n, "label"] for n in names])
    assert accuracy >= 0.75

    # Scoring new images opens no MLflow run: the experiment keeps its training run.
    client = mlflow.MlflowClient(project_tracking_uri(batch_project))
    assert run_statuses(client, PACKAGE) == ["FINISHED"]
