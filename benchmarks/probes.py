"""In-process measurements that `run.py` starts in fresh Python processes.

    python benchmarks/probes.py throughput --project P --env E --images DIR --output F
    python benchmarks/probes.py predict --model-uri URI --tracking-uri T --keras-file K --images DIR --output F
    python benchmarks/probes.py stages --project P --env E --params k=v,... --output F

Each writes its results as JSON to ``--output``. Both sides of a comparison run
alternately, ``--repeats`` times, in the same process, on the same files.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted, alternating classes (round robin)."""
    by_class = [
        sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(folder.iterdir())
        if d.is_dir()
    ]
    longest = max(len(files) for files in by_class)
    return [files[i] for i in range(longest) for files in by_class if i < len(files)]


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Images per second: the project's training input vs image_dataset_from_directory.

    The project side is built as `kedro run` builds it: the features node stores
    each image of the project's raw_images once in the image_arrays dataset (timed:
    ``cache_seconds``), and ``input_pipeline.array_batches`` streams those arrays,
    shuffled, in training batches, as the training node does.
    """
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    metadata = bootstrap_project(args.project)
    package = metadata.package_name
    input_pipeline = importlib.import_module(f"{package}.input_pipeline")
    features = importlib.import_module(f"{package}.pipelines.features.nodes")
    with KedroSession.create(project_path=args.project, env=args.env) as session:
        catalog = session.load_context().catalog
        raw_images = catalog.load("raw_images")
        parameters = catalog.load("parameters")
        image = parameters["image"]
        # As `kedro run` does: the features node stores each image's array once.
        start = time.perf_counter()
        catalog.save(
            "image_arrays",
            features.preprocess_images(
                raw_images, parameters["preprocess_images"], image
            ),
        )
        arrays = catalog.load("image_arrays")
        cache_seconds = time.perf_counter() - start
        partitions = sorted(arrays)  # the files kept: a skipped one has no array
    batch_size = parameters["train_classifier"]["batch_size"]
    seed = parameters["train_classifier"]["seed"]
    class_names = sorted({p.split("/")[0] for p in partitions})
    project_batches = input_pipeline.array_batches(
        loaders=[arrays[p] for p in partitions],
        labels=[class_names.index(p.split("/")[0]) for p in partitions],
        size=image["size"],
        channels=image["channels"],
        batch_size=batch_size,
        shuffle_seed=seed,
    )
    keras_batches = keras.utils.image_dataset_from_directory(
        args.images,
        color_mode="rgb" if image["channels"] == 3 else "grayscale",  # noqa: PLR2004
        image_size=(image["size"], image["size"]),
        batch_size=batch_size,
        shuffle=True,
        seed=seed,
        verbose=False,
    ).prefetch(tf.data.AUTOTUNE)

    def one_pass(batches: tf.data.Dataset) -> float:
        """Seconds to stream every image once, as a training epoch reads them."""
        start = time.perf_counter()
        count = sum(int(images.shape[0]) for images, _ in batches)
        seconds = time.perf_counter() - start
        if count != len(partitions):
            raise RuntimeError(f"streamed {count} images, expected {len(partitions)}")
        return seconds

    one_pass(project_batches)  # warm-up: tracing, thread pools, page cache
    one_pass(keras_batches)
    seconds: dict[str, list[float]] = {"project": [], "keras": []}
    for _ in range(args.repeats):
        seconds["project"].append(one_pass(project_batches))
        seconds["keras"].append(one_pass(keras_batches))
    return {
        "images": len(partitions),
        "batch_size": batch_size,
        "cache_seconds": cache_seconds,
        "seconds": seconds,
        "images_per_second": {
            side: len(partitions) / statistics.median(values)
            for side, values in seconds.items()
        },
    }


def _decode_by_hand(data: bytes, size: int, channels: int) -> Any:
    """What a user writes to feed a Keras model from file bytes."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    image = Image.open(io.BytesIO(data)).convert("RGB" if channels == 3 else "L")  # noqa: PLR2004
    image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32).reshape(size, size, channels) / 255.0


def _median_call_ms(call: Callable[[], Any], calls: int) -> float:
    """The median duration of ``calls`` consecutive calls, in milliseconds."""
    durations = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        durations.append(time.perf_counter() - start)
    return 1000 * statistics.median(durations)


def predict(args: argparse.Namespace) -> dict[str, Any]:
    """Milliseconds per call: the logged model's predict vs calling Keras directly.

    ``pyfunc`` is ``mlflow.pyfunc.load_model(...).predict`` on a table of image file
    bytes, with Kedro's loggers as configured on import (INFO, through rich) and at
    WARNING, as a served deployment would set them. ``keras`` is the fastest direct
    call of the same network, ``model(x, training=False)`` or ``predict_on_batch(x)``,
    on the same images already decoded; ``by_hand`` adds decoding the bytes with PIL.
    """
    import keras  # noqa: PLC0415
    import mlflow  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    mlflow.set_tracking_uri(args.tracking_uri)
    model = mlflow.pyfunc.load_model(args.model_uri)
    network = keras.models.load_model(args.keras_file)
    _, size, _, channels = network.input_shape
    files = image_files(args.images)
    kedro_loggers = [logging.getLogger(name) for name in ("kedro", "kedro_mlflow")]
    default_levels = [logger.level for logger in kedro_loggers]

    def set_kedro_level(levels: list[int]) -> None:
        for logger, level in zip(kedro_loggers, levels, strict=True):
            logger.setLevel(level)

    sides: dict[str, Callable[[], Any]] = {}
    results: dict[str, Any] = {}
    for batch in args.batches:
        payload = [files[i % len(files)].read_bytes() for i in range(batch)]
        frame = pd.DataFrame({"image": payload})
        decoded = np.stack([_decode_by_hand(b, size, channels) for b in payload])
        sides = {
            "pyfunc_default_logging": lambda f=frame: model.predict(f),
            "pyfunc_warning_logging": lambda f=frame: model.predict(f),
            "keras_call": lambda x=decoded: network(x, training=False),
            "keras_predict_on_batch": lambda x=decoded: network.predict_on_batch(x),
            "by_hand": lambda p=payload: network.predict_on_batch(
                np.stack([_decode_by_hand(b, size, channels) for b in p])
            ),
        }
        timings: dict[str, list[float]] = {name: [] for name in sides}
        for repeat in range(args.repeats + 1):  # the first round is a warm-up
            for name, call in sides.items():
                quiet = name == "pyfunc_warning_logging"
                set_kedro_level([logging.WARNING] * 2 if quiet else default_levels)
                milliseconds = _median_call_ms(call, args.calls)
                if repeat:
                    timings[name].append(milliseconds)
        set_kedro_level(default_levels)
        medians = {name: statistics.median(values) for name, values in timings.items()}
        medians["keras"] = min(medians["keras_call"], medians["keras_predict_on_batch"])
        results[str(batch)] = {"milliseconds": timings, "median_ms": medians}
    return {
        "kedro_logger_levels": [logging.getLevelName(x) for x in default_levels],
        "batches": results,
    }


# The scale benchmark's stages: which nodes (by name) make up each.
STAGES = {
    "index": ("index_images",),
    "preprocess": ("preprocess_images",),
    "train": ("train_classifier",),
    "evaluate": (
        "predict_test_images",
        "compute_test_metrics",
        "report_per_class",
        "plot_confusion_matrix",
        "plot_training_curves",
    ),
}


def stages(args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per stage of one `kedro run` of the default pipeline, in this process.

    A hook times every node and every dataset load and save; ``list`` is loading
    ``raw_images`` (listing the folder or bucket), ``preprocess`` the features node and
    the save of ``image_arrays`` (where each file is read and preprocessed), ``log``
    what follows the last node (kedro-mlflow logs and registers the model in its
    after_pipeline_run), ``other`` the rest of the nodes. ``total`` is the session's run, from the first hook to the end.
    """
    from kedro.framework.hooks import hook_impl  # noqa: PLC0415
    from kedro.framework.session import KedroSession  # noqa: PLC0415
    from kedro.framework.startup import bootstrap_project  # noqa: PLC0415

    class Timer:
        def __init__(self) -> None:
            self.nodes: dict[str, float] = {}
            self.loads: dict[str, float] = {}
            self.saves: dict[str, float] = {}
            self.started: dict[str, float] = {}
            self.first = self.last_node_end = 0.0

        @hook_impl
        def before_pipeline_run(self) -> None:
            self.first = time.perf_counter()

        @hook_impl
        def before_node_run(self, node: Any) -> None:
            self.started[node.name] = time.perf_counter()

        @hook_impl
        def after_node_run(self, node: Any) -> None:
            self.last_node_end = time.perf_counter()
            self.nodes[node.name] = self.last_node_end - self.started[node.name]

        @hook_impl
        def before_dataset_loaded(self, dataset_name: str) -> None:
            self.started["load:" + dataset_name] = time.perf_counter()

        @hook_impl
        def before_dataset_saved(self, dataset_name: str) -> None:
            self.started["save:" + dataset_name] = time.perf_counter()

        @hook_impl
        def after_dataset_saved(self, dataset_name: str) -> None:
            start = self.started.pop("save:" + dataset_name)
            self.saves[dataset_name] = time.perf_counter() - start

        @hook_impl
        def after_dataset_loaded(self, dataset_name: str) -> None:
            start = self.started.pop("load:" + dataset_name)
            self.loads[dataset_name] = self.loads.get(dataset_name, 0.0) + (
                time.perf_counter() - start
            )

    started = time.perf_counter()
    bootstrap_project(args.project)
    timer = Timer()
    extra = dict(item.split("=", 1) for item in args.params.split(",") if item)
    runtime_params = {}
    for dotted, text in extra.items():
        *parents, key = dotted.split(".")
        node = runtime_params
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = yaml_value(text)
    with KedroSession.create(
        project_path=args.project, env=args.env, runtime_params=runtime_params
    ) as session:
        session._hook_manager.register(timer)  # noqa: SLF001  a benchmark's own hook
        session.run()
    ended = time.perf_counter()
    seconds = {"list": timer.loads.get("raw_images", 0.0)}
    for stage, names in STAGES.items():
        seconds[stage] = sum(timer.nodes.get(name, 0.0) for name in names)
    staged = {name for names in STAGES.values() for name in names}
    # The features node hands the work to the image_arrays dataset, which preprocesses
    # while it saves (each file read, digested and, if new, preprocessed).
    seconds["preprocess"] += timer.saves.get("image_arrays", 0.0)
    seconds["other"] = sum(v for k, v in timer.nodes.items() if k not in staged)
    seconds["log"] = ended - timer.last_node_end
    seconds["total"] = ended - timer.first
    seconds["process"] = ended - started
    return {
        "seconds": seconds,
        "nodes": timer.nodes,
        "loads": timer.loads,
        "saves": timer.saves,
    }


def yaml_value(text: str) -> Any:
    """A --params value as Kedro reads it (5 -> int, null -> None, ...)."""
    import yaml  # noqa: PLC0415

    return yaml.safe_load(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("throughput", "predict"):
        command = commands.add_parser(name)
        command.add_argument("--images", type=Path, required=True)
        command.add_argument("--output", type=Path, required=True)
        command.add_argument("--repeats", type=int, default=3)
    throughput_command = commands.choices["throughput"]
    throughput_command.add_argument("--project", type=Path, required=True)
    throughput_command.add_argument("--env", default="local")
    predict_command = commands.choices["predict"]
    predict_command.add_argument("--model-uri", required=True)
    predict_command.add_argument("--tracking-uri", required=True)
    predict_command.add_argument("--keras-file", type=Path, required=True)
    predict_command.add_argument("--calls", type=int, default=20)
    predict_command.add_argument(
        "--batches", type=int, nargs="+", default=[1, 32], help="images per request"
    )
    stages_command = commands.add_parser("stages")
    stages_command.add_argument("--project", type=Path, required=True)
    stages_command.add_argument("--env", default="local")
    stages_command.add_argument("--params", default="")
    stages_command.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    probes = {"throughput": throughput, "predict": predict, "stages": stages}
    result = probes[args.command](args)
    args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
