"""The answers: prompts.yml against cookiecutter.json, the pre-generation hook's
rejection of every kind of bad answer, and the hooks' own functions."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
from helpers import DEFAULT_ANSWERS, PROMPTS, TEMPLATE

HOOKS = TEMPLATE / "hooks"
DEFAULT_PACKAGE = "image_classifier"
# Values that prompts.yml's texts and the README document for each question.
DOCUMENTED_VALUES = {
    "project_name": ["Image Classifier", "Leaf Disease", "leaf-disease_2", "ab"],
    "image_size": ["32", "64", "100", "224", "500", "512"],
    "example_data": ["yes", "no", "y", "n", "Yes", "NO"],
    "tracking_uri": [
        "local",
        "http://127.0.0.1:5000",
        "https://mlflow.example.com/",
        "sqlite:////absolute/path/mlflow.db",
        "postgresql://user:secret@db.example.com:5432/mlflow",
        "postgresql+psycopg2://user:pa$$word@db:5432/mlflow",
        "mysql+pymysql://user:secret@db/mlflow",
        "mssql://user:secret@db/mlflow",
        "databricks",
        "databricks-uc",
    ],
    "kedro_viz": ["yes", "no", "y", "n", "YES", "No"],
}
INVALID_VALUES = {
    "project_name": [
        "",
        "a",
        "1abc",
        "my.pkg",
        "_private",
        "name!",
        "-name",
        "Leaf Disease\n",
        "Café Vision",
        "A" * 65,
    ],
    "image_size": ["", "16", "31", "513", "1024", "064", "64.0", "abc", " 64"],
    "example_data": ["", "maybe", "true", "1", "yess"],
    "tracking_uri": [
        "",
        "ftp://x",
        "sqlite:///relative.db",
        "mlruns",
        "file:///tmp/mlruns",
        "http://a b",
        'https://mlflow.example.com/"quoted"',
        "https://mlflow.example.com/${user}",
        "local\n",
    ],
    "kedro_viz": ["", "maybe", "true", "2"],
}


def load_hook(name: str):
    """Import a hook as a module: it is valid Python before cookiecutter renders it."""
    spec = importlib.util.spec_from_file_location(f"hook_{name}", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str):
    """Import a script of scripts/ as a module."""
    path = TEMPLATE / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pre_gen():
    return load_hook("pre_gen_project")


@pytest.fixture(scope="module")
def post_gen():
    return load_hook("post_gen_project")


def default_context(**answers: object) -> dict:
    """The answers the hook sees for a default bake, ``answers`` overriding them."""
    return {**DEFAULT_ANSWERS, "python_package": DEFAULT_PACKAGE, **answers}


def matches(key: str, value: str) -> bool:
    # The hook checks the whole answer: re.match with "$" would accept a trailing newline.
    return re.fullmatch(PROMPTS[key]["regex_validator"], value) is not None


def cases(values: dict[str, list[str]]) -> list:
    return [
        pytest.param(key, value, id=f"{key}={value!r}")
        for key, value_list in values.items()
        for value in value_list
    ]


# ------------------------------------------------- prompts.yml vs cookiecutter.json


def test_every_prompt_is_a_complete_question():
    for key, prompt in PROMPTS.items():
        missing = {"title", "text", "regex_validator", "error_message"} - set(prompt)
        assert not missing, f"prompts.yml: {key} lacks {missing}"
        re.compile(prompt["regex_validator"])


def test_prompts_ask_every_answer_cookiecutter_json_takes():
    # kedro new --config must give every prompts.yml key; cookiecutter drops any key
    # not in cookiecutter.json. The two lists must therefore be the same, except
    # kedro_version, which kedro new fills in itself.
    assert set(PROMPTS) == set(DEFAULT_ANSWERS) - {"kedro_version"}


@pytest.mark.parametrize("key", list(PROMPTS))
def test_regex_accepts_the_cookiecutter_json_default(key):
    assert matches(key, DEFAULT_ANSWERS[key])


@pytest.mark.parametrize(("key", "value"), cases(DOCUMENTED_VALUES))
def test_regex_accepts_documented_values(key, value):
    assert matches(key, value)


@pytest.mark.parametrize(("key", "value"), cases(INVALID_VALUES))
def test_regex_rejects_invalid_values(key, value):
    assert not matches(key, value)


@pytest.mark.parametrize("key", list(PROMPTS))
def test_regex_accepts_the_examples_in_its_own_text(key):
    prompt = PROMPTS[key]
    text = prompt["text"] + prompt["error_message"]
    urls = [u.rstrip(".,;)") for u in re.findall(r"\b[a-z][\w+.-]*://\S+", text)]
    for url in urls:
        assert matches(key, url), (
            f"{key}: its text suggests {url}, its regex refuses it"
        )


def test_image_size_regex_is_the_range_the_text_announces():
    low, high = map(
        int, re.search(r"(\d+) to (\d+)", PROMPTS["image_size"]["text"]).groups()
    )
    accepted = [n for n in range(0, 2000) if matches("image_size", str(n))]
    assert accepted == list(range(low, high + 1))


# ------------------------------------------------- bad answers stop the bake


BAD_ANSWERS = [
    # ((answers, python_package cookiecutter derives, what the line must say),)
    pytest.param(({"project_name": "1abc"}, "1abc", "project_name '1abc' is invalid"), id="name-starts-with-digit"),
    pytest.param(({"project_name": "my.pkg"}, "my.pkg", "project_name 'my.pkg' is invalid"), id="name-with-dot"),
    pytest.param(({"python_package": "my.pkg"}, "my.pkg", "python_package 'my.pkg' is not a valid Python identifier"), id="package-with-dot"),
    pytest.param(({"python_package": "1abc"}, "1abc", "python_package '1abc' is not a valid Python identifier"), id="package-starts-with-digit"),
    pytest.param(({"project_name": "class"}, "class", "python_package 'class' is a Python keyword"), id="keyword"),
    pytest.param(({"project_name": "Email"}, "email", "python_package 'email' shadows the standard-library module"), id="stdlib-email"),
    pytest.param(({"project_name": "json"}, "json", "python_package 'json' shadows the standard-library module"), id="stdlib-json"),
    pytest.param(({"project_name": "Keras"}, "keras", "python_package 'keras' shadows the dependency"), id="dependency-keras"),
    pytest.param(({"project_name": "mlflow"}, "mlflow", "python_package 'mlflow' shadows the dependency"), id="dependency-mlflow"),
    pytest.param(({"project_name": "Kedro"}, "kedro", "python_package 'kedro' shadows the dependency"), id="dependency-kedro"),
    pytest.param(({"project_name": "tensorflow"}, "tensorflow", "python_package 'tensorflow' shadows the dependency"), id="dependency-tensorflow"),
    pytest.param(({"project_name": "kedro-mlflow"}, "kedro_mlflow", "python_package 'kedro_mlflow' shadows the dependency"), id="dependency-kedro-mlflow"),
    pytest.param(({"project_name": "Packaging"}, "packaging", "python_package 'packaging' shadows the dependency"), id="dependency-packaging"),
    pytest.param(({"project_name": "Typing Extensions"}, "typing_extensions", "python_package 'typing_extensions' shadows the dependency"), id="dependency-typing-extensions"),
    pytest.param(({"project_name": "Attr"}, "attr", "python_package 'attr' shadows the dependency"), id="dependency-attr"),
    pytest.param(({"project_name": "Tests"}, "tests", "python_package 'tests' would take the place of the project's tests"), id="tests"),
    pytest.param(({"project_name": "Café Vision"}, "café_vision", "project_name 'Café Vision' is invalid: It must start with a letter, contain only ASCII letters"), id="non-ascii"),
    pytest.param(({"project_name": "Leaf Disease\n"}, "leaf_disease", "project_name 'Leaf Disease\\n' is invalid"), id="trailing-newline"),
    pytest.param(({"project_name": "A" * 300}, "a" * 300, "project_name 'AAAAAAAAAAAAAAAAAAAA...' is invalid"), id="300-characters"),
    pytest.param(({"tracking_uri": "local\n"}, DEFAULT_PACKAGE, "tracking_uri 'local\\n' is invalid"), id="tracking_uri-trailing-newline"),
    pytest.param(({"image_size": "16"}, DEFAULT_PACKAGE, "image_size '16' is invalid"), id="image_size-too-small"),
    pytest.param(({"image_size": "abc"}, DEFAULT_PACKAGE, "image_size 'abc' is invalid"), id="image_size-not-a-number"),
    pytest.param(({"image_size": "1024"}, DEFAULT_PACKAGE, "image_size '1024' is invalid"), id="image_size-too-large"),
    pytest.param(({"example_data": "maybe"}, DEFAULT_PACKAGE, "example_data 'maybe' is invalid"), id="example_data-maybe"),
    pytest.param(({"tracking_uri": "ftp://x"}, DEFAULT_PACKAGE, "tracking_uri 'ftp://x' is invalid"), id="tracking_uri-ftp"),
    pytest.param(({"tracking_uri": "sqlite:///relative.db"}, DEFAULT_PACKAGE, "tracking_uri 'sqlite:///relative.db' is invalid"), id="tracking_uri-relative-sqlite"),
    pytest.param(({"tracking_uri": 'http://h/"x"'}, DEFAULT_PACKAGE, """tracking_uri 'http://h/"x"' is invalid"""), id="tracking_uri-quote"),
    pytest.param(({"kedro_viz": "maybe"}, DEFAULT_PACKAGE, "kedro_viz 'maybe' is invalid"), id="kedro_viz-maybe"),
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_ANSWERS)
def test_pre_gen_hook_rejects_bad_answers(cookies, tmpdir, capfd, bad):
    answers, package, message = bad
    result = cookies.bake(extra_context=answers)

    assert result.exit_code != 0
    assert type(result.exception).__name__ == "FailedHookException"
    assert result.context["python_package"] == package
    # cookiecutter runs the hook as a subprocess: its stderr reaches the real fd 2.
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR: ")
    assert message in lines[0]
    # Nothing written: pytest-cookies' output folder holds only its empty bake folder.
    written = list(Path(tmpdir, "cookies").rglob("*"))
    assert all(path.is_dir() and not any(path.iterdir()) for path in written), written


# ------------------------------------------------- the hooks' functions


@pytest.mark.parametrize("name", ["pre_gen_project", "post_gen_project"])
def test_hook_is_python_before_rendering_and_imports_what_cookiecutter_has(name):
    tree = ast.parse((HOOKS / f"{name}.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    # PyYAML is a dependency of cookiecutter; anything else may be missing.
    assert imported <= set(sys.stdlib_module_names) | {"yaml"}


@pytest.mark.parametrize("name", ["image_classifier", "leaf_disease", "shapes2", "a_b"])
def test_package_name_error_accepts_a_fine_name(pre_gen, name):
    assert pre_gen.package_name_error(name) is None


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("1abc", "is not a valid Python identifier"),
        ("my.pkg", "is not a valid Python identifier"),
        ("my-pkg", "is not a valid Python identifier"),
        ("", "is not a valid Python identifier"),
        ("class", "is a Python keyword"),
        ("import", "is a Python keyword"),
        ("email", "shadows the standard-library module 'email'"),
        ("json", "shadows the standard-library module 'json'"),
        ("keras", "shadows the dependency"),
        ("Keras", "shadows the dependency"),
        ("kedro_mlflow", "shadows the dependency"),
        ("tensorflow", "shadows the dependency"),
    ],
)
def test_package_name_error_names_the_package_and_the_reason(pre_gen, name, reason):
    error = pre_gen.package_name_error(name)
    assert error.startswith(f"python_package '{name}' ")
    assert reason in error


def test_answer_errors_accepts_the_defaults(pre_gen):
    assert pre_gen.answer_errors(default_context(), PROMPTS) == []


@pytest.mark.parametrize("value", [True, False])
def test_answer_errors_accepts_yaml_booleans_for_yes_no_questions(pre_gen, value):
    answers = default_context(example_data=value, kedro_viz=value)
    assert pre_gen.answer_errors(answers, PROMPTS) == []


def test_answer_errors_refuses_a_boolean_elsewhere(pre_gen):
    errors = pre_gen.answer_errors(default_context(image_size=True), PROMPTS)
    assert len(errors) == 1
    assert errors[0].startswith("image_size True is invalid")


def test_answer_errors_names_a_missing_answer(pre_gen):
    answers = default_context()
    del answers["tracking_uri"]
    errors = pre_gen.answer_errors(answers, PROMPTS)
    assert [e.split(" is invalid")[0] for e in errors] == ["tracking_uri None"]


def test_answer_errors_lists_every_bad_answer_in_prompt_order(pre_gen):
    answers = default_context(kedro_viz="maybe", image_size="9", python_package="json")
    errors = pre_gen.answer_errors(answers, PROMPTS)
    assert [e.split()[0] for e in errors] == [
        "image_size",
        "kedro_viz",
        "python_package",
    ]
    # The error message of prompts.yml is folded into the same line.
    assert all("\n" not in e for e in errors)
    assert "from 32 to 512" in errors[0]


def test_main_prints_one_line_and_fails(pre_gen, capsys):
    answers = default_context(
        image_size="1024", kedro_viz="maybe", _repo_dir=str(TEMPLATE)
    )
    assert pre_gen.main(answers) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("ERROR: image_size '1024' is invalid: ")


def test_main_is_silent_on_good_answers(pre_gen, capsys):
    assert pre_gen.main(default_context(_repo_dir=str(TEMPLATE))) == 0
    assert capsys.readouterr() == ("", "")


def test_remove_example_images_keeps_an_empty_images_folder(post_gen, tmp_path):
    images = tmp_path / post_gen.EXAMPLE_IMAGES
    for folder in ("circle", "square"):
        (images / folder).mkdir(parents=True)
        (images / folder / "0.png").write_bytes(b"png")
    (tmp_path / "data/02_intermediate").mkdir(parents=True)

    post_gen.remove_example_images(tmp_path)

    assert images.is_dir()
    assert list(images.iterdir()) == []
    assert (tmp_path / "data/02_intermediate").is_dir()


def test_main_names_a_missing_prompts_file(pre_gen, capsys, tmp_path):
    """A starter folder without prompts.yml is one ERROR line, not a traceback."""
    assert pre_gen.main(default_context(_repo_dir=str(tmp_path))) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(
        f"ERROR: cannot read the starter's prompts.yml at {tmp_path}"
    )


@pytest.mark.parametrize("name", ["click", "rich", "uvicorn", "omegaconf"])
def test_package_names_of_imported_dependencies_are_refused(pre_gen, name):
    """Modules the generated project imports cannot be its package name."""
    assert pre_gen.package_name_error(name) == (
        f"python_package '{name}' shadows the dependency '{name}'"
    )


def test_a_non_ascii_name_gets_a_suggestion(pre_gen):
    errors = pre_gen.answer_errors(default_context(project_name="Café Vision"), PROMPTS)
    assert errors[0].endswith("Try 'Cafe Vision'.")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("café_vision", "cannot be a distribution name (PEP 508"),
        ("a_", "cannot be a distribution name (PEP 508"),
        ("a" * 65, "is over 64 characters"),
        ("tests", "would take the place of the project's tests"),
        ("Tests", "would take the place of the project's tests"),
        ("packaging", "shadows the dependency 'packaging'"),
        ("typing_extensions", "shadows the dependency"),
        ("attr", "shadows the dependency"),
        ("google", "shadows the dependency"),
    ],
)
def test_package_names_the_project_cannot_use(pre_gen, name, reason):
    assert reason in pre_gen.package_name_error(name)


def test_the_hook_lists_every_module_the_project_environment_imports(pre_gen):
    """The hook's list covers every top-level module of the installed dependencies
    (regenerate it with `python scripts/dependency_modules.py`)."""
    script = load_script("dependency_modules")
    installed = script.importable_modules()
    assert {"packaging", "typing_extensions", "attr", "keras", "mlflow"} <= installed
    assert installed <= pre_gen.DEPENDENCY_MODULES
    assert script.hook_modules() == pre_gen.DEPENDENCY_MODULES
