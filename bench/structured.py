"""Structured-generation benchmark: the embedded teacher (SmolLM2-135M-Instruct) with and without the JSON-schema
grammar, for every teacher strategy, on the same real seeds and the same prompts, in one process. Then the
diversity plan: few-shot with and without a plan, on the same seeds.

    .venv/bin/python bench/structured.py [--calls 8] [--plan-calls 24] [--max-new-tokens 256] [--batch-size 8]
                                         [--plan-only] [--seed 3]

Per strategy and mode: valid answers (the whole answer is JSON that fits the strategy's schema, checked
with xgrammar), usable rows (what the studio's own parser makes of the answers: the lenient parser reads
fenced or chatty JSON too), and usable rows per minute. Prompts are the shipped templates rendered on the
human-written seeds of /work/shared/data/self_instruct_seeds.jsonl, with the unit sampling a batch uses.
Sampling at temperature 0.8 with one seed per strategy, the same for both modes.

Plan comparison (few-shot, constrained, `--plan-calls` calls each, same seeds and unit draws): distinct-2
of the new instructions (higher: more varied wording), the mean cosine of each new instruction to its
nearest seed (MiniLM; lower: further from copying the seeds) and the mean cosine between the new
instructions themselves (lower: the batch is spread wider). Diversity numbers do not depend on the
machine's speed (sampling is seeded), so `--plan-only` may run beside other work.

Last line: `ratio: X` = few-shot usable rows/min constrained / unconstrained (an unconstrained run with no
usable row counts as one usable row over its time). Target >= 5.
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

from studio.augment.batches import unit_prompt  # noqa: E402
from studio.augment.plan import DiversityPlan, PlanValue  # noqa: E402
from studio.augment.strategies import Example, StrategyOptions, get_strategy, seed_view  # noqa: E402
from studio.augment.templates import default_template  # noqa: E402
from studio.config import load_settings  # noqa: E402
from studio.data.formats import SeedFormat  # noqa: E402
from studio.models.registry import EMBEDDED_CHAT  # noqa: E402
from studio.teachers.base import GenerationParams  # noqa: E402
from studio.teachers.grammar import schema_valid  # noqa: E402
from studio.teachers.local import LocalTeacher  # noqa: E402

SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
TASK = "Follow the user's instruction and answer helpfully."
STRATEGIES = {"few-shot": StrategyOptions(n=3, k=3), "instruction-expansion": StrategyOptions(n=3),
              "instruction-refinement": StrategyOptions(),
              "response-expansion": StrategyOptions(styles=["formal", "casual", "concise"])}
PLAN = DiversityPlan([PlanValue(t) for t in ("cooking", "travel", "personal finance", "programming", "health",
                                              "history", "music", "sports", "job interviews", "gardening")],
                     {"difficulty": [PlanValue("easy"), PlanValue("hard")]})


def examples() -> list[Example]:
    out = []
    for i, line in enumerate(SEEDS.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            s = json.loads(line)
            out.append(Example(i, SeedFormat.ALPACA, {"instruction": s["instruction"], "input": s.get("input", ""),
                                                      "output": s["output"]}))
    return out


def run(teacher: LocalTeacher, name: str, pool: list[Example], calls: int, params: GenerationParams,
        constrained: bool, plan: DiversityPlan | None = None) -> dict:
    strategy, options = get_strategy(name), STRATEGIES[name]
    template = default_template(strategy.template_name)
    units = [strategy.unit_examples(i, pool, options, 7) for i in range(calls)]
    per_unit = strategy.expected_rows(options)
    draws = [plan.sample_items(7, i, per_unit) if plan else [] for i in range(calls)]
    conversations = [strategy.conversation(unit_prompt(strategy, template, ex, options, TASK, d))
                     for ex, d in zip(units, draws, strict=True)]
    schemas = [strategy.answer_schema(ex, options, params.max_new_tokens, d)
               for ex, d in zip(units, draws, strict=True)]
    start = time.perf_counter()
    texts = teacher.generate(conversations, params, schema=schemas if constrained else None)
    seconds = time.perf_counter() - start
    valid = sum(schema_valid(schema, t) for schema, t in zip(schemas, texts, strict=True))
    rows = []
    for ex, t, d in zip(units, texts, draws, strict=True):
        for r in strategy.parse(t, ex, options):
            if r.usable:
                if d:  # as a batch records it
                    r.meta["plan"] = d[r.meta.get("item", 0) % len(d)]
                rows.append(r)
    per_min = len(rows) / seconds * 60
    return {"strategy": name, "constrained": constrained, "calls": calls, "valid": valid, "usable_rows": len(rows),
            "seconds": round(seconds, 1), "rows_per_min": round(per_min, 2),
            "rows_per_min_floor": round(max(len(rows), 1) / seconds * 60, 2), "rows": rows}


def diversity(rows: list, pool: list[Example], embed) -> dict:
    from studio.quality.diversity import distinct_n

    texts = [seed_view(Example(0, r.format, r.data))["instruction"] for r in rows]
    seeds = [seed_view(e)["instruction"] for e in pool]
    if not texts:
        return {"rows": 0}
    vectors, seed_vectors = embed(texts), embed(seeds)
    nearest = (vectors @ seed_vectors.T).max(axis=1)
    pairwise = vectors @ vectors.T
    spread = (pairwise.sum() - len(texts)) / max(1, len(texts) * (len(texts) - 1))
    return {"rows": len(texts), "distinct_2": round(distinct_n(texts, 2) or 0.0, 3),
            "mean_nn_similarity_to_seeds": round(float(nearest.mean()), 3),
            "mean_similarity_between_rows": round(float(spread), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--plan-calls", type=int, default=24)
    parser.add_argument("--plan-only", action="store_true")
    parser.add_argument("--seed", type=int, default=3, help="sampling seed (the same for every run)")
    args = parser.parse_args()
    settings = load_settings()
    models_dir = Path(os.environ.get("SEED_STUDIO_MODELS_DIR") or settings.models_dir)
    teacher = LocalTeacher(EMBEDDED_CHAT, models_dir, batch_size=args.batch_size)
    pool = examples()
    params = GenerationParams(args.max_new_tokens, 0.8, 0.95, seed=args.seed)
    teacher.generate([[{"role": "user", "content": "Say OK."}]], GenerationParams(4, 0.0, 1.0))  # load first
    print(f"seeds: {len(pool)} from {SEEDS.name}; calls per run: {args.calls}; max new tokens: "
          f"{args.max_new_tokens}; batch size {args.batch_size}; torch threads {os.cpu_count()} cores")
    results = {}
    for name in [] if args.plan_only else STRATEGIES:
        for constrained in (False, True):
            r = run(teacher, name, pool, args.calls, params, constrained)
            results[(name, constrained)] = r
            print(f"{name:<24} {'grammar' if constrained else 'prompt only':<12} valid {r['valid']}/{r['calls']}  "
                  f"usable rows {r['usable_rows']:>3}  {r['seconds']:>6.1f} s  {r['rows_per_min']:>6.2f} rows/min",
                  flush=True)

    from studio.models.loading import load_embedder
    from studio.models.registry import EMBEDDED_EMBEDDER

    model = load_embedder(EMBEDDED_EMBEDDER, models_dir)

    def embed(texts: list[str]):
        return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

    plain = run(teacher, "few-shot", pool, args.plan_calls, params, True)
    planned = run(teacher, "few-shot", pool, args.plan_calls, params, True, PLAN)
    without, with_plan = diversity(plain["rows"], pool, embed), diversity(planned["rows"], pool, embed)
    print(f"plan, few-shot grammar: without {json.dumps(without)} (valid {plain['valid']}/{plain['calls']})")
    print(f"plan, few-shot grammar: with    {json.dumps(with_plan)} (valid {planned['valid']}/{planned['calls']})")
    for label, r in (("without", plain), ("with", planned)):
        for row in r["rows"][:4]:
            draw = row.meta.get("plan") if label == "with" else None
            print(f"  e.g. {label:<7} {json.dumps(draw) if draw else '':<45} "
                  f"{seed_view(Example(0, row.format, row.data))['instruction'][:90]}")
    if args.plan_only:
        return
    few_on, few_off = results[("few-shot", True)], results[("few-shot", False)]
    ratio = few_on["rows_per_min"] / few_off["rows_per_min_floor"]
    print(f"ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
