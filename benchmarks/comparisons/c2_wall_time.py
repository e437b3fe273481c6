"""2: wall time of `kedro run` against the hand-written script, same epochs, per dataset;
also `kedro run` with the dynaconf and MLflow fixes of ``upstream/`` (what is left of
the project's fixed cost once they land)."""

from __future__ import annotations

from typing import Any

from harness import (
    Bench,
    Option,
    Row,
    alternate,
    baseline,
    column,
    kedro_run,
    median,
    network_overrides,
    project_accuracy,
    split_folders,
)

NUMBER = 2
KEY = "end_to_end"
UPSTREAM_FIXED = "kedro run, upstream fixes"
FIXED_NOTE = "; with upstream/'s dynaconf and MLflow patches"
OPTIONS = {
    "epochs": Option("epochs of comparison 2, early stopping off", default=5, tiny=1),
}


def measure(bench: Bench) -> dict[str, Any]:
    """Per dataset: the three sides for exactly --epochs epochs, alternately."""
    epochs = bench.args.epochs
    params = {
        "train_classifier.epochs": epochs,
        "train_classifier.early_stopping.patience": epochs,
        **network_overrides(bench.args),
    }
    results = {}
    for name in bench.args.datasets:
        env, dataset = bench.dataset(name)

        def project(env: str = env, fixed: bool = False) -> dict[str, float]:
            label = f"e2e-{env}-kedro-run{'-upstream-fixes' if fixed else ''}"
            finished = kedro_run(bench.space, env, params, label, upstream_fixes=fixed)
            return {
                "seconds": finished.seconds,
                "accuracy": project_accuracy(bench.space),
            }

        def project_fixed(env: str = env) -> dict[str, float]:
            return project(env, fixed=True)

        def by_hand(env: str = env, folder: Any = dataset.folder) -> dict[str, float]:
            splits = split_folders(bench.space, env, folder)
            finished, result = baseline(
                bench.space, splits, f"e2e-{env}-baseline", params
            )
            return {"seconds": finished.seconds, "accuracy": result["accuracy"]}

        results[name] = alternate(
            bench.args.repeats,
            ("kedro run", project),
            ("keras script", by_hand),
            (UPSTREAM_FIXED, project_fixed),
        )
    return results


def rows(results: dict[str, Any], settings: Any) -> list[Row]:
    found = []
    for name, sides in results.items():
        theirs = median(column(sides["keras script"], "seconds"))
        for side, note in (("kedro run", ""), (UPSTREAM_FIXED, FIXED_NOTE)):
            if side not in sides:  # `--report` of a file saved before this side
                continue
            ours = median(column(sides[side], "seconds"))
            found.append(
                Row(
                    NUMBER,
                    f"`kedro run` wall time, s, {name} ({settings.epochs} epochs"
                    f"{backbone_note(settings)}{note})",
                    f"{ours:.1f}",
                    f"{theirs:.1f} (keras script)",
                    ours / theirs,
                    "<= 1.3x",
                )
            )
    return found


def backbone_note(settings: Any) -> str:
    backbone = getattr(settings, "backbone", None)
    return f", {backbone}" if backbone else ""
