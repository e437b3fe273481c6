"""Shared helpers of the template's tests: answers, commands, and reading projects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1]
TEMPLATE_DIR_NAME = "{{ cookiecutter.repo_name }}"
DEFAULT_ANSWERS = {
    key: value
    for key, value in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if not key.startswith("_") and "{{" not in value
}
BIN = Path(sys.executable).parent


def command_env(**extra: str) -> dict[str, str]:
    """The environment for a project command: no MLflow leftovers, no telemetry prompt."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        KEDRO_DISABLE_TELEMETRY="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        # mlflow's server and scoring server start uvicorn from PATH.
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def run(
    args: list[str],
    cwd: Path,
    *,
    expect_success: bool = True,
    timeout: float = 600,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run a command as a user would; on an unexpected exit, fail with its output."""
    result = subprocess.run(
        args,
        cwd=cwd,
        env=command_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if (result.returncode == 0) != expect_success:
        pytest.fail(
            f"`{' '.join(map(str, args))}` in {cwd} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n"
            f"--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def kedro(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the Kedro CLI of this environment."""
    return run([sys.executable, "-m", "kedro", *args], cwd=cwd, **kwargs)


def bake_ok(cookies, **answers: str) -> Path:
    """Bake the template and assert that it succeeded; return the project folder."""
    result = cookies.bake(extra_context=answers)
    assert result.exit_code == 0, result.exception
    assert result.exception is None
    assert result.project_path.is_dir()
    return Path(result.project_path)


def text_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` that decodes as UTF-8 text (images excluded)."""
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        files.append(path)
    return files
