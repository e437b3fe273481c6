"""The pipelines end to end on a tiny folder of images, with a hand-built catalog.

Training runs twice in this module (once shared, once to check reproducibility), on
16x16 images, a one-block network and two epochs, to keep the suite fast.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import numpy as np
import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset

from {{ cookiecutter.python_package }}.image_features import (
    ImageArrayDataset,
)
from {{ cookiecutter.python_package }}.image_folders import (
    ImageFolderDataset,
)
from {{ cookiecutter.python_package }}.keras_model import (
    KerasModelDataset,
    SharedKerasModel,
)
from {{ cookiecutter.python_package }}.pipelines import (
    data_processing,
    evaluation,
    features,
    inference,
    training,
)

CLASS_NAMES = ["circle", "square", "triangle"]
IMAGES_PER_CLASS = 12


@dataclass(frozen=True)
class TrainingRun:
    """A finished training run: its catalog and the folder of its output files."""

    catalog: DataCatalog
    output_dir: Path

    def load(self, name: str) -> Any:
        """An output of the run."""
        return self.catalog.load(name)


def training_pipeline() -> Pipeline:
    """What `kedro run` trains: the registry's training pipeline, without MLflow."""
    return (
        data_processing.create_pipeline()
        + features.create_pipeline()
        + training.create_pipeline()
        + evaluation.create_pipeline()
    )


def make_catalog(
    raw_images: Path | str,
    output_dir: Path,
    parameters: Mapping[str, Any],
    raw_images_entry: Mapping[str, Any],
) -> DataCatalog:
    """The project's catalog, with local files or memory in place of MLflow datasets;
    ``raw_images`` is a local folder or an fsspec URL."""
    output_dir.mkdir(parents=True, exist_ok=True)

    def file(name: str) -> str:
        return str(output_dir / name)

    datasets = {
        "raw_images": ImageFolderDataset(
            path=str(raw_images), dataset=copy.deepcopy(raw_images_entry["dataset"])
        ),
        "image_index": CSVDataset(filepath=file("image_index.csv")),
        "skipped_image_count": MemoryDataset(),
        "image_arrays": ImageArrayDataset(path=file("image_arrays")),
        **{
            f"{split}_split": CSVDataset(filepath=file(f"{split}_split.csv"))
            for split in ("train", "validation", "test")
        },
        "class_names": JSONDataset(filepath=file("class_names.json")),
        "classifier": KerasModelDataset(filepath=file("classifier.keras")),
        "training_history": JSONDataset(filepath=file("training_history.json")),
        "test_predictions": CSVDataset(filepath=file("test_predictions.csv")),
        "test_metrics": MemoryDataset(),
        "classification_report": JSONDataset(filepath=file("report.json")),
        "confusion_matrix_plot": MatplotlibDataset(filepath=file("confusion.png")),
        "training_curves_plot": MatplotlibDataset(filepath=file("curves.png")),
        "top_losses_plot": MatplotlibDataset(filepath=file("top_losses.png")),
    }
    catalog = DataCatalog(datasets=datasets)
    for name, value in parameters.items():
        catalog[f"params:{name}"] = value
    return catalog


def run_training(
    raw_images: Path | str,
    output_dir: Path,
    parameters: Mapping[str, Any],
    raw_images_entry: Mapping[str, Any],
) -> TrainingRun:
    """Run data processing, training and evaluation with the SequentialRunner."""
    catalog = make_catalog(raw_images, output_dir, parameters, raw_images_entry)
    SequentialRunner().run(training_pipeline(), catalog)
    return TrainingRun(catalog=catalog, output_dir=output_dir)


@pytest.fixture(scope="module")
def raw_images(
    tmp_path_factory: pytest.TempPathFactory,
    make_image_folder: Callable[[Path, dict[str, int]], Path],
) -> Path:
    """Three classes of twelve small shape images, PNG and JPEG."""
    root = tmp_path_factory.mktemp("raw") / "images"
    return make_image_folder(root, dict.fromkeys(CLASS_NAMES, IMAGES_PER_CLASS))


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    raw_images: Path,
    fast_parameters: dict[str, Any],
    raw_images_entry: dict[str, Any],
) -> TrainingRun:
    """The one training run that most tests of this module share."""
    return run_training(
        raw_images, tmp_path_factory.mktemp("run"), fast_parameters, raw_images_entry
    )


def test_data_processing_and_features_run_alone(
    tmp_path: Path,
    raw_images: Path,
    fast_parameters: dict[str, Any],
    raw_images_entry: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The data processing and features slices run alone and Kedro reports success."""
    pipeline = data_processing.create_pipeline() + features.create_pipeline()
    catalog = make_catalog(raw_images, tmp_path, fast_parameters, raw_images_entry)
    caplog.set_level(logging.INFO, logger="kedro")
    SequentialRunner().run(pipeline, catalog)
    assert "Pipeline execution completed successfully" in caplog.text
    assert catalog.load("class_names") == CLASS_NAMES


def test_splits_cover_every_image_once(trained: TrainingRun) -> None:
    """Train, validation and test are disjoint and together hold every image."""
    index = trained.load("image_index")
    splits = [trained.load(f"{s}_split") for s in ("train", "validation", "test")]
    partitions = pd.concat([split["partition"] for split in splits])
    assert len(index) == len(CLASS_NAMES) * IMAGES_PER_CLASS
    assert partitions.is_unique
    assert sorted(partitions) == sorted(index["partition"])
    for split in splits:
        assert sorted(split["label"].unique()) == CLASS_NAMES
    assert trained.load("skipped_image_count") == 0.0


def test_model_and_class_names_are_saved(
    trained: TrainingRun, fast_parameters: dict[str, Any]
) -> None:
    """The .keras file loads as a shared model that outputs one column per class."""
    assert trained.load("class_names") == CLASS_NAMES
    assert (trained.output_dir / "classifier.keras").is_file()
    classifier = trained.load("classifier")
    assert isinstance(classifier, SharedKerasModel)
    image = fast_parameters["image"]
    size, channels = image["size"], image["channels"]
    assert classifier.model.input_shape == (None, size, size, channels)
    assert classifier.model.output_shape == (None, len(CLASS_NAMES))


def test_training_history_has_each_epoch(
    trained: TrainingRun, fast_parameters: dict[str, Any]
) -> None:
    """Loss and accuracy, on training and validation data, for every epoch run."""
    history = trained.load("training_history")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    epochs = fast_parameters["train_classifier"]["epochs"]
    assert all(len(values) == epochs for values in history.values())


def test_test_metrics_are_probabilities(trained: TrainingRun) -> None:
    """Accuracy, precision, recall and F1 on the test set are each in [0, 1]."""
    metrics = trained.load("test_metrics")
    assert {"accuracy", "balanced_accuracy", "f1_macro"} <= set(metrics)
    for history in metrics.values():
        assert len(history) == 1
        assert 0.0 <= history[0]["value"] <= 1.0


def test_test_predictions_and_report(trained: TrainingRun) -> None:
    """One prediction per test image, with a class name and a confidence."""
    predictions = trained.load("test_predictions")
    test_split = trained.load("test_split")
    assert predictions["partition"].tolist() == test_split["partition"].tolist()
    assert predictions["predicted"].isin(CLASS_NAMES).all()
    assert predictions["confidence"].between(0.0, 1.0).all()
    report = trained.load("classification_report")
    assert set(CLASS_NAMES) <= set(report)
    for plot in ("confusion.png", "curves.png", "top_losses.png"):
        assert (trained.output_dir / plot).stat().st_size > 0


def test_training_is_reproducible(
    tmp_path: Path,
    raw_images: Path,
    fast_parameters: dict[str, Any],
    raw_images_entry: dict[str, Any],
    trained: TrainingRun,
) -> None:
    """Same images, parameters and seed: the same split, history and predictions."""
    again = run_training(raw_images, tmp_path, fast_parameters, raw_images_entry)
    for name in ("train_split", "validation_split", "test_split", "test_predictions"):
        pd.testing.assert_frame_equal(again.load(name), trained.load(name))
    assert again.load("training_history") == trained.load("training_history")
    assert again.load("test_metrics") == trained.load("test_metrics")


class CountingFileSystem(MemoryFileSystem):
    """fsspec's in-memory filesystem, of its own, counting each file's reads."""

    protocol = "counting"
    store: ClassVar[dict] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    reads: ClassVar[Counter[str]] = Counter()

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return super()._strip_protocol(path.replace("counting://", "memory://", 1))

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" in mode:
            self.reads[self._strip_protocol(path)] += 1
        return super()._open(path, mode, **kwargs)

    def cat_file(self, path: str, *args: Any, **kwargs: Any) -> bytes:
        self.reads[self._strip_protocol(path)] += 1
        return super().cat_file(path, *args, **kwargs)


@pytest.fixture
def counted_raw_images(raw_images: Path) -> Iterator[list[Path]]:
    """The raw images copied to ``counting://shapes``, reads counted from zero; the
    local files copied."""
    fsspec.register_implementation("counting", CountingFileSystem, clobber=True)
    counting = fsspec.filesystem("counting")
    files = sorted(path for path in raw_images.rglob("*") if path.is_file())
    for file in files:
        counting.pipe_file(f"/shapes/{file.relative_to(raw_images)}", file.read_bytes())
    CountingFileSystem.reads.clear()
    yield files
    counting.rm("/shapes", recursive=True)


def test_each_raw_image_is_read_once_per_run(
    tmp_path: Path,
    counted_raw_images: list[Path],
    fast_parameters: dict[str, Any],
    raw_images_entry: dict[str, Any],
) -> None:
    """Indexing, checking, preprocessing, training, evaluation and the top-losses plot
    read each raw file once in all, here from a filesystem that counts reads."""
    run_training("counting://shapes", tmp_path, fast_parameters, raw_images_entry)
    assert len(CountingFileSystem.reads) == len(counted_raw_images)
    assert set(CountingFileSystem.reads.values()) == {1}


def test_streaming_from_raw_files_reads_them_at_every_epoch(
    tmp_path: Path,
    counted_raw_images: list[Path],
    fast_parameters: dict[str, Any],
    raw_images_entry: dict[str, Any],
) -> None:
    """With ``store_arrays: false`` the pipeline trains and evaluates storing no array:
    the features step reads each file once, then every epoch reads each training and
    validation file again, and evaluation the test files."""
    catalog = make_catalog(
        "counting://shapes", tmp_path, fast_parameters, raw_images_entry
    )
    arrays = tmp_path / "image_arrays"
    catalog["image_arrays"] = ImageArrayDataset(path=str(arrays), store_arrays=False)
    SequentialRunner().run(training_pipeline(), catalog)
    assert not list(arrays.rglob("*.npy"))
    epochs = len(catalog.load("training_history")["loss"])
    assert epochs == fast_parameters["train_classifier"]["epochs"]

    def reads(split: str) -> set[int]:
        partitions = catalog.load(f"{split}_split")["partition"]
        return {CountingFileSystem.reads[f"/shapes/{p}"] for p in partitions}

    assert reads("train") == reads("validation") == {1 + epochs}
    assert reads("test") <= {2, 3}  # evaluation, and the top-losses plot for some
    assert len(CountingFileSystem.reads) == len(counted_raw_images)


def test_inference_pipeline_only_needs_saved_training_outputs() -> None:
    """The logged model's inputs: the payload, parameters and files training saved."""
    inputs = inference.create_pipeline().inputs()
    saved = training_pipeline().all_outputs()
    assert "images_to_score" in inputs
    assert inputs - {"images_to_score"} - saved == {
        "params:image",
        "params:preprocess_payload",
    }


def test_inference_pipeline_scores_image_bytes(
    trained: TrainingRun, raw_images: Path, fast_parameters: dict[str, Any]
) -> None:
    """Image file bytes in, one row per image out, as evaluation predicted them."""
    test_predictions = trained.load("test_predictions")
    files = [raw_images / partition for partition in test_predictions["partition"]]
    payload = pd.DataFrame({"image": [file.read_bytes() for file in files]})
    model_file = trained.output_dir / "classifier.keras"
    class_names_file = trained.output_dir / "class_names.json"
    catalog = DataCatalog(
        datasets={
            "classifier": KerasModelDataset(filepath=str(model_file)),
            "class_names": JSONDataset(filepath=str(class_names_file)),
            "predictions": MemoryDataset(),
        }
    )
    catalog["images_to_score"] = payload
    catalog["params:image"] = fast_parameters["image"]
    catalog["params:preprocess_payload"] = fast_parameters["preprocess_payload"]
    SequentialRunner().run(inference.create_pipeline(), catalog)
    predictions = catalog.load("predictions")

    probabilities = [f"probability_{name}" for name in CLASS_NAMES]
    assert list(predictions.columns) == ["label", "confidence", *probabilities]
    assert len(predictions) == len(payload)
    np.testing.assert_allclose(predictions[probabilities].sum(axis=1), 1.0, atol=1e-5)
    assert predictions["label"].tolist() == test_predictions["predicted"].tolist()
    np.testing.assert_allclose(
        predictions["confidence"], test_predictions["confidence"], rtol=1e-5
    )
