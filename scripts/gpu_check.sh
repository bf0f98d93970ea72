#!/usr/bin/env bash
# GPU check, prepared on a machine without one: on a CUDA machine it runs, each step under `timeout`,
#   1. the tests marked `cuda` (pytest -m cuda),
#   2. the engine benchmark on the GPU: every backbone and the object.yaml fused network at 320x240 and 640x480,
#      fp32 and fp16, channels_last, batch 1 and 8 (benchmarks/test_bench_engine.py::test_engine_speed_on_gpu),
#   3. a short training run of training/object.yaml at 320x240 (batch 8) on a generated textured-object video,
#   4. the same run under torchrun (DDP, nccl) on every visible GPU, when there are two or more,
# and writes JSON figures to one folder: $OUT when set, else the first argument, else gpu_check_output/.
# Budget: under 8 minutes in all. Without CUDA it stops at once with exit status 3 and a message saying so.
# Usage: bash scripts/gpu_check.sh [OUTPUT_DIR]      (PYTHON=... picks the interpreter; default .venv/bin/python)
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
RESULTS=${OUT:-${1:-gpu_check_output}}
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check.sh: no CUDA device visible to torch ($PYTHON: torch.cuda.is_available() is False); this check" \
    "needs a GPU, nothing was run" >&2
  exit 3
fi
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
STEPS_JSON=()
FAILED=0

# run_step NAME SECONDS COMMAND...: runs COMMAND under timeout, logs to NAME.log, records status and seconds.
run_step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  local start=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" >"$RESULTS/$name.log" 2>&1 || rc=$?
  local took=$((SECONDS - start))
  tail -n 3 "$RESULTS/$name.log"
  echo "== $name: exit $rc after ${took}s"
  [ "$rc" = 0 ] || FAILED=1
  STEPS_JSON+=("{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $took, \"timed_out\": $([ "$rc" = 124 ] && echo true || echo false)}")
}

# 1. CUDA-marked tests (junit XML -> counts).
run_step cuda_tests 90 "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider --junitxml "$RESULTS/cuda_tests.xml" test
"$PYTHON" - "$RESULTS" <<'EOF' || true
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
suite = ET.parse(out / "cuda_tests.xml").getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
(out / "cuda_tests.json").write_text(json.dumps(counts, indent=1))
EOF

# 2. Engine speed on the GPU (writes engine_gpu.json).
DDR_BENCH_JSON_DIR=$RESULTS run_step engine_benchmark 130 "$PYTHON" -m pytest -q -s -m bench -p no:cacheprovider \
  benchmarks/test_bench_engine.py::test_engine_speed_on_gpu

# 3. + 4. Short object.yaml training at 320x240 on a generated 640x480 video (flow at 2x), then the same under DDP.
DATA=$RESULTS/train_data
"$PYTHON" - "$DATA" <<'EOF'
import sys
from pathlib import Path
from dense_descriptors_ros.synthetic.dataset_folders import write_frames
from dense_descriptors_ros.synthetic.sprite_video import textured_object_video
import numpy as np
write_frames(Path(sys.argv[1]), np.stack(textured_object_video(48, 480, 640, seed=3).frames))
EOF
TRAIN_ARGS=(train --config training/object.yaml --data "$DATA" --set image_height=240 --set image_width=320
  --set batch_size=8 --set epochs=1 --set steps_per_epoch=40 --set val_pairs=4 --set label_quality_pairs=2
  --set device=cuda)
rm -rf "$RESULTS/train_run" "$RESULTS/train_run_ddp"
run_step train_object 130 "$PYTHON" -m dense_descriptors_ros.cli.main "${TRAIN_ARGS[@]}" --out "$RESULTS/train_run"
if [ "$GPUS" -ge 2 ]; then
  run_step train_object_ddp 80 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" \
    -m dense_descriptors_ros.cli.main "${TRAIN_ARGS[@]}" --out "$RESULTS/train_run_ddp"
else  # nccl wants a GPU per rank
  echo "== train_object_ddp: skipped, one GPU"
  STEPS_JSON+=('{"step": "train_object_ddp", "skipped": "one GPU (nccl needs a GPU per rank)"}')
fi
"$PYTHON" - "$RESULTS" <<'EOF' || true
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
figures = {}
for run in ("train_run", "train_run_ddp"):
    log = out / run / "train_log.csv"
    if not log.is_file():
        continue
    rows = list(csv.DictReader(log.open()))
    vals = list(csv.DictReader((out / run / "val_log.csv").open())) if (out / run / "val_log.csv").is_file() else []
    figures[run] = {
        "steps": len(rows),
        "first_loss": float(rows[0]["loss"]),
        "last_loss": float(rows[-1]["loss"]),
        "pairs_per_s": float(rows[-1]["pairs_per_s"]),
        "val_error_percentile": [float(v["mean_error_percentile"]) for v in vals],
    }
(out / "training.json").write_text(json.dumps(figures, indent=1))
EOF

"$PYTHON" - "$RESULTS" "$GPUS" "${STEPS_JSON[@]}" <<'EOF'
import json, sys, time
import torch
out, gpus, steps = sys.argv[1], int(sys.argv[2]), [json.loads(s) for s in sys.argv[3:]]
summary = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": torch.cuda.get_device_name(0), "gpus": gpus,
           "torch": torch.__version__, "cuda": torch.version.cuda, "steps": steps}
with open(f"{out}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary))
EOF
echo "figures in $RESULTS"
exit $FAILED
