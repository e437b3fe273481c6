"""Benchmark: `kedro serve --workers N` throughput with 8 clients, for N = 1, 2, 4.

    python benchmarks/serving_workers.py                 # about 3 minutes on 2 cores
    python benchmarks/serving_workers.py --workers 1 2 --seconds 5 --epochs 1  # quick

Uses the Python environment it runs in (kedro, mlflow, tensorflow installed). In a
temporary folder it bakes the starter, trains the default project for ``--epochs``
epochs, then for each worker count starts `kedro serve --workers N`, waits until every
worker has loaded the model, and lets ``--clients`` threads, each with its own
keep-alive connection, POST one embedded image per request for ``--seconds``. It
prints a Markdown table (stdout; progress on stderr): requests/s, latency
percentiles, the speed-up over one worker, and how many workers answered.
Target: requests/s grows with workers up to the number of cores.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
PROJECT_NAME = "Bench Workers"
STARTED = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only the table."""
    print(f"[workers {time.perf_counter() - STARTED:6.1f}s] {message}", file=sys.stderr)  # noqa: T201


def environment() -> dict[str, str]:
    """No MLflow leftovers, no telemetry prompt, this environment's bin on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONUNBUFFERED="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def trained_project(root: Path, epochs: int) -> Path:
    """The default project, baked from this repository and trained once."""
    from cookiecutter.main import cookiecutter  # noqa: PLC0415  the starter's tool

    project = Path(
        cookiecutter(
            str(REPOSITORY),
            no_input=True,
            output_dir=str(root),
            extra_context={"project_name": PROJECT_NAME},
        )
    )
    log(f"training {project.name} for {epochs} epoch(s)")
    subprocess.run(
        [sys.executable, "-m", "kedro", "run", "--params"]
        + [f"train_classifier.epochs={epochs}"],
        cwd=project,
        env=environment(),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return project


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def kedro_serve(project: Path, workers: int, log_path: Path) -> Iterator[int]:
    """`kedro serve --workers N` on a free port, once every worker has loaded."""
    port = free_port()
    with log_path.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "kedro", "serve", "--port", str(port)]
            + ["--workers", str(workers)],
            cwd=project,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: workers are children
        )
    try:
        deadline = time.perf_counter() + 300
        while len(re.findall(r"Worker \d+ loaded", log_path.read_text())) < workers:
            if server.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(
                    f"kedro serve did not start:\n{log_path.read_text()}"
                )
            time.sleep(0.2)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def post(connection: http.client.HTTPConnection, body: bytes) -> str:
    """One request; the PID of the worker that answered."""
    headers = {"Content-Type": "application/json"}
    connection.request("POST", "/invocations", body, headers)
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:  # noqa: PLR2004
        raise RuntimeError(
            f"POST /invocations answered {response.status}: {data[:300]}"
        )
    return response.getheader("X-Worker-Pid", "?")


def load(port: int, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` threads POSTing ``body`` for ``seconds``: throughput and latency."""
    stop = time.perf_counter() + seconds

    def client(_: int) -> tuple[list[float], Counter]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        latencies, workers = [], Counter()
        post(connection, body)  # warm-up, not counted
        while time.perf_counter() < stop:
            start = time.perf_counter()
            workers[post(connection, body)] += 1
            latencies.append(time.perf_counter() - start)
        connection.close()
        return latencies, workers

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    latencies = sorted(x for result, _ in results for x in result)
    answered = sum((workers for _, workers in results), Counter())
    return {
        "requests_per_second": len(latencies) / wall,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
        "workers_answering": len(answered),
    }


def table(results: dict[int, dict[str, float]]) -> str:
    """The Markdown table of the results, with the speed-up over the fewest workers."""
    base = results[min(results)]["requests_per_second"]
    lines = [
        "| workers | requests/s | speed-up | p50 ms | p95 ms | workers answering |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for workers, row in results.items():
        lines.append(
            f"| {workers} | {row['requests_per_second']:.0f} | "
            f"{row['requests_per_second'] / base:.2f}x | {row['p50_ms']:.1f} | "
            f"{row['p95_ms']:.1f} | {row['workers_answering']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        root = Path(folder)
        project = trained_project(root, args.epochs)
        image = sorted((project / "data/01_raw/images").rglob("*.png"))[0]
        image_bytes = image.read_bytes()
        record = {"image": base64.b64encode(image_bytes).decode()}
        body = json.dumps({"dataframe_records": [record]}).encode()
        results = {}
        for workers in args.workers:
            with kedro_serve(project, workers, root / f"serve-{workers}.log") as port:
                log(f"{workers} worker(s), {args.clients} clients, {args.seconds} s")
                results[workers] = load(port, body, args.clients, args.seconds)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    heading = (
        f"{args.clients} clients, one {len(image_bytes)}-byte PNG per request, "
        f"{cores or os.cpu_count()} cores"
    )
    print(f"{heading}\n\n{table(results)}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
