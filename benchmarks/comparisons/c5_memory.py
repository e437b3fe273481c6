"""5: peak RSS of `kedro run` (and of the script) on N and on 10 N shapes."""

from __future__ import annotations

from typing import Any

import datasets
from harness import (
    Bench,
    Option,
    Row,
    add_data_environment,
    alternate,
    baseline,
    kedro_run,
    log,
    median,
    split_folders,
)

NUMBER = 5
KEY = "memory"
OPTIONS = {
    "memory_epochs": Option("epochs of the runs of comparison 5", default=1, tiny=1),
}


def measure(bench: Bench) -> dict[str, list[float]]:
    space, args = bench.space, bench.args
    env, small = bench.dataset("shapes")
    log(f"drawing {10 * args.images} more shapes")
    large = datasets.build(
        "shapes", space.root / "datasets" / "shapes-10x", 10 * args.images, args.pixels
    )
    large_env = "bench-shapes-10x"
    add_data_environment(space, large_env, large.folder)
    params = {"train_classifier.epochs": args.memory_epochs}

    def project(env: str) -> Any:
        return lambda: kedro_run(space, env, params, f"memory-{env}").peak_rss_mb

    def by_hand(env: str, dataset: datasets.Dataset) -> Any:
        def side() -> float:
            splits = split_folders(space, env, dataset.folder)
            finished, _ = baseline(space, splits, f"memory-baseline-{env}", params)
            return finished.peak_rss_mb

        return side

    return alternate(
        args.repeats,
        ("kedro run, N", project(env)),
        ("kedro run, 10N", project(large_env)),
        ("keras script, N", by_hand(env, small)),
        ("keras script, 10N", by_hand(large_env, large)),
    )


def rows(results: dict[str, list[float]], settings: Any) -> list[Row]:
    peaks = {side: median(values) for side, values in results.items()}
    return [
        Row(
            NUMBER,
            f"peak RSS, MB, `kedro run` on {settings.images} vs "
            f"{10 * settings.images} images",
            f"{peaks['kedro run, N']:.0f} -> {peaks['kedro run, 10N']:.0f}",
            f"script: {peaks['keras script, N']:.0f} -> "
            f"{peaks['keras script, 10N']:.0f}",
            peaks["kedro run, 10N"] / peaks["kedro run, N"],
            "<= 1.2x",
        )
    ]
