"""1: images/s of the training input against `image_dataset_from_directory`."""

from __future__ import annotations

from typing import Any

from harness import Bench, Row, probe

NUMBER = 1
KEY = "throughput"
OPTIONS: dict = {}


def measure(bench: Bench) -> dict[str, Any]:
    """Both sides in one fresh process (probes.py throughput), on the shapes."""
    env, dataset = bench.dataset("shapes")
    return probe(
        bench.space,
        "throughput",
        "--project",
        bench.space.project,
        "--env",
        env,
        "--images",
        dataset.folder,
        "--repeats",
        str(bench.args.repeats),
    )


def rows(result: dict[str, Any], settings: Any) -> list[Row]:
    speed = result["images_per_second"]
    cache_seconds = result.get("cache_seconds")
    cached = f", stored once in {cache_seconds:.1f} s" if cache_seconds else ""
    return [
        Row(
            NUMBER,
            f"input pipeline, images/s (batch {result['batch_size']})",
            f"{speed['project']:.0f}{cached}",
            f"{speed['keras']:.0f} (image_dataset_from_directory)",
            speed["project"] / speed["keras"],
            ">= 1.0x",
        )
    ]
