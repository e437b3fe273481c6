"""A generated project passes its own checks, and its CLI errors say what is wrong.

Commands run as a user runs them, in a copy of the default project where they would
write (Kedro writes info.log, kedro-mlflow creates mlflow.db). Every Kedro command
imports TensorFlow (5-10 s) and pre-commit installs its hooks from PyPI on first use:
those tests are marked slow; ruff is not.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import (
    BIN,
    TEMPLATE,
    TEMPLATE_DIR_NAME,
    bake_ok,
    copy_template,
    git_repository,
    kedro,
    run,
)

# Every pipeline folder of the template is registered, and so is the default one.
PIPELINE_FOLDERS = (
    TEMPLATE / TEMPLATE_DIR_NAME / "src/{{ cookiecutter.python_package }}/pipelines"
)
PIPELINES = {"__default__"} | {
    folder.name
    for folder in PIPELINE_FOLDERS.iterdir()
    if (folder / "pipeline.py").is_file()
}


@pytest.fixture(scope="module")
def project(default_project, tmp_path_factory) -> Path:
    """A copy of the default project that Kedro commands may write into."""
    return shutil.copytree(
        default_project, tmp_path_factory.mktemp("checks") / "project"
    )


@pytest.mark.parametrize(
    "command",
    [["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff(default_project, command):
    run([str(BIN / "ruff"), *command], cwd=default_project)


LONG_NAME = "Leaf Disease Detection For Tropical Greenhouse Crops Pipeline"


@pytest.mark.parametrize(
    "command",
    [["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]],
    ids=["ruff-check", "ruff-format"],
)
def test_ruff_with_a_long_package_name(cookies, command):
    """Imports of a 60-character package name still pass the project's own ruff."""
    run([str(BIN / "ruff"), *command], cwd=bake_ok(cookies, project_name=LONG_NAME))


@pytest.mark.slow
def test_kedro_info(project):
    result = kedro("info", cwd=project)
    assert "kedro_mlflow" in result.stdout


@pytest.mark.slow
def test_kedro_registry_list(project):
    result = kedro("registry", "list", cwd=project)
    listed = set(re.findall(r"^- (\S+)$", result.stdout, re.M))
    assert {"data_processing", "training", "evaluation", "inference"} <= PIPELINES
    assert listed == PIPELINES


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_kedro_registry_describe(project, name):
    # Kedro >= 1.5 loads only the pipelines a command names (find_pipelines reads
    # the CLI's selection), so register_pipelines must not need the others.
    result = kedro("registry", "describe", name, cwd=project)
    assert "Nodes:" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["describe-datasets", "resolve-patterns"])
def test_kedro_catalog(project, command):
    result = kedro("catalog", command, cwd=project)
    if command == "describe-datasets":
        described = set(re.findall(r"^(\w+):$", result.stdout, re.M))
        assert PIPELINES <= described


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["run", "--pipeline", "does_not_exist"],
        ["run", "--pipelines", "does_not_exist"],
        ["pipeline", "delete", "-y", "does_not_exist"],
    ],
    ids=["run-pipeline", "run-pipelines", "pipeline-delete"],
)
def test_cli_errors_name_the_culprit(project, command):
    """click 8.5 replaces every KedroCliError message with "NoneType: None": the
    project pins click<8.5, so the environment that runs it must honour the pin."""
    result = kedro(*command, cwd=project, expect_success=False)
    output = result.stdout + result.stderr
    assert "NoneType: None" not in output, output[-3000:]
    assert "does_not_exist" in output


@pytest.mark.slow
def test_pre_commit_on_a_new_project(default_project, tmp_path):
    """`git init && git add -A && pre-commit run --all-files` in a fresh project.
    pre-commit installs its hook environments from PyPI once, into its own cache."""
    project = git_repository(shutil.copytree(default_project, tmp_path / "project"))
    run(
        [str(BIN / "pre-commit"), "run", "--all-files", "--show-diff-on-failure"],
        cwd=project,
    )


@pytest.mark.slow
def test_pre_commit_on_the_template_repository(tmp_path):
    """The template repository's own hooks pass on its working tree.

    Run on a copy of the files git would see (tracked and untracked, not ignored):
    a `git clone` would check only the last commit, missing the edits under test,
    and running in place could let a hook rewrite the working tree.
    """
    repository = git_repository(copy_template(tmp_path / "starter"), force=True)
    run(
        [str(BIN / "pre-commit"), "run", "--all-files", "--show-diff-on-failure"],
        cwd=repository,
    )


# IPython's and Jupyter's profile, data and runtime folders: the test's, not the user's.
def notebook_env(folder: Path) -> dict[str, str]:
    return {
        "IPYTHONDIR": str(folder / "ipython"),
        "JUPYTER_DATA_DIR": str(folder / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(folder / "jupyter-runtime"),
    }


PROBE = (
    'print("PIPELINES", sorted(pipelines)); print("CATALOG", "raw_images" in catalog)'
)


def assert_probe_ran(output: str) -> None:
    """The probe saw the project's pipelines and catalog, which Kedro's extension loads."""
    assert re.search(r"PIPELINES \[.*'__default__'.*'training'", output), output[-3000:]
    assert "CATALOG True" in output, output[-3000:]


@pytest.mark.slow
def test_kedro_ipython(project, tmp_path):
    """`kedro ipython` starts IPython with the project loaded (here fed from stdin)."""
    result = kedro("ipython", cwd=project, stdin=PROBE + "\n", **notebook_env(tmp_path))
    assert_probe_ran(result.stdout)


@pytest.mark.slow
def test_kedro_jupyter_kernel_runs_a_notebook(project, tmp_path):
    """`kedro jupyter setup` installs the project's kernel, which `kedro jupyter lab`
    and `kedro jupyter notebook` start; a notebook in notebooks/ runs on it."""
    env = notebook_env(tmp_path)
    kedro("jupyter", "setup", cwd=project, **env)
    (kernel,) = (tmp_path / "jupyter-data/kernels").glob("kedro_*")
    notebook = project / "notebooks" / "probe.ipynb"
    notebook.write_text(
        json.dumps(
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [
                    {"cell_type": "code", "id": "probe", "metadata": {},
                     "source": PROBE, "outputs": [], "execution_count": None},
                ],
            }
        )
    )  # fmt: skip
    try:
        run(
            [
                str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                f"--ExecutePreprocessor.kernel_name={kernel.name}",
                "--output", "probe-ran.ipynb", str(notebook),
            ],
            cwd=project, **env,
        )  # fmt: skip
        assert_probe_ran((project / "notebooks/probe-ran.ipynb").read_text())
    finally:
        for name in ("probe.ipynb", "probe-ran.ipynb"):
            (project / "notebooks" / name).unlink(missing_ok=True)
