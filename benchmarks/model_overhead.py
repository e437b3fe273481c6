"""Benchmark: per-request overhead of the logged model's predict, against bare Keras.

    python benchmarks/model_overhead.py              # about 2 minutes on 2 cores
    python benchmarks/model_overhead.py --calls 50   # quicker, noisier

Uses the Python environment it runs in. In a temporary folder it bakes the starter,
trains the default project for one epoch, loads the logged model in this process
with ``mlflow.pyfunc.load_model`` and times, alternately in ``--rounds`` rounds of
``--calls`` calls, at batch 1 and 32 of the embedded PNG files:

- ``keras``: the bare network, ``predict_on_batch`` on preprocessed images;
- ``direct``: the same work by hand (``preprocess_payload`` then ``classify``);
- ``logged``: ``model.predict(table)``, the logged model as served;
- ``logged, Kedro's runner``: the same with Kedro's ``SequentialRunner`` (what the
  project's lean runner replaces), Kedro's loggers at WARNING;
- ``logged, kedro-mlflow patched``: with ``upstream/kedro-mlflow-predict.patch``
  applied in memory (one hook manager per model, no catalog deep copy per call).

Prints a Markdown table of median ms per call and ratios (stdout; progress on stderr).
Targets (issue 13): logged <= 2x keras at batch 1, <= 1.2x at batch 32.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
PROJECT_NAME = "Bench Overhead"
PACKAGE = "bench_overhead"
STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the table."""
    elapsed = time.perf_counter() - STARTED
    print(f"[overhead {elapsed:6.1f}s] {message}", file=sys.stderr)  # noqa: T201


def trained_project(root: Path) -> Path:
    """The default project, baked from this repository and trained for one epoch."""
    from cookiecutter.main import cookiecutter  # noqa: PLC0415  the starter's tool

    project = Path(
        cookiecutter(
            str(REPOSITORY),
            no_input=True,
            output_dir=str(root),
            extra_context={"project_name": PROJECT_NAME},
        )
    )
    log("training for one epoch")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(KEDRO_DISABLE_TELEMETRY="1", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--params", "train_classifier.epochs=1"],
        cwd=project,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return project


def patched_predict(
    self: Any, context: Any, model_input: Any, params: Any = None
) -> Any:
    """``KedroPipelineModel.predict`` as ``upstream/kedro-mlflow-predict.patch`` has it."""
    from kedro.framework.hooks import _create_hook_manager  # noqa: PLC0415
    from kedro.io import DataCatalog, MemoryDataset  # noqa: PLC0415
    from kedro.utils import load_obj  # noqa: PLC0415

    params = params or {}
    runner_class = params.pop("runner", None)
    runner = (
        self.runner
        if runner_class in (None, type(self.runner).__name__)
        else load_obj(runner_class, "kedro.runner")()
    )
    if getattr(self, "_hook_manager", None) is None:
        self._hook_manager = _create_hook_manager()
    for name, value in params.items():
        self.loaded_catalog[f"params:{name}"].save(value)
    # Share the loaded artifacts and parameters; every other dataset is new per call.
    shared = set(self.initial_catalog.keys()) - {self.input_name}
    runtime_catalog = DataCatalog(
        datasets={
            **{name: self.loaded_catalog[name] for name in shared},
            self.input_name: MemoryDataset(
                model_input, copy_mode=self.copy_mode.get(self.input_name)
            ),
        }
    )
    run_output = runner.run(
        pipeline=self.pipeline, catalog=runtime_catalog, hook_manager=self._hook_manager
    )
    return run_output[self.output_name].load()


def timed(call: Callable[[], Any], calls: int) -> float:
    """Milliseconds per call, over ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return 1000 * (time.perf_counter() - start) / calls


def measure(model_uri: str, images: list[bytes], args: argparse.Namespace) -> dict:
    """Median ms per call of each side, at each batch size."""
    import mlflow  # noqa: PLC0415  slow imports, after training
    import pandas as pd  # noqa: PLC0415
    from kedro.runner import SequentialRunner  # noqa: PLC0415
    from kedro_mlflow.mlflow import KedroPipelineModel  # noqa: PLC0415

    model = mlflow.pyfunc.load_model(model_uri)
    logging.getLogger("kedro").setLevel(logging.WARNING)
    pipeline_model = model.unwrap_python_model()
    catalog = pipeline_model.loaded_catalog
    nodes = sys.modules[f"{PACKAGE}.pipelines.inference.nodes"]
    keras_model = catalog.load("classifier")
    image, limits = (
        catalog.load("params:image"),
        catalog.load("params:preprocess_payload"),
    )
    class_names = catalog.load("class_names")
    lean_runner, original_predict = pipeline_model.runner, KedroPipelineModel.predict
    kedro_runner = SequentialRunner()

    results: dict[str, dict[str, list[float]]] = {}
    for batch in (1, 32):
        table = pd.DataFrame({"image": [images[i % len(images)] for i in range(batch)]})
        preprocessed = nodes.preprocess_payload(table, image, limits)

        def with_kedro_runner(table: pd.DataFrame = table) -> Any:
            pipeline_model.runner = kedro_runner
            try:
                return model.predict(table)
            finally:
                pipeline_model.runner = lean_runner

        def patched(table: pd.DataFrame = table) -> Any:
            KedroPipelineModel.predict = patched_predict
            try:
                return model.predict(table)
            finally:
                KedroPipelineModel.predict = original_predict

        sides = {
            "keras": lambda x=preprocessed: keras_model.predict_proba(x),
            "direct": lambda t=table: nodes.classify(
                nodes.preprocess_payload(t, image, limits), keras_model, class_names
            ),
            "logged": lambda t=table: model.predict(t),
            "logged, Kedro's runner": with_kedro_runner,
            "logged, kedro-mlflow patched": patched,
        }
        assert pipeline_model.runner is lean_runner
        for call in sides.values():  # warm-up: traces, caches
            timed(call, 10)
        rows = results[f"batch {batch}"] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            log(f"batch {batch}, round {round_ + 1}/{args.rounds}")
            for name, call in sides.items():
                rows[name].append(timed(call, args.calls))
    return results


def table(results: dict[str, dict[str, list[float]]]) -> str:
    """Median ms per call and the ratio to bare Keras and to the direct work."""
    lines = [
        "| batch | side | ms per call | vs keras | vs direct |",
        "|---|---|---:|---:|---:|",
    ]
    for batch, rows in results.items():
        medians = {name: statistics.median(times) for name, times in rows.items()}
        for name, value in medians.items():
            lines.append(
                f"| {batch} | {name} | {value:.2f} | {value / medians['keras']:.2f}x "
                f"| {value / medians['direct']:.2f}x |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.pop("MODEL_KEDRO_LOGS", None)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder:
        project = trained_project(Path(folder))
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
        files = sorted((project / "data/01_raw/images").rglob("*.png"))[:32]
        results = measure(f"models:/{PACKAGE}/1", [f.read_bytes() for f in files], args)
    print(table(results))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
