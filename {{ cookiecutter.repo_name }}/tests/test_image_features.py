"""The image_arrays dataset: each content preprocessed once, reused, rebuilt exactly."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import pytest
from kedro.io import DatasetError
from PIL import Image

from {{ cookiecutter.python_package }}.image_features import (
    ImageArrayDataset,
    ImagesToPreprocess,
)
from {{ cookiecutter.python_package }}.input_pipeline import (
    array_batches,
    image_batches,
)
from {{ cookiecutter.python_package }}.parameter_checks import (
    ParameterError,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    decode_image,
    preprocess,
)

SIZE, CHANNELS, IMAGES, MAX_PIXELS = 20, 3, 8, 40_000_000


@pytest.fixture
def images(tmp_path: Path, make_image_folder, load_partitions) -> dict:
    """Loaders of IMAGES (8) real image files (PNG and JPEG), as raw_images gives them."""
    folder = make_image_folder(tmp_path / "images", {"a": 4, "b": 4})
    return {"folder": folder, "loaders": load_partitions(folder)}


def _preprocessed(load) -> np.ndarray:
    """What preprocess() gives for a raw_images loader's file."""
    return preprocess(decode_image(load(), MAX_PIXELS), SIZE, CHANNELS)


def _counted_plan(loaders: dict, reads: Counter, size: int = SIZE):
    """An ImagesToPreprocess whose file loaders count how often each file is read."""

    def counting(partition: str):
        def read() -> bytes:
            reads[partition] += 1
            return loaders[partition]()

        return read

    return ImagesToPreprocess(
        files={p: counting(p) for p in sorted(loaders)},
        size=size,
        channels=CHANNELS,
        max_pixels=MAX_PIXELS,
        on_invalid_image="fail",
    )


def _preprocessed_count(caplog: pytest.LogCaptureFixture) -> int:
    """How many images the last save preprocessed, from its log line."""
    messages = [r.getMessage() for r in caplog.records if "Preprocessed" in r.message]
    caplog.clear()
    return int(messages[-1].split()[1])


def test_arrays_are_exactly_what_preprocess_gives(tmp_path, images, caplog):
    """Stored uint8 arrays read back as the very float32 of preprocess(): the served
    model and training see the same tensor."""
    dataset = ImageArrayDataset(path=str(tmp_path / "arrays"))
    with caplog.at_level(logging.INFO):
        dataset.save(_counted_plan(images["loaders"], Counter()))
    assert _preprocessed_count(caplog) == IMAGES
    stored = dataset.load()
    assert sorted(stored) == sorted(images["loaders"])
    for partition, load in stored.items():
        array = load()
        assert array.dtype == np.uint8
        assert array.shape == (SIZE, SIZE, CHANNELS)
        expected = _preprocessed(images["loaders"][partition])
        np.testing.assert_array_equal(np.asarray(array, np.float32) / 255.0, expected)


def test_each_file_is_read_once_and_unchanged_images_are_reused(
    tmp_path, images, caplog
):
    """A second save of the same files reads each once and preprocesses none."""
    dataset = ImageArrayDataset(path=str(tmp_path / "arrays"))
    reads: Counter = Counter()
    dataset.save(_counted_plan(images["loaders"], reads))
    assert set(reads.values()) == {1}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        dataset.save(_counted_plan(images["loaders"], reads))
    assert set(reads.values()) == {2}
    assert _preprocessed_count(caplog) == 0


def test_a_changed_image_or_parameter_rebuilds_only_what_changed(
    tmp_path, images, load_partitions, caplog
):
    dataset = ImageArrayDataset(path=str(tmp_path / "arrays"))
    dataset.save(_counted_plan(images["loaders"], Counter()))
    before = {p: load().copy() for p, load in dataset.load().items()}

    changed = images["folder"] / "a" / "a_000.png"
    Image.new("RGB", (24, 24), "red").save(changed)
    loaders = load_partitions(images["folder"])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        dataset.save(_counted_plan(loaders, Counter()))
    assert _preprocessed_count(caplog) == 1
    after = {p: load() for p, load in dataset.load().items()}
    assert not np.array_equal(after["a/a_000.png"], before["a/a_000.png"])
    for partition in set(before) - {"a/a_000.png"}:
        np.testing.assert_array_equal(after[partition], before[partition])

    caplog.clear()
    with caplog.at_level(logging.INFO):
        dataset.save(_counted_plan(loaders, Counter(), size=SIZE + 4))
    assert _preprocessed_count(caplog) == IMAGES
    assert next(iter(dataset.load().values()))().shape == (SIZE + 4, SIZE + 4, 3)


def test_training_batches_from_arrays_equal_streaming_from_the_files(
    tmp_path, images, load_images
):
    """array_batches from image_arrays give the batches image_batches streams."""
    dataset = ImageArrayDataset(path=str(tmp_path / "arrays"))
    dataset.save(_counted_plan(images["loaders"], Counter()))
    stored = dataset.load()
    partitions = sorted(images["loaders"])
    pil_loaders = load_images(images["folder"])
    arguments = {
        "labels": list(range(len(partitions))),
        "size": SIZE,
        "channels": CHANNELS,
        "batch_size": 3,
        "shuffle_seed": 5,
    }
    streamed = image_batches([pil_loaders[p] for p in partitions], **arguments)
    from_arrays = array_batches([stored[p] for p in partitions], **arguments)
    for (streamed_x, streamed_y), (array_x, array_y) in zip(
        streamed.as_numpy_iterator(), from_arrays.as_numpy_iterator(), strict=True
    ):
        np.testing.assert_array_equal(streamed_y, array_y)
        np.testing.assert_array_equal(streamed_x, array_x)


def test_raw_images_that_are_not_bytes_are_refused_naming_the_dataset(
    tmp_path, images, load_images
) -> None:
    """raw_images of pillow.ImageDataset (the old catalog entry) name the fix."""
    plan = _counted_plan(load_images(images["folder"]), Counter())
    with pytest.raises(DatasetError, match="must be text.TextDataset"):
        ImageArrayDataset(path=str(tmp_path / "arrays")).save(plan)


@pytest.mark.parametrize(
    ("size", "channels", "culprit"),
    [(SIZE + 4, CHANNELS, f"image.size {SIZE + 4}"), (SIZE, 1, "image.channels 1")],
    ids=["size", "channels"],
)
def test_arrays_of_other_image_parameters_are_refused_in_one_line(
    tmp_path, images, size, channels, culprit
):
    """Batches asked at another size or colour mode than the stored arrays name the
    parameter and the command that rebuilds them, before any TensorFlow shape error."""
    dataset = ImageArrayDataset(path=str(tmp_path / "arrays"))
    dataset.save(_counted_plan(images["loaders"], Counter()))
    stored = dataset.load()
    with pytest.raises(ParameterError) as raised:
        array_batches(
            list(stored.values()),
            labels=[0] * len(stored),
            size=size,
            channels=channels,
            batch_size=4,
        )
    assert str(raised.value) == (
        f"{culprit} does not match the stored image_arrays "
        f"({SIZE}x{SIZE}x{CHANNELS}): run `kedro run` to rebuild them"
    )


@pytest.fixture
def memory_filesystem():
    """fsspec's in-memory filesystem, emptied after the test."""
    filesystem = fsspec.filesystem("memory")
    yield filesystem
    filesystem.store.clear()
    filesystem.pseudo_dirs[:] = [""]


def test_arrays_live_on_any_fsspec_filesystem(
    tmp_path, images, memory_filesystem, monkeypatch, caplog
):
    """An fsspec URL stores the arrays on that filesystem, reused as on a local disk,
    and writes nothing to a local folder named after the protocol."""
    monkeypatch.chdir(tmp_path)
    dataset = ImageArrayDataset(path="memory:///bucket/arrays")
    reads: Counter = Counter()
    dataset.save(_counted_plan(images["loaders"], reads))
    assert not (tmp_path / "memory:").exists()
    assert dataset.exists()
    stored_files = memory_filesystem.find("/bucket/arrays")
    assert "/bucket/arrays/manifest.json" in stored_files
    assert len([f for f in stored_files if f.endswith(".npy")]) == IMAGES
    for partition, load in dataset.load().items():
        expected = _preprocessed(images["loaders"][partition])
        np.testing.assert_array_equal(np.asarray(load(), np.float32) / 255.0, expected)

    caplog.clear()
    with caplog.at_level(logging.INFO):
        ImageArrayDataset(path="memory:///bucket/arrays").save(
            _counted_plan(images["loaders"], reads)
        )
    assert _preprocessed_count(caplog) == 0
    assert set(reads.values()) == {2}
