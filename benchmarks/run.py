"""Benchmarks: a project generated from this starter against what a user writes by hand.

    python benchmarks/run.py            # the default size (about 20 minutes on 2 cores)
    python benchmarks/run.py --tiny     # every comparison on a tiny size (CI)
    python benchmarks/run.py --only 2,7 --datasets textures,faces

Uses the Python environment it runs in (kedro, mlflow, tensorflow installed; no package
is installed). In a temporary folder it generates a project with `kedro new
--starter=<this repository>`, builds image datasets as class folders
(benchmarks/datasets.py), then runs each comparison of benchmarks/comparisons/ (one
module per comparison) on this machine, both sides alternately, ``--repeats`` times,
and prints a Markdown table of medians and ratios (stdout; progress goes to stderr).
See benchmarks/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import datasets
from comparisons import load_all
from harness import STARTED, Bench, Option, Workspace, command_environment, log
from harness import markdown as markdown_table

COMPARISONS = load_all()
# Options of every comparison; those of one comparison live in its module.
SHARED = {
    "images": Option("images per dataset, in 3 classes (faces: always 200)", 600, 30),
    "pixels": Option("side in pixels of the drawn shapes", 128, 48),
    "image_size": Option(
        "the project's image_size answer (side the network sees)", 32, 32
    ),
    "repeats": Option("rounds of each comparison, both sides alternately", 3, 1),
}
DATASETS = {"default": "shapes,textures,faces", "tiny": "shapes,textures"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--tiny", action="store_true", help="tiny sizes, for CI")
    options = dict(SHARED)
    for module in COMPARISONS:
        options.update(module.OPTIONS)
    for key, option in options.items():
        shown = [
            "the project's parameters" if v is None else v
            for v in (option.default, option.tiny)
        ]
        add(
            "--" + key.replace("_", "-"),
            type=option.type,
            help=f"{option.help} (default: {shown[0]}; --tiny: {shown[1]})",
        )
    add(
        "--datasets",
        type=lambda text: text.split(","),
        help=f"datasets of comparisons 2 and 7, of {', '.join(datasets.BUILDERS)} "
        f"(default: {DATASETS['default']}; --tiny: {DATASETS['tiny']})",
    )
    add("--backbone", help="comparisons 2 and 7 with this keras.applications backbone")
    add(
        "--backbone-weights",
        default=None,
        help="its weights: a .weights.h5 file or imagenet (default: random, offline)",
    )
    numbers = sorted(module.NUMBER for module in COMPARISONS)
    add(
        "--only",
        type=lambda text: sorted({int(n) for n in text.split(",")}),
        default=numbers,
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
    mode = "tiny" if args.tiny else "default"
    for key, option in options.items():
        if getattr(args, key) is None:
            setattr(args, key, getattr(option, mode))
    if args.datasets is None:
        args.datasets = DATASETS[mode].split(",")
    unknown = sorted(set(args.datasets) - set(datasets.BUILDERS))
    if unknown:
        parser.error(f"--datasets: unknown {', '.join(unknown)}")
    if args.images < 30:  # noqa: PLR2004
        parser.error("--images must be at least 30 (ten per class, for the split)")
    return args


def table(results: dict[str, Any], settings: Any) -> str:
    """The Markdown table of every comparison found in ``results``, in row order."""
    rows = [
        row
        for module in COMPARISONS
        if module.KEY in results
        for row in module.rows(results[module.KEY], settings)
    ]
    return markdown_table(sorted(rows, key=lambda row: row.number))


def selected(args: argparse.Namespace) -> list[ModuleType]:
    """The setup comparison first, then the chosen ones in row order."""
    setup = [m for m in COMPARISONS if getattr(m, "SETUP", False)]
    return setup + [m for m in COMPARISONS if m.NUMBER in args.only and m not in setup]


def benchmark(bench: Bench) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for module in selected(bench.args):
        log((module.__doc__ or "").splitlines()[0])
        results[module.KEY] = module.measure(bench)
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
        print(table(report["results"], argparse.Namespace(**report["settings"])))  # noqa: T201
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
        results = benchmark(Bench(space, args))
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
    print(table(results, args))  # noqa: T201
    log(f"done in {report['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
