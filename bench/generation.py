"""Generation benchmark: rows per minute from the local teacher (embedded SmolLM2-135M-Instruct), batched
(batch size 16) against one conversation at a time, on the same prompts in the same process.
Target: batched >= 4x one-at-a-time on a 2-core CPU.

    .venv/bin/python bench/generation.py [--rows 64] [--max-new-tokens 48] [--batch-size 16] [--rounds 2]

Prompts are the first `--rows` human-written seeds of /work/shared/data/self_instruct_seeds.jsonl
(instruction, plus input when there is one, as the user message). Greedy decoding, so both modes
write the same answers (checked). A row stops at its end-of-turn token or at max new tokens; a batch
runs until its last row stops, so short answers cost the batched mode more than the one-at-a-time mode:
the comparison leans towards one-at-a-time. Each mode runs `--rounds` times, alternating,
and keeps its fastest round. SEED_STUDIO_MODELS_DIR picks the converted-model cache (default: the
studio's own).

Last line: `ratio: X.XX` (batched rows/min / one-at-a-time rows/min).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.config import load_settings  # noqa: E402
from studio.models.registry import EMBEDDED_CHAT  # noqa: E402
from studio.teachers.base import GenerationParams  # noqa: E402
from studio.teachers.local import LocalTeacher  # noqa: E402

SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"


def conversations(path: Path, rows: int) -> list[list[dict[str, str]]]:
    found = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            seed = json.loads(line)
            content = seed["instruction"].strip()
            if str(seed.get("input") or "").strip():
                content += "\n\n" + seed["input"].strip()
            found.append([{"role": "user", "content": content}])
            if len(found) == rows:
                return found
    raise SystemExit(f"{path} has only {len(found)} seeds; asked for {rows}")


def shared_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def timed(teacher: LocalTeacher, prompts: list, params: GenerationParams) -> tuple[float, list[str]]:
    start = time.perf_counter()
    texts = teacher.generate(prompts, params)
    return time.perf_counter() - start, texts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    import torch

    models_dir = load_settings().models_dir
    prompts = conversations(SEEDS, args.rows)
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=0)
    batched = LocalTeacher(EMBEDDED_CHAT, models_dir, batch_size=args.batch_size)
    single = LocalTeacher(EMBEDDED_CHAT, models_dir, batch_size=1)

    # Warm-up: load (both teachers share the cached model) and run a small generate in each mode.
    load_start = time.perf_counter()
    batched.generate(prompts[:2], GenerationParams(max_new_tokens=4, temperature=0))
    single.generate(prompts[:1], GenerationParams(max_new_tokens=4, temperature=0))
    print(f"model load + warm-up: {time.perf_counter() - load_start:.1f} s "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")

    # Rounds alternate the two modes and each mode keeps its fastest round: on a shared machine other
    # processes only ever add time, and alternating spreads that noise over both modes.
    single_runs: list[float] = []
    batched_runs: list[float] = []
    for _ in range(args.rounds):
        single_s, single_texts = timed(single, prompts, params)
        batched_s, batched_texts = timed(batched, prompts, params)
        single_runs.append(single_s)
        batched_runs.append(batched_s)
    single_s, batched_s = min(single_runs), min(batched_runs)
    same = sum(a == b for a, b in zip(single_texts, batched_texts, strict=True))
    single_rate, batched_rate = 60 * len(prompts) / single_s, 60 * len(prompts) / batched_s
    print(f"rows: {len(prompts)}, greedy, max_new_tokens {args.max_new_tokens}; "
          f"identical answers in both modes: {same}/{len(prompts)}")
    for i, (a, b) in enumerate(zip(single_texts, batched_texts, strict=True)):
        if a != b:  # float32 sums in another order (batch shape) can flip a near-tie in greedy argmax
            common = shared_prefix(a, b)
            print(f"  row {i} differs after {common} characters: {a[common:common + 30]!r} vs "
                  f"{b[common:common + 30]!r}")
    print(f"one at a time (batch 1): best {single_s:.1f} s of {args.rounds} rounds "
          f"({', '.join(f'{x:.1f}' for x in single_runs)}) -> {single_rate:.1f} rows/min")
    print(f"batched (batch {args.batch_size}): best {batched_s:.1f} s of {args.rounds} rounds "
          f"({', '.join(f'{x:.1f}' for x in batched_runs)}) -> {batched_rate:.1f} rows/min")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"target: batched >= 4x one-at-a-time -> {'met' if batched_rate >= 4 * single_rate else 'MISSED'}")
    print(f"ratio: {batched_rate / single_rate:.2f}")


if __name__ == "__main__":
    main()
