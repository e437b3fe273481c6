"""The generated requirements resolve wherever TensorFlow publishes wheels.

`uv pip compile --python-platform P --python-version V` resolves a requirements file
for another platform without installing anything: it needs the package index, and
uv's cache makes reruns fast. Only Linux x86-64 runs the project here (CI adds macOS
arm64); the other platforms are resolved, not run.
"""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass

import pytest
from helpers import BIN, TEMPLATE, bake_ok, command_env
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli, which pytest itself requires there
    import tomli as tomllib

PLATFORMS = [
    "aarch64-apple-darwin",  # macOS on Apple Silicon
    "x86_64-pc-windows-msvc",
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


COMBINATIONS = list(itertools.product(PLATFORMS, PYTHONS))


@pytest.fixture(scope="module")
def resolutions(cookies_session, tmp_path_factory) -> dict[tuple[str, str], Resolution]:
    """Every combination resolved at once (uv mostly waits on the index), for a bake
    with kedro-viz, whose requirements include every other bake's."""
    project = bake_ok(cookies_session, project_name="Platform Probe", kedro_viz="yes")
    out = tmp_path_factory.mktemp("resolved")
    processes = {
        (platform, python): subprocess.Popen(
            [
                str(BIN / "uv"),
                "pip",
                "compile",
                "requirements.txt",
                "--python-platform",
                platform,
                "--python-version",
                python,
                "--no-header",
                "--quiet",
                "--output-file",
                str(out / f"{platform}-{python}.txt"),
            ],
            cwd=project,
            env=command_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for platform, python in COMBINATIONS
    }
    resolved = {}
    for (platform, python), process in processes.items():
        _, stderr = process.communicate(timeout=600)
        locked = out / f"{platform}-{python}.txt"
        resolved[platform, python] = Resolution(
            process.returncode, stderr, locked.read_text() if locked.exists() else ""
        )
    return resolved


@dataclass(frozen=True)
class Resolution:
    returncode: int
    stderr: str
    locked: str

    def pins(self) -> dict[str, str]:
        """Distribution name -> pinned requirement line."""
        return {
            Requirement(line).name: line
            for line in self.locked.splitlines()
            if line.strip() and not line.startswith((" ", "#"))
        }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("platform", "python"),
    COMBINATIONS,
    ids=[f"{platform}-py{python}" for platform, python in COMBINATIONS],
)
def test_requirements_resolve(resolutions, platform, python):
    resolution = resolutions[platform, python]
    assert resolution.returncode == 0, resolution.stderr[-4000:]
    pins = resolution.pins()
    assert pins["tensorflow"].startswith("tensorflow==2.21"), resolution.locked
    assert "tensorflow-macos" not in pins


@pytest.mark.parametrize("kedro_viz", ["no", "yes"])
def test_requirements_txt_is_pyproject_dependencies_plus_dev(cookies, kedro_viz):
    """requirements.txt lists what pyproject.toml splits into dependencies and the dev
    extra (as Kedro's own template does): the two must not drift apart."""
    project = bake_ok(cookies, kedro_viz=kedro_viz)
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    declared = [*pyproject["dependencies"], *pyproject["optional-dependencies"]["dev"]]
    listed = [
        line.strip()
        for line in (project / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert listed == declared
    assert pyproject["requires-python"] == ">=3.10,<3.14"
    assert [r for r in declared if r.startswith("ruff")] == ["ruff==0.17.6"]


def test_ruff_is_pinned_alike_in_the_project_and_both_hook_files(default_project):
    """Lint results must not change under a user: one ruff version everywhere."""
    (pin,) = [
        line
        for line in (default_project / "requirements.txt").read_text().splitlines()
        if line.startswith("ruff")
    ]
    for hooks in (default_project, TEMPLATE):
        text = (hooks / ".pre-commit-config.yaml").read_text()
        assert text.count(f'additional_dependencies: ["{pin}"]') == 2, hooks
    assert pin in (TEMPLATE / "requirements-dev.txt").read_text()
