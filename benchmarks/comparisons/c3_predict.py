"""3: ms per in-process predict of the logged model against calling Keras directly."""

from __future__ import annotations

from typing import Any

from harness import PACKAGE, Bench, Option, Row, probe

NUMBER = 3
KEY = "predict"
OPTIONS = {
    "calls": Option("calls per round of in-process predict", default=20, tiny=3),
}


def measure(bench: Bench) -> dict[str, Any]:
    """Both sides in one fresh process (probes.py predict), on the shapes."""
    space = bench.space
    _, dataset = bench.dataset("shapes")
    return probe(
        space,
        "predict",
        "--model-uri",
        f"models:/{PACKAGE}/1",
        "--tracking-uri",
        space.tracking_uri,
        "--keras-file",
        space.project / "data" / "06_models" / "classifier.keras",
        "--images",
        dataset.folder,
        "--repeats",
        str(bench.args.repeats),
        "--calls",
        str(bench.args.calls),
    )


def rows(result: dict[str, Any], settings: Any) -> list[Row]:
    found = []
    for batch, measured in result["batches"].items():
        ms = measured["median_ms"]
        for logging_name, key in (
            ("Kedro logs at WARNING", "pyfunc_warning_logging"),
            ("Kedro logs at INFO, default", "pyfunc_default_logging"),
        ):
            found.append(
                Row(
                    NUMBER,
                    f"predict, batch {batch}, ms ({logging_name})",
                    f"{ms[key]:.2f}",
                    f"{ms['keras']:.2f} (Keras on decoded arrays)",
                    ms[key] / ms["keras"],
                    "<= 1.2x",
                )
            )
        found.append(
            Row(
                NUMBER,
                f"predict, batch {batch}, ms (WARNING) vs bytes->PIL->Keras by hand",
                f"{ms['pyfunc_warning_logging']:.2f}",
                f"{ms['by_hand']:.2f} (decode + Keras)",
                ms["pyfunc_warning_logging"] / ms["by_hand"],
                "<= 1.2x",
            )
        )
    return found
