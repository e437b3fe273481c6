#!/usr/bin/env bash
# Run the template's test suite. Needs only Python 3.10+: creates .venv, installs the
# test tools and the requirements of a freshly generated project, then runs pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k bake -x
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -r requirements-dev.txt

# The generated project's requirements.txt is a template: render it, then install it.
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
cookiecutter . --no-input --output-dir "$rendered" project_name="Requirements Probe" >/dev/null
python -m pip install --quiet -r "$rendered/requirements-probe/requirements.txt"

export KEDRO_DISABLE_TELEMETRY=1
status=0
python -m pytest tests "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
