#!/usr/bin/env bash
# Second GPU stage (docs/performance.md): what bench/gpu.sh does not cover, for a session with device time
# left after it (about 6 minutes): a 300 s track on the fast engine (token-level continuation, 18 s stride),
# top-k sampling vs a full sort, EnCodec vs MultiBand Diffusion decode at musicgen-small's codec size, and
# one LoRA training step at musicgen-small's size in bf16. Each part has its own deadline; a part that
# fails or runs out of time does not stop the others. Writes bench/results/<date>-<gpu>-<part>.json.
#
#   bench/gpu_extras.sh            # on a CUDA GPU
#   bench/gpu_extras.sh --dry-run  # the same parts on CPU with the tiny model (checks the plumbing)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/operator${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python}"
if [[ "$PYTHON" == python && -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; fi

if [[ "${1:-}" == "--dry-run" ]]; then
    device=cpu preset=tiny-random long=2 unet=tiny precision=fp32 steps=2
    prefix="${TMPDIR:-/tmp}/gpu-extras-dry-run"
else
    gpu="$("$PYTHON" -c 'import re, sys, torch
if not torch.cuda.is_available(): sys.exit("error: bench/gpu_extras.sh needs a CUDA GPU; use --dry-run on CPU")
print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(0).lower()).strip("-"))')" || exit 1
    device=cuda preset=small-random long=300 unet=basic precision=bf16 steps=10
    prefix="bench/results/$(date -u +%Y-%m-%d)-${gpu}"
fi
failed=0
run() {  # run <part> <seconds> <command...>
    local part=$1 limit=$2
    shift 2
    echo "== ${part} (at most ${limit} s)" >&2
    timeout "$limit" "$PYTHON" "$@" --output "${prefix}-${part}.json" || { echo "${part}: failed or timed out" >&2; failed=1; }
}
run long_track 150 bench/long_track.py --device "$device" --preset "$preset" --engine fast --duration "$long"
run sampling 45 bench/sampling.py --device "$device"
run decode 90 bench/decode.py --preset "$preset" --unet "$unet" --device "$device" --seconds 10 --repeats 2
run train_step 90 bench/train_step.py --preset "$preset" --device "$device" --precision "$precision" --steps "$steps"
exit "$failed"
