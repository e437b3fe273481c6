#!/usr/bin/env bash
# The starter end to end, as a user runs it. Needs only Python 3.10+:
#   1. installs Kedro into .venv and generates a project with `kedro new --starter`
#   2. installs the project's requirements and trains it with `kedro run`
#   3. serves the registered model over HTTP on 127.0.0.1 and POSTs one image
#   4. prints where the model, the metrics and the MLflow UI are
# The project is written to build/demo/ (replaced on each run).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
export KEDRO_DISABLE_TELEMETRY=1 TF_CPP_MIN_LOG_LEVEL=2
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "kedro>=1.3.1,<2" "click<8.5"  # the README's install line

echo "==> kedro new --starter=$repo"
rm -rf build/demo
mkdir -p build/demo
cat > build/demo/answers.yml <<ANSWERS
output_dir: $repo/build/demo
project_name: Shapes Demo
image_size: "32"
example_data: "yes"
tracking_uri: local
kedro_viz: "no"
ANSWERS
kedro new --starter="$repo" --config build/demo/answers.yml
project="$repo/build/demo/shapes-demo"
cd "$project"

echo "==> pip install -r requirements.txt"
python -m pip install --quiet -r requirements.txt

echo "==> kedro run"
kedro run

port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "==> mlflow models serve on 127.0.0.1:$port"
export MLFLOW_TRACKING_URI="sqlite:///$project/mlflow.db"
mlflow models serve -m models:/shapes_demo@champion --env-manager local \
  --host 127.0.0.1 --port "$port" > serve.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/ping')" 2>/dev/null; then
    break
  fi
  sleep 1
done

image=$(ls data/01_raw/images/triangle/* | head -n 1)
echo "==> POST $image"
python - "$port" "$image" <<'PY'
import base64, json, sys, urllib.request

port, path = sys.argv[1], sys.argv[2]
payload = {"dataframe_records": [{"image": base64.b64encode(open(path, "rb").read()).decode()}]}
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/invocations",
    data=json.dumps(payload).encode(),
    headers={"Content-Type": "application/json"},
)
print(json.dumps(json.load(urllib.request.urlopen(request)), indent=2))
PY

cat <<DONE

Done. In $project:
  model      models:/shapes_demo@champion in the registry of $MLFLOW_TRACKING_URI
             (files under mlartifacts/; the Keras file is data/06_models/classifier.keras)
  metrics    data/08_reporting/ (classification_report.json, confusion_matrix.png,
             training_curves.png, top_losses.png), and in the MLflow run
  MLflow UI  cd $project && source $repo/.venv/bin/activate && kedro mlflow ui
             then open http://127.0.0.1:5000
DONE
