#!/usr/bin/env bash
# Run the template's test suite. Needs only Python 3.10+: creates .venv, installs the
# test tools and the requirements of a freshly generated project, then runs pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k bake -x
# STACK=newest installs the newest release of everything instead, ignoring the upper
# bounds and pins of both requirement files (the weekly CI job).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install --quiet --upgrade pip

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
install_requirements() {  # install a requirements file, lifted to the newest releases if asked
  if [ "${STACK:-}" = newest ]; then
    python scripts/without_upper_bounds.py "$1" > "$work/newest.txt"
    python -m pip install --quiet --upgrade --upgrade-strategy eager -r "$work/newest.txt"
  else
    python -m pip install --quiet -r "$1"
  fi
}
install_requirements requirements-dev.txt

# The generated project's requirements.txt is a template: render it, then install it.
cookiecutter . --no-input --output-dir "$work" project_name="Requirements Probe" >/dev/null
install_requirements "$work/requirements-probe/requirements.txt"
if [ "${STACK:-}" = newest ]; then
  echo "Newest stack:"
  python -m pip list --format=freeze | grep -i -E '^(kedro|kedro-mlflow|kedro-datasets|mlflow|tensorflow|keras|click|omegaconf|fastapi)==' || true
fi

export KEDRO_DISABLE_TELEMETRY=1
status=0
python -m pytest tests "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
