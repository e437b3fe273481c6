"""4: latency and throughput of `mlflow models serve`, Kedro's logging INFO and WARNING."""

from __future__ import annotations

from typing import Any

import yaml
from harness import PACKAGE, Bench, Option, Row, log, model_server, served_latency

NUMBER = 4
KEY = "served"
OPTIONS = {
    "requests": Option("requests per served setting", default=96, tiny=8),
}

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


def measure(bench: Bench) -> dict[str, Any]:
    """Batches 1 and 32 from 1 and 8 clients, one server per logging level."""
    space, requests = bench.space, bench.args.requests
    files = bench.image_files("shapes")
    quiet = space.root / "logging-warning.yml"
    quiet.write_text(yaml.safe_dump(QUIET_LOGGING))
    levels = {"INFO": {}, "WARNING": {"KEDRO_LOGGING_CONFIG": str(quiet)}}
    results: dict[str, Any] = {}
    for level, environment in levels.items():
        with model_server(space, f"models:/{PACKAGE}/1", **environment) as port:
            results[level] = {}
            for batch in (1, 32):
                for clients in (1, 8):
                    log(f"served, Kedro logs {level}: batch {batch}, {clients} clients")
                    results[level][f"{batch}x{clients}"] = served_latency(
                        port, files, batch, clients, requests
                    )
    return results


def rows(results: dict[str, Any], settings: Any) -> list[Row]:
    found = []
    for level, settings_measured in results.items():
        for setting, result in settings_measured.items():
            batch, clients = setting.split("x")
            found.append(
                Row(
                    NUMBER,
                    f"served, batch {batch}, {clients} client(s), Kedro logs {level}",
                    f"p50 {result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms",
                    f"{result['images_per_second']:.0f} images/s, "
                    f"{result['requests_per_second']:.1f} requests/s",
                )
            )
    return found
