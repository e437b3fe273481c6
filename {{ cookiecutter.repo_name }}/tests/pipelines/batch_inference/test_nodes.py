"""Batch inference: a folder of files in, one row per file out, bad files named."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from kedro.io import DataCatalog
from PIL import Image

from {{ cookiecutter.python_package }}.pipelines.batch_inference.nodes import (
    InvalidImageFileError,
    predict_images,
)
from {{ cookiecutter.python_package }}.pipelines.inference.nodes import (
    preprocess_payload,
)

CATALOG = Path(__file__).resolve().parents[3] / "conf" / "base" / "catalog.yml"
CLASSES = ["dark", "bright"]


class FakeModel:
    """Stands for the logged model: the real payload checks, then dark or bright."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters = parameters
        self.batch_sizes: list[int] = []

    def predict(self, data: pd.DataFrame) -> pd.DataFrame:
        self.batch_sizes.append(len(data))
        batch = preprocess_payload(
            data, self.parameters["image"], self.parameters["preprocess_payload"]
        )
        bright = batch.mean(axis=(1, 2, 3))
        probabilities = np.stack([1 - bright, bright], axis=1)
        return pd.DataFrame(
            {
                "label": np.asarray(CLASSES)[probabilities.argmax(axis=1)],
                "confidence": probabilities.max(axis=1),
                "probability_dark": probabilities[:, 0],
                "probability_bright": probabilities[:, 1],
            }
        )


@pytest.fixture
def model(fast_parameters: dict[str, Any]) -> FakeModel:
    return FakeModel(fast_parameters)


@pytest.fixture
def options(project_parameters: dict[str, Any]) -> dict[str, Any]:
    """The project's predict_images parameters, with small batches."""
    return copy.deepcopy(project_parameters["predict_images"]) | {"batch_size": 2}


@pytest.fixture
def load_folder() -> Callable[[Path], dict[str, Callable[[], bytes]]]:
    """Read a folder exactly as the catalog's ``new_images`` entry does."""
    entry = yaml.safe_load(CATALOG.read_text())["new_images"]

    def load(folder: Path) -> dict[str, Callable[[], bytes]]:
        catalog = DataCatalog.from_config({"new_images": entry | {"path": str(folder)}})
        return catalog.load("new_images")

    return load


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five images, dark and bright, PNG and JPEG, one in a subfolder; two hidden files."""
    root = tmp_path / "new_images"
    (root / "more").mkdir(parents=True)
    for grey, name in zip(
        [20, 230, 40, 250, 10], ["a.png", "b.jpg", "c.png", "d.PNG", "more/e.jpg"]
    ):
        image = Image.new("RGB", (12, 10), (grey, grey, grey))
        image.save(root / name, format=name.split(".")[1].replace("jpg", "jpeg"))
    (root / ".gitkeep").touch()
    (root / "more" / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_catalog_entry_reads_each_file_s_bytes_unchanged(
    folder: Path, load_folder: Callable
) -> None:
    """Files are sent as they are on disk, as a client would send them."""
    partitions = load_folder(folder)
    assert partitions["more/e.jpg"]() == (folder / "more" / "e.jpg").read_bytes()
    assert partitions["a.png"]() == (folder / "a.png").read_bytes()


def test_every_file_gets_one_row_in_name_order(
    folder: Path, load_folder: Callable, model: FakeModel, options: dict[str, Any]
) -> None:
    """File, label, confidence, probabilities and an empty error, batch by batch."""
    predictions = predict_images(load_folder(folder), model, options)
    assert list(predictions.columns) == [
        "file",
        "label",
        "confidence",
        "probability_dark",
        "probability_bright",
        "error",
    ]
    assert predictions["file"].tolist() == [
        "a.png",
        "b.jpg",
        "c.png",
        "d.PNG",
        "more/e.jpg",
    ]
    assert predictions["label"].tolist() == ["dark", "bright", "dark", "bright", "dark"]
    assert (predictions["error"] == "").all()
    assert model.batch_sizes == [2, 2, 1]


def test_predictions_are_the_model_s_own(
    folder: Path, load_folder: Callable, model: FakeModel, options: dict[str, Any]
) -> None:
    """Each row is what the model says for that file alone: no mix-up across batches."""
    partitions = load_folder(folder)
    predictions = predict_images(partitions, model, options).set_index("file")
    for name, load in partitions.items():
        if not name.split("/")[-1].startswith("."):
            alone = model.predict(pd.DataFrame({"image": [load()]})).iloc[0]
            assert predictions.loc[name, "label"] == alone["label"]
            assert predictions.loc[name, "confidence"] == pytest.approx(
                alone["confidence"]
            )


def test_a_bad_file_gets_its_reason_and_the_others_their_predictions(
    folder: Path,
    load_folder: Callable,
    model: FakeModel,
    options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With on_invalid_image: skip, a bad file is a row with an error and a warning."""
    (folder / "b.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("some notes")
    with caplog.at_level(logging.WARNING):
        predictions = predict_images(load_folder(folder), model, options)
    table = predictions.set_index("file")
    assert sorted(table.index) == [
        "a.png",
        "b.jpg",
        "c.png",
        "d.PNG",
        "more/e.jpg",
        "notes.txt",
    ]
    for bad in ("b.jpg", "notes.txt"):
        assert table.loc[bad, "error"].startswith("not an image file")
        assert pd.isna(table.loc[bad, "label"])
        assert f"Skipping {bad}: not an image file" in caplog.text
    good = table.drop(index=["b.jpg", "notes.txt"])
    assert good["label"].isin(CLASSES).all()
    assert (good["error"] == "").all()


def test_a_bad_file_stops_the_run_when_asked(
    folder: Path, load_folder: Callable, model: FakeModel, options: dict[str, Any]
) -> None:
    """With on_invalid_image: fail, the error names the file and the reason."""
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    options["on_invalid_image"] = "fail"
    with pytest.raises(InvalidImageFileError, match=r"^c\.png: ") as error:
        predict_images(load_folder(folder), model, options)
    assert "row" not in str(error.value)


@pytest.mark.parametrize("on_invalid_image", ["skip", "fail"])
def test_a_broken_link_is_the_files_fault(
    folder: Path,
    load_folder: Callable,
    model: FakeModel,
    options: dict[str, Any],
    on_invalid_image: str,
) -> None:
    """A link to nothing gets its reason (or stops the run), as an unreadable image."""
    (folder / "broken.png").symlink_to(folder / "missing.png")
    options["on_invalid_image"] = on_invalid_image
    if on_invalid_image == "fail":
        with pytest.raises(
            InvalidImageFileError, match=r"^broken\.png: cannot be read"
        ):
            predict_images(load_folder(folder), model, options)
        return
    table = predict_images(load_folder(folder), model, options).set_index("file")
    assert table.loc["broken.png", "error"].startswith("cannot be read")
    assert table.drop(index="broken.png")["label"].isin(CLASSES).all()


def test_a_folder_of_only_bad_files_still_makes_a_table(
    tmp_path: Path, load_folder: Callable, model: FakeModel, options: dict[str, Any]
) -> None:
    """Every file is listed with its reason; the prediction columns are empty."""
    (tmp_path / "x.txt").write_text("x")
    predictions = predict_images(load_folder(tmp_path), model, options)
    assert list(predictions.columns) == ["file", "label", "confidence", "error"]
    assert predictions["file"].tolist() == ["x.txt"]


def test_a_model_failure_is_not_blamed_on_the_files(
    folder: Path, load_folder: Callable, options: dict[str, Any]
) -> None:
    """Only the model's payload errors are per file; any other error stops the run."""

    class BrokenModel:
        def predict(self, data: pd.DataFrame) -> pd.DataFrame:
            raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        predict_images(load_folder(folder), BrokenModel(), options)


def test_a_folder_without_images_is_refused(
    tmp_path: Path, load_folder: Callable, model: FakeModel, options: dict[str, Any]
) -> None:
    """Hidden files only: the message says where the images should go."""
    (tmp_path / "sub").mkdir()
    (tmp_path / ".gitkeep").touch()
    (tmp_path / "sub" / ".DS_Store").write_bytes(b"\0\1")
    with pytest.raises(ValueError, match="data/01_raw/new_images/"):
        predict_images(load_folder(tmp_path), model, options)


def test_the_node_classifies_every_file_the_catalog_entry_gives(
    folder: Path, model: FakeModel, options: dict[str, Any]
) -> None:
    """Which names count as hidden is decided once, by the catalog entry's dataset."""
    image = (folder / "a.png").read_bytes()
    predictions = predict_images({".a.png": lambda: image}, model, options)
    assert predictions["file"].tolist() == [".a.png"]


def test_a_symlinked_folder_is_followed_and_a_loop_skipped(
    folder: Path,
    tmp_path: Path,
    load_folder: Callable,
    model: FakeModel,
    options: dict[str, Any],
) -> None:
    """Linked folders count as folders; a link back up is skipped, not fatal."""
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (12, 10), (240, 240, 240)).save(other / "f.png")
    (folder / "linked").symlink_to(other, target_is_directory=True)
    (folder / "more" / "loop").symlink_to(folder, target_is_directory=True)
    predictions = predict_images(load_folder(folder), model, options)
    assert "linked/f.png" in predictions["file"].tolist()
    assert len(predictions) == 6  # noqa: PLR2004
    assert (predictions["error"] == "").all()


def test_hidden_folders_are_left_out(
    folder: Path, load_folder: Callable, model: FakeModel, options: dict[str, Any]
) -> None:
    (folder / ".thumbnails").mkdir()
    (folder / ".thumbnails" / "a.png").write_bytes((folder / "a.png").read_bytes())
    predictions = predict_images(load_folder(folder), model, options)
    assert not any(name.startswith(".") for name in predictions["file"])
    assert len(predictions) == 5  # noqa: PLR2004
