#!/usr/bin/env bash
# The project's prepared GPU benchmark (docs/performance.md): Hugging Face eager generate() vs the fast
# engine (static cache + CUDA graphs, bf16) vs ONNX Runtime's CUDA provider (fp32 export, IO binding),
# batch 1 and 16, 10 s and 30 s of audio (HF at 10 s only), musicgen-small dimensions with random
# weights (no download), warm-up/compile/export times included. Needs torch with CUDA, transformers,
# onnx and onnxruntime(-gpu) installed; no internet. Budget: under 8 minutes on one H100/H200.
#
#   bench/gpu.sh              # -> bench/results/<date>-<gpu>.json
#   bench/gpu.sh --dry-run    # the same script on CPU with the tiny model (checks the plumbing, ~1 min)
#   bench/gpu.sh --fusion     # fast-engine step unfused vs fused by torch.compile (issue 19): ms/step and
#                             # CUDA kernels/step, small-random bf16 batch 4, 10 s bucket -> step_fusion-<gpu>-*.json
#                             # (budget: under 5 minutes, most of it compiling); --fusion --dry-run: tiny, CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/operator${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python}"
if [[ "$PYTHON" == python && -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; fi

if [[ "${1:-}" == "--fusion" ]]; then
    shift
    if [[ "${1:-}" == "--dry-run" ]]; then
        shift
        exec "$PYTHON" bench/step_fusion.py --device cpu --threads 1 \
            --output "${TMPDIR:-/tmp}/step-fusion-dry-run.json" "$@"
    fi
    exec timeout 300 "$PYTHON" bench/step_fusion.py --device cuda "$@"
fi
if [[ "${1:-}" == "--dry-run" ]]; then
    shift
    exec "$PYTHON" bench/generate_fast.py --device cpu --preset tiny-random --threads 1 \
        --engines fast,onnx,hf --batches 1,2 --durations 0.5,1 --hf-durations 0.5 --repeats 1 \
        --output "${TMPDIR:-/tmp}/gpu-dry-run.json" "$@"
fi

gpu="$("$PYTHON" - <<'PY'
import re
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("error: bench/gpu.sh needs a CUDA GPU and torch built with CUDA "
             f"(torch {torch.__version__} sees none); use --dry-run to check it on CPU")
print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-"))
PY
)"
out="bench/results/$(date -u +%Y-%m-%d)-${gpu}.json"
echo "GPU: ${gpu}; writing ${out}" >&2
exec timeout 480 "$PYTHON" bench/generate_fast.py --device cuda --engines fast,hf,onnx --hf-durations 10 \
    --batches 1,16 --durations 10,30 --repeats 3 --max-wall-s 400 --output "$out" "$@"
