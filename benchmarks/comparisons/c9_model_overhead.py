"""9: per-request overhead of the logged model's predict, against bare Keras.

In one fresh process (this module run as a script), the logged model is loaded with
``mlflow.pyfunc.load_model`` and these sides are timed alternately, ``--repeats``
rounds of ``--overhead-calls`` calls, at batch 1 and 32 of the drawn shapes' files:

- ``keras``: the bare network, Keras's ``predict_on_batch`` on preprocessed images;
- ``shared model``: the project's call of the same network (``SharedKerasModel``);
- ``direct``: the same work by hand (``preprocess_payload`` then ``classify``);
- ``logged``: ``model.predict(table)``, the logged model as served, with the
  project's lean runner (pipelines/inference/runner.py);
- ``logged, Kedro's runner``: the same with Kedro's ``SequentialRunner``, Kedro's
  loggers at WARNING (what the lean runner replaces);
- ``logged, kedro-mlflow patched``: with ``benchmarks/upstream/kedro-mlflow-predict.patch``
  applied in memory (one hook manager per model, no catalog deep copy per call).

Targets (issue 13): logged <= 2x Keras at batch 1, <= 1.2x at batch 32.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as the probe script: harness is one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import PACKAGE, Bench, Option, Row, log, run_command  # noqa: E402

NUMBER = 9
KEY = "model_overhead"
OPTIONS = {
    "overhead_calls": Option(
        "calls per round of each predict side", default=200, tiny=5
    ),
}
SIDES = (
    "keras",
    "shared model",
    "direct",
    "logged",
    "logged, Kedro's runner",
    "logged, kedro-mlflow patched",
)


def measure(bench: Bench) -> dict[str, Any]:
    """Runs this module as a script on the setup's model: a process of its own."""
    space = bench.space
    output = space.root / "model-overhead.json"
    files = [p for p in bench.image_files("shapes") if p.suffix == ".png"][:32]
    run_command(
        space,
        [
            sys.executable,
            Path(__file__).resolve(),
            "--model-uri",
            f"models:/{PACKAGE}/1",
        ]
        + ["--package", PACKAGE, "--tracking-uri", space.tracking_uri]
        + ["--output", output]
        + ["--rounds", str(bench.args.repeats)]
        + ["--calls", str(bench.args.overhead_calls), *files],
        "model-overhead",
    )
    return json.loads(output.read_text())


def rows(result: dict[str, Any], settings: Any) -> list[Row]:
    found = []
    for batch, times in result.items():
        ms = {name: statistics.median(values) for name, values in times.items()}
        target = "<= 2x" if batch == "batch 1" else "<= 1.2x"
        for name in SIDES[3:]:
            found.append(
                Row(
                    NUMBER,
                    f"predict, {batch}, ms: {name} vs bare Keras",
                    f"{ms[name]:.2f}",
                    f"{ms['keras']:.2f} (Keras predict_on_batch; "
                    f"{ms['shared model']:.2f} the project's call); "
                    f"{ms['direct']:.2f} preprocessing + Keras by hand "
                    f"({ms[name] / ms['direct']:.2f}x)",
                    ms[name] / ms["keras"],
                    target,
                )
            )
    return found


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


def probe(
    model_uri: str, package: str, images: list[bytes], rounds: int, calls: int
) -> dict:
    """Ms per call of each side, each round, at batch 1 and 32 (in this process)."""
    import mlflow  # noqa: PLC0415  slow imports, after training
    import pandas as pd  # noqa: PLC0415
    from kedro.runner import SequentialRunner  # noqa: PLC0415
    from kedro_mlflow.mlflow import KedroPipelineModel  # noqa: PLC0415

    model = mlflow.pyfunc.load_model(model_uri)
    logging.getLogger("kedro").setLevel(logging.WARNING)
    pipeline_model = model.unwrap_python_model()
    catalog = pipeline_model.loaded_catalog
    nodes = sys.modules[f"{package}.pipelines.inference.nodes"]
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
            "keras": lambda x=preprocessed: keras_model.model.predict_on_batch(x),
            "shared model": lambda x=preprocessed: keras_model.predict_proba(x),
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
        for round_ in range(rounds):
            log(f"batch {batch}, round {round_ + 1}/{rounds}")
            for name, call in sides.items():
                rows[name].append(timed(call, calls))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """The probe: time every side in this process; write the results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--package", required=True, help="the project's package")
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("images", type=Path, nargs="+")
    args = parser.parse_args(argv)
    import mlflow  # noqa: PLC0415  slow import, in the probe only

    mlflow.set_tracking_uri(args.tracking_uri)
    images = [path.read_bytes() for path in args.images]
    results = probe(args.model_uri, args.package, images, args.rounds, args.calls)
    args.output.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
