"""Filters benchmark: the automatic filters of the review step on 50,000 synthetic rows, semantic dedupe
with the embedded MiniLM on 10,000 of them, and a naive all-pairs baseline on a 2,000-row subset.
Targets on a 2-core CPU: the lexical filters (exact, MinHash near-duplicates, seed overlap, heuristics,
refusals) take 50,000 rows in < 60 s; semantic dedupe (embedding included) takes 10,000 rows in < 120 s.

    .venv/bin/python bench/filters.py [--rows 50000] [--semantic-rows 10000] [--subset 2000] [--seed 13]

Rows are built reproducibly (random.Random(--seed)) from the 120 human-written seeds of
/work/shared/data/self_instruct_seeds.jsonl: recombinations (one seed's instruction, sentences from
several seeds' answers), perturbations (20-60% of the words replaced, dropped or swapped), exact
duplicates of earlier rows (case, spacing and punctuation changed), near duplicates of earlier rows
(one or two words changed), and a few refusals and too-short instructions.

The baseline on the first --subset rows compares every pair the obvious way: exact Jaccard of the
shingle sets against every earlier kept row, rouge_score's RougeScorer for every (row, seed) pair, and a
Python loop of dot products for the cosine (on the same vectors as the studio). Both sides must find the
same rows; agreement is printed per filter (MinHash estimates Jaccard, so rows within a few hundredths
of the threshold can differ; ROUGE-L and cosine must agree exactly).

Last line: `ratio: X.XX` (studio rows/s / naive rows/s on the subset, the three pairwise filters).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.config import load_settings  # noqa: E402
from studio.data.formats import SeedFormat  # noqa: E402
from studio.quality.dedupe import shingles  # noqa: E402
from studio.quality.filters import (  # noqa: E402
    FILTER_NAMES,
    FilterConfig,
    instruction_text,
    row_text,
    run_filters,
    workspace_embed,
)
from studio.workspace import Workspace  # noqa: E402
from studio.workspace.seeds import Seed  # noqa: E402

SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
LEXICAL = ("parse", "exact_duplicate", "near_duplicate", "seed_overlap", "heuristics", "refusal")
PAIRWISE = ("near_duplicate", "seed_overlap", "semantic_duplicate")
REFUSALS = ("As an AI language model, I cannot do that.", "I'm sorry, but I can't help with this request.")


@dataclass
class Row:
    id: int
    format: SeedFormat
    data: dict[str, Any]
    parse_error: str = ""


def load_seeds(path: Path) -> list[Seed]:
    seeds = []
    with path.open(encoding="utf-8") as lines:
        for i, line in enumerate(x for x in lines if x.strip()):
            d = json.loads(line)
            data = {"instruction": d["instruction"], "input": d.get("input") or "", "output": d["output"]}
            seeds.append(Seed(i + 1, 1, SeedFormat.ALPACA, data, {}, path.name, i + 1, "", ""))
    return seeds


def build_rows(seeds: list[Seed], n: int, seed: int) -> tuple[list[Row], dict[str, int]]:
    rng = random.Random(seed)
    vocab = sorted({w for s in seeds for w in (s.data["instruction"] + " " + s.data["output"]).split()})
    sentences = [x for s in seeds for x in re.split(r"(?<=[.!?])\s+", s.data["output"]) if x.strip()]

    def perturb(text: str, share: float) -> str:
        words = text.split()
        for _ in range(max(1, round(len(words) * share))):
            i = rng.randrange(len(words))
            kind = rng.random()
            if kind < 0.5:
                words[i] = rng.choice(vocab)
            elif kind < 0.8 and len(words) > 3:
                del words[i]
            elif i + 1 < len(words):
                words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    def restyle(text: str) -> str:  # same text for the exact filter: case, spacing, punctuation
        text = text.upper() if rng.random() < 0.5 else text.lower()
        return re.sub(r"\s+", "  ", text).rstrip(".!?") + rng.choice(["", "!", " ..."])

    rows: list[dict[str, str]] = []
    made = dict.fromkeys(("recombined", "perturbed", "exact copies", "near copies", "junk"), 0)
    while len(rows) < n:
        roll = rng.random()
        if roll < 0.03 and rows:
            src = rng.choice(rows)
            rows.append({k: restyle(v) if v else v for k, v in src.items()})
            made["exact copies"] += 1
        elif roll < 0.08 and rows:
            src = rng.choice(rows)
            words = src["output"].split()
            for _ in range(rng.randint(1, 2)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            rows.append({**src, "output": " ".join(words)})
            made["near copies"] += 1
        elif roll < 0.10:
            s = rng.choice(seeds).data
            junk = rng.choice([{**s, "output": rng.choice(REFUSALS)}, {**s, "instruction": "Do it."}])
            rows.append(dict(junk))
            made["junk"] += 1
        elif roll < 0.55:
            a = rng.choice(seeds).data
            answer = " ".join(rng.sample(sentences, rng.randint(1, 4)))
            rows.append({"instruction": perturb(a["instruction"], 0.3), "input": a["input"], "output": answer})
            made["recombined"] += 1
        else:
            s = rng.choice(seeds).data
            share = rng.uniform(0.2, 0.6)
            rows.append({"instruction": perturb(s["instruction"], share), "input": s["input"],
                         "output": perturb(s["output"], share)})
            made["perturbed"] += 1
    return [Row(i + 1, SeedFormat.ALPACA, d) for i, d in enumerate(rows)], made


def only(*names: str, **settings: Any) -> FilterConfig:
    config = FilterConfig(**settings)
    config.enabled = {name: name in names for name in FILTER_NAMES}
    return config


def failed(report: Any, name: str) -> set[int]:
    return {o.candidate_id for o in report.outcomes if o.filter == name and not o.passed}


# --- the naive baseline -------------------------------------------------------------------------------


def naive_near(texts: list[str], n_prior: int, threshold: float) -> set[int]:
    sets = [set(shingles(t)) for t in texts]
    kept = list(range(n_prior))
    dup = set()
    for i in range(n_prior, len(texts)):
        a = sets[i]
        if a and any(len(a & sets[k]) / len(a | sets[k]) >= threshold for k in kept if sets[k]):
            dup.add(i - n_prior)
        else:
            kept.append(i)
    return dup


def naive_rouge(texts: list[str], seed_texts: list[str], threshold: float) -> set[int]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return {i for i, t in enumerate(texts) if any(scorer.score(s, t)["rougeL"].fmeasure > threshold
                                                  for s in seed_texts)}


def naive_cosine(vectors: Any, n_prior: int, threshold: float) -> set[int]:
    import numpy as np

    kept = list(range(n_prior))
    dup = set()
    for i in range(n_prior, len(vectors)):
        v = vectors[i]
        if any(float(np.dot(v, vectors[k])) >= threshold for k in kept):
            dup.add(i - n_prior)
        else:
            kept.append(i)
    return dup


def agreement(name: str, ours: set[int], theirs: set[int], n: int) -> float:
    same = n - len(ours ^ theirs)
    print(f"  {name:<20} studio {len(ours):>5} flagged, naive {len(theirs):>5}, both {len(ours & theirs):>5}; "
          f"same verdict on {same}/{n} rows ({100 * same / n:.2f}%)")
    return same / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--semantic-rows", type=int, default=10_000)
    parser.add_argument("--subset", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    import numpy as np
    import torch

    seeds = load_seeds(SEEDS)
    start = time.perf_counter()
    rows, made = build_rows(seeds, args.rows, args.seed)
    print(f"built {len(rows):,} rows from {len(seeds)} seeds in {time.perf_counter() - start:.1f} s "
          f"(seed {args.seed}): " + ", ".join(f"{v:,} {k}" for k, v in made.items()))

    # 1 · the lexical filters over every row.
    defaults = FilterConfig()
    start = time.perf_counter()
    report = run_filters(rows, seeds, only(*LEXICAL))
    lexical_s = time.perf_counter() - start
    print(f"lexical filters ({', '.join(LEXICAL)}): {len(rows):,} rows in {lexical_s:.1f} s -> "
          f"{len(rows) / lexical_s:,.0f} rows/s; {report.kept:,} rows pass")
    print("  marked: " + ", ".join(f"{k} {v:,}" for k, v in report.failed_by.items()))
    for name in LEXICAL[1:]:
        start = time.perf_counter()
        run_filters(rows, seeds, only(name))
        print(f"  {name:<20} alone: {time.perf_counter() - start:5.1f} s")

    # 2 · semantic dedupe with the embedded MiniLM (model load and warm-up not timed).
    scratch = tempfile.TemporaryDirectory(prefix="bench-filters-")  # removed when the run ends
    ws = Workspace(load_settings(Path(scratch.name) / "home"))
    studio_embed = workspace_embed(ws)  # what preview_filters / apply_filters use
    studio_embed(["warm-up"])
    timings: dict[str, float] = {}
    cache: dict[str, Any] = {}

    def embed(texts: list[str]) -> Any:
        t0 = time.perf_counter()
        vectors = studio_embed(texts)
        timings["embed"] = timings.get("embed", 0.0) + time.perf_counter() - t0
        cache.update(zip(texts, vectors, strict=True))
        return vectors

    sem_rows = rows[: args.semantic_rows]
    start = time.perf_counter()
    sem = run_filters(sem_rows, seeds, only("semantic_duplicate"), embed=embed)
    semantic_s = time.perf_counter() - start
    print(f"semantic dedupe: {len(sem_rows):,} rows (+{len(seeds)} seeds) in {semantic_s:.1f} s -> "
          f"{len(sem_rows) / semantic_s:,.0f} rows/s (embedding {timings['embed']:.1f} s, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; cosine blocks "
          f"{semantic_s - timings['embed']:.2f} s); {sem.failed_by['semantic_duplicate']:,} marked")

    # 3 · the naive baseline on a subset, same vectors for the cosine.
    sub = rows[: args.subset]
    prior_texts = [row_text(s.format, s.data) for s in seeds]
    texts = prior_texts + [row_text(r.format, r.data) for r in sub]
    vectors = np.stack([cache[t] for t in texts]).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)  # as run_filters does

    start = time.perf_counter()
    studio = run_filters(sub, seeds, only(*PAIRWISE), embed=lambda ts: np.stack([cache[t] for t in ts]))
    studio_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = {
        "near_duplicate": naive_near(texts, len(seeds), defaults.near_duplicate_threshold),
        "seed_overlap": naive_rouge([instruction_text(r.format, r.data) for r in sub],
                                    [instruction_text(s.format, s.data) for s in seeds],
                                    defaults.seed_overlap_threshold),
        "semantic_duplicate": naive_cosine(vectors, len(seeds), defaults.semantic_threshold),
    }
    naive_s = time.perf_counter() - start
    print(f"subset of {len(sub):,} rows, {', '.join(PAIRWISE)}: studio {studio_s:.2f} s "
          f"({len(sub) / studio_s:,.0f} rows/s), naive all pairs {naive_s:.1f} s ({len(sub) / naive_s:,.1f} rows/s)")
    index = {r.id: i for i, r in enumerate(sub)}
    worst = 1.0
    for name in PAIRWISE:
        ours = {index[cid] for cid in failed(studio, name)}
        worst = min(worst, agreement(name, ours, naive[name], len(sub)))
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"targets: lexical 50k < 60 s -> {'met' if lexical_s < 60 and len(rows) >= 50_000 else 'MISSED'}; "
          f"semantic 10k < 120 s -> {'met' if semantic_s < 120 and len(sem_rows) >= 10_000 else 'MISSED'}; "
          f"lowest agreement {100 * worst:.2f}%")
    print(f"ratio: {naive_s / studio_s:.2f}")


if __name__ == "__main__":
    main()
