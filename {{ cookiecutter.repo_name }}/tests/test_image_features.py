"""The image_arrays dataset: each content preprocessed once, reused, rebuilt exactly."""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pytest
from fsspec.implementations.local import LocalFileSystem
from kedro.io import DataCatalog, DatasetError
from PIL import Image

from {{ cookiecutter.python_package }} import image_features
from {{ cookiecutter.python_package }}.image_features import (
    ImageArrayDataset,
    ImagesToPreprocess,
    StreamedArrayLoader,
)
from {{ cookiecutter.python_package }}.image_folders import (
    ImageFolderDataset,
)
from {{ cookiecutter.python_package }}.input_pipeline import (
    array_batches,
)
from {{ cookiecutter.python_package }}.parameter_checks import (
    ParameterError,
)
from {{ cookiecutter.python_package }}.preprocessing import (
    PREPROCESSING_VERSION,
    load_image,
    open_image,
    preprocess,
)

SIZE, CHANNELS, IMAGES, MAX_PIXELS = 20, 3, 8, 40_000_000
MAX_FILE_BYTES = 50_000_000
RETRIES = 2


@pytest.fixture
def images(tmp_path: Path, make_image_folder, load_partitions) -> dict:
    """Loaders of IMAGES (8) real image files (PNG and JPEG), as raw_images gives them."""
    folder = make_image_folder(tmp_path / "images", {"a": 4, "b": 4})
    return {"folder": folder, "loaders": load_partitions(folder)}


def _preprocessed(load) -> np.ndarray:
    """What preprocess() gives for a raw_images loader's file."""
    return preprocess(load_image(open_image(load(), MAX_PIXELS)), SIZE, CHANNELS)


def _plan(files: dict, size: int = SIZE) -> ImagesToPreprocess:
    """What the features node hands to image_arrays for these file loaders."""
    return ImagesToPreprocess(
        files=files,
        size=size,
        channels=CHANNELS,
        max_pixels=MAX_PIXELS,
        max_file_bytes=MAX_FILE_BYTES,
        on_invalid_image="fail",
        classes=sorted({partition.partition("/")[0] for partition in files}),
        skipped={},
    )


def _counted_plan(loaders: dict, reads: Counter, size: int = SIZE):
    """An ImagesToPreprocess whose file loaders count how often each file is read."""

    def counting(partition: str):
        def read() -> bytes:
            reads[partition] += 1
            return loaders[partition]()

        return read

    return _plan({p: counting(p) for p in sorted(loaders)}, size)


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


def test_raw_images_that_are_not_bytes_are_refused_naming_the_dataset(
    tmp_path,
) -> None:
    """raw_images of pillow.ImageDataset (the old catalog entry) name the fix."""
    plan = _plan({"a/a_000.png": lambda: Image.new("RGB", (8, 8))})
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


def _npy_files(folder: Path) -> list[Path]:
    """Every .npy file under ``folder``."""
    return sorted(folder.rglob("*.npy"))


def _assert_is_preprocessed(load, raw_file) -> None:
    """A loader's uint8 array is what preprocess() gives for the raw file."""
    np.testing.assert_array_equal(
        np.asarray(load(), np.float32) / 255.0, _preprocessed(raw_file)
    )


def test_streamed_arrays_are_the_stored_ones_and_none_is_written(tmp_path, images):
    """With store_arrays false, each loader makes from the raw file the very array the
    stored mode stores (shape, dtype, pixels), and no array file is written."""
    stored = ImageArrayDataset(path=str(tmp_path / "stored"))
    streamed = ImageArrayDataset(path=str(tmp_path / "streamed"), store_arrays=False)
    stored.save(_plan(images["loaders"]))
    streamed.save(_plan(images["loaders"]))
    assert _npy_files(tmp_path / "streamed") == []
    assert (tmp_path / "streamed" / "manifest.json").is_file()
    from_arrays, from_files = stored.load(), streamed.load()
    assert sorted(from_files) == sorted(from_arrays) == sorted(images["loaders"])
    for partition, load in from_files.items():
        assert load.shape == from_arrays[partition].shape
        array = load()
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, from_arrays[partition]())


def test_a_raw_file_changed_or_deleted_after_the_check_is_refused_naming_it(
    tmp_path, images
):
    """Training never uses bytes the features step did not check: a file rewritten,
    grown (read no further than its checked size and one byte), or deleted."""
    dataset = ImageArrayDataset(path=str(tmp_path / "streamed"), store_arrays=False)
    dataset.save(_plan(images["loaders"]))
    loaders = dataset.load()
    folder = images["folder"]
    changed = folder / "a" / "a_000.png"
    Image.new("RGB", (24, 24), "red").save(changed)
    with (folder / "a" / "a_001.jpg").open("r+b") as grown:
        grown.truncate(64 * 2**20)  # sparse: no disk used
    (folder / "b" / "b_001.jpg").unlink()
    with pytest.raises(DatasetError) as raised:
        loaders["a/a_000.png"]()
    assert str(raised.value) == (
        f"'{changed.as_posix()}' changed since the features step checked it (its "
        "size or SHA-256 differs from image_arrays' manifest): run `kedro run` to "
        "check the raw images again"
    )
    counted = ReadCountingFileSystem()
    grown_loader = replace(loaders["a/a_001.jpg"], fs=counted)
    with pytest.raises(DatasetError, match=r"a_001\.jpg' changed since the features"):
        grown_loader()
    assert counted.returned == [grown_loader.file_bytes + 1]
    with pytest.raises(DatasetError, match=r"b/b_001\.jpg' is gone since the features"):
        loaders["b/b_001.jpg"]()
    _assert_is_preprocessed(loaders["a/a_002.png"], images["loaders"]["a/a_002.png"])


class ReadCountingFileSystem(LocalFileSystem):
    """The local filesystem, keeping the length of what each ``cat_file`` returned."""

    cachable = False  # a new instance, with its own count, each time

    def __init__(self) -> None:
        super().__init__()
        self.returned: list[int] = []

    def cat_file(self, path: str, start=None, end=None, **kwargs) -> bytes:
        content = super().cat_file(path, start=start, end=end, **kwargs)
        self.returned.append(len(content))
        return content


def test_streaming_save_checks_every_file_as_the_stored_one(
    tmp_path, images, load_partitions, caplog
):
    """Unusable files are skipped or stop the save, as in the stored mode; a content
    the last manifest lists as checked is not decoded again."""
    (images["folder"] / "a" / "broken.png").write_bytes(b"not an image")
    loaders = load_partitions(images["folder"])
    dataset = ImageArrayDataset(path=str(tmp_path / "streamed"), store_arrays=False)
    plan = _plan(loaders)
    with pytest.raises(DatasetError, match=r"'a/broken\.png' is not a readable image"):
        dataset.save(plan)
    assert not dataset.exists()
    with caplog.at_level(logging.INFO):
        dataset.save(replace(plan, on_invalid_image="skip"))
        assert "Skipping 'a/broken.png' is not a readable image" in caplog.text
        assert sorted(dataset.load()) == sorted(images["loaders"])
        caplog.clear()
        dataset.save(replace(plan, on_invalid_image="skip"))
    assert f"Checked {IMAGES} images (0 decoded, {IMAGES} known)" in caplog.text


def test_switching_store_arrays_rebuilds_and_never_mixes(tmp_path, images, caplog):
    """Each mode refuses the other's manifest until a save rebuilds it; switching to
    streaming names the arrays left behind; switching back reuses them."""
    path = str(tmp_path / "arrays")
    stored = ImageArrayDataset(path=path)
    streamed = ImageArrayDataset(path=path, store_arrays=False)
    stored.save(_plan(images["loaders"]))
    with pytest.raises(DatasetError) as raised:
        streamed.load()
    assert str(raised.value) == (
        f"image_arrays was saved with store_arrays true ({path}/manifest.json), the "
        "catalog now says false: run `kedro run` to rebuild it"
    )
    with caplog.at_level(logging.WARNING):
        streamed.save(_plan(images["loaders"]))
    assert f"arrays of an earlier run remain in {path}/{SIZE}x{SIZE}x3" in caplog.text
    assert all(
        isinstance(load, StreamedArrayLoader) for load in streamed.load().values()
    )
    with pytest.raises(DatasetError, match="saved with store_arrays false"):
        stored.load()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        stored.save(_plan(images["loaders"]))
    assert _preprocessed_count(caplog) == 0
    assert not any(
        isinstance(load, StreamedArrayLoader) for load in stored.load().values()
    )


def test_streaming_needs_raw_images_that_name_their_files(tmp_path, images):
    """Loaders without a URL (not an ImageFolderDataset's) are refused, naming one."""
    plan = _counted_plan(images["loaders"], Counter())  # functions, without a URL
    dataset = ImageArrayDataset(path=str(tmp_path / "streamed"), store_arrays=False)
    with pytest.raises(
        DatasetError, match="raw_images gave function for 'a/a_000.png'"
    ):
        dataset.save(plan)


def test_raw_files_options_open_the_raw_filesystem(
    tmp_path, images, memory_filesystem, raw_images_entry
):
    """raw_files' credentials and fs_args open the raw files' filesystem, as those of
    raw_images open its own; any other key is refused in one line."""
    for partition, load in images["loaders"].items():
        memory_filesystem.pipe_file(f"/raw/{partition}", load())
    raw = ImageFolderDataset(
        path="memory:///raw", dataset=copy.deepcopy(raw_images_entry["dataset"])
    ).load()
    dataset = ImageArrayDataset(
        path=str(tmp_path / "streamed"),
        store_arrays=False,
        raw_files={"credentials": {"token": "secret"}, "fs_args": {"retries": RETRIES}},
    )
    dataset.save(_plan(raw))
    loaders = dataset.load()
    assert {load.fs.storage_options["token"] for load in loaders.values()} == {"secret"}
    assert loaders["a/a_000.png"].fs.storage_options["retries"] == RETRIES
    _assert_is_preprocessed(loaders["a/a_000.png"], images["loaders"]["a/a_000.png"])
    with pytest.raises(
        DatasetError, match="raw_files takes credentials and fs_args, not key"
    ):
        ImageArrayDataset(path="arrays", raw_files={"key": "secret"})


@pytest.mark.parametrize("store_arrays", [True, False], ids=["stored", "streamed"])
def test_files_of_other_formats_are_refused_naming_file_and_formats(
    tmp_path, images, load_partitions, other_formats, store_arrays, caplog
):
    """Text, TIFF or EPS in a class folder: skipped, or the save stops, in one line
    naming the file and the accepted formats (not Pillow's in-memory buffer)."""
    for name, content in {**other_formats, "notes.png": b"plain text"}.items():
        (images["folder"] / "a" / name).write_bytes(content)
    plan = _plan(load_partitions(images["folder"]))
    dataset = ImageArrayDataset(
        path=str(tmp_path / "arrays"), store_arrays=store_arrays
    )
    accepted = "not an image file of an accepted format (PNG, JPEG, BMP, GIF, WebP)"
    with pytest.raises(DatasetError) as raised:
        dataset.save(plan)
    assert str(raised.value) == f"'a/drawing.eps' is not a readable image: {accepted}"
    with caplog.at_level(logging.WARNING):
        dataset.save(replace(plan, on_invalid_image="skip"))
    skipped = [r.getMessage() for r in caplog.records if "Skipping" in r.message]
    assert skipped == [
        f"Skipping 'a/{name}' is not a readable image: {accepted}"
        for name in ("drawing.eps", "notes.png", "scan.tif")
    ]
    assert sorted(dataset.load()) == sorted(images["loaders"])


def test_arrays_are_kept_under_the_preprocessing_version(
    tmp_path, images, monkeypatch, caplog
):
    """Arrays live in a folder named after the parameters and PREPROCESSING_VERSION:
    edited preprocessing code preprocesses every image again, and arrays that other
    code made are refused when loaded, never silently trained on."""
    path = tmp_path / "arrays"
    dataset = ImageArrayDataset(path=str(path))
    dataset.save(_plan(images["loaders"]))
    folder = path / f"{SIZE}x{SIZE}x{CHANNELS}-{PREPROCESSING_VERSION}"
    assert len(_npy_files(folder)) == IMAGES

    monkeypatch.setattr(image_features, "PREPROCESSING_VERSION", "edited")
    with pytest.raises(DatasetError) as raised:
        dataset.load()
    assert str(raised.value) == (
        f"its manifest ({path}/manifest.json) was made by another preprocessing.py "
        "or Pillow than this one (edited): run `kedro run` to rebuild it"
    )
    with caplog.at_level(logging.INFO):
        dataset.save(_plan(images["loaders"]))
    assert _preprocessed_count(caplog) == IMAGES
    assert len(_npy_files(path / f"{SIZE}x{SIZE}x{CHANNELS}-edited")) == IMAGES
    assert len(dataset.load()) == IMAGES


def test_streamed_manifest_is_checked_again_under_new_preprocessing(
    tmp_path, images, monkeypatch, caplog
):
    """The streaming manifest records PREPROCESSING_VERSION too: other code's manifest
    is refused when loaded, and the next save decodes every file again."""
    dataset = ImageArrayDataset(path=str(tmp_path / "streamed"), store_arrays=False)
    dataset.save(_plan(images["loaders"]))
    monkeypatch.setattr(image_features, "PREPROCESSING_VERSION", "edited")
    with pytest.raises(
        DatasetError, match="made by another preprocessing.py or Pillow"
    ):
        dataset.load()
    with caplog.at_level(logging.INFO):
        dataset.save(_plan(images["loaders"]))
    assert f"Checked {IMAGES} images ({IMAGES} decoded, 0 known)" in caplog.text
    assert len(dataset.load()) == IMAGES


@pytest.mark.parametrize("store_arrays", [True, False], ids=["stored", "streamed"])
def test_the_manifest_keeps_the_class_folders_and_the_skipped_files(
    tmp_path, images, store_arrays
):
    """Both modes record what index_images needs, so it never lists the folder."""
    dataset = ImageArrayDataset(
        path=str(tmp_path / "arrays"), store_arrays=store_arrays
    )
    plan = _plan(images["loaders"])
    dataset.save(
        replace(
            plan,
            classes=[*plan.classes, "empty"],
            skipped={"loose.png": "'loose.png' is not inside a class folder"},
        )
    )
    loaded = dataset.load()
    assert loaded.classes == sorted({*plan.classes, "empty"})
    assert loaded.skipped == {"loose.png": "'loose.png' is not inside a class folder"}
    assert sorted(loaded) == sorted(images["loaders"])


def test_arrays_never_built_say_which_run_builds_them(tmp_path):
    """`kedro run --pipeline data_processing` on a fresh project: one line saying what
    to run, as the catalog raises it."""
    catalog = DataCatalog({"image_arrays": ImageArrayDataset(path=str(tmp_path / "a"))})
    with pytest.raises(DatasetError) as error:
        catalog.load("image_arrays")
    assert str(error.value) == (
        "image_arrays: not built yet: run `kedro run` (or `kedro run --pipeline "
        "features`) first"
    )


@pytest.mark.parametrize(
    ("manifest", "store_arrays"),
    [
        ({"size": 20, "channels": 3, "arrays": {"a/0.png": "20x20x3/ab/ab.npy"}}, True),
        (
            {
                "size": 20,
                "channels": 3,
                "classes": ["a"],
                "skipped": {},
                "raw_files": {"a/0.png": {"url": "/x/a/0.png", "sha256": "ab"}},
            },
            False,
        ),
    ],
    ids=["without classes", "streamed without file sizes"],
)
def test_a_manifest_of_an_older_project_version_is_refused_in_one_line(
    tmp_path, manifest, store_arrays
):
    """A manifest without what this version keeps (the class folders; streamed, each
    file's size) is rebuilt by the next `kedro run`, not half read."""
    folder = tmp_path / "arrays"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    dataset = ImageArrayDataset(path=str(folder), store_arrays=store_arrays)
    with pytest.raises(DatasetError, match=r"older version.*run `kedro run`") as error:
        dataset.load()
    assert "\n" not in str(error.value)
