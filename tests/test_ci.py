"""The CI workflow, read as GitHub reads it (it cannot run here), and its helpers.

GitHub Actions does not run on this machine: these tests parse the workflow and check
what it promises (least privilege, pinned actions, pip cache, a macOS arm64 job, a
weekly job against the newest releases); scripts/without_upper_bounds.py, which that
weekly job relies on, is run for real.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from helpers import TEMPLATE

WORKFLOW = yaml.safe_load((TEMPLATE / ".github/workflows/ci.yml").read_text())
WORKFLOW_TEXT = (TEMPLATE / ".github/workflows/ci.yml").read_text()
JOBS = WORKFLOW["jobs"]
# PyYAML reads the key `on:` as the boolean True (YAML 1.1), GitHub as "on".
TRIGGERS = WORKFLOW.get("on", WORKFLOW.get(True))
STEPS = [(name, step) for name, job in JOBS.items() for step in job["steps"]]
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def test_the_token_can_only_read():
    assert WORKFLOW["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in JOBS.values())


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment():
    uses = [step["uses"] for _, step in STEPS if "uses" in step]
    assert uses
    assert all(PINNED.match(action) for action in uses), uses
    for action in uses:
        line = next(line for line in WORKFLOW_TEXT.splitlines() if action in line)
        assert re.search(r"#\s*v\d+\.\d+\.\d+$", line), line


def test_checkout_keeps_no_credentials():
    checkouts = [
        s for _, s in STEPS if s.get("uses", "").startswith("actions/checkout@")
    ]
    assert len(checkouts) == len(JOBS)
    assert all(step["with"]["persist-credentials"] is False for step in checkouts)


def test_pip_downloads_are_cached_by_the_requirement_files():
    setups = [
        s for _, s in STEPS if s.get("uses", "").startswith("actions/setup-python@")
    ]
    assert len(setups) == len(JOBS)
    for step in setups:
        assert step["with"]["cache"] == "pip"
        patterns = step["with"]["cache-dependency-path"].split()
        matched = [path for pattern in patterns for path in TEMPLATE.glob(pattern)]
        names = {path.relative_to(TEMPLATE).as_posix() for path in matched}
        assert names == {
            "requirements-dev.txt",
            "{{ cookiecutter.repo_name }}/requirements.txt",
        }


def test_every_python_on_linux_and_one_on_macos_arm64():
    matrix = JOBS["test"]["strategy"]["matrix"]
    assert matrix["os"] == ["ubuntu-latest"]
    assert matrix["python-version"] == ["3.10", "3.11", "3.12", "3.13"]
    assert {"os": "macos-14", "python-version": "3.12"} in matrix["include"]


def test_a_weekly_job_tests_the_newest_releases():
    (schedule,) = TRIGGERS["schedule"]
    minute, hour, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*") and weekday.isdigit()
    newest = JOBS["newest"]
    assert "schedule" in newest["if"] and "schedule" in JOBS["test"]["if"]
    (run,) = [step for step in newest["steps"] if "run" in step]
    assert run["run"] == ".ci/run"
    assert run["env"]["STACK"] == "newest"
    assert 'STACK:-}" = newest' in (TEMPLATE / "scripts/test.sh").read_text()


def test_every_job_runs_the_readme_test_command():
    for job in JOBS.values():
        assert [step["run"] for step in job["steps"] if "run" in step] == [".ci/run"]
    assert "scripts/test.sh" in (TEMPLATE / ".ci/run").read_text()


@pytest.mark.parametrize(
    ("line", "lifted"),
    [
        ("kedro>=1.3.1,<2", "kedro>=1.3.1"),
        ("click>=8.2,<8.5", "click>=8.2"),
        ("ruff==0.17.6", "ruff>=0.17.6"),
        ("keras~=3.12", "keras>=3.12"),
        ("kedro-datasets[pillow-imagedataset,text-textdataset]>=9,<10",
         "kedro-datasets[pillow-imagedataset,text-textdataset]>=9"),
        ("notebook", "notebook"),
        ("tensorflow>=2.21,<=2.21.9; sys_platform != 'darwin'  # wheels",
         "tensorflow>=2.21; sys_platform != 'darwin'  # wheels"),
        ("# a comment <2", "# a comment <2"),
        ("-e .[dev]", "-e .[dev]"),
        ("", ""),
    ],
)  # fmt: skip
def test_without_upper_bounds(tmp_path, line, lifted):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(line + "\n")
    result = subprocess.run(
        [sys.executable, str(TEMPLATE / "scripts/without_upper_bounds.py"), str(requirements)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout == lifted + "\n"
