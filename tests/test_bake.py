"""Baking the template: the exact files of the default project, and the effect of
every answer on them (no project command runs here: see test_project_checks.py)."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import (
    PROMPTS,
    TEMPLATE,
    TEMPLATE_DIR_NAME,
    bake_ok,
    git,
    git_repository,
    relative_files,
    requirement_names,
    unrendered_jinja,
)
from omegaconf import OmegaConf
from packaging.requirements import Requirement

IMAGES = "data/01_raw/images"
# Every file of the default project but the example images, which
# EXAMPLE_IMAGES describes. Update both when the template gains or loses a file.
DEFAULT_FILES = """
.gitignore
.pre-commit-config.yaml
README.md
conf/README.md
conf/base/catalog.yml
conf/base/mlflow.yml
conf/base/parameters.yml
conf/base/parameters_batch_inference.yml
conf/base/parameters_data_processing.yml
conf/base/parameters_evaluation.yml
conf/base/parameters_features.yml
conf/base/parameters_inference.yml
conf/base/parameters_registration.yml
conf/base/parameters_training.yml
conf/local/.gitkeep
conf/local/credentials.yml
conf/logging.yml
conf/logging_serving.yml
data/01_raw/new_images/.gitkeep
data/02_intermediate/.gitkeep
data/03_primary/.gitkeep
data/04_feature/.gitkeep
data/05_model_input/.gitkeep
data/06_models/.gitkeep
data/07_model_output/.gitkeep
data/08_reporting/.gitkeep
notebooks/.gitkeep
pyproject.toml
requirements.txt
src/image_classifier/__init__.py
src/image_classifier/__main__.py
src/image_classifier/acceleration.py
src/image_classifier/backbones.py
src/image_classifier/cli.py
src/image_classifier/hooks.py
src/image_classifier/image_features.py
src/image_classifier/image_folders.py
src/image_classifier/input_pipeline.py
src/image_classifier/keras_model.py
src/image_classifier/mlflow_callbacks.py
src/image_classifier/mlflow_datasets.py
src/image_classifier/model_logging.py
src/image_classifier/multi_worker.py
src/image_classifier/parameter_checks.py
src/image_classifier/payload.py
src/image_classifier/pipeline_registry.py
src/image_classifier/pipelines/__init__.py
src/image_classifier/pipelines/batch_inference/__init__.py
src/image_classifier/pipelines/batch_inference/nodes.py
src/image_classifier/pipelines/batch_inference/pipeline.py
src/image_classifier/pipelines/data_processing/__init__.py
src/image_classifier/pipelines/data_processing/nodes.py
src/image_classifier/pipelines/data_processing/pipeline.py
src/image_classifier/pipelines/evaluation/__init__.py
src/image_classifier/pipelines/evaluation/nodes.py
src/image_classifier/pipelines/evaluation/pipeline.py
src/image_classifier/pipelines/features/__init__.py
src/image_classifier/pipelines/features/nodes.py
src/image_classifier/pipelines/features/pipeline.py
src/image_classifier/pipelines/inference/__init__.py
src/image_classifier/pipelines/inference/nodes.py
src/image_classifier/pipelines/inference/pipeline.py
src/image_classifier/pipelines/inference/runner.py
src/image_classifier/pipelines/training/__init__.py
src/image_classifier/pipelines/training/nodes.py
src/image_classifier/pipelines/training/pipeline.py
src/image_classifier/preprocessing.py
src/image_classifier/registration.py
src/image_classifier/serving.py
src/image_classifier/serving_defaults.py
src/image_classifier/settings.py
src/image_classifier/training_history.py
tests/__init__.py
tests/conftest.py
tests/pipelines/__init__.py
tests/pipelines/batch_inference/__init__.py
tests/pipelines/batch_inference/test_nodes.py
tests/pipelines/data_processing/__init__.py
tests/pipelines/data_processing/test_nodes.py
tests/pipelines/evaluation/__init__.py
tests/pipelines/evaluation/test_nodes.py
tests/pipelines/features/__init__.py
tests/pipelines/features/test_nodes.py
tests/pipelines/inference/__init__.py
tests/pipelines/inference/test_nodes.py
tests/pipelines/inference/test_runner.py
tests/pipelines/training/__init__.py
tests/pipelines/training/test_backbones.py
tests/pipelines/training/test_nodes.py
tests/test_acceleration.py
tests/test_catalog.py
tests/test_cli.py
tests/test_default_pipeline.py
tests/test_image_features.py
tests/test_input_pipeline.py
tests/test_multi_worker.py
tests/test_mlflow_datasets.py
tests/test_parameter_checks.py
tests/test_pipeline.py
tests/test_preprocessing.py
tests/test_registration.py
tests/test_requirements.py
tests/test_serving.py
tests/test_settings.py
tests/test_tracking_store.py
""".split()
# class folder -> number of images per file extension
EXAMPLE_IMAGES = {
    "circle": {".jpg": 75, ".png": 75},
    "square": {".jpg": 75, ".png": 75},
    "triangle": {".jpg": 75, ".png": 75},
}
# What `git add -A` must leave out of a fresh project's first commit.
UNTRACKED = {"conf/local/credentials.yml"}
# Files the project writes when used, which must never reach git.
IGNORED_OUTPUTS = [
    "conf/local/credentials.yml",
    "conf/local/anything.yml",
    "conf/base/credentials.yml",  # Kedro's own template ignores conf/**/*credentials*
    "mlflow.db",
    "mlflow.db.lock",  # hooks.py: one process at a time creates a new store
    "mlartifacts/1/abc/artifacts/model.keras",
    "mlruns/0/meta.yaml",
    "info.log",  # conf/logging.yml's file handler writes it on every kedro command
    "data/02_intermediate/image_index.csv",
    "data/06_models/classifier.keras",
    "data/08_reporting/metrics.json",
]


def image_census(images: Path) -> dict[str, dict[str, int]]:
    """class folder -> number of files per (lower-case) extension."""
    census: dict[str, Counter] = {}
    for path in images.rglob("*"):
        if path.is_file():
            folder = path.relative_to(images).parts[0]
            census.setdefault(folder, Counter())[path.suffix.lower()] += 1
    return {folder: dict(counts) for folder, counts in census.items()}


def assert_rendered(project: Path) -> None:
    leftovers = unrendered_jinja(project)
    assert not leftovers, "Jinja left in the generated project:\n" + "\n".join(
        leftovers
    )


def tracking_uri_default(project: Path) -> str:
    """mlflow.yml's tracking URI when MLFLOW_TRACKING_URI is not set."""
    mlflow = yaml.safe_load((project / "conf/base/mlflow.yml").read_text())
    value = mlflow["server"]["mlflow_tracking_uri"]
    match = re.fullmatch(r'\$\{env_or_default:MLFLOW_TRACKING_URI,"(.*)"\}', value)
    assert match, (
        f"mlflow_tracking_uri does not read MLFLOW_TRACKING_URI first: {value}"
    )
    return match.group(1)


def resolve_tracking_uri(project: Path) -> str:
    """Resolve mlflow.yml's default tracking URI with OmegaConf, as Kedro does.

    ``${project_root:}`` is replaced by hand: registering the project's resolver
    here would leak into every later OmegaConf user of this test process. How
    MLFLOW_TRACKING_URI overrides it is the generated project's own test
    (tests/test_tracking_store.py, with Kedro's loader and the project's settings).
    """
    value = tracking_uri_default(project).replace(
        "${project_root:}", project.as_posix()
    )
    return OmegaConf.create({"uri": value}).uri


# ---------------------------------------------------------------- default answers


def test_default_project_has_exactly_the_expected_files(default_project):
    files = [
        f for f in relative_files(default_project) if not f.startswith(IMAGES + "/")
    ]
    missing = sorted(set(DEFAULT_FILES) - set(files))
    unexpected = sorted(set(files) - set(DEFAULT_FILES))
    assert not missing and not unexpected, (
        f"missing: {missing}\nunexpected: {unexpected}\n"
        "(update DEFAULT_FILES when the template's file set changes on purpose)"
    )
    assert files == sorted(DEFAULT_FILES)


def test_default_project_has_the_example_images(default_project):
    assert image_census(default_project / IMAGES) == EXAMPLE_IMAGES
    assert all(p.is_dir() for p in (default_project / IMAGES).iterdir())


def test_example_image_count_in_the_prompt_matches_the_images(default_project):
    announced = re.search(r"(\d+) small images", PROMPTS["example_data"]["text"])
    assert announced, "prompts.yml no longer says how many example images there are"
    shipped = sum(p.is_file() for p in (default_project / IMAGES).rglob("*"))
    assert int(announced.group(1)) == shipped


def test_no_template_file_is_git_ignored():
    """The template folder's own .gitignore applies inside this repository too: a file
    it ignores is never committed, so `kedro new --starter=git+...` never sees it."""
    ignored = git(
        "ls-files", "--others", "--ignored", "--exclude-standard", "--", TEMPLATE_DIR_NAME,
        cwd=TEMPLATE,
    ).stdout.splitlines()  # fmt: skip
    ignored = [f for f in ignored if "__pycache__" not in f and not f.endswith(".pyc")]
    assert ignored == [], "force-add them: git add -f <file>"


def test_default_project_has_no_jinja_left(default_project):
    assert_rendered(default_project)


def test_unrendered_jinja_tells_leftovers_from_legitimate_braces(tmp_path):
    leftovers = [
        "name = {{ cookiecutter.python_package }}",
        "size: {{cookiecutter.image_size}}",
        "{%- if cookiecutter.kedro_viz == 'yes' %}",
        "{# a Jinja comment #}",
        "kedro-viz>=12 }}",
    ]
    legitimate = [
        'optimizer = {"class_name": name, "config": {"learning_rate": rate}}',
        "artifact_location: ${artifacts_beside:${server.mlflow_tracking_uri}}",
        "SEND = f\"send {{'{RECORDS}': [{{'{IMAGE_COLUMN}': '<base64>'}}]}}\"",
    ]
    (tmp_path / "file.py").write_text("\n".join(leftovers + legitimate) + "\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff{{ x }}")
    found = unrendered_jinja(tmp_path)
    assert found == [f"file.py:{n}: {line}" for n, line in enumerate(leftovers, 1)]


def test_default_project_has_local_credentials(default_project):
    credentials = default_project / "conf/local/credentials.yml"
    assert credentials.is_file()
    # Only comments: a fresh project holds no secret, and loads as an empty config.
    assert yaml.safe_load(credentials.read_text()) is None


def test_gitignore_keeps_secrets_and_outputs_out_of_git(default_project, tmp_path):
    project = shutil.copytree(default_project, tmp_path / "project")
    files = relative_files(project)
    staged = git("ls-files", cwd=git_repository(project)).stdout.splitlines()
    # The first commit holds every file but the local credentials, images included.
    assert sorted(staged) == sorted(set(files) - UNTRACKED)

    # Ignored: `git check-ignore -v -n` prints "source:line:pattern<TAB>path" for each
    # path, "::<TAB>path" when nothing matches, and "!pattern" when a negation does.
    checked = git(
        "check-ignore", "--verbose", "--non-matching", *IGNORED_OUTPUTS,
        cwd=project,
    ).stdout  # fmt: skip
    pattern_of = {
        path: source.split(":", 2)[2]
        for source, path in (line.split("\t") for line in checked.splitlines())
    }
    not_ignored = [
        path
        for path in IGNORED_OUTPUTS
        if not pattern_of[path] or pattern_of[path].startswith("!")
    ]
    assert not not_ignored, f"git would commit: {not_ignored}"


# ---------------------------------------------------------------- every answer


@pytest.mark.parametrize(
    "size", ["32", "64", "200", "512"], ids=lambda s: f"image_size={s}"
)
def test_image_size_reaches_the_parameters_as_an_int(cookies, size):
    project = bake_ok(cookies, image_size=size)
    parameters = yaml.safe_load((project / "conf/base/parameters.yml").read_text())
    assert parameters["image"]["size"] == int(size)
    assert type(parameters["image"]["size"]) is int
    assert_rendered(project)


@pytest.mark.parametrize(
    ("answer", "included"),
    [("yes", True), ("no", False), ("Y", True), ("N", False)],
    ids=["example_data=yes", "example_data=no", "example_data=Y", "example_data=N"],
)
def test_example_data(cookies, default_project, answer, included):
    project = bake_ok(cookies, example_data=answer)
    images = project / IMAGES
    assert images.is_dir()
    if included:
        assert image_census(images) == EXAMPLE_IMAGES
    else:
        assert list(images.iterdir()) == []

    # The rest of the project does not depend on the answer.
    def others(folder: Path) -> list[str]:
        return [f for f in relative_files(folder) if not f.startswith(IMAGES + "/")]

    assert others(project) == others(default_project)
    assert_rendered(project)


@pytest.mark.parametrize(
    ("answer", "expected_default"),
    [
        ("local", "sqlite:///${project_root:}/mlflow.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("https://mlflow.example.com", "https://mlflow.example.com"),
        ("sqlite:////abs/path.db", "sqlite:////abs/path.db"),
        (
            "postgresql+psycopg2://user:pa$$word@db.example.com:5432/mlflow",
            "postgresql+psycopg2://user:pa$$word@db.example.com:5432/mlflow",
        ),
        ("databricks", "databricks"),
    ],
    ids=[
        "local",
        "http-server",
        "https-server",
        "sqlite-absolute",
        "postgresql",
        "databricks",
    ],
)
def test_tracking_uri(cookies, answer, expected_default):
    project = bake_ok(cookies, tracking_uri=answer)
    assert tracking_uri_default(project) == expected_default

    resolved = resolve_tracking_uri(project)
    if answer == "local":
        # Absolute, at the project root: independent of the working directory.
        assert resolved == f"sqlite:///{project.as_posix()}/mlflow.db"
        assert resolved.startswith("sqlite:////")
    else:
        assert resolved == answer
    assert_rendered(project)


@pytest.mark.parametrize(
    ("answer", "included"),
    [("yes", True), ("no", False), ("YES", True), ("n", False)],
    ids=["kedro_viz=yes", "kedro_viz=no", "kedro_viz=YES", "kedro_viz=n"],
)
def test_kedro_viz(cookies, answer, included):
    project = bake_ok(cookies, kedro_viz=answer)
    names = requirement_names(project)
    assert ("kedro-viz" in names) is included
    assert_requirements_parse(project)
    assert_rendered(project)


def assert_requirements_parse(project: Path) -> None:
    """Every requirement line is one valid requirement (no lines glued by Jinja)."""
    for line in (project / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            Requirement(line)  # raises InvalidRequirement


@pytest.mark.parametrize(
    ("example_data", "kedro_viz"),
    [(False, True), (True, False)],
    ids=["example_data=False,kedro_viz=True", "example_data=True,kedro_viz=False"],
)
def test_yaml_booleans_are_accepted(cookies, example_data, kedro_viz):
    """`kedro new --config` passes an unquoted `example_data: no` on as a boolean."""
    project = bake_ok(cookies, example_data=example_data, kedro_viz=kedro_viz)
    census = image_census(project / IMAGES)
    assert census == (EXAMPLE_IMAGES if example_data else {})
    assert ("kedro-viz" in requirement_names(project)) is kedro_viz
    assert_rendered(project)


def test_project_name_sets_every_name(cookies):
    project = bake_ok(cookies, project_name="Leaf Disease-Detector")
    assert project.name == "leaf-disease-detector"
    package = project / "src/leaf_disease_detector"
    assert (package / "pipeline_registry.py").is_file()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'package_name = "leaf_disease_detector"' in pyproject
    assert 'project_name = "Leaf Disease-Detector"' in pyproject
    mlflow = yaml.safe_load((project / "conf/base/mlflow.yml").read_text())
    assert mlflow["tracking"]["experiment"]["name"] == "leaf_disease_detector"
    readme = (project / "README.md").read_text()
    assert readme.startswith("# Leaf Disease-Detector\n")
    assert "-n leaf-disease-detector-model" in readme
    assert_rendered(project)


def test_default_requirements_parse_and_pin_click(default_project):
    assert_requirements_parse(default_project)
    names = requirement_names(default_project)
    assert "kedro-viz" not in names
    lines = (default_project / "requirements.txt").read_text().splitlines()
    (click,) = [Requirement(line) for line in lines if line.startswith("click")]
    # click 8.5 prints "NoneType: None" instead of every Kedro CLI error message.
    assert not click.specifier.contains("8.5.1")
