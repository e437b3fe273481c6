"""What the served model runs: payload checks, classification, the shared model."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from {{ cookiecutter.python_package }}.keras_model import (
    KerasModelDataset,
    SharedKerasModel,
)
from {{ cookiecutter.python_package }}.model_logging import (
    model_signature,
)
from {{ cookiecutter.python_package }}.payload import (
    InvalidPayloadError,
    find_invalid_payload,
    probability_column,
)
from {{ cookiecutter.python_package }}.pipelines.inference import (
    nodes,
)
from {{ cookiecutter.python_package }}.pipelines.inference.nodes import (
    classify,
    preprocess_payload,
)
from {{ cookiecutter.python_package }}.pipelines.training.nodes import (
    build_model,
)

CLASS_NAMES = ["cat", "dog", "fox"]


def png_bytes(width: int = 20, height: int = 12) -> bytes:
    """The bytes of a small PNG file."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 60)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def limits(parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's preprocess_payload limits."""
    return parameters["preprocess_payload"]


@pytest.fixture(scope="module")
def classifier(fast_parameters: dict[str, Any]) -> SharedKerasModel:
    """A tiny untrained network of the project's architecture, three classes."""
    image = fast_parameters["image"]
    model = build_model(
        len(CLASS_NAMES),
        image["size"],
        image["channels"],
        fast_parameters["train_classifier"],
    )
    return SharedKerasModel(model)


def test_preprocess_payload_makes_one_batch(
    parameters: dict[str, Any], limits: dict[str, Any]
) -> None:
    """Every row's image bytes become one float32 image of the batch."""
    payload = pd.DataFrame({"image": [png_bytes(), bytearray(png_bytes(8, 30))]})
    batch = preprocess_payload(payload, parameters["image"], limits)
    assert batch.shape == (2, 16, 16, 3)
    assert batch.dtype == np.float32


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pd.DataFrame({"picture": [b"x"]}), "no 'image' column"),
        (pd.DataFrame({"image": []}), "no rows"),
        (
            pd.DataFrame({"image": [png_bytes(), "aGVsbG8="]}),
            "row 1: 'image' .* got str",
        ),
        (pd.DataFrame({"image": [None]}), "row 0: 'image' .* got NoneType"),
        (
            pd.DataFrame({"image": [png_bytes(), b"GIF89a, or not"]}),
            "row 1: not an image file",
        ),
        (pd.DataFrame({"image": [b""]}), "row 0: not an image file"),
        (
            pd.DataFrame({"image": [png_bytes()[:-30]]}),
            "row 0: unusable image",
        ),
    ],
    ids=[
        "no-image-column",
        "no-rows",
        "string",
        "none",
        "not-an-image",
        "empty",
        "truncated",
    ],
)
def test_bad_payload_names_the_culprit(
    parameters: dict[str, Any],
    limits: dict[str, Any],
    payload: pd.DataFrame,
    message: str,
) -> None:
    """Each unusable request fails with one line naming the column or row."""
    with pytest.raises(InvalidPayloadError, match=message) as error:
        preprocess_payload(payload, parameters["image"], limits)
    assert "\n" not in str(error.value)


def test_bad_payload_message_does_not_repeat_the_bytes(
    parameters: dict[str, Any], limits: dict[str, Any]
) -> None:
    """Not even Pillow's description of the buffer: the message is only the reason."""
    payload = pd.DataFrame({"image": [b"SECRET-PAYLOAD-BYTES"]})
    with pytest.raises(InvalidPayloadError) as error:
        preprocess_payload(payload, parameters["image"], limits)
    assert "SECRET" not in str(error.value)
    assert "BytesIO" not in str(error.value)


def test_find_invalid_payload_looks_behind_wrappers() -> None:
    """The rejection is found as the error, its cause or its context, by class name."""
    rejection = InvalidPayloadError("row 2: not an image file")
    assert find_invalid_payload(rejection) is rejection
    try:
        try:
            raise rejection
        except InvalidPayloadError:
            raise RuntimeError("the model failed")  # the rejection is its context
    except RuntimeError as wrapper:
        assert find_invalid_payload(wrapper) is rejection

    # A model loaded from MLflow may bring its own copy of the exception class.
    copied_class = type("InvalidPayloadError", (ValueError,), {})
    assert find_invalid_payload(KeyError("x")) is None
    copied = copied_class("row 0: too large")
    assert find_invalid_payload(copied) is copied


def test_payload_over_max_bytes_is_refused(
    parameters: dict[str, Any], limits: dict[str, Any]
) -> None:
    """An encoded image larger than max_image_bytes is refused before decoding."""
    image = png_bytes()
    limits["max_image_bytes"] = len(image) - 1
    payload = pd.DataFrame({"image": [image]})
    with pytest.raises(
        InvalidPayloadError, match=f"row 0: image of {len(image)} bytes"
    ):
        preprocess_payload(payload, parameters["image"], limits)


def test_payload_over_max_pixels_is_refused(
    parameters: dict[str, Any], limits: dict[str, Any]
) -> None:
    """An image of more than image.max_pixels is refused, its size in the message."""
    parameters["image"]["max_pixels"] = 100
    payload = pd.DataFrame({"image": [png_bytes(8, 8), png_bytes(20, 12)]})
    with pytest.raises(
        InvalidPayloadError, match="row 1: .*20x12 pixels .* 100 pixels"
    ):
        preprocess_payload(payload, parameters["image"], limits)


def test_decompression_bomb_payload_is_refused(
    parameters: dict[str, Any], limits: dict[str, Any], decompression_bomb: bytes
) -> None:
    """A few kB that would decode to 400 Mpixels are refused, naming the row."""
    payload = pd.DataFrame({"image": [decompression_bomb]})
    with pytest.raises(InvalidPayloadError, match="row 0: .*400000000 pixels"):
        preprocess_payload(payload, parameters["image"], limits)


def test_default_pixel_limit_applies_before_decoding(
    parameters: dict[str, Any], limits: dict[str, Any], large_png: bytes
) -> None:
    """64 Mpixels pass Pillow's bomb check but not the project's image.max_pixels."""
    payload = pd.DataFrame({"image": [large_png]})
    with pytest.raises(InvalidPayloadError, match="row 0: .*8000x8000 pixels"):
        preprocess_payload(payload, parameters["image"], limits)


def test_classify_returns_label_confidence_and_probabilities(
    classifier: SharedKerasModel,
) -> None:
    """One row per image: the label, its confidence and each class's probability."""
    batch = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    predictions = classify(batch, classifier, CLASS_NAMES)
    probabilities = [f"probability_{name}" for name in CLASS_NAMES]
    assert list(predictions.columns) == ["label", "confidence", *probabilities]
    assert len(predictions) == len(batch)
    assert predictions["label"].isin(CLASS_NAMES).all()
    assert predictions["confidence"].between(0, 1).all()
    np.testing.assert_allclose(predictions[probabilities].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(
        predictions["confidence"], predictions[probabilities].max(axis=1)
    )
    best = predictions[probabilities].to_numpy().argmax(axis=1)
    assert predictions["label"].tolist() == [CLASS_NAMES[i] for i in best]


def test_predictions_have_the_columns_the_logged_signature_declares(
    classifier: SharedKerasModel,
) -> None:
    """The served columns and the signature's come from one probability_column()."""
    batch = np.zeros((1, 16, 16, 3), dtype=np.float32)
    predictions = classify(batch, classifier, CLASS_NAMES)
    outputs = model_signature(CLASS_NAMES).outputs.input_names()
    assert list(predictions.columns) == outputs
    assert probability_column("cat") in outputs


def test_shared_model_is_not_copied(classifier: SharedKerasModel) -> None:
    """Deep copies (kedro-mlflow copies its catalog per request) share the model."""
    assert copy.deepcopy(classifier) is classifier
    assert copy.deepcopy({"classifier": classifier})["classifier"] is classifier


@pytest.mark.parametrize("sizes", [(1, 4, 32), (7, 1)], ids=["1-4-32", "7-1"])
def test_shared_model_gives_keras_probabilities_at_any_batch_size(
    classifier: SharedKerasModel, sizes: tuple[int, ...]
) -> None:
    """The traced forward pass equals Keras's own prediction, new batch sizes included."""
    rng = np.random.default_rng(2)
    for size in sizes:
        batch = rng.random((size, 16, 16, 3), dtype=np.float32)
        probabilities = classifier.predict_proba(batch)
        assert probabilities.dtype == np.float32
        np.testing.assert_array_equal(
            probabilities, classifier.model.predict_on_batch(batch)
        )


def test_keras_model_dataset_round_trip(
    tmp_path: Path, classifier: SharedKerasModel
) -> None:
    """A model saved as a .keras file loads back shared, with the same predictions."""
    dataset = KerasModelDataset(filepath=str(tmp_path / "classifier.keras"))
    dataset.save(classifier.model)
    assert (tmp_path / "classifier.keras").is_file()
    loaded = dataset.load()
    assert isinstance(loaded, SharedKerasModel)
    batch = np.random.default_rng(1).random((3, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(
        loaded.predict_proba(batch), classifier.predict_proba(batch), rtol=1e-6
    )


def test_too_many_images_are_refused(
    parameters: dict[str, Any], limits: dict[str, Any]
) -> None:
    """More images than max_images in one request is refused, naming the limit."""
    payload = pd.DataFrame({"image": [png_bytes()] * 3})
    with pytest.raises(InvalidPayloadError, match="3 images, over the limit of 2"):
        preprocess_payload(payload, parameters["image"], {**limits, "max_images": 2})


def test_request_pixel_budget_is_checked_before_decoding(
    parameters: dict[str, Any],
    limits: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Images each within image.max_pixels, too many pixels together: none decoded."""
    decoded = []
    monkeypatch.setattr(
        nodes, "decode_payload_image", lambda *args: decoded.append(args)
    )
    parameters["image"]["max_pixels"] = 20 * 12
    limits["max_request_pixels"] = 3 * 20 * 12
    payload = pd.DataFrame({"image": [png_bytes()] * 4})
    with pytest.raises(
        InvalidPayloadError, match="rows 0-3: images of 960 pixels in all, over .* 720"
    ):
        preprocess_payload(payload, parameters["image"], limits)
    assert decoded == []


def test_each_request_file_is_opened_once(
    parameters: dict[str, Any],
    limits: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The header read for the checks is the image then decoded: one open per row."""
    opened = []

    def counting_open(*args: Any, **kwargs: Any) -> Image.Image:
        opened.append(args)
        return open_image(*args, **kwargs)

    open_image = Image.open
    monkeypatch.setattr(Image, "open", counting_open)
    payload = pd.DataFrame({"image": [png_bytes(), png_bytes(8, 30), png_bytes()]})
    batch = preprocess_payload(payload, parameters["image"], limits)
    assert len(batch) == len(opened) == 3  # noqa: PLR2004


def test_many_small_files_of_huge_images_are_refused_from_their_headers(
    parameters: dict[str, Any], limits: dict[str, Any], large_png: bytes
) -> None:
    """The hostile case: 64 PNGs of a few kB, each 64 Mpixels once decoded."""
    parameters["image"]["max_pixels"] = 8_000 * 8_000
    payload = pd.DataFrame({"image": [large_png] * 64})
    with pytest.raises(InvalidPayloadError, match="images of .* pixels in all"):
        preprocess_payload(payload, parameters["image"], limits)
