"""The model server of ``kedro serve``: MLflow's scoring server with clear 4xx errors.

MLflow's own app answers ``/ping``, ``/health``, ``/version`` and ``/invocations``
exactly as ``mlflow models serve`` does for good requests. Its error bodies carry a
server stack trace, and a schema error repeats the whole request, so ``/invocations``
is wrapped: each request is checked first, and a rejected one gets
``{"error_code": ..., "message": ...}`` with one line that names the field or row at
fault and never repeats the payload.

Inside the project, run ``kedro serve``. Where there is only the logged model (its
``code/`` folder holds this package), run
``PYTHONPATH=<model>/code python -m {{ cookiecutter.python_package }}.serving <model URI or folder>``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import io
import json
import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel, load_model, scoring_server

from {{ cookiecutter.python_package }}.pipelines.inference.nodes import (
    IMAGE_COLUMN,
    find_invalid_payload,
)

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5001  # 5000 is `kedro mlflow ui`'s
DEFAULT_MAX_REQUEST_BYTES = 64_000_000
TOO_LARGE = "the request is over the limit of {} bytes: send fewer images per request"
INVOCATIONS = "/invocations"
JSON = scoring_server.CONTENT_TYPE_JSON
PARQUET = scoring_server.CONTENT_TYPE_PARQUET
RECORDS = "dataframe_records"
SPLIT = "dataframe_split"
# MLflow's other JSON inputs reach the model without base64 decoding.
UNDECODED_FORMATS = ("inputs", "instances")
SEND = "send " + json.dumps({RECORDS: [{IMAGE_COLUMN: "<base64 of an image file>"}]})
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
JSON_TYPES |= {int: "a number", float: "a number", type(None): "null"}


class RequestError(ValueError):
    """A request refused before the model sees it: an HTTP status and one line."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _json_type(value: Any) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def _record_images(records: Any) -> list[Any]:
    """The image of each row of a ``dataframe_records`` list."""
    if not isinstance(records, list):
        raise RequestError(
            f"'{RECORDS}' must be an array of rows, got {_json_type(records)}"
        )
    images = []
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(f"row {row} must be an object, got {_json_type(record)}")
        if IMAGE_COLUMN not in record:
            raise RequestError(f"row {row} has no '{IMAGE_COLUMN}' field; {SEND}")
        images.append(record[IMAGE_COLUMN])
    return images


def _split_images(split: Any) -> list[Any]:
    """The image of each row of a ``dataframe_split`` object."""
    if not isinstance(split, dict):
        raise RequestError(f"'{SPLIT}' must be an object, got {_json_type(split)}")
    columns, data = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or IMAGE_COLUMN not in columns:
        raise RequestError(
            f"'{SPLIT}' has no '{IMAGE_COLUMN}' column: set \"columns\": "
            f'["{IMAGE_COLUMN}"] and one [<base64 of an image file>] row per image'
        )
    if not isinstance(data, list):
        raise RequestError(f"'{SPLIT}.data' must be an array of rows")
    column = columns.index(IMAGE_COLUMN)
    for row, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(columns):
            raise RequestError(
                f"row {row} of '{SPLIT}.data' must be an array of {len(columns)} "
                f"value(s), one per column"
            )
    return [values[column] for values in data]


def _check_base64(row: int, value: Any) -> None:
    """Each image must be standard base64 (line breaks allowed, as MLflow allows)."""
    if not isinstance(value, str):
        raise RequestError(
            f"row {row}: '{IMAGE_COLUMN}' must be a base64 string, got {_json_type(value)}"
        )
    try:
        base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            f"row {row}: '{IMAGE_COLUMN}' is not valid base64 (standard alphabet "
            "A-Z a-z 0-9 + / with '=' padding)"
        ) from None


def _check_parquet(body: bytes) -> None:
    """A Parquet table needs no base64: its ``image`` column holds the files' bytes."""
    try:
        table = pd.read_parquet(io.BytesIO(body))
    except Exception:  # noqa: BLE001  pyarrow raises many types for a bad file
        raise RequestError("the body is not a Parquet file") from None
    if IMAGE_COLUMN not in table.columns:
        raise RequestError(
            f"the Parquet table has no '{IMAGE_COLUMN}' column of image file bytes"
        )
    if table.empty:
        raise RequestError("the request has no rows: send at least one image")


def check_request(body: bytes, content_type: str | None) -> None:
    """Refuse, with one line naming the culprit, a request the model cannot decode.

    What is left to the model is its own business: whether the bytes are an image
    and within its size limits (they are logged with it).
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == PARQUET:
        _check_parquet(body)
        return
    if mime != JSON:
        raise RequestError(
            f"send JSON ('Content-Type: {JSON}') or a Parquet table of image file "
            f"bytes ('Content-Type: {PARQUET}')",
            status=415,
        )
    try:
        request = json.loads(body)
    except json.JSONDecodeError as error:
        raise RequestError(
            f"the body is not valid JSON ({error.msg} at line {error.lineno} "
            f"column {error.colno})"
        ) from None
    except UnicodeDecodeError:
        raise RequestError("the body is not UTF-8 text") from None
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
    images = (
        _record_images(request[key]) if key == RECORDS else _split_images(request[key])
    )
    if not images:
        raise RequestError("the request has no rows: send at least one image")
    for row, value in enumerate(images):
        _check_base64(row, value)


def error_response(status: int, message: str) -> JSONResponse:
    """MLflow's error body, with our one line and without a stack trace."""
    codes = {400: "INVALID_PARAMETER_VALUE", 413: "BAD_REQUEST", 415: "BAD_REQUEST"}
    return JSONResponse(
        {"error_code": codes.get(status, "INTERNAL_ERROR"), "message": message},
        status_code=status,
    )


class RecordingModel:
    """The served model, keeping the exception that its ``predict`` raised.

    MLflow turns every exception of ``predict`` into a generic error whose stack trace
    holds the real one; this keeps the real one for the response. One per request.
    """

    def __init__(self, model: PyFuncModel) -> None:
        self.model = model
        self.metadata = model.metadata
        self.error: Exception | None = None
        self.predicted = False

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        try:
            predictions = self.model.predict(data, params=params)
        except Exception as error:
            self.error = error
            raise
        self.predicted = True
        return predictions


def model_error_response(recording: RecordingModel) -> JSONResponse:
    """The response for a request that MLflow or the model refused.

    ``recording.error`` is what the model's ``predict`` raised, None if MLflow refused
    the request before predicting, or failed after it.
    """
    if recording.predicted:  # MLflow could not write the predictions out
        logger.error("MLflow failed to return the predictions of a request")
        return error_response(500, "the server failed on this request; see its log")
    error = recording.error
    rejection = None if error is None else find_invalid_payload(error)
    if rejection is not None:  # the model refused an image: its message names the row
        return error_response(400, str(rejection))
    if error is None or isinstance(error, MlflowException):
        # MLflow refused the input (parsing or schema): its message may repeat the
        # request, so it is neither returned nor logged.
        logger.warning("MLflow refused a request that does not match the signature")
        return error_response(
            400, f"the request does not match the model's input; {SEND}"
        )
    # The model failed: a bug or a broken environment, not the client's fault.
    logger.error("The model failed on a request", exc_info=error)
    return error_response(500, "the model failed on this request; see the server log")


def create_app(
    model: PyFuncModel, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> FastAPI:
    """MLflow's scoring app for ``model``, with ``/invocations`` checked and its errors shaped."""
    app = scoring_server.init(model)
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if getattr(route, "path", None) != INVOCATIONS
    ]
    input_schema = model.metadata.get_input_schema()

    def answer(body: bytes, content_type: str | None, recording: RecordingModel) -> Any:
        """Check the request, then MLflow's own parsing, schema check and predict."""
        check_request(body, content_type)
        return scoring_server.invocations(body, content_type, recording, input_schema)

    @app.post(INVOCATIONS)
    async def invocations(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_request_bytes:
            return error_response(413, TOO_LARGE.format(max_request_bytes))
        body = await request.body()
        if len(body) > max_request_bytes:
            return error_response(413, TOO_LARGE.format(max_request_bytes))
        content_type = request.headers.get("content-type")
        recording = RecordingModel(model)
        try:
            # In a worker thread: decoding and predicting must not block /ping.
            result = await asyncio.to_thread(answer, body, content_type, recording)
        except RequestError as error:
            return error_response(error.status, str(error))
        except MlflowException:
            return model_error_response(recording)
        except Exception:
            logger.exception("The server failed on a request")
            return error_response(500, "the server failed on this request; see its log")
        return Response(
            content=result.response,
            status_code=result.status,
            media_type=result.mimetype,
        )

    return app


def serve_model(
    model_uri: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> None:
    """Load the model at ``model_uri`` and serve it until interrupted."""
    model = load_model(model_uri)
    # The model runs a Kedro pipeline per request: Kedro's INFO lines would cost more
    # than the prediction. Errors, such as why an image was refused, are still logged.
    logging.getLogger("kedro").setLevel(logging.ERROR)
    uvicorn.run(create_app(model), host=host, port=port)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m {{ cookiecutter.python_package }}.serving MODEL [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model_uri", help="models:/<name>/<version>, or a folder")
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", default=DEFAULT_PORT, type=int)
    arguments = parser.parse_args(argv)
    serve_model(arguments.model_uri, arguments.host, arguments.port)


if __name__ == "__main__":
    main()
