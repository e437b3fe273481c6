"""Reject invalid answers before cookiecutter writes anything.

Kedro checks prompts.yml's regexes only for answers typed at its prompts; answers from
`kedro new --config`, plain cookiecutter and pytest-cookies reach the template
unchecked. This hook checks every answer against the same prompts.yml, plus the
package name rules, and exits non-zero with one line that names the bad answer.
It imports only what cookiecutter itself installs (PyYAML).
"""

from __future__ import annotations

import json
import keyword
import os
import re
import sys
from pathlib import Path

import yaml

# Names a generated package must not take: importing it would shadow a dependency.
DEPENDENCY_NAMES = frozenset(
    {
        "absl",
        "click",
        "cloudpickle",
        "cookiecutter",
        "fastapi",
        "fsspec",
        "google",
        "h5py",
        "keras",
        "kedro",
        "kedro_datasets",
        "kedro_mlflow",
        "kedro_viz",
        "matplotlib",
        "mlflow",
        "numpy",
        "omegaconf",
        "pandas",
        "pil",
        "pillow",
        "pyarrow",
        "pytest",
        "requests",
        "rich",
        "ruff",
        "scipy",
        "sklearn",
        "sqlalchemy",
        "tensorflow",
        "tf",
        "uvicorn",
        "yaml",
    }
)
YES_NO_ANSWERS = ("example_data", "kedro_viz")


def package_name_error(name: str) -> str | None:
    """Say why ``name`` cannot be the generated Python package, or None if it can."""
    if not name.isidentifier():
        return f"python_package '{name}' is not a valid Python identifier"
    if keyword.iskeyword(name):
        return f"python_package '{name}' is a Python keyword"
    if name in sys.stdlib_module_names:
        return f"python_package '{name}' shadows the standard-library module '{name}'"
    if name.lower() in DEPENDENCY_NAMES:
        return f"python_package '{name}' shadows the dependency '{name}'"
    return None


def answer_errors(answers: dict, prompts: dict) -> list[str]:
    """Check each answer against its prompt's regex, then the derived package name."""
    errors = []
    for key, prompt in prompts.items():
        value = answers.get(key)
        if key in YES_NO_ANSWERS and isinstance(value, bool):
            continue  # an unquoted yes/no in a --config YAML file arrives as a boolean
        if not isinstance(value, str) or not re.match(prompt["regex_validator"], value):
            message = " ".join(prompt["error_message"].split())
            errors.append(f"{key} {value!r} is invalid: {message}")
    package_error = package_name_error(str(answers.get("python_package", "")))
    if package_error:
        errors.append(f"{package_error}; choose another project name.")
    return errors


def prompts_file(repo_dir: str) -> Path:
    """The template's prompts.yml.

    cookiecutter passes the template folder as it was given (``cookiecutter .``), and
    runs this hook from the new project's folder: a relative folder is relative to
    where the command was started, which the shell records in PWD.
    """
    folder = Path(repo_dir)
    if not folder.is_absolute():
        folder = Path(os.environ.get("PWD", os.getcwd())) / folder
    return folder / "prompts.yml"


def fail(message: str) -> int:
    """Print one ERROR line to stderr; return the exit status of a refused answer."""
    print(f"ERROR: {message}", file=sys.stderr)  # noqa: T201
    return 1


def main(answers: dict) -> int:
    """Check the answers against prompts.yml; return the exit status."""
    path = prompts_file(answers.get("_repo_dir") or answers["_template"])
    try:
        prompts = yaml.safe_load(path.read_text())
    except OSError as error:
        return fail(f"cannot read the starter's prompts.yml at {path}: {error}")
    errors = answer_errors(answers, prompts)
    return fail(errors[0]) if errors else 0


if __name__ == "__main__":
    # cookiecutter renders this file with Jinja before running it.
    sys.exit(main(json.loads(r"""{{ cookiecutter | tojson }}""")))
