#!/usr/bin/env bash
# One chunk of the base-v2 run (CONTRIBUTING.md, "If you have a GPU for 15 minutes").
#
#   bash training/gpu_chunk.sh SECONDS [more `air train base` options]
#
# Resumes from the committed training/base-v2/ (weights, training-state.json, log.jsonl) and writes
# the next state into $OUT/base-v2 (the device tool brings $OUT back; copy it over training/base-v2
# and commit). Works from a bare checkout: the package is put on PYTHONPATH, not installed, and any
# wheels in .whl/ (pydantic, which the GPU image lacks) are installed into /tmp/site first.
set -euo pipefail
budget=${1:?give the time budget of the chunk in seconds}
shift
data=${AIR_TRAIN_DATA:-.carry/clean}
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
mkdir -p /tmp/pkg/air_restore
for d in core plugins registry cli; do ln -sfn "$PWD/$d" "/tmp/pkg/air_restore/$d"; done
export PYTHONPATH=/tmp/site:/tmp/pkg${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
run=${OUT:-runs}/base-v2
mkdir -p "$run"
if [ -f training/base-v2/training-state.json ]; then
    cp training/base-v2/base.safetensors training/base-v2/training-state.json training/base-v2/log.jsonl "$run"/
fi
gpu=()
if python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    gpu=(--compile --mixed-precision bf16)
fi
python3 -m air_restore.cli.main train base --chunked --data "$data" --out "$run" --time-budget "$budget" \
    --recipe widened7 --steps 24000 --batch-size 256 --crop 128 --lr 5e-4 --val-every 250 \
    --init registry/weights/base-v1.safetensors "${gpu[@]}" "$@"
