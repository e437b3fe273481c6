"""What every comparison shares: the workspace, commands, the project and its data
environments, the hand-written script, the model server, and the report's rows."""

from __future__ import annotations

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
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import yaml

BENCHMARKS = Path(__file__).resolve().parent
UPSTREAM = BENCHMARKS / "upstream"
REPOSITORY = BENCHMARKS.parent
PROJECT_NAME = "Bench Shapes"
PACKAGE = "bench_shapes"
FOLDER = "bench-shapes"
STARTED = time.perf_counter()
SPLITS = ("train", "validation", "test")


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


def kedro(
    space: Workspace, *args: str, label: str, upstream_fixes: bool = False
) -> Finished:
    """``python -m kedro ARGS`` in the project; with ``upstream_fixes``, Kedro's CLI
    with the dynaconf and MLflow patches of ``upstream/`` applied in memory."""
    launcher = [UPSTREAM / "kedro_with_fixes.py"] if upstream_fixes else ["-m", "kedro"]
    return run_command(
        space, [sys.executable, *launcher, *args], label, cwd=space.project
    )


def kedro_run(
    space: Workspace,
    env: str,
    params: dict[str, Any],
    label: str,
    upstream_fixes: bool = False,
) -> Finished:
    args = ["run", "--env", env]
    if params:
        text = {k: "null" if v is None else v for k, v in params.items()}
        args += ["--params", ",".join(f"{k}={v}" for k, v in text.items())]
    finished = kedro(space, *args, label=label, upstream_fixes=upstream_fixes)
    # Keep this environment's split, for the hand-written side's folders.
    kept = space.root / "split-tables" / env
    kept.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        table = space.project / "data" / "05_model_input" / f"{split}_split.csv"
        shutil.copy2(table, kept / table.name)
    return finished


def network_overrides(args: Any) -> dict[str, Any]:
    """The `--params` that select ``--backbone`` (and its weights), if one is given."""
    if not getattr(args, "backbone", None):
        return {}
    return {
        "train_classifier.network.backbone": args.backbone,
        "train_classifier.network.weights": args.backbone_weights,
    }


def probe(space: Workspace, name: str, *args: str | Path) -> dict[str, Any]:
    output = space.root / f"{name}.json"
    run_command(
        space,
        [sys.executable, BENCHMARKS / "probes.py", name, *args, "--output", output],
        name,
    )
    return json.loads(output.read_text())


# --- the project, its data and the hand-written side -----------------------------


@dataclass(frozen=True)
class Option:
    """A command-line option of one comparison: its help, default and --tiny value
    (None: the project's own parameters)."""

    help: str
    default: Any
    tiny: Any
    type: Any = int


@dataclass
class Bench:
    """What a comparison is given: the workspace (with the generated project once the
    setup comparison ran), the options, and the datasets drawn so far."""

    space: Workspace
    args: Any  # argparse.Namespace: every option of run.py and of the comparisons
    drawn: dict[str, datasets.Dataset] = field(default_factory=dict)

    def dataset(self, name: str) -> tuple[str, datasets.Dataset]:
        """Dataset ``name``, drawn once, and the Kedro environment that reads it."""
        if name not in self.drawn:
            log(f"drawing dataset {name}")
            self.drawn[name] = datasets.build(
                name,
                self.space.root / "datasets" / name,
                images=self.args.images,
                pixels=self.args.pixels,
            )
        env = f"bench-{name}"
        if not (self.space.project / "conf" / env).exists():
            add_data_environment(self.space, env, self.drawn[name].folder)
        return env, self.drawn[name]

    def image_files(self, name: str = "shapes") -> list[Path]:
        _, dataset = self.dataset(name)
        return [p for p in sorted(dataset.folder.rglob("*")) if p.is_file()]


def add_data_environment(space: Workspace, env: str, images: Path | str) -> None:
    """A Kedro environment whose raw_images entry points at ``images`` (a folder or an
    fsspec URL)."""
    base = yaml.safe_load((space.project / "conf/base/catalog.yml").read_text())
    entry = dict(base["raw_images"], path=str(images))
    folder = space.project / "conf" / env
    folder.mkdir(exist_ok=True)
    (folder / "catalog.yml").write_text(yaml.safe_dump({"raw_images": entry}))


def split_folders(space: Workspace, env: str, images: Path) -> Path:
    """The split of the project's last run in ``env`` as folders of hard links, for
    `image_dataset_from_directory`: the same files in the same sets on both sides."""
    destination = space.root / "splits" / env
    if destination.exists():
        return destination
    for split in SPLITS:
        table = space.root / "split-tables" / env / f"{split}_split.csv"
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


def project_parameters(
    space: Workspace, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The project's ``image`` and ``train_classifier`` parameters, with ``overrides``
    (``{"train_classifier.epochs": 5}``, as given to `kedro run --params`) applied."""
    conf = space.project / "conf" / "base"
    parameters = {
        "image": yaml.safe_load((conf / "parameters.yml").read_text())["image"],
        **yaml.safe_load((conf / "parameters_training.yml").read_text()),
    }
    for dotted, value in (overrides or {}).items():
        *parents, key = dotted.split(".")
        node = parameters
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return parameters["image"], parameters["train_classifier"]


def baseline_flags(image: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """keras_baseline.py's flags for the project's parameters: the same network,
    augmentation, optimizer, batch size, epochs, early stopping, seed and, with a
    backbone, the same backbone, weights and fine-tuning phase."""
    network, augmentation = params["network"], params.get("augmentation") or {}
    stopping = params["early_stopping"]
    flags = {
        "--image-size": image["size"],
        "--channels": image["channels"],
        "--batch-size": params["batch_size"],
        "--epochs": params["epochs"],
        "--optimizer": params["optimizer"],
        "--learning-rate": params["learning_rate"],
        "--monitor": stopping["monitor"],
        "--patience": stopping["patience"],
        "--seed": params["seed"],
        "--dropout": network.get("dropout", 0) or 0,
        "--flip": augmentation.get("flip", "none") or "none",
        "--rotation": augmentation.get("rotation", 0) or 0,
        "--zoom": augmentation.get("zoom", 0) or 0,
    }
    if network.get("conv_filters"):
        flags["--conv-filters"] = ",".join(str(f) for f in network["conv_filters"])
    if network.get("dense_units") is not None:
        flags["--dense-units"] = network["dense_units"]
    if network.get("pooling"):
        flags["--pooling"] = network["pooling"]
    if network.get("backbone"):
        fine_tuning = params.get("fine_tuning") or {}
        flags.update(
            {
                "--backbone": network["backbone"],
                "--weights": network.get("weights") or "none",
                "--fine-tune-epochs": fine_tuning.get("epochs", 0) or 0,
                "--unfreeze-layers": fine_tuning.get("unfreeze_layers", 0) or 0,
                "--learning-rate-factor": fine_tuning.get("learning_rate_factor", 0.1),
            }
        )
    return flags


def baseline(
    space: Workspace,
    splits: Path,
    label: str,
    overrides: dict[str, Any] | None = None,
) -> tuple[Finished, dict[str, Any]]:
    """Run the hand-written script with the project's parameters and ``overrides``,
    the same dotted parameters that the project side gets through `--params`."""
    image, params = project_parameters(space, overrides)
    flags = {"--data": splits, "--output": space.root / "baseline-model.keras"}
    flags.update(baseline_flags(image, params))
    command = [sys.executable, BENCHMARKS / "keras_baseline.py"]
    for name, value in flags.items():
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
        stop_process_group(server)


def stop_process_group(server: subprocess.Popen) -> None:
    """SIGTERM a server started in its own session, and its children; SIGKILL if stuck."""
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


def alternate(rounds: int, *sides: tuple[str, Any]) -> dict[str, list[Any]]:
    """Run each side once per round, in turn; the results per side."""
    results: dict[str, list[Any]] = {name: [] for name, _ in sides}
    for round_ in range(rounds):
        for name, side in sides:
            log(f"{name} ({round_ + 1}/{rounds})")
            results[name].append(side())
    return results


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
    ratio = round(ratio, 2)  # as shown: 0.9999 of a float32 accuracy is 1.00x
    met = ratio >= bound if target.startswith(">=") else ratio <= bound
    return "yes" if met else "NO"


def markdown(rows: Sequence[Row]) -> str:
    """The report: one Markdown line per row, with its ratio and whether it meets the
    target."""
    header = ["#", "measure", "project", "hand-written / detail", "ratio", "target"]
    lines = ["| " + " | ".join([*header, "met"]) + " |", "|" + "---|" * 7]
    for row in rows:
        shown = "" if row.ratio is None else f"{row.ratio:.2f}x"
        met = verdict(row.ratio, row.target) if shown and row.target else ""
        cells = [str(row.number), row.what, row.project, row.other, shown, row.target]
        lines.append("| " + " | ".join([*cells, met]) + " |")
    return "\n".join(lines)
