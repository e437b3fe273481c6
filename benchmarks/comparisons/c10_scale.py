"""10: `kedro run` on 1k, 10k (and 100k) generated images: seconds per stage, memory, disk,
and S3 requests per object with raw_images on a local S3 server (moto)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import yaml
from harness import (
    BENCHMARKS,
    Bench,
    Option,
    Row,
    add_data_environment,
    free_port,
    log,
    run_command,
)

NUMBER = 10
KEY = "scale"
OPTIONS = {
    "scale_sizes": Option(
        "images of each scale run, comma-separated (100000 fits too; one epoch each)",
        default="1000,10000",
        tiny="60",
        type=str,
    ),
    "scale_s3_images": Option(
        "images of the scale run with raw_images on a local S3 server (0: none)",
        default=1000,
        tiny=60,
    ),
}
PIXELS = 64
STAGES = ("list", "index", "preprocess", "train", "evaluate", "log")
# One epoch, and no early stop: every size trains on every image once.
PARAMS = "train_classifier.epochs=1,train_classifier.early_stopping.patience=1"


def measure(bench: Bench) -> dict[str, Any]:
    sizes = [int(n) for n in str(bench.args.scale_sizes).split(",") if n]
    results: dict[str, Any] = {"runs": {}}
    for count in sizes:
        folder = bench.space.root / "datasets" / f"scale-{count}"
        log(f"scale: drawing {count} images of {PIXELS} px")
        datasets.build("shapes", folder, images=count, pixels=PIXELS)
        env = f"bench-scale-{count}"
        add_data_environment(bench.space, env, folder)
        results["runs"][str(count)] = stages(bench, env, f"scale-{count}")
    if bench.args.scale_s3_images:
        results["s3"] = s3_run(bench, bench.args.scale_s3_images)
    return results


def stages(bench: Bench, env: str, label: str) -> dict[str, Any]:
    """One `kedro run` (in-process session, timed by a hook), its peak RSS and disk."""
    space = bench.space
    output = space.root / f"{label}.json"
    finished = run_command(
        space,
        [sys.executable, BENCHMARKS / "probes.py", "stages", "--project", space.project]
        + ["--env", env, "--params", PARAMS, "--output", output],
        label,
    )
    result = yaml.safe_load(output.read_text())
    index = space.project / "data" / "02_intermediate" / "image_index.csv"
    result["images"] = sum(1 for _ in index.open()) - 1
    result["wall_s"] = finished.seconds
    result["peak_rss_mb"] = finished.peak_rss_mb
    result["disk_mb"] = {
        "data": folder_megabytes(space.project / "data"),
        "tracking_store": folder_megabytes(space.project / "mlartifacts")
        + folder_megabytes(space.project / "mlflow.db"),
    }
    return result


def folder_megabytes(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


@contextlib.contextmanager
def moto_server(space: Any) -> Iterator[tuple[str, Path]]:
    """A local S3 server on a free port; its request log."""
    port = free_port()
    log_path = space.log_file("moto")
    with log_path.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=space.environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.perf_counter() + 60
        while "Running on" not in log_path.read_text(errors="replace"):
            if server.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"moto did not start ({log_path})")
            time.sleep(0.2)
        yield url, log_path
    finally:
        server.terminate()
        server.wait(timeout=30)


REQUEST = re.compile(r'"(GET|HEAD|PUT|POST) (/[^ ?"]*)(\?[^ "]*)? HTTP')
COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours its request lines


def s3_run(bench: Bench, count: int) -> dict[str, Any]:
    """The scale run with raw_images in a bucket: requests per image object."""
    import s3fs  # noqa: PLC0415

    space = bench.space
    folder = space.root / "datasets" / f"scale-{count}"
    if not folder.exists():
        datasets.build("shapes", folder, images=count, pixels=PIXELS)
    with moto_server(space) as (url, log_path):
        credentials = {"key": "testing", "secret": "testing"}
        bucket = s3fs.S3FileSystem(**credentials, client_kwargs={"endpoint_url": url})
        bucket.mkdir("bench")
        log(f"scale: uploading {count} images to the local S3 server")
        bucket.put(str(folder), "bench/images", recursive=True)
        before = len(log_path.read_text(errors="replace").splitlines())
        env = "bench-scale-s3"
        # The project's own raw_images entry, pointed at the bucket.
        add_data_environment(space, env, "s3://bench/images")
        conf = space.project / "conf" / env
        catalog = yaml.safe_load((conf / "catalog.yml").read_text())
        catalog["raw_images"]["credentials"] = "bench_bucket"
        (conf / "catalog.yml").write_text(yaml.safe_dump(catalog))
        (conf / "credentials.yml").write_text(
            yaml.safe_dump(
                {
                    "bench_bucket": {
                        **credentials,
                        "client_kwargs": {"endpoint_url": url},
                    }
                }
            )
        )
        result = stages(bench, env, "scale-s3")
        lines = log_path.read_text(errors="replace").splitlines()[before:]
    per_object: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for line in lines:
        match = REQUEST.search(COLOUR.sub("", line))
        if not match:
            continue
        method, path, query = match.groups()
        kinds[f"{method} {'object' if path.count('/') > 2 else 'bucket'}"] += 1
        if method == "GET" and path.startswith("/bench/images/") and not query:
            per_object[path] += 1
    fetches = Counter(per_object.values())
    uploaded = sum(1 for path in folder.rglob("*") if path.is_file())
    result["s3"] = {
        "objects": uploaded,
        "requests": dict(kinds),
        "gets_per_object": {str(k): v for k, v in sorted(fetches.items())},
        "objects_never_fetched": uploaded - len(per_object),
    }
    return result


def rows(results: dict[str, Any], settings: Any) -> list[Row]:
    found = []
    runs = results["runs"]
    smallest = runs[min(runs, key=int)] if runs else None
    for _, run in sorted(runs.items(), key=lambda item: int(item[0])):
        seconds = run["seconds"]
        per_image_ms = 1000 * seconds["total"] / run["images"]
        staged = ", ".join(f"{s} {seconds[s]:.1f}" for s in STAGES)
        base_ms = 1000 * smallest["seconds"]["total"] / smallest["images"]
        found.append(
            Row(
                NUMBER,
                f"scale, {run['images']} images of {PIXELS} px, 1 epoch: s per stage",
                f"{seconds['total']:.1f} s ({staged}; other {seconds['other']:.1f}); "
                f"{run['images'] / seconds['total']:.0f} images/s",
                f"peak RSS {run['peak_rss_mb']:.0f} MB, disk: data "
                f"{run['disk_mb']['data']:.0f} MB, store "
                f"{run['disk_mb']['tracking_store']:.0f} MB",
                per_image_ms / base_ms,
                "<= 1.5x",
            )
        )
        found.append(
            Row(
                NUMBER,
                f"scale, {run['images']} images: peak RSS against the smallest run",
                f"{run['peak_rss_mb']:.0f} MB",
                f"{smallest['peak_rss_mb']:.0f} MB ({smallest['images']} images)",
                run["peak_rss_mb"] / smallest["peak_rss_mb"],
                "<= 1.2x",
            )
        )
    if "s3" in results:
        s3 = results["s3"]["s3"]
        gets = s3["gets_per_object"]
        most = max((int(k) for k in gets), default=0)
        counts = ", ".join(f"{v} objects x {k}" for k, v in gets.items()) or "none"
        if list(gets) == ["1"] and not s3["objects_never_fetched"]:
            counts += ": each object fetched once"
        found.append(
            Row(
                NUMBER,
                f"scale, raw_images on S3 (moto), {s3['objects']} objects: GETs per "
                "object",
                counts,
                f"requests {s3['requests']}; never fetched {s3['objects_never_fetched']}",
                float(most),
                "<= 1.0x (once)",
            )
        )
    return found
