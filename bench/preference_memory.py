"""Peak memory of a DPO / ORPO step on the CPU against the studio's estimate (studio.train.estimate).

    SEED_STUDIO_MODELS_DIR=<converted models> .venv/bin/python bench/preference_memory.py --pairs 4 --tokens 256

Builds `--pairs` preference pairs whose prompt + answer sequences are about `--tokens` tokens long (one batch of
all of them), trains 2 steps through the studio's own trainer (studio.train.preference, reference
log-probabilities precomputed, LoRA r=16 all-linear, float32) on the embedded SmolLM2-135M-Instruct, and reads
the process's peak RSS. The estimate for the same run is computed in the same process. Prints
`ratio: <estimate / measured>` last: above 1 the estimate is on the safe side. Run one size per process (peak
RSS never goes down). The calibration in studio/train/estimate.py (PREFERENCE_TOKEN_MEMORY) comes from this.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
from pathlib import Path

WORDS = "the river runs past old mills and quiet fields while people walk along its banks " * 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="pairs in the one batch (at least 4)")
    parser.add_argument("--tokens", type=int, default=256, help="about how long each prompt + answer sequence is")
    parser.add_argument("--objective", choices=("dpo", "orpo"), default="dpo")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from studio.config import load_settings
    from studio.models.embedded import ensure_converted_chat_model
    from studio.train.estimate import estimate
    from studio.train.preference import build_preference_trainer
    from studio.train.settings import TrainConfig

    models_dir = Path(os.environ.get("SEED_STUDIO_MODELS_DIR") or load_settings().models_dir)
    model = ensure_converted_chat_model(models_dir)  # the embedded SmolLM2 as safetensors (converted once)
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    ids = tokenizer(WORDS)["input_ids"]

    def text(n: int) -> str:
        return tokenizer.decode(ids[:n])

    half = args.tokens // 2
    pairs = [{"prompt": [{"role": "user", "content": text(half - 20)}],
              "chosen": [{"role": "assistant", "content": text(half)}],
              "rejected": [{"role": "assistant", "content": text(half - 5)}]} for _ in range(args.pairs)]
    config = TrainConfig(objective=args.objective, per_device_batch_size=args.pairs, gradient_accumulation_steps=1,
                         max_steps=2, max_seq_length=max(512, args.tokens), eval_every_steps=100,
                         early_stopping_patience=0)
    lengths = [len(tokenizer(tokenizer.apply_chat_template(p["prompt"] + p[a], tokenize=False))["input_ids"])
               for p in pairs for a in ("chosen", "rejected")]
    predicted = estimate(config, model_ref=str(model), models_dir=models_dir, rows=len(pairs),
                         mean_tokens=sum(lengths) / len(lengths), max_tokens=max(lengths))
    with tempfile.TemporaryDirectory() as out:
        setup = build_preference_trainer(model, config, pairs, [], Path(out), device="cpu")
        setup.trainer.train()
    measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    gib = 1024**3
    print(json.dumps({"objective": args.objective, "pairs": args.pairs, "sequence_tokens": max(lengths),
                      "measured_gib": round(measured / gib, 2), "estimate_gib": round(predicted.memory_bytes / gib, 2),
                      "estimate_parts_gib": {k: round(v / gib, 2) for k, v in predicted.breakdown.items()}}))
    print(f"ratio: {predicted.memory_bytes / measured:.2f}")


if __name__ == "__main__":
    main()
