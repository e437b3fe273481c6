"""6: seconds from `kedro new` to the first answer of the served model (the setup)."""

from __future__ import annotations

import http.client
import sys
import time
from typing import Any

import yaml
from harness import (
    PACKAGE,
    PROJECT_NAME,
    REPOSITORY,
    Bench,
    Option,
    Row,
    kedro_run,
    log,
    model_server,
    payload,
    post,
    run_command,
)

NUMBER = 6
KEY = "first_prediction"
SETUP = True
OPTIONS = {
    "first_run_epochs": Option("epochs of the first `kedro run`", default=None, tiny=1),
}


def measure(bench: Bench) -> dict[str, float]:
    """`kedro new` -> `kedro run` -> `mlflow models serve` -> first answer."""
    space, args = bench.space, bench.args
    answers = space.root / "answers.yml"
    answers.write_text(
        yaml.safe_dump(
            {
                "output_dir": str(space.root),
                "project_name": PROJECT_NAME,
                "image_size": str(args.image_size),
                "example_data": "yes",
                "tracking_uri": "local",
                "kedro_viz": "no",
            }
        )
    )
    new = run_command(
        space,
        [sys.executable, "-m", "kedro", "new", f"--starter={REPOSITORY}"]
        + ["--config", str(answers)],
        "kedro-new",
    )
    params: dict[str, Any] = {}
    if args.first_run_epochs:
        params["train_classifier.epochs"] = args.first_run_epochs
        # So few epochs may miss the registration gate; comparisons 3 and 4 serve it.
        params["register_model.minimum"] = 0
    first_run = kedro_run(space, "local", params, "first-run")
    serve_start = time.perf_counter()
    with model_server(space, f"models:/{PACKAGE}/latest") as port:
        ready = time.perf_counter() - serve_start
        raw = space.project / "data" / "01_raw" / "images"
        first_image = sorted(p for p in raw.rglob("*") if p.is_file())[0]
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start = time.perf_counter()
        answer = post(connection, payload([first_image]))
        first_answer = time.perf_counter() - start
        connection.close()
    log(f"first prediction: {answer['predictions'][0]}")
    result = {
        "kedro_new_s": new.seconds,
        "kedro_run_s": first_run.seconds,
        "serve_ready_s": ready,
        "first_answer_s": first_answer,
    }
    result["total_s"] = sum(result.values())
    return result


def rows(first: dict[str, float], settings: Any) -> list[Row]:
    return [
        Row(
            NUMBER,
            "`kedro new` -> first served prediction, s",
            f"{first['total_s']:.1f}",
            f"new {first['kedro_new_s']:.1f} + run {first['kedro_run_s']:.1f} + "
            f"serve {first['serve_ready_s']:.1f} + answer {first['first_answer_s']:.2f}",
            first["total_s"] / 60,
            "<= 1.0x (60 s)",
        )
    ]
