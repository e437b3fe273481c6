"""Shared helpers of the template's tests: answers, commands, and reading projects."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

TEMPLATE = Path(__file__).resolve().parents[1]
TEMPLATE_DIR_NAME = "{{ cookiecutter.repo_name }}"
DEFAULT_ANSWERS = {
    key: value
    for key, value in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if not key.startswith("_") and "{{" not in value
}
PROMPTS = yaml.safe_load((TEMPLATE / "prompts.yml").read_text())
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
    stdin: str | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run a command as a user would; on an unexpected exit, fail with its output.

    ``stdin`` is typed at the command's prompts; without it the command reads an empty
    stdin, so a prompt nobody expected aborts instead of hanging the tests.
    """
    result = subprocess.run(
        args,
        cwd=cwd,
        env=command_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
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


def relative_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted list of POSIX paths relative to it."""
    return sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    )


# Jinja left unrendered: any "{%", "%}" or "{#"; and "{{" or "}}" where they look
# like Jinja ("{{ x", "x }}", "{{cookiecutter") or where the line's braces do not
# balance. Balanced doubled braces without spaces are legitimate text: Python dicts
# ({"a": {"b": 1}}), f-string escapes (f"{{'{key}': 1}}"), OmegaConf (${a:${b}}).
_JINJA = re.compile(r"\{%|%\}|\{#|\{\{[\s-]|[\s-]\}\}|\{\{\s*cookiecutter")


def unrendered_jinja(folder: Path) -> list[str]:
    """``path:line: text`` of every text line or path under ``folder`` with Jinja left."""
    found = [
        f"{path}: unrendered file name"
        for path in relative_files(folder)
        if "{{" in path or "}}" in path or "cookiecutter" in path
    ]
    for path in text_files(folder):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            doubled = "{{" in line or "}}" in line
            unbalanced = doubled and line.count("{") != line.count("}")
            if unbalanced or _JINJA.search(line):
                found.append(f"{path.relative_to(folder)}:{number}: {line.strip()}")
    return found


def requirement_names(project: Path) -> list[str]:
    """The distribution names that the project's requirements.txt installs."""
    lines = (project / "requirements.txt").read_text().splitlines()
    return [
        re.split(r"[\s\[<>=!~;@]", line.strip(), maxsplit=1)[0].lower()
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    ]


def answers_file(path: Path, **overrides: object) -> Path:
    """Write a ``kedro new --config`` file: every prompts.yml key, defaults overridden."""
    answers = {key: DEFAULT_ANSWERS[key] for key in PROMPTS} | overrides
    path.write_text(yaml.safe_dump(answers, sort_keys=False))
    return path


def cookiecutter_env(folder: Path) -> dict[str, str]:
    """Environment that keeps cookiecutter's clones and replay files under ``folder``
    instead of the user's ~/.cookiecutters and ~/.cookiecutter_replay."""
    config = folder / "cookiecutter-config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "cookiecutters_dir": str(folder / "cookiecutters"),
                "replay_dir": str(folder / "cookiecutter_replay"),
            }
        )
    )
    return {"COOKIECUTTER_CONFIG": str(config)}


GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
}


def git(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run git with a fixed identity, so commits work on a machine without one."""
    return run(["git", *args], cwd=cwd, **GIT_IDENTITY, **kwargs)


def git_repository(folder: Path, *, force: bool = False) -> Path:
    """``git init && git add -A`` in ``folder``, as a user does with a new project.

    ``force`` also adds files that .gitignore matches: for a copy of the template
    repository, whose tracked files include some its template's .gitignore excludes.
    """
    git("init", "--quiet", "--initial-branch=main", cwd=folder)
    git("add", "--all", *(["--force"] if force else []), cwd=folder)
    return folder


def copy_template(destination: Path) -> Path:
    """Copy the template repository's working tree to ``destination``.

    The files are those git would see: tracked and untracked, minus what .gitignore
    excludes (.venv, caches, baked projects). So the copy holds uncommitted edits,
    which a ``git clone`` of the repository would miss.
    """
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in sorted(set(listing.split("\0")) - {""}):
        source = TEMPLATE / name
        if source.is_file():  # tracked files deleted in the working tree are gone
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


TRAINED_PACKAGE = "trained_shapes"  # the package of the `trained_project` fixture
EXAMPLE_CLASSES = ["circle", "square", "triangle"]


def project_tracking_uri(project: Path) -> str:
    """The URI of a project's default tracking store: its SQLite database."""
    return f"sqlite:///{project / 'mlflow.db'}"


def run_statuses(client: mlflow.MlflowClient, experiment_name: str) -> list[str]:
    """The sorted statuses of every run of an experiment."""
    experiment = client.get_experiment_by_name(experiment_name)
    return sorted(r.info.status for r in client.search_runs([experiment.experiment_id]))


def registered_versions(client: mlflow.MlflowClient, name: str) -> list[int]:
    """The sorted version numbers registered under ``name``."""
    return sorted(
        int(v.version) for v in client.search_model_versions(f"name='{name}'")
    )
