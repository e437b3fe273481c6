"""The benchmark command (benchmarks/run.py) runs end to end on a tiny size.

Benchmarks are never timed tests: this checks that every comparison still runs against
the current template and prints its row, not that any target is met.
"""

from __future__ import annotations

import json
import sys
from dataclasses import astuple

import pytest
from helpers import TEMPLATE, run
from PIL import Image

BENCHMARKS = TEMPLATE / "benchmarks"
RUN = BENCHMARKS / "run.py"
HEADER = "| # | measure | project | hand-written / detail | ratio | target | met |"
sys.path.insert(0, str(BENCHMARKS))
import datasets  # noqa: E402  benchmarks/datasets.py
from comparisons import load_all  # noqa: E402


def test_benchmark_command_documents_its_options():
    result = run([sys.executable, str(RUN), "--help"], cwd=TEMPLATE, timeout=60)
    for option in ("--tiny", "--images", "--pixels", "--repeats", "--only"):
        assert option in result.stdout
    for option in ("--datasets", "--backbone", "--epochs", "--requests"):
        assert option in result.stdout


def test_gpu_check_documents_itself_and_names_a_missing_gpu(tmp_path):
    """benchmarks/gpu_check.sh: --help prints what it measures; without nvidia-smi on
    PATH it stops at once with one line saying an NVIDIA GPU is needed."""
    script = str(BENCHMARKS / "gpu_check.sh")
    shown = run(["bash", script, "--help"], cwd=TEMPLATE, timeout=60)
    assert "mixed precision" in shown.stdout
    assert "nvidia-smi" in shown.stdout
    refused = run(
        ["bash", script],
        cwd=TEMPLATE,
        timeout=60,
        expect_success=False,
        PATH=f"{tmp_path}:/usr/bin:/bin",
    )
    assert refused.returncode == 2
    assert "nvidia-smi not found: this check needs an NVIDIA GPU" in refused.stderr


def test_each_comparison_is_one_module_with_its_row_number_and_key():
    modules = load_all()
    numbers = [module.NUMBER for module in modules]
    assert numbers == sorted(set(numbers))
    assert {1, 2, 3, 4, 5, 6, 7, 10} <= set(numbers)
    assert len({module.KEY for module in modules}) == len(modules)
    assert [m.NUMBER for m in modules if getattr(m, "SETUP", False)] == [6]


@pytest.mark.parametrize(
    ("name", "classes", "count", "side"),
    [
        ("shapes", {"circle", "square", "triangle"}, 30, 48),
        ("textures", {"brick", "grass", "gravel"}, 300, 512 // 10),
        ("faces", {"face", "non_face"}, 200, 25),
        ("digits", {str(digit) for digit in range(10)}, 1797, 8),
    ],
)
def test_datasets_are_class_folders_of_real_image_files(
    tmp_path, name, classes, count, side
):
    """Each dataset is written as <class>/<file>, the files decode to the stated size,
    and the same arguments write the same pixels."""
    images = 30 if name == "shapes" else 300
    first = datasets.build(name, tmp_path / "a", images=images, pixels=48)
    again = datasets.build(name, tmp_path / "b", images=images, pixels=48)
    assert again == datasets.Dataset(name, tmp_path / "b", *astuple(first)[2:])
    assert set(first.classes) == classes
    assert {p.name for p in first.folder.iterdir()} == classes
    files = sorted(p for p in first.folder.rglob("*") if p.is_file())
    assert len(files) == first.images == count
    for path in files[:: max(1, len(files) // 10)]:
        with Image.open(path) as image:
            assert image.size == (side, side), path
        twin = tmp_path / "b" / path.relative_to(first.folder)
        assert twin.read_bytes() == path.read_bytes()
    if name == "textures":  # grid crops: no two crops of one photo are the same
        crops = {p.read_bytes() for p in (first.folder / "brick").iterdir()}
        assert len(crops) == count // 3


def test_datasets_name_a_bad_request(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'leaves'"):
        datasets.build("leaves", tmp_path / "x")
    with pytest.raises(ValueError, match="textures: 30000 images"):
        datasets.build("textures", tmp_path / "y", images=30000)


UPSTREAM_FIXES_CHECK = """
import importlib, inspect, sys
from pathlib import Path
import importlib_metadata
from mlflow.utils import requirements_utils

folder = Path(sys.argv[1])
sys.path[:0] = ["benchmarks/upstream", str(folder)]
import kedro_with_fixes as fixes

# The frames' files, from frames an import and two calls deep, as inspect.stack().
(folder / "deep_caller.py").write_text(
    "import inspect, kedro_with_fixes as fixes\\n"
    "def outer():\\n    return inner()\\n"
    "def inner():\\n    return ([f.filename for f in fixes.frame_filenames()],"
    " [f.filename for f in inspect.stack()])\\n"
    "FILES = outer()\\n"
)
ours, expected = importlib.import_module("deep_caller").FILES
assert ours == expected and "<frozen importlib._bootstrap>" in ours, (ours, expected)

# dynaconf loads a settings module without inspect.stack().
stack_calls = []
stack = inspect.stack
inspect.stack = lambda *args, **kwargs: stack_calls.append(1) or stack(*args, **kwargs)
fixes.fix_dynaconf()
(folder / "some_settings.py").write_text("ANSWER = 42\\n")
from dynaconf import Dynaconf
assert Dynaconf(settings_module="some_settings").ANSWER == 42
assert stack_calls == [], "dynaconf called inspect.stack()"

# MLflow finds the same mismatches, and scans the distributions for the package
# without metadata only.
(folder / "metadata_free.py").write_text("__version__ = '1.2.3'\\n")
installed = importlib_metadata.version("numpy")
with_metadata = [f"numpy=={installed}", "numpy==0.0.1", "mlflow", "pandas>=0"]
without = ["metadata_free==1.2.3", "metadata_free==9", "no-such-distribution-here"]
check = requirements_utils._check_requirement_satisfied
before = [str(check(r)) for r in with_metadata + without]
requirements_utils._MODULES_TO_PACKAGES = None  # MLflow's cached scan, dropped
scans = []
scan = importlib_metadata.packages_distributions
importlib_metadata.packages_distributions = lambda: scans.append(1) or scan()
fixes.fix_mlflow()
after = [str(check(r)) for r in with_metadata]
assert scans == [], "the distributions were scanned for packages with metadata"
after += [str(check(r)) for r in without]
assert after == before and scans == [1], (after, before, scans)
assert "metadata_free (current: 1.2.3, required: metadata_free==9)" in after
"""


def test_upstream_fixes_find_what_dynaconf_and_mlflow_find(tmp_path):
    """Row 2's third side changes only how dynaconf and MLflow look things up: the
    same frame files as inspect.stack(), the same requirement mismatches as MLflow
    unpatched, the distributions scanned only for a package without metadata."""
    run([sys.executable, "-c", UPSTREAM_FIXES_CHECK, str(tmp_path)], cwd=TEMPLATE)


@pytest.mark.slow
def test_benchmarks_run_end_to_end_in_tiny_mode(tmp_path):
    """Every comparison prints at least one row of the table, rows 2 and 7 once per
    dataset; the JSON report holds the raw measurements of each, and --report prints
    the same table again."""
    report_path = tmp_path / "results.json"
    result = run(
        [sys.executable, str(RUN), "--tiny", "--workdir", str(tmp_path / "work")]
        + ["--json", str(report_path)],
        cwd=TEMPLATE,
        timeout=1500,
    )
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0] == HEADER, result.stdout
    numbers = [line.split("|")[1].strip() for line in table[2:]]
    expected = {str(module.NUMBER) for module in load_all()}
    assert set(numbers) == expected, result.stdout
    for line in table[2:]:
        assert line.count("|") == HEADER.count("|"), line
    for dataset in ("shapes", "textures"):
        assert any(f"test accuracy, {dataset}," in line for line in table), dataset
        assert any(f"wall time, s, {dataset} (1 epochs)" in line for line in table)
        assert any(
            f"wall time, s, {dataset} (1 epochs; with upstream/" in line
            for line in table
        )
    report = json.loads(report_path.read_text())
    assert set(report["results"]) == {module.KEY for module in load_all()}
    assert set(report["results"]["accuracy"]) == {"seeds", "shapes", "textures"}
    assert report["settings"]["tiny"] is True
    assert report["machine"]["tensorflow"]
    assert "done in" in result.stderr
    again = run([sys.executable, str(RUN), "--report", str(report_path)], cwd=TEMPLATE)
    assert again.stdout.strip() == result.stdout.strip()
