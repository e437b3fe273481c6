"""The benchmark command (benchmarks/run.py) runs end to end on a tiny size.

Benchmarks are never timed tests: this checks that every comparison still runs against
the current template and prints its row, not that any target is met.
"""

from __future__ import annotations

import json
import sys

import pytest
from helpers import TEMPLATE, run

RUN = TEMPLATE / "benchmarks" / "run.py"
HEADER = "| # | measure | project | hand-written / detail | ratio | target | met |"


def test_benchmark_command_documents_its_options():
    result = run([sys.executable, str(RUN), "--help"], cwd=TEMPLATE, timeout=60)
    for option in ("--tiny", "--images", "--pixels", "--repeats", "--only"):
        assert option in result.stdout


@pytest.mark.slow
def test_benchmarks_run_end_to_end_in_tiny_mode(tmp_path):
    """Every comparison (1-7) prints at least one row of the table; the JSON report
    holds the raw measurements of each."""
    report_path = tmp_path / "results.json"
    result = run(
        [sys.executable, str(RUN), "--tiny", "--workdir", str(tmp_path / "work")]
        + ["--json", str(report_path)],
        cwd=TEMPLATE,
        timeout=1200,
    )
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0] == HEADER, result.stdout
    numbers = [line.split("|")[1].strip() for line in table[2:]]
    assert sorted(set(numbers)) == [str(n) for n in range(1, 8)], result.stdout
    for line in table[2:]:
        assert line.count("|") == HEADER.count("|"), line
    report = json.loads(report_path.read_text())
    assert set(report["results"]) == {
        "first_prediction",
        "served",
        "predict",
        "throughput",
        "end_to_end",
        "accuracy",
        "memory",
    }
    assert report["settings"]["tiny"] is True
    assert report["machine"]["tensorflow"]
    assert "done in" in result.stderr
