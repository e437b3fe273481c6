"""The model server of ``kedro serve``: MLflow's scoring protocol with one-line errors.

It answers ``/ping``, ``/health``, ``/version`` and ``/invocations`` as
``mlflow models serve`` does, so MLflow's clients work unchanged: a JSON body of
``dataframe_records`` or ``dataframe_split`` (the ``image`` column in base64), or a
Parquet table, gets ``{"predictions": [...]}``. It is a small FastAPI app around
``mlflow.pyfunc.load_model`` (public APIs only): every refused request gets
``{"error_code": ..., "message": ...}`` with one line naming the field or row at fault,
never a stack trace nor the payload, and every limit holds before the work it bounds.

Inside the project, run ``kedro serve``. Where there is only the logged model (its
``code/`` folder holds this package), run
``PYTHONPATH=<model>/code python -m {{ cookiecutter.python_package }}.serving <model URI or folder>``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel
from starlette.exceptions import HTTPException
from uvicorn.supervisors import Multiprocess

from {{ cookiecutter.python_package }}.payload import (
    IMAGE_COLUMN,
    InvalidPayloadError,
    decode_base64,
    find_invalid_payload,
    json_type,
)
from {{ cookiecutter.python_package }}.serving_defaults import (
    DEFAULT_HOST,
    DEFAULT_PORT,
)

logger = logging.getLogger(__name__)
server_logger = logging.getLogger("uvicorn.error")  # uvicorn's own log of the server

DEFAULT_MAX_REQUEST_BYTES = 64_000_000
# The inference pipeline's parameters that bound each request, logged with the model.
LIMITS_PARAMETER = "params:preprocess_payload"
TOO_MANY_ROWS = (
    "{}, over the limit of {} images per request (preprocess_payload.max_images): "
    "send fewer at a time"
)
# What each worker process of `serve_model` loads: they share no memory with it.
MODEL_URI_VARIABLE = "KEDRO_SERVE_MODEL_URI"
TOO_LARGE = "the request is over the limit of {} bytes: send fewer images per request"
JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
RECORDS = "dataframe_records"
SPLIT = "dataframe_split"
# MLflow's other JSON inputs reach the model without base64 decoding.
UNDECODED_FORMATS = ("inputs", "instances")
SEND = "send " + json.dumps({RECORDS: [{IMAGE_COLUMN: "<base64 of an image file>"}]})
ERROR_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    404: "ENDPOINT_NOT_FOUND",
    413: "BAD_REQUEST",
    415: "BAD_REQUEST",
}


class RequestError(ValueError):
    """A request refused before the model sees it: an HTTP status and one line."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _check_rows(rows: int, max_images: int, what: str) -> None:
    """Refuse a request of more than ``max_images`` rows before any row is read."""
    if rows > max_images:
        raise RequestError(TOO_MANY_ROWS.format(f"{what} has {rows} rows", max_images))


def _check_json_rows(body: bytes, max_images: int) -> None:
    """Refuse a JSON body of too many rows before parsing it into Python objects.

    Every row is a JSON object or array, and base64 has neither '{' nor '[': counting
    them bounds the rows in one pass over the bytes, where parsing 64 MB of tiny rows
    would build millions of objects. The few arrays around the rows are allowed for.
    """
    containers = body.count(b"{") + body.count(b"[")
    if containers > max_images + 4:  # the body, its rows, columns and index
        raise RequestError(
            TOO_MANY_ROWS.format(
                f"the body holds {containers} JSON objects and arrays", max_images
            )
        )


def _record_images(records: Any, max_images: int) -> list[Any]:
    """The image of each row of a ``dataframe_records`` list."""
    if not isinstance(records, list):
        raise RequestError(
            f"'{RECORDS}' must be an array of rows, got {json_type(records)}"
        )
    _check_rows(len(records), max_images, f"'{RECORDS}'")
    images = []
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(f"row {row} must be an object, got {json_type(record)}")
        if IMAGE_COLUMN not in record:
            raise RequestError(f"row {row} has no '{IMAGE_COLUMN}' field; {SEND}")
        images.append(record[IMAGE_COLUMN])
    return images


def _split_images(split: Any, max_images: int) -> list[Any]:
    """The image of each row of a ``dataframe_split`` object."""
    if not isinstance(split, dict):
        raise RequestError(f"'{SPLIT}' must be an object, got {json_type(split)}")
    columns, data = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or IMAGE_COLUMN not in columns:
        raise RequestError(
            f"'{SPLIT}' has no '{IMAGE_COLUMN}' column: set \"columns\": "
            f'["{IMAGE_COLUMN}"] and one [<base64 of an image file>] row per image'
        )
    if not isinstance(data, list):
        raise RequestError(f"'{SPLIT}.data' must be an array of rows")
    _check_rows(len(data), max_images, f"'{SPLIT}.data'")
    column = columns.index(IMAGE_COLUMN)
    for row, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise RequestError(
                f"row {row} of '{SPLIT}.data' must be an array of {len(columns)} "
                f"value(s), one per column"
            )
    return [values[column] for values in data]


def _parse_json(body: bytes, max_images: int) -> pd.DataFrame:
    """The model input of a JSON body: one row of image file bytes per image."""
    _check_json_rows(body, max_images)
    try:
        request = json.loads(body)
    except json.JSONDecodeError as error:
        raise RequestError(
            f"the body is not valid JSON ({error.msg} at line {error.lineno} "
            f"column {error.colno})"
        ) from None
    except UnicodeDecodeError:
        raise RequestError("the body is not UTF-8 text") from None
    except RecursionError:
        raise RequestError("the body's JSON is nested too deeply") from None
    if not isinstance(request, dict):
        raise RequestError(f"the body must be a JSON object; {SEND}")
    formats = [key for key in (RECORDS, SPLIT, *UNDECODED_FORMATS) if key in request]
    if len(formats) != 1:
        found = f"got {' and '.join(formats)}" if formats else "got neither"
        raise RequestError(f"send exactly one of '{RECORDS}' or '{SPLIT}' ({found})")
    (key,) = formats
    if key in UNDECODED_FORMATS:
        raise RequestError(
            f"'{key}' is not supported: MLflow decodes base64 images only in "
            f"'{RECORDS}' and '{SPLIT}'"
        )
    if key == RECORDS:
        images = _record_images(request[key], max_images)
    else:
        images = _split_images(request[key], max_images)
    try:
        files = [decode_base64(row, value) for row, value in enumerate(images)]
    except InvalidPayloadError as error:
        raise RequestError(str(error)) from None
    return pd.DataFrame({IMAGE_COLUMN: files})


def _parse_parquet(body: bytes, max_images: int, max_bytes: int) -> pd.DataFrame:
    """A Parquet table needs no base64: its ``image`` column holds the files' bytes.

    Its rows and uncompressed size are read from its footer and checked before any
    data is decompressed: a small compressed body can expand a thousandfold.
    """
    try:
        parquet = pq.ParquetFile(io.BytesIO(body))
    except Exception:  # noqa: BLE001  pyarrow raises many types for a bad file
        raise RequestError("the body is not a Parquet file") from None
    if IMAGE_COLUMN not in parquet.schema_arrow.names:
        raise RequestError(
            f"the Parquet table has no '{IMAGE_COLUMN}' column of image file bytes"
        )
    metadata = parquet.metadata
    _check_rows(metadata.num_rows, max_images, "the Parquet table")
    size = sum(
        metadata.row_group(group).total_byte_size
        for group in range(metadata.num_row_groups)
    )
    if size > max_bytes:
        raise RequestError(
            f"the Parquet table holds {size} bytes uncompressed, over the limit of "
            f"{max_bytes} bytes: send fewer images per request",
            status=413,
        )
    try:
        return parquet.read(columns=[IMAGE_COLUMN]).to_pandas()
    except Exception:  # noqa: BLE001  pyarrow raises many types for a bad file
        raise RequestError("the body is not a Parquet file") from None


def parse_request(
    body: bytes,
    content_type: str | None,
    max_images: int,
    max_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> pd.DataFrame:
    """The model input of a request, or a ``RequestError`` naming the culprit.

    At most ``max_images`` rows, and ``max_bytes`` of uncompressed Parquet data.
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == PARQUET:
        table = _parse_parquet(body, max_images, max_bytes)
    elif mime == JSON:
        table = _parse_json(body, max_images)
    else:
        raise RequestError(
            f"send JSON ('Content-Type: {JSON}') or a Parquet table of image file "
            f"bytes ('Content-Type: {PARQUET}')",
            status=415,
        )
    if table.empty:
        raise RequestError("the request has no rows: send at least one image")
    return table


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused as soon as it is over ``max_bytes``, even chunked."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(TOO_LARGE.format(max_bytes), status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(TOO_LARGE.format(max_bytes), status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, message: str) -> JSONResponse:
    """MLflow's error body, with our one line and without a stack trace."""
    # The rest of a refused body is not read: the connection cannot serve another.
    headers = {"Connection": "close"} if status == 413 else None  # noqa: PLR2004
    return JSONResponse(
        {"error_code": ERROR_CODES.get(status, "INTERNAL_ERROR"), "message": message},
        status_code=status,
        headers=headers,
    )


def model_error_response(error: Exception) -> JSONResponse:
    """The response for a request that the model's ``predict`` refused or failed on."""
    rejection = find_invalid_payload(error)
    if rejection is not None:  # the model refused an image: its message names the row
        return error_response(400, str(rejection))
    if isinstance(error, MlflowException):
        # MLflow's schema check refused the input: its message may repeat the
        # request, so it is neither returned nor logged.
        logger.warning("MLflow refused a request that does not match the signature")
        return error_response(
            400, f"the request does not match the model's input; {SEND}"
        )
    # The model failed: a bug or a broken environment, not the client's fault.
    logger.error("The model failed on a request", exc_info=error)
    return error_response(500, "the model failed on this request; see the server log")


def predictions_body(predictions: pd.DataFrame) -> bytes:
    """``{"predictions": [...]}``, one object per image, as MLflow's server writes it."""
    return json.dumps({"predictions": predictions.to_dict(orient="records")}).encode()


def logged_limits(model: PyFuncModel) -> Mapping[str, int]:
    """The request limits logged with the model: its ``preprocess_payload`` parameters.

    kedro-mlflow stores the inference pipeline's parameters in the model's catalog, so
    they come with the model wherever it is served, with or without the project.
    """
    try:
        catalog = model.unwrap_python_model().loaded_catalog
        return catalog[LIMITS_PARAMETER].load()
    except (AttributeError, KeyError, MlflowException) as error:
        raise ValueError(
            f"the model has no '{LIMITS_PARAMETER}': serve a model logged by this "
            "project's `kedro run`"
        ) from error


def create_app(
    model: PyFuncModel,
    limits: Mapping[str, int],
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> FastAPI:
    """The scoring app of ``model``: MLflow's routes, checked requests, JSON errors.

    ``limits`` are the model's ``preprocess_payload`` parameters: requests of more
    images than ``max_images`` are refused before their rows are read.
    """
    app = FastAPI(
        title="{{ cookiecutter.project_name }} model server",
    )
    worker = {"X-Worker-Pid": str(os.getpid())}  # which process answered

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        logger.error("The server failed on a request", exc_info=error)
        return error_response(500, "the server failed on this request; see its log")

    @app.get("/ping")
    @app.get("/health")
    async def ping() -> Response:
        return Response(content="\n", media_type=JSON, headers=worker)

    @app.get("/version")
    async def version() -> Response:
        return Response(content=mlflow.__version__, media_type=JSON, headers=worker)

    def answer(body: bytes, content_type: str | None) -> Response:
        """Parse, predict and write the answer: CPU work, run in a worker thread."""
        try:
            table = parse_request(
                body, content_type, limits["max_images"], max_request_bytes
            )
        except RequestError as error:
            return error_response(error.status, str(error))
        try:
            predictions = model.predict(table)
        except Exception as error:  # noqa: BLE001  sorted out by model_error_response
            return model_error_response(error)
        return Response(predictions_body(predictions), media_type=JSON, headers=worker)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        try:
            body = await read_body(request, max_request_bytes)
        except RequestError as error:
            return error_response(error.status, str(error))
        # In a thread: decoding and predicting must not block /ping.
        content_type = request.headers.get("content-type")
        return await asyncio.to_thread(answer, body, content_type)

    return app


def app_of_environment() -> FastAPI:
    """The app of the model named by ``MODEL_URI_VARIABLE``: what each worker runs."""
    model_uri = os.environ[MODEL_URI_VARIABLE]
    started = time.perf_counter()
    model = mlflow.pyfunc.load_model(model_uri)
    server_logger.info(
        "Worker %d loaded %s in %.1f s",
        os.getpid(),
        model_uri,
        time.perf_counter() - started,
    )
    return create_app(model, logged_limits(model))


class TcpSocketConfig(uvicorn.Config):
    """uvicorn's configuration, whose listening socket says it is TCP.

    For several workers uvicorn binds the socket itself with ``proto`` 0, so asyncio
    never sets ``TCP_NODELAY`` on the connections it accepts, and each keep-alive
    response waits ~40 ms for the client's delayed ACK (uvicorn issue #3149).
    """

    def bind_socket(self) -> socket.socket:
        bound = super().bind_socket()
        if bound.family not in (socket.AF_INET, socket.AF_INET6):  # --uds, --fd
            return bound
        return socket.socket(
            bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach()
        )


def serve_model(
    model_uri: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workers: int = 1
) -> None:
    """Serve the model at ``model_uri`` with ``workers`` processes until interrupted.

    Each worker loads the model once; they share the port, and the operating system
    spreads connections among them.
    """
    os.environ[MODEL_URI_VARIABLE] = model_uri
    # Workers are new processes: tell them where the registry is. Always: a variable
    # set empty (the project's "unset") would send them to MLflow's default store.
    os.environ["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    os.environ["MLFLOW_REGISTRY_URI"] = mlflow.get_registry_uri()
    app = "{{ cookiecutter.python_package }}.serving:app_of_environment"
    if workers == 1:
        uvicorn.run(app, factory=True, host=host, port=port)
        return
    config = TcpSocketConfig(app, factory=True, host=host, port=port, workers=workers)
    try:  # what uvicorn.run does for several workers, with the TCP socket
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    except KeyboardInterrupt:
        pass


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m {{ cookiecutter.python_package }}.serving MODEL [--host H] [--port P] [--workers N]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model_uri", help="models:/<name>/<version>, or a folder")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", default=DEFAULT_PORT, type=int)
    parser.add_argument("--workers", default=1, type=int)
    arguments = parser.parse_args(argv)
    serve_model(arguments.model_uri, arguments.host, arguments.port, arguments.workers)


if __name__ == "__main__":
    main()
