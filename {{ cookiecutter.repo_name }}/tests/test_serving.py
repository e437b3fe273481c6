"""The server of `kedro serve`: MLflow's scoring protocol with one-line 4xx errors.

A stand-in model (the real payload checks, then dark or bright) is served over HTTP
on a free loopback port, in a thread of the test process.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
import uvicorn
from mlflow.exceptions import MlflowException
from PIL import Image

from {{ cookiecutter.python_package }}.payload import (
    InvalidPayloadError,
)
from {{ cookiecutter.python_package }}.pipelines.inference.nodes import (
    preprocess_payload,
)
from {{ cookiecutter.python_package }}.serving import (
    RequestError,
    TcpSocketConfig,
    create_app,
    logged_limits,
    model_error_response,
    parse_request,
)

MARKER = "PAYLOAD-MARKER"  # inside bad payloads; no response may repeat it


class StandInModel:
    """Stands for the logged model: its payload checks, then two classes."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters = parameters

    def predict(self, data: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        batch = preprocess_payload(
            data, self.parameters["image"], self.parameters["preprocess_payload"]
        )
        bright = batch.mean(axis=(1, 2, 3)) > 0.5  # noqa: PLR2004
        return pd.DataFrame({"label": np.where(bright, "bright", "dark")})


def image_bytes(image: Image.Image, file_format: str = "PNG") -> bytes:
    """The bytes of a file of ``image``, PNG unless told."""
    buffer = io.BytesIO()
    image.save(buffer, file_format)
    return buffer.getvalue()


def image_base64(grey: int, size: tuple[int, int] = (10, 8)) -> str:
    """A PNG file of one grey level, base64-encoded as JSON clients send it."""
    return base64.b64encode(image_bytes(Image.new("L", size, grey))).decode()


DARK, BRIGHT = image_base64(10), image_base64(240)
MAX_REQUEST_BYTES = 200_000
NOISE_PIXELS = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
NOISE = base64.b64encode(image_bytes(Image.fromarray(NOISE_PIXELS))).decode()  # > 2 kB
NOT_AN_IMAGE = base64.b64encode(MARKER.encode()).decode()
TIFF = base64.b64encode(image_bytes(Image.new("L", (10, 8)), "TIFF")).decode()


@pytest.fixture(scope="module")
def limits(fast_parameters: dict[str, Any]) -> dict[str, Any]:
    """The served model's preprocess_payload limits, with small images."""
    return fast_parameters["preprocess_payload"] | {"max_image_bytes": 2000}


@pytest.fixture(scope="module")
def url(fast_parameters: dict[str, Any], limits: dict[str, Any]) -> Iterator[str]:
    """The /invocations URL of a server started for this module, stopped after it."""
    parameters = {
        "image": fast_parameters["image"] | {"max_pixels": 10_000},
        "preprocess_payload": limits,
    }
    app = create_app(
        StandInModel(parameters), limits, max_request_bytes=MAX_REQUEST_BYTES
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "no server"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/invocations"
    server.should_exit = True
    thread.join(timeout=10)


def test_records_and_split_get_one_prediction_per_image(url: str) -> None:
    """Both base64 formats of MLflow decode to the same predictions, in order."""
    records = {"dataframe_records": [{"image": DARK}, {"image": BRIGHT}]}
    split = {"dataframe_split": {"columns": ["image"], "data": [[DARK], [BRIGHT]]}}
    for body in (records, split):
        response = requests.post(url, json=body, timeout=30)
        assert response.status_code == HTTPStatus.OK, response.text
        labels = [row["label"] for row in response.json()["predictions"]]
        assert labels == ["dark", "bright"]


def records(*images: Any) -> dict[str, Any]:
    return {"dataframe_records": [{"image": image} for image in images]}


BAD_REQUESTS = {
    "not-json": ("{" + MARKER, "not valid JSON"),
    "array": ([MARKER], "must be a JSON object"),
    "no-format": ({"data": MARKER}, "got neither"),
    "two-formats": (
        records(DARK) | {"dataframe_split": MARKER},
        "got dataframe_records and dataframe_split",
    ),
    "inputs": ({"inputs": {"image": [MARKER]}}, "'inputs' is not supported"),
    "instances": ({"instances": [MARKER]}, "'instances' is not supported"),
    "records-not-a-list": ({"dataframe_records": MARKER}, "must be an array"),
    "row-not-an-object": ({"dataframe_records": [MARKER]}, "row 0 must be an object"),
    "no-image-field": (
        {"dataframe_records": [{"image": DARK}, {"picture": MARKER}]},
        "row 1 has no 'image' field",
    ),
    "no-image-column": (
        {"dataframe_split": {"columns": ["picture"], "data": [[MARKER]]}},
        "has no 'image' column",
    ),
    "split-row-length": (
        {"dataframe_split": {"columns": ["image"], "data": [[DARK, MARKER]]}},
        "row 0 of 'dataframe_split.data'",
    ),
    "no-rows": ({"dataframe_records": []}, "no rows"),
    "no-split-rows": (
        {"dataframe_split": {"columns": ["image"], "data": []}},
        "no rows",
    ),
    "null": (records(DARK, None), "row 1: 'image' must be a base64 string, got null"),
    "number": (records(7), "row 0: 'image' must be a base64 string, got a number"),
    "invalid-base64": (records(DARK, f"{MARKER}!!"), "row 1: 'image' is not valid"),
    "url-safe-base64": (records("_-8="), "row 0: 'image' is not valid base64"),
    "not-an-image": (records(DARK, NOT_AN_IMAGE), "row 1: not an image file"),
    "tiff": (
        records(DARK, BRIGHT, TIFF),
        "row 2: not an image file of an accepted format (PNG, JPEG, BMP, GIF, WebP)",
    ),
    "over-bytes": (records(DARK, NOISE), "row 1: image of"),
    "over-pixels": (records(BRIGHT, image_base64(0, (200, 51))), "200x51 pixels"),
}


@pytest.mark.parametrize(
    ("body", "message"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys()
)
def test_bad_request_gets_400_naming_the_culprit(
    url: str, body: Any, message: str
) -> None:
    """One line that names the field or row; neither the payload nor a stack trace."""
    data = body if isinstance(body, str) else json.dumps(body)
    response = requests.post(
        url, data=data, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text
    error = response.json()
    assert set(error) == {"error_code", "message"}
    assert message in error["message"]
    assert "\n" not in error["message"]
    assert MARKER not in response.text
    assert NOT_AN_IMAGE not in response.text


def post_parquet(url: str, table: pd.DataFrame | bytes) -> requests.Response:
    """POST a Parquet table (or bytes that claim to be one)."""
    if isinstance(table, pd.DataFrame):
        buffer = io.BytesIO()
        table.to_parquet(buffer)
        table = buffer.getvalue()
    headers = {"Content-Type": "application/vnd.apache.parquet"}
    return requests.post(url, data=table, headers=headers, timeout=30)


def test_parquet_carries_the_files_bytes_without_base64(url: str) -> None:
    """MLflow reads Parquet natively: the same predictions, a third fewer bytes."""
    images = [base64.b64decode(DARK), base64.b64decode(BRIGHT)]
    response = post_parquet(url, pd.DataFrame({"image": images}))
    assert response.status_code == HTTPStatus.OK, response.text
    assert [row["label"] for row in response.json()["predictions"]] == [
        "dark",
        "bright",
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pd.DataFrame({"picture": [MARKER.encode()]}), "no 'image' column"),
        (pd.DataFrame({"image": []}), "no rows"),
        (MARKER.encode(), "not a Parquet file"),
        (pd.DataFrame({"image": [MARKER.encode()]}), "row 0: not an image file"),
    ],
    ids=["no-image-column", "no-rows", "not-parquet", "not-an-image"],
)
def test_bad_parquet_gets_400_naming_the_culprit(
    url: str, table: pd.DataFrame | bytes, message: str
) -> None:
    response = post_parquet(url, table)
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text
    assert message in response.json()["message"]
    assert MARKER not in response.text


def test_parquet_over_the_row_limit_is_refused_from_its_footer(
    url: str, limits: dict[str, Any]
) -> None:
    """The row count is read from the file's metadata, before the table is."""
    rows = limits["max_images"] + 1
    response = post_parquet(url, pd.DataFrame({"image": [b"x"] * rows}))
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text
    message = response.json()["message"]
    assert f"the Parquet table has {rows} rows" in message
    assert "preprocess_payload.max_images" in message


def test_parquet_that_expands_past_the_limit_is_refused_before_decompressing(
    url: str,
) -> None:
    """A small compressed body of 2 MB of zeros: refused from its footer's sizes."""
    buffer = io.BytesIO()
    zeros = pd.DataFrame({"image": [bytes(2_000_000)]})
    zeros.to_parquet(buffer, compression="zstd")
    assert len(buffer.getvalue()) < MAX_REQUEST_BYTES
    response = post_parquet(url, buffer.getvalue())
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE, response.text
    message = response.json()["message"]
    assert "bytes uncompressed" in message
    assert f"over the limit of {MAX_REQUEST_BYTES} bytes" in message


def test_other_content_types_get_415(url: str) -> None:
    """CSV would reach the model undecoded: only JSON and Parquet are accepted."""
    response = requests.post(
        url, data=f"image\n{MARKER}\n", headers={"Content-Type": "text/csv"}, timeout=30
    )
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert "application/json" in response.json()["message"]
    assert MARKER not in response.text


def test_server_keeps_serving_after_bad_requests(url: str) -> None:
    """Bad requests leave the server as it was."""
    for body, _ in BAD_REQUESTS.values():
        requests.post(url, json=body, timeout=30)
    response = requests.post(url, json=records(BRIGHT), timeout=30)
    assert response.json() == {"predictions": [{"label": "bright"}]}


def response_of(error: Exception) -> tuple[int, str]:
    """Status and message answered for what the model's predict raised."""
    response = model_error_response(error)
    return response.status_code, json.loads(response.body)["message"]


def test_model_rejection_message_is_passed_on() -> None:
    """The model's own InvalidPayloadError, which names the row, is the message."""
    status, message = response_of(InvalidPayloadError("row 3: not an image file"))
    assert (status, message) == (HTTPStatus.BAD_REQUEST, "row 3: not an image file")


def test_mlflow_refusal_is_400_without_its_message() -> None:
    """MLflow's schema errors repeat the request: their text is not returned."""
    status, message = response_of(MlflowException(f"Failed to enforce '{MARKER}'"))
    assert status == HTTPStatus.BAD_REQUEST
    assert MARKER not in message
    assert "dataframe_records" in message


def test_request_over_the_size_limit_gets_413(url: str) -> None:
    """A body over the server's byte limit is refused before it is parsed."""
    body = records(*[DARK] * (MAX_REQUEST_BYTES // len(DARK) + 1))
    response = requests.post(url, json=body, timeout=30)
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert f"over the limit of {MAX_REQUEST_BYTES} bytes" in response.json()["message"]


def test_model_failure_is_500_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing model is the server's fault: 500, and the details go to the log."""
    status, message = response_of(RuntimeError(f"GPU lost {MARKER}"))
    assert status == HTTPStatus.INTERNAL_SERVER_ERROR
    assert MARKER not in message
    assert MARKER in caplog.text


def test_mlflow_routes_answer_as_mlflow_models_serve(url: str) -> None:
    """/ping and /health for load balancers, /version for clients: MLflow's answers."""
    base = url.removesuffix("/invocations")
    for path in ("/ping", "/health"):
        response = requests.get(base + path, timeout=30)
        assert (response.status_code, response.text) == (HTTPStatus.OK, "\n")
    response = requests.get(base + "/version", timeout=30)
    assert response.text == mlflow.__version__


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("GET", "/invocations", 405), ("PUT", "/ping", 405)],
    ids=["unknown-path", "get-invocations", "put-ping"],
)
def test_every_error_body_is_the_servers_json(
    url: str, method: str, path: str, status: int
) -> None:
    """Not FastAPI's own {"detail": ...}: the same two fields as every other error."""
    base = url.removesuffix("/invocations")
    response = requests.request(method, base + path, timeout=30)
    assert response.status_code == status
    assert set(response.json()) == {"error_code", "message"}


def test_content_type_is_matched_case_insensitively(url: str) -> None:
    """`Application/JSON; Charset=UTF-8` is JSON, as HTTP says media types are."""
    response = requests.post(
        url,
        data=json.dumps(records(BRIGHT)),
        headers={"Content-Type": "Application/JSON; Charset=UTF-8"},
        timeout=30,
    )
    assert response.json() == {"predictions": [{"label": "bright"}]}


def test_deeply_nested_json_gets_400() -> None:
    """A body that would exhaust the JSON parser's recursion is the client's fault."""
    nested = '{"dataframe_records": ' + "[" * 50_000 + "]" * 50_000 + "}"
    with pytest.raises(RequestError, match="^the body's JSON is nested too deeply$"):
        parse_request(nested.encode(), "application/json", max_images=100_000)


def post_json(url: str, body: str) -> requests.Response:
    """POST ``body``, JSON text, as it is."""
    headers = {"Content-Type": "application/json"}
    return requests.post(url, data=body, headers=headers, timeout=30)


def test_json_over_the_row_limit_is_refused_before_it_is_parsed(
    url: str, limits: dict[str, Any]
) -> None:
    """More rows than preprocess_payload.max_images: refused before json.loads, which
    would have found the body's broken end and answered "not valid JSON"."""
    rows = ",".join([json.dumps({"image": DARK})] * (2 * limits["max_images"]))
    response = post_json(url, '{"dataframe_records": [' + rows + ', {"image": ')
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text
    message = response.json()["message"]
    assert f"over the limit of {limits['max_images']} images" in message
    assert "preprocess_payload.max_images" in message


@pytest.mark.parametrize(
    ("body", "culprit"),
    [
        ({"dataframe_records": ["x"] * 300}, "'dataframe_records' has 300 rows"),
        (
            {"dataframe_split": {"columns": ["image"], "data": ["x"] * 300}},
            "'dataframe_split.data' has 300 rows",
        ),
    ],
    ids=["records", "split"],
)
def test_json_rows_over_the_limit_are_counted_before_any_is_read(
    url: str, limits: dict[str, Any], body: dict[str, Any], culprit: str
) -> None:
    """Rows that are not even rows: the count is refused before row 0 is looked at."""
    assert limits["max_images"] < 300  # noqa: PLR2004
    response = post_json(url, json.dumps(body))
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.text
    assert culprit in response.json()["message"]


def test_chunked_upload_is_refused_once_over_the_limit(url: str) -> None:
    """No Content-Length: the server counts while the body streams in and stops there.

    The client has 400 MB to send; the 413 must come long before it is all sent.
    """
    client_bytes = 400_000_000
    address = urlsplit(url)
    chunk = b"[" * 65_536
    frame = b"%x\r\n%b\r\n" % (len(chunk), chunk)
    sent = 0
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(
            b"POST /invocations HTTP/1.1\r\nHost: test\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        connection.settimeout(2)
        while sent < client_bytes and not select.select([connection], [], [], 0)[0]:
            try:
                connection.sendall(frame)
            except (TimeoutError, OSError):  # the server stopped reading, or closed
                break
            sent += len(chunk)
        answer = b""
        while b"}" not in answer:
            data = connection.recv(65_536)
            assert data, f"no answer after {sent} bytes: {answer!r}"
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    message = json.loads(body)["message"]
    assert f"over the limit of {MAX_REQUEST_BYTES} bytes" in message
    assert sent < 100 * MAX_REQUEST_BYTES, f"{sent} bytes were read before the 413"
    assert requests.post(url, json=records(DARK), timeout=30).ok  # still serving


def test_responses_name_the_worker_process(url: str) -> None:
    """Each answer says which server process gave it: here, this test's own."""
    response = requests.post(url, json=records(DARK), timeout=30)
    assert response.headers["X-Worker-Pid"] == str(os.getpid())


class AnyModel(mlflow.pyfunc.PythonModel):
    """A model that this project did not log."""

    def predict(
        self, context: Any, model_input: list[Any], params: Any = None
    ) -> list[Any]:
        return model_input


def test_a_model_without_logged_limits_is_not_served(tmp_path: Path) -> None:
    """The limits come with the model; a model without them is named, not served."""
    mlflow.pyfunc.save_model(tmp_path / "model", python_model=AnyModel())
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    with pytest.raises(ValueError, match="has no 'params:preprocess_payload'"):
        logged_limits(model)


def test_serving_module_imports_no_kedro_project_machinery() -> None:
    """`python -m <package>.serving` runs where only the logged model is."""
    script = (
        "import sys, {{ cookiecutter.python_package }}.serving; "
        "print(sorted(m for m in sys.modules if m.startswith('kedro.framework')))"
    )
    source = Path(inspect.getfile(create_app)).parents[1]  # the package's folder
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=os.environ | {"PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert result.stdout.strip() == "[]", result.stdout


class NoDelayProbe(asyncio.Protocol):
    """Records whether each accepted connection has TCP_NODELAY set, then closes it."""

    found: list[int] = []

    def connection_made(self, transport: Any) -> None:
        connection = transport.get_extra_info("socket")
        self.found.append(connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        transport.close()


def test_connections_to_several_workers_send_without_delay() -> None:
    """The socket that ``--workers N`` shares gives connections with TCP_NODELAY set,
    so no keep-alive response waits for the client's delayed ACK (uvicorn #3149)."""
    listener = TcpSocketConfig(create_app, host="127.0.0.1", port=0).bind_socket()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(
            NoDelayProbe, sock=listener
        )
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            while not NoDelayProbe.found:
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(asyncio.wait_for(accept_one(), timeout=10))
    assert NoDelayProbe.found[0] != 0
