#!/usr/bin/env bash
# The one-call GPU check on a bare device machine (python3 with torch, transformers 5.17, peft,
# accelerate, sacrebleu): installs the wheels carried in bench/.wheels (made here by
# bench/gpu_wheels.sh) into a virtual environment that sees the system's packages, then runs
# bench/gpu_check.py, which writes $OUT/gpu_check.md (pip's log: $OUT/pip.log).
#
#   device call: command "bash bench/gpu_check.sh", carry ["bench/.wheels"], timeout_s 480
#
# The wheels are optional: without them (or if pip cannot install them) sections 1, 2 and 4 still
# run on the preinstalled packages if they suffice, and section 3 (end to end) says why it did not.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
PY=python3
WHEELS=missing
if [ -f bench/.wheels/requirements.txt ]; then
  WHEELS=failed
  install() { "$1" -m pip install --no-index --find-links bench/.wheels -r bench/.wheels/requirements.txt "${@:2}"; }
  if python3 -m venv --system-site-packages /tmp/gpu-check-venv >>"$OUT/pip.log" 2>&1 \
      && install /tmp/gpu-check-venv/bin/python >>"$OUT/pip.log" 2>&1; then
    PY=/tmp/gpu-check-venv/bin/python WHEELS="installed into a venv over the system packages"
  elif install python3 --user >>"$OUT/pip.log" 2>&1 || install python3 --break-system-packages >>"$OUT/pip.log" 2>&1; then
    WHEELS="installed into the system python"
  fi
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$PY" bench/gpu_check.py --out "$OUT" --started "$START" --budget-s "${BUDGET_S:-450}" --wheels "$WHEELS"
