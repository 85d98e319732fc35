#!/usr/bin/env bash
# Prepares bench/wheels/ for bench/gpu.sh: the wheels a bare GPU machine lacks, at the versions constraints.txt
# pins, for its Python (3.12, manylinux x86_64), and SmolLM2's tokenizer files (from the embedded model). Run it
# from the repository root after `make setup`; carry bench/wheels with the GPU call (64 MiB at most in all).
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${GPU_PYTHON_VERSION:-3.12}
OUT=bench/wheels
mkdir -p "$OUT"
# Liger's Triton kernels run on a GPU only, so the studio's requirements do not list it; the worker uses it where
# it is installed (studio.train.worker.liger_kernels). Triton comes with that machine's CUDA torch.
LIGER=0.8.5
pin() { grep -i "^$1==" constraints.txt | head -1; }
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$OUT" \
  "$(pin trl)" "$(pin datasets)" "$(pin dill)" "$(pin multiprocess)" "$(pin bitsandbytes)" \
  "liger-kernel==$LIGER"
.venv/bin/python - "$OUT/tokenizer" <<'PY'
import sys
from studio.config import load_settings
from studio.models import embedded
from transformers import AutoTokenizer

AutoTokenizer.from_pretrained(str(embedded.ensure_converted_chat_model(load_settings().models_dir))).save_pretrained(
    sys.argv[1])
PY
du -sh "$OUT"
