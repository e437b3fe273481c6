#!/usr/bin/env bash
# GPU check of a project generated from this starter: one short run (under 8 minutes on
# one NVIDIA GPU, most of it TensorFlow start-up) that prints a Markdown table.
#
#   bash benchmarks/gpu_check.sh                 # needs nvidia-smi and a GPU TensorFlow
#   GPU_CHECK_IMAGES=3000 GPU_CHECK_EPOCHS=3 bash benchmarks/gpu_check.sh
#   GPU_CHECK_WORKDIR=/tmp/gpu bash benchmarks/gpu_check.sh   # keep every file and log
#
# What it does, in the Python environment it runs in (installs nothing):
#   1. `kedro new` from this repository, and GPU_CHECK_IMAGES drawn shapes of 128 px
#      (benchmarks/datasets.py) in a Kedro environment `gpu` that points raw_images at them;
#   2. `kedro run`, GPU_CHECK_EPOCHS epochs, batch GPU_CHECK_BATCH, early stopping off:
#      on the CPU (CUDA_VISIBLE_DEVICES=""), then on the GPU with mixed precision off and
#      on, and on the GPU with XLA (jit_compile) on;
#   3. the same on the GPU for one backbone (GPU_CHECK_BACKBONE, random weights: nothing
#      is downloaded), if this template has train_classifier.network.backbone;
#   4. images/s of the training input alone (benchmarks/probes.py throughput), to tell
#      whether the input pipeline can keep the GPU busy;
#   while nvidia-smi samples GPU utilisation and memory every 500 ms.
# Training images/s comes from Keras's "ms/step" of the last epoch (the first epochs pay
# tracing and the one-off preprocessing). GPU utilisation is the mean over that run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repository="$(dirname "$here")"
images="${GPU_CHECK_IMAGES:-3000}"
epochs="${GPU_CHECK_EPOCHS:-3}"
batch="${GPU_CHECK_BATCH:-64}"
image_size="${GPU_CHECK_IMAGE_SIZE:-96}"
backbone="${GPU_CHECK_BACKBONE:-MobileNetV3Small}"

if [[ "${1:-}" == "--help" || "${1:-}" == "-h" ]]; then
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
fi
if [[ -z "${GPU_CHECK_NO_GPU:-}" ]]; then
    if ! command -v nvidia-smi >/dev/null; then
        echo "gpu_check.sh: nvidia-smi not found: this check needs an NVIDIA GPU" >&2
        exit 2
    fi
    if ! python -c 'import sys, tensorflow as tf; sys.exit(not tf.config.list_physical_devices("GPU"))' 2>/dev/null; then
        echo "gpu_check.sh: TensorFlow sees no GPU (pip install 'tensorflow[and-cuda]')" >&2
        exit 2
    fi
fi

work="${GPU_CHECK_WORKDIR:-$(mktemp -d -t gpu-check-XXXXXX)}"
mkdir -p "$work/logs"
export KEDRO_DISABLE_TELEMETRY=1 TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1 COLUMNS=200
unset MLFLOW_TRACKING_URI
started=$SECONDS
say() { echo "[gpu_check $((SECONDS - started))s] $*" >&2; }

say "working in $work"
cat >"$work/answers.yml" <<EOF
output_dir: $work
project_name: GPU Check
image_size: "$image_size"
example_data: "yes"
tracking_uri: local
kedro_viz: "no"
EOF
python -m kedro new --starter="$repository" --config "$work/answers.yml" >"$work/logs/new.log" 2>&1
project="$work/gpu-check"
python "$here/datasets.py" shapes "$work/shapes" --images "$images" --pixels 128 >&2
mkdir -p "$project/conf/gpu"
# The project's own raw_images entry (its folder rule and loaders), pointed at them.
python - "$project" "$work/shapes" <<'PYTHON'
import sys
from pathlib import Path

import yaml

project, images = Path(sys.argv[1]), sys.argv[2]
base = yaml.safe_load((project / "conf/base/catalog.yml").read_text())
entry = base["raw_images"] | {"path": images}
(project / "conf/gpu/catalog.yml").write_text(yaml.safe_dump({"raw_images": entry}))
PYTHON

gpu_sampler=""
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$work/gpu.txt"
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used \
        --format=csv,noheader,nounits -lms 500 >"$work/utilisation.csv" &
    gpu_sampler=$!
    trap 'kill "$gpu_sampler" 2>/dev/null || true' EXIT
fi

common="train_classifier.epochs=$epochs,train_classifier.early_stopping.patience=$epochs"
common="$common,train_classifier.batch_size=$batch"
: >"$work/runs.tsv"
measure() {  # label, device (cpu|gpu), extra --params
    local label="$1" device="$2" params="$common${3:+,$3}" log="$work/logs/$1.log"
    say "$label: kedro run on the $device ($params)"
    local visible="${CUDA_VISIBLE_DEVICES-}"
    [[ "$device" == cpu ]] && visible=""
    local start end
    start=$(date +%s.%N)
    (cd "$project" && CUDA_VISIBLE_DEVICES="$visible" timeout 300 \
        python -m kedro run --env gpu --params "$params" >"$log" 2>&1) || {
        say "$label failed (exit $?): see $log"
        tail -5 "$log" >&2
        end=$(date +%s.%N)
        printf '%s\t%s\t%s\t%s\tfailed\n' "$label" "$device" "$start" "$end" >>"$work/runs.tsv"
        return 0
    }
    end=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\tok\n' "$label" "$device" "$start" "$end" >>"$work/runs.tsv"
}

measure cpu cpu "train_classifier.mixed_precision=false"
measure gpu-float32 gpu "train_classifier.mixed_precision=false"
measure gpu-mixed gpu "train_classifier.mixed_precision=true"
measure gpu-mixed-xla gpu "train_classifier.mixed_precision=true,train_classifier.jit_compile=true"
if grep -q "backbone" "$project/conf/base/parameters_training.yml"; then
    network="train_classifier.network.backbone=$backbone,train_classifier.network.weights=null"
    measure "backbone-gpu-float32" gpu "$network,train_classifier.mixed_precision=false"
    measure "backbone-gpu-mixed" gpu "$network,train_classifier.mixed_precision=true"
else
    say "this template has no train_classifier.network.backbone yet: no backbone row"
fi
say "input pipeline alone (probes.py throughput)"
python "$here/probes.py" throughput --project "$project" --env gpu --images "$work/shapes" \
    --repeats 2 --output "$work/throughput.json" >"$work/logs/throughput.log" 2>&1 ||
    say "throughput probe failed: see $work/logs/throughput.log"
[[ -n "$gpu_sampler" ]] && kill "$gpu_sampler" 2>/dev/null || true

python - "$work" "$batch" "$images" "$epochs" "$image_size" <<'PYTHON'
"""The table: images/s per run, GPU utilisation over each run, the input's images/s."""
import csv
import json
import re
import sys
from datetime import datetime
from pathlib import Path

work, batch, images, epochs, size = Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:]
samples = []
utilisation_file = work / "utilisation.csv"
if utilisation_file.exists():
    for row in csv.reader(utilisation_file.open()):
        try:
            when = datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").timestamp()
            samples.append((when, float(row[1]), float(row[2])))
        except (ValueError, IndexError):
            continue
throughput = work / "throughput.json"
input_speed = None
if throughput.exists():
    input_speed = json.loads(throughput.read_text())["images_per_second"]["project"]
gpu = (work / "gpu.txt").read_text().strip() if (work / "gpu.txt").exists() else "none"
print(f"GPU: {gpu}; {images} images of 128 px at {size} px, batch {batch}, {epochs} epochs")
print()
print("| run | status | wall s | last-epoch ms/step | training images/s | GPU util % (mean, max) | GPU memory MiB (max) |")
print("|---|---|---|---|---|---|---|")
speeds = {}
for label, device, start, end, status in csv.reader((work / "runs.tsv").open(), delimiter="\t"):
    start, end = float(start), float(end)
    text = (work / "logs" / f"{label}.log").read_text(errors="replace")
    steps = re.findall(r"(\d+(?:\.\d+)?)(ms|s)/step", text)
    ms = None
    if steps:
        value, unit = steps[-1]
        ms = float(value) * (1000 if unit == "s" else 1)
        speeds[label] = batch * 1000 / ms
    window = [s for s in samples if start <= s[0] <= end]
    util = (
        f"{sum(s[1] for s in window) / len(window):.0f}, {max(s[1] for s in window):.0f}"
        if window and device == "gpu" else "-"
    )
    memory = f"{max(s[2] for s in window):.0f}" if window and device == "gpu" else "-"
    shown_ms = f"{ms:.1f}" if ms else "-"
    shown_speed = f"{speeds[label]:.0f}" if label in speeds else "-"
    print(f"| {label} | {status} | {end - start:.1f} | {shown_ms} | {shown_speed} | {util} | {memory} |")
print()
if input_speed is not None:
    print(f"Training input alone (probes.py throughput, cached): {input_speed:.0f} images/s.")
    fastest = max((v for k, v in speeds.items() if k.startswith("gpu")), default=None)
    if fastest:
        verdict = "keeps" if input_speed >= 1.2 * fastest else "does NOT keep"
        print(
            f"The input pipeline {verdict} the GPU busy: it streams "
            f"{input_speed / fastest:.1f}x the fastest GPU training step's images/s "
            f"({fastest:.0f})."
        )
if "cpu" in speeds:
    for label in ("gpu-float32", "gpu-mixed", "gpu-mixed-xla"):
        if label in speeds:
            print(f"{label}: {speeds[label] / speeds['cpu']:.1f}x the CPU's images/s.")
if "gpu-float32" in speeds and "gpu-mixed" in speeds:
    print(f"Mixed precision: {speeds['gpu-mixed'] / speeds['gpu-float32']:.2f}x float32.")
PYTHON
say "done in $((SECONDS - started)) s; files in $work"
