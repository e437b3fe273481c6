"""8: requests/s of `kedro serve --workers N` with 8 clients, against one worker."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness import (
    Bench,
    Option,
    Row,
    Workspace,
    free_port,
    log,
    payload,
    stop_process_group,
)

NUMBER = 8
KEY = "serving_workers"
OPTIONS = {
    "workers_seconds": Option("seconds of load per worker count", default=20, tiny=2),
    "workers_clients": Option("client threads, each one connection", default=8, tiny=4),
}
WORKERS = (1, 2, 4)


@contextlib.contextmanager
def kedro_serve(space: Workspace, workers: int) -> Iterator[int]:
    """`kedro serve --workers N` on a free port, once every worker has loaded."""
    port, log_path = free_port(), space.log_file(f"serve-{workers}-workers")
    with log_path.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "kedro", "serve", "--port", str(port)]
            + ["--workers", str(workers)],
            cwd=space.project,
            env=space.environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers are children
        )
    try:
        deadline = time.perf_counter() + 300
        while len(re.findall(r"Worker \d+ loaded", log_path.read_text())) < workers:
            if server.poll() is not None or time.perf_counter() > deadline:
                tail = log_path.read_text()[-4000:]
                raise RuntimeError(f"kedro serve did not start ({log_path}):\n{tail}")
            time.sleep(0.2)
        yield port
    finally:
        stop_process_group(server)


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
    """``clients`` threads, each with a keep-alive connection, POSTing for ``seconds``."""
    stop = time.perf_counter() + seconds

    def client(_: int) -> tuple[list[float], Counter]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        latencies, answered = [], Counter()
        post(connection, body)  # warm-up, not counted
        while time.perf_counter() < stop:
            start = time.perf_counter()
            answered[post(connection, body)] += 1
            latencies.append(time.perf_counter() - start)
        connection.close()
        return latencies, answered

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
        "requests_per_worker": sorted(answered.values(), reverse=True),
    }


def measure(bench: Bench) -> dict[str, Any]:
    """One embedded PNG per request; each worker count in turn, ``--repeats`` rounds."""
    args = bench.args
    image = next(p for p in sorted(bench.image_files("shapes")) if p.suffix == ".png")
    body = payload([image])
    counts = WORKERS[:2] if args.tiny else WORKERS
    results: dict[str, Any] = {"cores": _cores(), "clients": args.workers_clients}
    results["runs"] = {str(workers): [] for workers in counts}
    for round_ in range(args.repeats):
        for workers in counts:
            with kedro_serve(bench.space, workers) as port:
                log(f"kedro serve --workers {workers} ({round_ + 1}/{args.repeats})")
                results["runs"][str(workers)].append(
                    load(port, body, args.workers_clients, args.workers_seconds)
                )
    return results


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    ordered = sorted(runs, key=lambda run: run["requests_per_second"])
    return ordered[len(ordered) // 2]


def rows(result: dict[str, Any], settings: Any) -> list[Row]:
    runs = {int(n): _median_run(r) for n, r in result["runs"].items()}
    one = runs[1]["requests_per_second"]
    found = []
    for workers, run in runs.items():
        if workers == 1:
            continue
        # Target: throughput grows with workers up to the cores.
        useful = min(workers, result["cores"])
        found.append(
            Row(
                NUMBER,
                f"`kedro serve --workers {workers}`, {result['clients']} clients, "
                f"batch 1, requests/s ({result['cores']} cores)",
                f"{run['requests_per_second']:.0f} (p50 {run['p50_ms']:.0f} ms, "
                f"{run['workers_answering']} workers answered)",
                f"{one:.0f} with 1 worker (p50 {runs[1]['p50_ms']:.0f} ms)",
                run["requests_per_second"] / one,
                f">= {0.75 * useful:.2f}x" if useful > 1 else "",
            )
        )
    return found
