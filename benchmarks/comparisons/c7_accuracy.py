"""7: test accuracy with the default parameters against the hand-written script, per
dataset; the same runs give a second row 2 (wall time at the default parameters)."""

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
    project_parameters,
    split_folders,
)

from comparisons.c2_wall_time import backbone_note

NUMBER = 7
KEY = "accuracy"
OPTIONS = {
    "accuracy_epochs": Option("epochs of comparison 7", default=None, tiny=1),
}


def measure(bench: Bench) -> dict[str, Any]:
    """Per dataset: one training seed per round (the project's seed, +1, +2, ...),
    early stopping as configured, the same split on both sides."""
    _, params = project_parameters(bench.space)
    seeds = [params["seed"] + r for r in range(bench.args.repeats)]
    results: dict[str, Any] = {"seeds": seeds}
    for name in bench.args.datasets:
        env, dataset = bench.dataset(name)
        pending, pending_baseline = iter(seeds), iter(seeds)

        def overrides(seed: int) -> dict[str, Any]:
            chosen: dict[str, Any] = {"train_classifier.seed": seed}
            if bench.args.accuracy_epochs:
                chosen["train_classifier.epochs"] = bench.args.accuracy_epochs
            return {**chosen, **network_overrides(bench.args)}

        def project(env: str = env, pending: Any = pending) -> dict[str, float]:
            finished = kedro_run(
                bench.space, env, overrides(next(pending)), f"accuracy-{env}-kedro-run"
            )
            history = bench.space.project / "data/06_models/training_history.json"
            return {
                "accuracy": project_accuracy(bench.space),
                "seconds": finished.seconds,
                "epochs": epochs_run(history),
            }

        def by_hand(
            env: str = env,
            folder: Any = dataset.folder,
            pending: Any = pending_baseline,
        ) -> dict[str, float]:
            splits = split_folders(bench.space, env, folder)
            finished, result = baseline(
                bench.space,
                splits,
                f"accuracy-{env}-baseline",
                overrides(next(pending)),
            )
            return {
                "accuracy": result["accuracy"],
                "seconds": finished.seconds,
                "epochs": result["epochs"],
            }

        results[name] = alternate(
            bench.args.repeats, ("kedro run", project), ("keras script", by_hand)
        )
    return results


def epochs_run(history_file: Any) -> int:
    """Epochs in the project's training history (both phases with a backbone)."""
    import json  # noqa: PLC0415

    history = json.loads(history_file.read_text())
    return len(history["loss"])


def rows(results: dict[str, Any], settings: Any) -> list[Row]:
    found = []
    seeds = len(results["seeds"])
    for name, sides in results.items():
        if name == "seeds":
            continue
        ours, theirs = sides["kedro run"], sides["keras script"]
        accuracy = median(column(ours, "accuracy"))
        base = median(column(theirs, "accuracy"))
        epochs = median(column(ours, "epochs")), median(column(theirs, "epochs"))
        note = backbone_note(settings)
        found.append(
            Row(
                NUMBER,
                f"test accuracy, {name}, default parameters ({seeds} seed(s){note})",
                f"{accuracy:.3f} ({epochs[0]:.0f} epochs)",
                f"{base:.3f} ({epochs[1]:.0f} epochs, keras script)",
                accuracy / base if base else float("inf"),
                ">= 1.0x",
            )
        )
        seconds = median(column(ours, "seconds")), median(column(theirs, "seconds"))
        found.append(
            Row(
                2,
                f"`kedro run` wall time, s, {name} (default parameters: the runs of 7"
                f"{note})",
                f"{seconds[0]:.1f}",
                f"{seconds[1]:.1f} (keras script)",
                seconds[0] / seconds[1],
                "<= 1.3x",
            )
        )
    return found
