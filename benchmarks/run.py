"""Benchmarks: a project generated from this starter against what a user writes by hand.

    python benchmarks/run.py            # the default size (6 to 8 minutes on 2 cores)
    python benchmarks/run.py --tiny     # every step on a tiny size (CI; about 2 minutes)

Uses the Python environment it runs in (kedro, mlflow, tensorflow installed; no package
is installed). In a temporary folder it generates a project with `kedro new
--starter=<this repository>`, draws folders of real image files, then measures each
comparison in one run on this machine, both sides alternately, ``--repeats`` times,
and prints a Markdown table of medians and ratios (stdout; progress goes to stderr).
See benchmarks/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent
sys.path.insert(0, str(REPOSITORY / "scripts"))
from make_example_images import make_example_images  # noqa: E402

PROJECT_NAME = "Bench Shapes"
PACKAGE = "bench_shapes"
FOLDER = "bench-shapes"
ALL = (1, 2, 3, 4, 5, 6, 7)
STARTED = time.perf_counter()

# What --tiny sets; every value can still be given on the command line.
TINY = {
    "images": 30,
    "pixels": 48,
    "image_size": 32,
    "repeats": 1,
    "epochs": 1,
    "first_run_epochs": 1,
    "accuracy_epochs": 1,
    "memory_epochs": 1,
    "requests": 8,
    "calls": 3,
}
DEFAULTS = {
    "images": 600,
    "pixels": 128,
    "image_size": 64,
    "repeats": 3,
    "epochs": 5,
    "first_run_epochs": None,  # the project's default parameters
    "accuracy_epochs": None,
    "memory_epochs": 1,
    "requests": 96,
    "calls": 20,
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument

    def sized(option: str, what: str) -> None:
        """An option whose default depends on --tiny."""
        key = option.removeprefix("--").replace("-", "_")
        shown = {
            mode: "the project's parameters" if value is None else value
            for mode, value in (("default", DEFAULTS[key]), ("--tiny", TINY[key]))
        }
        add(
            option,
            type=int,
            help=f"{what} (default: {shown['default']}; --tiny: {shown['--tiny']})",
        )

    add("--tiny", action="store_true", help="tiny sizes, for CI (about 2 minutes)")
    sized("--images", "images in the data folder, in 3 classes")
    sized("--pixels", "side in pixels of the image files")
    sized("--image-size", "the project's image_size answer (side the network sees)")
    sized("--repeats", "rounds of each comparison, both sides alternately")
    sized("--epochs", "epochs of comparison 2, early stopping off")
    sized("--first-run-epochs", "epochs of the first `kedro run` (6)")
    sized("--accuracy-epochs", "epochs of comparison 7")
    sized("--memory-epochs", "epochs of the runs of comparison 5")
    sized("--requests", "requests per served setting (4)")
    sized("--calls", "calls per round of in-process predict (3)")
    add(
        "--only",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=list(ALL),
        help="comma-separated comparisons to run, e.g. 1,3 (6 is the setup: it "
        "always runs)",
    )
    add("--workdir", type=Path, help="keep every file here (default: a temp folder)")
    add("--json", type=Path, help="also write every measurement to this JSON file")
    add(
        "--report",
        type=Path,
        help="print the table of an earlier run's --json file; measure nothing",
    )
    args = parser.parse_args(argv)
    for key, value in (TINY if args.tiny else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.images < 30:  # noqa: PLR2004
        parser.error("--images must be at least 30 (ten per class, for the split)")
    return args


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the table."""
    print(f"[bench {time.perf_counter() - STARTED:6.1f}s] {message}", file=sys.stderr)  # noqa: T201


# --- commands --------------------------------------------------------------------


@dataclass
class Workspace:
    root: Path
    environment: dict[str, str] = field(default_factory=dict)
    runs: int = 0

    @property
    def project(self) -> Path:
        return self.root / FOLDER

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.project / 'mlflow.db'}"

    def log_file(self, label: str) -> Path:
        self.runs += 1
        folder = self.root / "logs"
        folder.mkdir(exist_ok=True)
        return folder / f"{self.runs:03d}-{label}.log"


def command_environment(root: Path) -> dict[str, str]:
    """No MLflow leftovers, no telemetry prompt, this environment's bin on PATH (mlflow
    serve starts uvicorn from it), cookiecutter's replay files kept in ``root``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    config = root / "cookiecutter-config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "cookiecutters_dir": str(root / "cookiecutters"),
                "replay_dir": str(root / "cookiecutter_replay"),
            }
        )
    )
    environment.update(
        KEDRO_DISABLE_TELEMETRY="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONUNBUFFERED="1",
        COOKIECUTTER_CONFIG=str(config),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return environment


@dataclass(frozen=True)
class Finished:
    seconds: float
    peak_rss_mb: float
    log: Path


def run_command(
    space: Workspace, args: Sequence[str | Path], label: str, cwd: Path | None = None
) -> Finished:
    """Run a command to its end; its wall time and the peak RSS of it and its children."""
    log_path = space.log_file(label)
    with log_path.open("w") as output:
        start = time.perf_counter()
        process = subprocess.Popen(
            [str(a) for a in args],
            cwd=cwd or space.root,
            env=space.environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{label} exited {process.returncode} ({log_path}):\n{tail}")
    return Finished(seconds, usage.ru_maxrss / 1024, log_path)


def kedro(space: Workspace, *args: str, label: str) -> Finished:
    return run_command(
        space, [sys.executable, "-m", "kedro", *args], label, cwd=space.project
    )


def kedro_run(
    space: Workspace, env: str, params: dict[str, Any], label: str
) -> Finished:
    args = ["run", "--env", env]
    if params:
        args += ["--params", ",".join(f"{k}={v}" for k, v in params.items())]
    return kedro(space, *args, label=label)


def probe(space: Workspace, name: str, *args: str | Path) -> dict[str, Any]:
    output = space.root / f"{name}.json"
    run_command(
        space,
        [sys.executable, BENCHMARKS / "probes.py", name, *args, "--output", output],
        name,
    )
    return json.loads(output.read_text())


# --- the project, its data and the hand-written side -----------------------------


def make_images(folder: Path, count: int, pixels: int) -> Path:
    make_example_images(folder, math.ceil(count / 3), pixels)
    return folder


def add_data_environment(space: Workspace, env: str, images: Path) -> None:
    """A Kedro environment whose raw_images entry points at ``images``."""
    base = yaml.safe_load((space.project / "conf/base/catalog.yml").read_text())
    entry = dict(base["raw_images"], path=str(images))
    folder = space.project / "conf" / env
    folder.mkdir(exist_ok=True)
    (folder / "catalog.yml").write_text(yaml.safe_dump({"raw_images": entry}))


def split_folders(space: Workspace, env: str, images: Path) -> Path:
    """The project's last train/validation/test split as folders of hard links, for
    `image_dataset_from_directory`: the same files in the same sets on both sides."""
    destination = space.root / "splits" / env
    if destination.exists():
        return destination
    for split in ("train", "validation", "test"):
        table = space.project / "data" / "05_model_input" / f"{split}_split.csv"
        with table.open(newline="") as rows:
            for row in csv.DictReader(rows):
                source = images / row["partition"]
                target = destination / split / row["label"] / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copy2(source, target)
    return destination


def project_parameters(space: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    conf = space.project / "conf" / "base"
    image = yaml.safe_load((conf / "parameters.yml").read_text())["image"]
    training = yaml.safe_load((conf / "parameters_training.yml").read_text())
    return image, training["train_classifier"]


def baseline(
    space: Workspace,
    splits: Path,
    label: str,
    overrides: dict[str, Any] | None = None,
) -> tuple[Finished, dict[str, Any]]:
    """Run the hand-written script with the project's default training parameters,
    but for ``overrides`` (``{"--epochs": 5}``: flags of keras_baseline.py)."""
    image, params = project_parameters(space)
    network, augmentation = params["network"], params.get("augmentation", {})
    stopping = params["early_stopping"]
    args = {
        "--data": splits,
        "--output": space.root / "baseline-model.keras",
        "--image-size": image["size"],
        "--channels": image["channels"],
        "--batch-size": params["batch_size"],
        "--epochs": params["epochs"],
        "--optimizer": params["optimizer"],
        "--learning-rate": params["learning_rate"],
        "--monitor": stopping["monitor"],
        "--patience": stopping["patience"],
        "--seed": params["seed"],
        "--conv-filters": ",".join(str(f) for f in network["conv_filters"]),
        "--dense-units": network["dense_units"],
        "--dropout": network["dropout"],
        "--flip": augmentation.get("flip", "none"),
        "--rotation": augmentation.get("rotation", 0) or 0,
        "--zoom": augmentation.get("zoom", 0) or 0,
    }
    args.update({k: v for k, v in (overrides or {}).items() if v is not None})
    command = [sys.executable, BENCHMARKS / "keras_baseline.py"]
    for name, value in args.items():
        command += [name, str(value)]
    finished = run_command(space, command, label)
    result = json.loads(finished.log.read_text().strip().splitlines()[-1])
    return finished, result


def project_accuracy(space: Workspace) -> float:
    report = space.project / "data" / "08_reporting" / "classification_report.json"
    return float(json.loads(report.read_text())["accuracy"])


# --- serving ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def model_server(space: Workspace, model_uri: str, **env: str) -> Iterator[int]:
    """`mlflow models serve` of ``model_uri`` on a free port, run from the project
    folder with ``env`` added to its environment; stopped on exit."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    command += ["models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    log_path = space.log_file("serve")
    with log_path.open("w") as output:
        server = subprocess.Popen(
            command,
            cwd=space.project,
            env=dict(space.environment, MLFLOW_TRACKING_URI=space.tracking_uri, **env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: uvicorn runs as a child
        )
    try:
        wait_until_ready(server, port, log_path)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wait_until_ready(server: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.perf_counter() + 300
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"the model server exited {server.returncode}:\n{tail}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:  # noqa: PLR2004
                connection.close()
                return
        time.sleep(0.1)
    raise RuntimeError(f"the model server did not answer /ping ({log_path})")


def payload(files: Sequence[Path]) -> bytes:
    records = [{"image": base64.b64encode(f.read_bytes()).decode()} for f in files]
    return json.dumps({"dataframe_records": records}).encode()


def post(connection: http.client.HTTPConnection, body: bytes) -> dict[str, Any]:
    connection.request(
        "POST", "/invocations", body, {"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:  # noqa: PLR2004
        raise RuntimeError(
            f"POST /invocations answered {response.status}: {data[:500]}"
        )
    return json.loads(data)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def served_latency(
    port: int, files: Sequence[Path], batch: int, clients: int, requests: int
) -> dict[str, float]:
    """``requests`` POSTs of ``batch`` images from ``clients`` threads, each with its
    own keep-alive connection: latency percentiles and throughput."""
    body = payload([files[i % len(files)] for i in range(batch)])
    shares = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(count: int) -> list[float]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        latencies = []
        try:
            post(connection, body)  # warm-up, not counted
            for _ in range(count):
                start = time.perf_counter()
                answer = post(connection, body)
                latencies.append(time.perf_counter() - start)
                if len(answer["predictions"]) != batch:
                    raise RuntimeError(f"{len(answer['predictions'])} predictions")
        finally:
            connection.close()
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [x for result in pool.map(client, shares) for x in result]
    wall = time.perf_counter() - start
    return {
        "requests": len(latencies),
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p95_ms": 1000 * percentile(latencies, 0.95),
        "images_per_second": len(latencies) * batch / wall,
        "requests_per_second": len(latencies) / wall,
    }


# --- the comparisons -------------------------------------------------------------


def time_to_first_prediction(
    space: Workspace, args: argparse.Namespace, stack: contextlib.ExitStack
) -> tuple[dict[str, float], int]:
    """6: `kedro new` -> `kedro run` -> `mlflow models serve` -> first answer. The
    server keeps running until ``stack`` closes; its port is returned."""
    answers = space.root / "answers.yml"
    answers.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(space.root),
                "project_name": PROJECT_NAME,
                "image_size": str(args.image_size),
                "example_data": "yes",
                "tracking_uri": "local",
                "kedro_viz": "no",
            }
        )
    )
    new = run_command(
        space,
        [sys.executable, "-m", "kedro", "new", f"--starter={REPOSITORY}"]
        + ["--config", str(answers)],
        "kedro-new",
    )
    params = {}
    if args.first_run_epochs:
        params["train_classifier.epochs"] = args.first_run_epochs
    first_run = kedro_run(space, "local", params, "first-run")
    serve_start = time.perf_counter()
    port = stack.enter_context(model_server(space, f"models:/{PACKAGE}/latest"))
    ready = time.perf_counter() - serve_start
    raw = space.project / "data" / "01_raw" / "images"
    first_image = sorted(p for p in raw.rglob("*") if p.is_file())[0]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    answer = post(connection, payload([first_image]))
    first_answer = time.perf_counter() - start
    connection.close()
    log(f"first prediction: {answer['predictions'][0]}")
    result = {
        "kedro_new_s": new.seconds,
        "kedro_run_s": first_run.seconds,
        "serve_ready_s": ready,
        "first_answer_s": first_answer,
    }
    result["total_s"] = sum(result.values())
    return result, port


# A served deployment's logging: Kedro's loggers at WARNING, not one INFO line per node
# and dataset of every request (Kedro's default, and the project's conf/logging.yml).
QUIET_LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "level": "WARNING",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {name: {"level": "WARNING"} for name in ("kedro", "kedro_mlflow")},
    "root": {"handlers": ["console"], "level": "WARNING"},
}


def served(port: int, files: Sequence[Path], requests: int) -> dict[str, Any]:
    """4: latency and throughput of the served model, batches 1 and 32, 1 and 8 clients."""
    results = {}
    for batch in (1, 32):
        for clients in (1, 8):
            log(f"served: batch {batch}, {clients} client(s), {requests} requests")
            results[f"{batch}x{clients}"] = served_latency(
                port, files, batch, clients, requests
            )
    return results


def alternate(rounds: int, *sides: tuple[str, Any]) -> dict[str, list[Any]]:
    """Run each side once per round, in turn; the results per side."""
    results: dict[str, list[Any]] = {name: [] for name, _ in sides}
    for round_ in range(rounds):
        for name, side in sides:
            log(f"{name} ({round_ + 1}/{rounds})")
            results[name].append(side())
    return results


def end_to_end(space: Workspace, images: Path, args: argparse.Namespace) -> dict:
    """2: `kedro run` vs the hand-written script, both for exactly --epochs epochs."""
    epochs = args.epochs
    params = {
        "train_classifier.epochs": epochs,
        "train_classifier.early_stopping.patience": epochs,
    }

    def project() -> dict[str, float]:
        finished = kedro_run(space, "bench", params, "e2e-kedro-run")
        return {"seconds": finished.seconds, "accuracy": project_accuracy(space)}

    def by_hand() -> dict[str, float]:
        splits = split_folders(space, "bench", images)
        finished, result = baseline(
            space, splits, "e2e-baseline", {"--epochs": epochs, "--patience": epochs}
        )
        return {"seconds": finished.seconds, "accuracy": result["accuracy"]}

    return alternate(args.repeats, ("kedro run", project), ("keras script", by_hand))


def accuracy(space: Workspace, images: Path, args: argparse.Namespace) -> dict:
    """7: test accuracy with the default parameters (early stopping included), one
    training seed per round, the same split on both sides."""
    _, params = project_parameters(space)
    seeds = [params["seed"] + r for r in range(args.repeats)]
    pending = iter(seeds)
    pending_baseline = iter(seeds)

    def project() -> dict[str, float]:
        overrides: dict[str, Any] = {"train_classifier.seed": next(pending)}
        if args.accuracy_epochs:
            overrides["train_classifier.epochs"] = args.accuracy_epochs
        finished = kedro_run(space, "bench", overrides, "accuracy-kedro-run")
        history = json.loads(
            (space.project / "data/06_models/training_history.json").read_text()
        )
        return {
            "accuracy": project_accuracy(space),
            "seconds": finished.seconds,
            "epochs": len(history["loss"]),
        }

    def by_hand() -> dict[str, float]:
        splits = split_folders(space, "bench", images)
        finished, result = baseline(
            space,
            splits,
            "accuracy-baseline",
            {"--epochs": args.accuracy_epochs, "--seed": next(pending_baseline)},
        )
        return {
            "accuracy": result["accuracy"],
            "seconds": finished.seconds,
            "epochs": result["epochs"],
        }

    results = alternate(args.repeats, ("kedro run", project), ("keras script", by_hand))
    return {"seeds": seeds, **results}


def memory(
    space: Workspace, small: Path, large: Path, args: argparse.Namespace
) -> dict[str, list[float]]:
    """5: peak RSS of `kedro run` (and of the script) on N vs 10 N images."""
    params = {"train_classifier.epochs": args.memory_epochs}

    def project(env: str) -> Any:
        return lambda: kedro_run(space, env, params, f"memory-{env}").peak_rss_mb

    def by_hand(env: str, images: Path) -> Any:
        def side() -> float:
            splits = split_folders(space, env, images)
            finished, _ = baseline(
                space,
                splits,
                f"memory-baseline-{env}",
                {"--epochs": args.memory_epochs},
            )
            return finished.peak_rss_mb

        return side

    return alternate(
        args.repeats,
        ("kedro run, N", project("bench")),
        ("kedro run, 10N", project("bench10x")),
        ("keras script, N", by_hand("bench", small)),
        ("keras script, 10N", by_hand("bench10x", large)),
    )


# --- the table -------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def column(rows: Sequence[dict[str, float]], key: str) -> list[float]:
    return [row[key] for row in rows]


@dataclass(frozen=True)
class Row:
    number: int
    what: str
    project: str
    other: str
    ratio: float | None = None
    target: str = ""


def verdict(ratio: float, target: str) -> str:
    """Whether ``ratio`` meets ``target`` (">= 1.0x", "<= 1.3x", ...): yes or NO."""
    bound = float(target[2:].split("x", maxsplit=1)[0])
    met = ratio >= bound if target.startswith(">=") else ratio <= bound
    return "yes" if met else "NO"


def table(results: dict[str, Any], args: argparse.Namespace) -> list[list[str]]:
    """Rows: #, what, project, hand-written / reference, ratio, target, met."""
    rows: list[list[str]] = []

    def add(row: Row) -> None:
        shown = "" if row.ratio is None else f"{row.ratio:.2f}x"
        met = (
            verdict(row.ratio, row.target)
            if row.ratio is not None and row.target
            else ""
        )
        rows.append(
            [str(row.number), row.what, row.project, row.other, shown, row.target, met]
        )

    if "throughput" in results:
        speed = results["throughput"]["images_per_second"]
        cache_seconds = results["throughput"].get("cache_seconds")
        cached = (
            f", cached once in {cache_seconds:.1f} s"
            if cache_seconds is not None
            else ""
        )
        add(
            Row(
                1,
                f"input pipeline, images/s (batch {results['throughput']['batch_size']})",
                f"{speed['project']:.0f}{cached}",
                f"{speed['keras']:.0f} (image_dataset_from_directory)",
                speed["project"] / speed["keras"],
                ">= 1.0x",
            )
        )
    if "end_to_end" in results:
        e2e = results["end_to_end"]
        ours = median(column(e2e["kedro run"], "seconds"))
        theirs = median(column(e2e["keras script"], "seconds"))
        add(
            Row(
                2,
                f"`kedro run` wall time, s ({args.epochs} epochs)",
                f"{ours:.1f}",
                f"{theirs:.1f} (keras script)",
                ours / theirs,
                "<= 1.3x",
            )
        )
    if "accuracy" in results:  # the same comparison on the longer runs of 7
        runs = results["accuracy"]
        ours = median(column(runs["kedro run"], "seconds"))
        theirs = median(column(runs["keras script"], "seconds"))
        add(
            Row(
                2,
                "`kedro run` wall time, s (default parameters: the runs of 7)",
                f"{ours:.1f}",
                f"{theirs:.1f} (keras script)",
                ours / theirs,
                "<= 1.3x",
            )
        )
    if "predict" in results:
        for batch, result in results["predict"]["batches"].items():
            ms = result["median_ms"]
            for logging_name, key in (
                ("Kedro logs at WARNING", "pyfunc_warning_logging"),
                ("Kedro logs at INFO, default", "pyfunc_default_logging"),
            ):
                add(
                    Row(
                        3,
                        f"predict, batch {batch}, ms ({logging_name})",
                        f"{ms[key]:.2f}",
                        f"{ms['keras']:.2f} (Keras on decoded arrays)",
                        ms[key] / ms["keras"],
                        "<= 1.2x",
                    )
                )
            add(
                Row(
                    3,
                    f"predict, batch {batch}, ms (WARNING) vs bytes->PIL->Keras by hand",
                    f"{ms['pyfunc_warning_logging']:.2f}",
                    f"{ms['by_hand']:.2f} (decode + Keras)",
                    ms["pyfunc_warning_logging"] / ms["by_hand"],
                    "<= 1.2x",
                )
            )
    for level, settings in results.get("served", {}).items():
        for setting, result in settings.items():
            batch, clients = setting.split("x")
            add(
                Row(
                    4,
                    f"served, batch {batch}, {clients} client(s), Kedro logs {level}",
                    f"p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms",
                    f"{result['images_per_second']:.0f} images/s, "
                    f"{result['requests_per_second']:.1f} requests/s",
                    None,
                )
            )
    if "memory" in results:
        peaks = {side: median(values) for side, values in results["memory"].items()}
        add(
            Row(
                5,
                f"peak RSS, MB, `kedro run` on {args.images} vs {10 * args.images} images",
                f"{peaks['kedro run, N']:.0f} -> {peaks['kedro run, 10N']:.0f}",
                f"script: {peaks['keras script, N']:.0f} -> "
                f"{peaks['keras script, 10N']:.0f}",
                peaks["kedro run, 10N"] / peaks["kedro run, N"],
                "<= 1.2x",
            )
        )
    first = results["first_prediction"]
    add(
        Row(
            6,
            "`kedro new` -> first served prediction, s",
            f"{first['total_s']:.1f}",
            f"new {first['kedro_new_s']:.1f} + run {first['kedro_run_s']:.1f} + serve "
            f"{first['serve_ready_s']:.1f} + answer {first['first_answer_s']:.2f}",
            first["total_s"] / 60,
            "<= 1.0x (60 s)",
        )
    )
    if "accuracy" in results:
        ours = results["accuracy"]["kedro run"]
        theirs = results["accuracy"]["keras script"]
        acc, base = median(column(ours, "accuracy")), median(column(theirs, "accuracy"))
        epochs = median(column(ours, "epochs")), median(column(theirs, "epochs"))
        add(
            Row(
                7,
                f"test accuracy, default parameters ({args.repeats} seed(s))",
                f"{acc:.3f} ({epochs[0]:.0f} epochs)",
                f"{base:.3f} ({epochs[1]:.0f} epochs, keras script)",
                acc / base if base else math.inf,
                ">= 1.0x",
            )
        )
    return sorted(rows, key=lambda row: int(row[0]))


def markdown(rows: list[list[str]]) -> str:
    header = [
        "#",
        "measure",
        "project",
        "hand-written / detail",
        "ratio",
        "target",
        "met",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------


def benchmark(space: Workspace, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log(f"drawing {args.images} images of {args.pixels} px")
    images = make_images(space.root / "images", args.images, args.pixels)
    files = [p for p in sorted(images.rglob("*")) if p.is_file()]

    log("6: kedro new -> kedro run -> mlflow models serve -> first prediction")
    with contextlib.ExitStack() as stack:
        results["first_prediction"], port = time_to_first_prediction(space, args, stack)
        if 4 in args.only:
            log("4: served model, Kedro's default logging (INFO)")
            results["served"] = {"INFO": served(port, files, args.requests)}
    if 4 in args.only:
        log("4: served model, Kedro's loggers at WARNING (KEDRO_LOGGING_CONFIG)")
        quiet = space.root / "logging-warning.yml"
        quiet.write_text(yaml.safe_dump(QUIET_LOGGING))
        uri = f"models:/{PACKAGE}/1"
        with model_server(space, uri, KEDRO_LOGGING_CONFIG=str(quiet)) as port:
            results["served"]["WARNING"] = served(port, files, args.requests)
    if 3 in args.only:
        log("3: in-process predict, logged model vs Keras")
        results["predict"] = probe(
            space,
            "predict",
            "--model-uri",
            f"models:/{PACKAGE}/1",
            "--tracking-uri",
            space.tracking_uri,
            "--keras-file",
            space.project / "data" / "06_models" / "classifier.keras",
            "--images",
            images,
            "--repeats",
            str(args.repeats),
            "--calls",
            str(args.calls),
        )
    add_data_environment(space, "bench", images)
    if 1 in args.only:
        log("1: input pipeline throughput")
        results["throughput"] = probe(
            space,
            "throughput",
            "--project",
            space.project,
            "--env",
            "bench",
            "--images",
            images,
            "--repeats",
            str(args.repeats),
        )
    if 2 in args.only:
        log(f"2: kedro run vs keras script, {args.epochs} epochs")
        results["end_to_end"] = end_to_end(space, images, args)
    if 7 in args.only:
        log("7: accuracy with the default parameters")
        results["accuracy"] = accuracy(space, images, args)
    if 5 in args.only:
        log(f"5: peak memory, drawing {10 * args.images} more images")
        large = make_images(space.root / "images-10x", 10 * args.images, args.pixels)
        add_data_environment(space, "bench10x", large)
        results["memory"] = memory(space, images, large, args)
    return results


def versions() -> dict[str, str]:
    from importlib.metadata import version  # noqa: PLC0415

    names = ("kedro", "kedro-mlflow", "kedro-datasets", "mlflow", "tensorflow", "keras")
    found = {"python": sys.version.split()[0]}
    for name in names:
        with contextlib.suppress(Exception):
            found[name] = version(name)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        report = json.loads(args.report.read_text())
        settings = argparse.Namespace(**report["settings"])
        print(markdown(table(report["results"], settings)))  # noqa: T201
        return 0
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if any(args.workdir.iterdir()):
            sys.exit(f"--workdir {args.workdir} is not empty")
        root = args.workdir.resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="starter-benchmarks-"))
    space = Workspace(root)
    space.environment = command_environment(root)
    log(f"working in {root}")
    try:
        results = benchmark(space, args)
    finally:
        if not args.workdir:
            shutil.rmtree(root, ignore_errors=True)
    settings = {
        k: v for k, v in vars(args).items() if k not in ("workdir", "json", "report")
    }
    report = {
        "settings": settings,
        "machine": {"cpus": os.cpu_count(), **versions()},
        "date": time.strftime("%Y-%m-%d"),
        "seconds": time.perf_counter() - STARTED,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    print(markdown(table(results, args)))  # noqa: T201
    log(f"done in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
