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
import unicodedata
from pathlib import Path

import yaml

# Top-level modules of the generated project's environment: a package named like one
# would shadow it. Written by scripts/dependency_modules.py from a real environment.
# BEGIN dependency modules
DEPENDENCY_MODULES = frozenset(
    """
absl aiohappyeyeballs aiohttp aiosignal alembic annotated_doc annotated_types anyio
appdirs argon2 arrow asttokens astunparse async_lru attr attrs babel binaryornot bleach
blinker bs4 build cachetools certifi cffi cfgv charset_normalizer clang click
cloudpickle comm contourpy cookiecutter cryptography cycler databricks dateutil debugpy
defusedxml distlib docker dotenv dynaconf executing fastapi fastjsonschema filelock
flask flask_cors flatbuffers fonttools fqdn frozenlist fsspec gast git gitdb google
graphene graphql graphql_relay grpc gunicorn h11 h5py httpcore httpx huey identify idna
importlib_metadata iniconfig ipykernel ipykernel_launcher ipython
ipython_pygments_lexers isoduration itsdangerous jedi jinja2 joblib json5 jsonpointer
jsonschema jsonschema_specifications jupyter jupyter_builder jupyter_client jupyter_core
jupyter_events jupyter_lsp jupyter_server jupyter_server_terminals jupyterlab
jupyterlab_pygments jupyterlab_server kedro kedro_datasets kedro_datasets_benchmarks
kedro_datasets_experimental kedro_mlflow kedro_telemetry kedro_viz keras kiwisolver lark
lazy_loader mako markdown_it markupsafe matplotlib matplotlib_inline mdurl mistune
ml_dtypes mlflow more_itertools mpl_toolkits multidict namex narwhals nbclient nbconvert
nbformat nest_asyncio2 nodeenv notebook notebook_shim numpy omegaconf opentelemetry
opt_einsum optree overrides packaging pandas pandocfilters parse parso pasta pexpect pil
pillow pkg_resources platformdirs pluggy pre_commit prettytable prometheus_client
prompt_toolkit propcache psutil ptyprocess pure_eval py pyarrow pyasn1 pyasn1_modules
pycparser pydantic pydantic_core pygments pylab pyparsing pyproject_hooks pytest
python_discovery pythonjsonlogger referencing requests rfc3339_validator
rfc3986_validator rfc3987_syntax rich rpds ruff scipy send2trash setuptools six sklearn
skops slugify smmap soupsieve sqlalchemy sqlparse stack_data starlette tensorflow
termcolor terminado text_unidecode tf threadpoolctl tinycss2 tomli_w tornado traitlets
typing_extensions typing_inspection tzdata uri_template urllib3 uvicorn vendor_licenses
virtualenv wcwidth webcolors webencodings websocket werkzeug wheel wrapt yaml yarl zipp
zmq
""".split()
)
# END dependency modules
MAX_NAME_LENGTH = 64  # keeps every path of the project well within Windows' 260
# PEP 508's distribution names: ASCII letters, digits, ".", "_", "-", alphanumeric ends.
DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
YES_NO_ANSWERS = ("example_data", "kedro_viz")


def package_name_error(name: str) -> str | None:  # noqa: PLR0911
    """Say why ``name`` cannot be the generated Python package, or None if it can."""
    if not name.isidentifier():
        return f"python_package '{name}' is not a valid Python identifier"
    if not DISTRIBUTION_NAME.fullmatch(name):
        return (
            f"python_package '{name}' cannot be a distribution name (PEP 508: ASCII "
            "letters, digits, '_', '-', '.', starting and ending with a letter or digit)"
        )
    if len(name) > MAX_NAME_LENGTH:
        return (
            f"python_package '{shortened(name)}' is over {MAX_NAME_LENGTH} characters"
        )
    if keyword.iskeyword(name):
        return f"python_package '{name}' is a Python keyword"
    if name.lower() == "tests":
        return f"python_package '{name}' would take the place of the project's tests"
    if name in sys.stdlib_module_names:
        return f"python_package '{name}' shadows the standard-library module '{name}'"
    if name.lower() in DEPENDENCY_MODULES:
        return f"python_package '{name}' shadows the dependency '{name}'"
    return None


def shortened(value: object) -> object:
    """A long answer cut to its start, so the error stays one readable line."""
    if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
        return value[:20] + "..."
    return value


def ascii_suggestion(value: str) -> str:
    """``value`` with accents dropped (Café -> Cafe): a name the rules may accept."""
    return unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()


def answer_errors(answers: dict, prompts: dict) -> list[str]:
    """Check each answer against its prompt's regex, then the derived package name."""
    errors = []
    for key, prompt in prompts.items():
        value = answers.get(key)
        if key in YES_NO_ANSWERS and isinstance(value, bool):
            continue  # an unquoted yes/no in a --config YAML file arrives as a boolean
        # fullmatch: "$" would also accept a trailing newline.
        if not isinstance(value, str) or not re.fullmatch(
            prompt["regex_validator"], value
        ):
            message = " ".join(prompt["error_message"].split())
            if isinstance(value, str) and not value.isascii():
                message += f" Try {ascii_suggestion(value).strip()!r}."
            errors.append(f"{key} {shortened(value)!r} is invalid: {message}")
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
