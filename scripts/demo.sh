#!/usr/bin/env bash
# The one-command demo (`make demo`), CPU only: synthetic adverse-weather data -> a small teacher ->
# a distilled student -> ONNX export -> segmenter_node -> a synthetic bag played through it with
# bag-eval -> the summary and the report folder. Everything goes under runs/demo/ (git-ignored);
# a re-run skips every step whose output exists (delete runs/demo/ to start over).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
SEGKD="$VENV/bin/seg-kd"
NODE_EXE="$VENV/bin/segmenter_node"
DEMO="${DEMO_DIR:-runs/demo}"
DATA="$DEMO/data"
SIZE_HW="${DEMO_SIZE:-128x256}"              # synthetic frames, height x width
INPUT_HW="${DEMO_INPUT:-128x256}"            # network input, height x width
NUM="${DEMO_NUM:-24}"                        # synthetic images per condition and split
TEACHER_RECIPE="${TEACHER_RECIPE:-config/recipes/synth_teacher.yaml}"
STUDENT_RECIPE="${STUDENT_RECIPE:-config/recipes/synth_student_cwd_kl_border.yaml}"
# The synthetic recipes' schedules, shortened to fit the demo's ~10 minutes on two CPU cores;
# one evaluation at the end (it picks best.safetensors) on the val split.
TEACHER_STEPS="${DEMO_TEACHER_STEPS:-360}"
STUDENT_STEPS="${DEMO_STUDENT_STEPS:-300}"
VAL_IMAGES="${DEMO_VAL_IMAGES:-0}"             # 0: all (every condition)
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-73}"
export PYTHONUNBUFFERED=1

for exe in "$SEGKD" "$NODE_EXE"; do
  [[ -x "$exe" ]] || { echo "demo: $exe not found; run 'make setup' first" >&2; exit 1; }
done
mkdir -p "$DEMO"
START=$SECONDS
step() { printf '\n=== [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
skip() { printf '    (exists, reused: %s)\n' "$1"; }

step "1/6 synthetic adverse-weather data -> $DATA"
if [[ -f "$DATA/.complete" ]]; then
  skip "$DATA"
else
  rm -rf "$DATA"
  "$SEGKD" synth --out "$DATA" --num "$NUM" --size "$SIZE_HW" --seed 0 --preview
  touch "$DATA/.complete"
fi

step "2/6 train a small teacher ($TEACHER_RECIPE)"
if [[ -f "$DEMO/teacher/best.safetensors" ]]; then
  skip "$DEMO/teacher/best.safetensors"
else
  nice "$SEGKD" train "$TEACHER_RECIPE" --data "$DATA" --runs "$DEMO" --name teacher \
    --device cpu --resume --steps "$TEACHER_STEPS" --set train.eval_every="$TEACHER_STEPS" \
    --set data.max_val_images="$VAL_IMAGES"
fi

step "3/6 distil a student from it ($STUDENT_RECIPE)"
if [[ -f "$DEMO/student/best.safetensors" ]]; then
  skip "$DEMO/student/best.safetensors"
else
  nice "$SEGKD" distill "$STUDENT_RECIPE" --teacher "$DEMO/teacher/best.safetensors" \
    --data "$DATA" --runs "$DEMO" --name student --device cpu --resume \
    --steps "$STUDENT_STEPS" --set train.eval_every="$STUDENT_STEPS" \
    --set data.max_val_images="$VAL_IMAGES"
fi

step "4/6 export the student to ONNX (deploy head, metadata, fitted temperature)"
MODEL="$DEMO/student.onnx"
if [[ -f "$MODEL" ]]; then
  skip "$MODEL"
else
  "$SEGKD" export --weights "$DEMO/student/best.safetensors" --out "$DEMO/student.tmp.onnx" \
    --input-size "$INPUT_HW" --calib-data "$DATA"
  mv "$DEMO/student.tmp.onnx" "$MODEL"
fi

step "5/6 the synthetic val split -> a ros2 bag (mcap, 10 frames/s)"
BAG="$DEMO/val_bag"
if [[ -f "$BAG/metadata.yaml" ]]; then
  skip "$BAG"
else
  rm -rf "$BAG" "$BAG.tmp"
  "$SEGKD" make-bag --data "$DATA" --dataset acdc --split val --out "$BAG.tmp" --rate 10
  mv "$BAG.tmp" "$BAG"
fi

step "6/6 segmenter_node with the student, and the bag played through it (bag-eval)"
NODE_LOG="$DEMO/node.log"
"$NODE_EXE" --ros-args -p model_path:="$MODEL" >"$NODE_LOG" 2>&1 &
NODE_PID=$!
stop_node() {
  if kill -0 "$NODE_PID" 2>/dev/null; then
    kill -INT "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
  fi
}
trap stop_node EXIT
for _ in $(seq 600); do
  grep -q 'listening on' "$NODE_LOG" 2>/dev/null && break
  kill -0 "$NODE_PID" 2>/dev/null || { echo "demo: segmenter_node exited:" >&2;
                                       cat "$NODE_LOG" >&2; exit 1; }
  sleep 0.1
done
grep -m1 'listening on' "$NODE_LOG" || { echo "demo: node not ready; log:" >&2;
                                        cat "$NODE_LOG" >&2; exit 1; }
REPORT="$DEMO/report"
"$SEGKD" bag-eval --bag "$BAG" --out "$REPORT" --mp4   # paced on answers: every frame scored
stop_node

step "done in $((SECONDS - START)) s"
echo "report folder: $(realpath "$REPORT")"
echo "  summary.md, summary.json, per_class_iou.png, latency.png, reliability.png,"
echo "  overlays.png, overlays.mp4; the node's log: $(realpath "$NODE_LOG")"
