#!/usr/bin/env bash
# The GPU bench, runnable as is from the repository root on a bare GPU machine: no network, its own Python with
# torch, transformers, peft and accelerate. What it lacks (TRL, datasets and their dill and multiprocess,
# bitsandbytes, liger-kernel) comes as wheels prepared beforehand on a machine with pip access:
#
#     bash bench/gpu_wheels.sh        # here: fills bench/wheels/ (git-ignored, about 47 MB with the tokenizer)
#     bash bench/gpu.sh               # there, with bench/wheels/ carried along; under 8 minutes on one H100
#
# Installs the wheels into a scratch folder (never into that machine's Python), then runs bench/gpu.py, which
# prints what it measures and, last, `ratio: <studio / TRL defaults train tokens/s>`. Extra arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${GPU_BENCH_SITE:-/tmp/seed-studio-gpu-site}
if compgen -G "bench/wheels/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    bench/wheels/*.whl
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "bench/wheels/ has no wheels: using what this Python has (run bench/gpu_wheels.sh where pip works)." >&2
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
exec timeout 450 "$PY" bench/gpu.py "$@"
