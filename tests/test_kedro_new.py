"""`kedro new` and plain `cookiecutter`, run as a user runs them (subprocesses).

What `kedro new --starter=<path> --name "Some Name"` does (Kedro 1.x): --name answers
project_name only; Kedro then asks every other prompts.yml question on stdin, with
cookiecutter.json's default shown. With nothing on stdin it aborts ("Aborted!") and
writes nothing, so a script must give --config answers.yml (every prompts.yml key)
or type the answers on stdin, one line each (an empty line takes the default).
"""

from __future__ import annotations

import filecmp
import importlib.metadata
import os
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from helpers import (
    BIN,
    DEFAULT_ANSWERS,
    PROMPTS,
    TEMPLATE,
    answers_file,
    bake_ok,
    cookiecutter_env,
    copy_template,
    git,
    git_repository,
    kedro,
    relative_files,
    requirement_names,
    run,
)
from packaging.requirements import Requirement

KEDRO_VERSION = importlib.metadata.version("kedro")
KEDRO_INIT_VERSION = re.compile(r'^kedro_init_version = "(.*)"$', re.M)


def assert_same_project(
    made: Path, reference: Path, *, but: tuple[str, ...] = ()
) -> None:
    """``made`` has exactly ``reference``'s files with the same bytes, ``but`` these."""
    made_files, reference_files = (
        set(relative_files(made)),
        set(relative_files(reference)),
    )
    assert made_files == reference_files, (
        f"missing: {sorted(reference_files - made_files)}\n"
        f"unexpected: {sorted(made_files - reference_files)}"
    )
    _, mismatch, errors = filecmp.cmpfiles(
        reference, made, relative_files(reference), shallow=False
    )
    assert sorted(mismatch) == sorted(but)
    assert errors == []


def assert_kedro_init_version(project: Path, version: str) -> None:
    pyproject = (project / "pyproject.toml").read_text()
    assert KEDRO_INIT_VERSION.findall(pyproject) == [version]


@pytest.fixture
def reference(cookies) -> Path:
    """A default bake made within the test, next to the project the test makes: the
    session's default_project could predate an edit of the template during the run."""
    return bake_ok(cookies)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """Keep cookiecutter's clones and replay files inside the test's folder."""
    return cookiecutter_env(tmp_path)


def test_kedro_new_with_config_file(tmp_path, env, reference):
    out = tmp_path / "out"
    out.mkdir()
    config = answers_file(tmp_path / "answers.yml", output_dir=str(out))
    assert set(PROMPTS) <= set(yaml.safe_load(config.read_text()))

    kedro("new", f"--starter={TEMPLATE}", "--config", str(config), cwd=tmp_path, **env)

    # The same project as a default bake; kedro new records its own Kedro version.
    project = out / reference.name
    assert_same_project(project, reference, but=("pyproject.toml",))
    assert_kedro_init_version(project, KEDRO_VERSION)


def test_kedro_new_with_yaml_native_answers(tmp_path, env):
    """Unquoted `example_data: no`, `kedro_viz: yes` and `image_size: 128` in the
    config file reach cookiecutter as a boolean, a boolean and an int."""
    config = tmp_path / "answers.yml"
    config.write_text(
        "project_name: Native Types\n"
        "image_size: 128\n"
        "example_data: no\n"
        "tracking_uri: local\n"
        "kedro_viz: yes\n"
        f"output_dir: {tmp_path}\n"
    )
    answers = yaml.safe_load(config.read_text())
    assert (answers["example_data"], answers["kedro_viz"], answers["image_size"]) == (
        False,
        True,
        128,
    )

    kedro("new", f"--starter={TEMPLATE}", "--config", str(config), cwd=tmp_path, **env)

    project = tmp_path / "native-types"
    assert list((project / "data/01_raw/images").iterdir()) == []
    assert "kedro-viz" in requirement_names(project)
    parameters = yaml.safe_load((project / "conf/base/parameters.yml").read_text())
    assert parameters["image"]["size"] == 128


def test_kedro_new_with_name_asks_the_other_questions(tmp_path, env):
    # One line per remaining prompts.yml question, in its order.
    typed = {
        "image_size": "96",
        "example_data": "no",
        "tracking_uri": "http://127.0.0.1:5000",
        "kedro_viz": "yes",
    }
    assert list(typed) == [key for key in PROMPTS if key != "project_name"]

    result = kedro(
        "new", f"--starter={TEMPLATE}", "--name", "Some Name",
        cwd=tmp_path, stdin="".join(f"{answer}\n" for answer in typed.values()), **env,
    )  # fmt: skip

    for key in typed:  # each question was shown, with its default
        assert PROMPTS[key]["title"].lower() in result.stdout.lower()
    project = tmp_path / "some-name"
    assert (project / "src/some_name/pipeline_registry.py").is_file()
    assert list((project / "data/01_raw/images").iterdir()) == []
    assert "kedro-viz" in requirement_names(project)
    assert "http://127.0.0.1:5000" in (project / "conf/base/mlflow.yml").read_text()
    parameters = yaml.safe_load((project / "conf/base/parameters.yml").read_text())
    assert parameters["image"]["size"] == 96


def test_kedro_new_with_name_and_empty_lines_takes_the_defaults(
    tmp_path, env, reference
):
    kedro(
        "new", f"--starter={TEMPLATE}", "--name", "Image Classifier",
        cwd=tmp_path, stdin="\n" * (len(PROMPTS) - 1), **env,
    )  # fmt: skip
    project = tmp_path / reference.name
    assert_same_project(project, reference, but=("pyproject.toml",))


def test_kedro_new_with_name_and_no_stdin_aborts_and_writes_nothing(tmp_path, env):
    result = kedro(
        "new", f"--starter={TEMPLATE}", "--name", "Some Name",
        cwd=tmp_path, expect_success=False, **env,
    )  # fmt: skip
    assert "Aborted" in result.stdout + result.stderr
    assert not (tmp_path / "some-name").exists()


def test_kedro_new_refuses_a_bad_typed_answer(tmp_path, env):
    result = kedro(
        "new", f"--starter={TEMPLATE}", "--name", "Some Name",
        cwd=tmp_path, stdin="1024\n", expect_success=False, **env,
    )  # fmt: skip
    # Kedro checks typed answers against prompts.yml itself.
    assert "'1024' is an invalid value for image size." in result.stderr
    assert not (tmp_path / "some-name").exists()


def test_kedro_new_from_a_git_tag(tmp_path, env, reference):
    # A repository of the template's working tree, tagged v0.1, with a later commit
    # that --checkout v0.1 must not see.
    repository = git_repository(copy_template(tmp_path / "starter"), force=True)
    git("commit", "--quiet", "--message", "Starter", cwd=repository)
    git("tag", "v0.1", cwd=repository)
    later = repository / "{{ cookiecutter.repo_name }}" / "AFTER_THE_TAG.md"
    later.write_text("Only on main, after v0.1.\n")
    git("add", "--all", cwd=repository)
    git("commit", "--quiet", "--message", "After the tag", cwd=repository)
    out = tmp_path / "out"
    out.mkdir()
    config = answers_file(tmp_path / "answers.yml", output_dir=str(out))

    kedro(
        "new", f"--starter=git+file://{repository}", "--checkout", "v0.1",
        "--config", str(config), cwd=tmp_path, **env,
    )  # fmt: skip

    project = out / reference.name
    assert_same_project(project, reference, but=("pyproject.toml",))
    assert_kedro_init_version(project, KEDRO_VERSION)


def test_plain_cookiecutter_no_input(tmp_path, env, reference):
    """Without kedro new, nobody passes kedro_version: cookiecutter.json's serves."""
    run(
        [
            str(BIN / "cookiecutter"),
            str(TEMPLATE),
            "--no-input",
            "--output-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        **env,
    )

    project = tmp_path / reference.name
    assert_same_project(project, reference)
    assert_kedro_init_version(project, DEFAULT_ANSWERS["kedro_version"])


def test_cookiecutter_with_a_relative_template_path(tmp_path, env, reference):
    """`cookiecutter . --no-input` from the checkout, as a shell runs it (PWD set)."""
    run(
        [str(BIN / "cookiecutter"), ".", "--no-input", "--output-dir", str(tmp_path)],
        cwd=TEMPLATE,
        PWD=str(TEMPLATE),
        **env,
    )
    assert_same_project(tmp_path / reference.name, reference)


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        ({"image_size": "1024"}, "ERROR: image_size '1024' is invalid: "),
        ({"tracking_uri": "ftp://x"}, "ERROR: tracking_uri 'ftp://x' is invalid: "),
        (
            {"project_name": "Keras"},
            "ERROR: python_package 'keras' shadows the dependency 'keras'",
        ),
    ],
    ids=["image_size", "tracking_uri", "dependency-name"],
)
def test_kedro_new_prints_the_hooks_line_for_a_bad_answer(tmp_path, env, answer, line):
    out = tmp_path / "out"
    out.mkdir()
    config = answers_file(tmp_path / "answers.yml", output_dir=str(out), **answer)

    result = kedro(
        "new",
        f"--starter={TEMPLATE}",
        "--config",
        str(config),
        cwd=tmp_path,
        expect_success=False,
        **env,
    )

    hook_lines = [
        text for text in result.stderr.splitlines() if text.startswith("ERROR: ")
    ]
    assert len(hook_lines) == 1, result.stderr
    assert hook_lines[0].startswith(line)
    assert list(out.iterdir()) == []


# ----------------------------------------------- kedro new as the README installs it


def readme_install_arguments() -> list[str]:
    """The requirements of the README's `pip install "kedro..."` line, as a shell reads them."""
    lines = [
        line
        for line in (TEMPLATE / "README.md").read_text().splitlines()
        if line.startswith('pip install "kedro')
    ]
    assert len(lines) == 1, lines
    arguments = shlex.split(lines[0], comments=True)
    assert arguments[:2] == ["pip", "install"]
    return arguments[2:]


@pytest.fixture(scope="module")
def readme_kedro(tmp_path_factory) -> Path:
    """`kedro` of a fresh virtual environment holding only what the README installs.

    uv installs it (fast, from its cache): the same requirements, the same newest
    releases that `pip install` picks.
    """
    venv = tmp_path_factory.mktemp("readme-venv") / "venv"
    run([str(BIN / "uv"), "venv", "--quiet", "--python", sys.executable, str(venv)],
        cwd=venv.parent)  # fmt: skip
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run([str(BIN / "uv"), "pip", "install", "--quiet", "--python", str(python),
         *readme_install_arguments()], cwd=venv.parent)  # fmt: skip
    return python.parent / "kedro"


def test_the_readme_installs_a_click_that_shows_kedros_errors():
    (click,) = [
        Requirement(a) for a in readme_install_arguments() if a.startswith("click")
    ]
    assert not click.specifier.contains("8.5.1")  # "NoneType: None" instead of errors


def test_the_demo_script_installs_kedro_as_the_readme_does():
    (line,) = [
        line
        for line in (TEMPLATE / "scripts/demo.sh").read_text().splitlines()
        if line.startswith("python -m pip install") and '"kedro' in line
    ]
    installed = shlex.split(line, comments=True)
    assert installed[-len(readme_install_arguments()) :] == readme_install_arguments()


MISSING_KEYS = ["image_size", "kedro_viz", "tracking_uri"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing-starter", "incomplete-config", "bad-answer"])
def test_kedro_new_errors_in_the_readme_environment(readme_kedro, tmp_path, env, case):
    """click 8.5 would print "NoneType: None" instead of each of these messages."""
    missing = tmp_path / "no-such-starter"
    if case == "incomplete-config":
        config = tmp_path / "answers.yml"
        config.write_text(
            yaml.safe_dump(
                {"output_dir": str(tmp_path), "project_name": "Some Name"}
                | {
                    key: DEFAULT_ANSWERS[key]
                    for key in PROMPTS
                    if key not in MISSING_KEYS
                }
            )
        )
    else:
        overrides = {"image_size": "1024"} if case == "bad-answer" else {}
        config = answers_file(
            tmp_path / "answers.yml", output_dir=str(tmp_path), **overrides
        )
    starter = missing if case == "missing-starter" else TEMPLATE

    result = run(
        [str(readme_kedro), "new", f"--starter={starter}", "--config", str(config)],
        cwd=tmp_path, expect_success=False, **env,
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert "NoneType: None" not in output, output[-3000:]
    if case == "missing-starter":
        assert f'A valid repository for "{missing}" could not be found' in output
    elif case == "incomplete-config":
        (line,) = [
            text for text in output.splitlines() if "not found in config file" in text
        ]
        assert all(key in line for key in MISSING_KEYS), line
    else:
        assert "ERROR: image_size '1024' is invalid: " in output
        assert "Failed to generate project when running cookiecutter." in output
