"""Fidelity calibration: where should the `fidelity` filter's cosine threshold sit?

An instruction-expansion or instruction-refinement row must ask for what its seed asks for. The filter
embeds the row's instruction and its seed's instruction with the embedded all-MiniLM-L6-v2 (what
`workspace_embed` gives the filters) and fails the row below `fidelity_threshold`. This script measures,
on real human-written seeds (/work/shared/data/self_instruct_seeds.jsonl), the cosine of:

- faithful pairs: 24 seeds, each with a hand-written paraphrase (what instruction expansion asks for:
  same request, other words, length and tone) and a hand-written refinement (what instruction refinement
  asks for: the same intent made specific). Written for this calibration, varied on purpose: short and
  long, questions and imperatives, colloquial and formal;
- drifted pairs, of three kinds:
  - another task: each of the 24 seeds paired with every other seed's instruction (24 x 119 pairs);
  - teacher junk: sentences of the kind the embedded 135M teacher writes instead of a rewording (seen in
    its instruction-expansion batches: "Your code already contains the requested extra information"),
    each paired with each of the 24 seeds;
  - real rows: the 8 usable rows of one instruction-expansion batch of the embedded teacher, each with
    its own seed (OBSERVED).

It prints the distributions, what each candidate threshold costs (faithful pairs kept, drifted pairs
caught, balanced accuracy: the mean of the two), the balanced-accuracy optimum, and the threshold it
recommends: the lowest faithful pair minus MARGIN, rounded down to a hundredth (the optimum sits right
under the lowest faithful pair, which a real batch of short, generic seeds would undercut). It compares
the default in studio/quality/filters.py.

    .venv/bin/python bench/fidelity_calibration.py

Response-expansion rows (a new answer in a named style to the seed's own request) are measured too,
answer against the seed's answer: 12 hand-written valid answers in another style versus the junk. Valid
answers spread far lower than rewordings do, so the instruction threshold does not carry over, and the
filter does not apply to those rows (see the RESULTS.md section).

Last line: `threshold: X.XX` (the recommended default).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.config import load_settings  # noqa: E402
from studio.quality.filters import FilterConfig, workspace_embed  # noqa: E402
from studio.workspace import Workspace  # noqa: E402

SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
MARGIN = 0.05
"""The default sits this far below the least similar faithful pair (rounded down to a hundredth): faithful
rewordings of short, generic instructions score lowest, and a real batch holds more of them than 48 pairs."""

# seed id -> (paraphrase, refinement): both ask for exactly what the seed asks for.
FAITHFUL: dict[str, tuple[str, str]] = {
    "seed_task_140": ("Can you give me some JS code that prints today's date and the current time?",
                      "Write a short JavaScript snippet that logs the current date and time to the console in "
                      "the user's locale format."),
    "seed_task_138": ("How would I fetch the latest Bitcoin price in USD from the bitcoincharts API? Show me the "
                      "code.",
                      "Write a Python function that calls the bitcoincharts API and returns the current price of "
                      "one Bitcoin in US dollars."),
    "seed_task_143": ("Which laws set the minimum wage in California?",
                      "List the state and federal laws that govern the minimum wage in California, with a "
                      "one-line summary of each."),
    "seed_task_74": ("Using these facts about me, draft a cover letter.",
                     "Write a one-page cover letter for a job application that uses all of the facts given "
                     "below, in a professional tone."),
    "seed_task_11": ("What should I buy at the supermarket to cook a healthy dinner?",
                     "Write a grocery list, grouped by store section, with the ingredients for one healthy "
                     "dinner for two people."),
    "seed_task_80": ("Give me some good conversation starters.",
                     "Write a list of ten open-ended questions someone could ask to start a friendly "
                     "conversation with a stranger."),
    "seed_task_157": ("Is the sentiment of this sentence positive, negative, or mixed?",
                      "Read the sentence and label its overall sentiment as exactly one of: positive, negative, "
                      "mixed."),
    "seed_task_5": ("What would be a good way to respond to this interview question?",
                    "Suggest a strong answer to the following job interview question, as a short paragraph the "
                    "candidate could say aloud."),
    "seed_task_32": ("Tell me how to perform this exercise.",
                     "Given the name of a workout exercise, explain step by step how to perform it with correct "
                     "form, in under 100 words."),
    "seed_task_137": ("Give me a one-line summary of this email.",
                      "Summarize the email below in one sentence that states its main request or point."),
    "seed_task_97": ("Make this sentence sound more professional.",
                     "Rewrite the sentence below in a formal, professional tone suitable for a work email, "
                     "keeping its meaning."),
    "seed_task_72": ("How do I write a Python function to sort a list in descending order?",
                     "Write a Python function that takes a list of numbers and returns a new list sorted from "
                     "largest to smallest."),
    "seed_task_30": ("What are some soft, salty snacks?",
                     "List eight salty snacks that have a soft texture, with a few words describing each."),
    "seed_task_10": ("What games can a group of friends play together?",
                     "Suggest five games a group of six to ten people can play at a party without special "
                     "equipment, with one sentence on how each works."),
    "seed_task_57": ('Give me a sentence whose last word is "published".',
                     'Write one natural English sentence of 10 to 20 words whose final word is "published".'),
    "seed_task_8": ("Write a haiku that includes this word:",
                    "Write a haiku with a 5-7-5 syllable pattern that uses the word given below."),
    "seed_task_52": ("What's a short warm-up I can do before running? Describe each exercise in a sentence.",
                     "Suggest a five-minute warm-up routine for before a run, listing each move with a "
                     "one-sentence explanation."),
    "seed_task_40": ("Could you put together a detailed itinerary for my week-long visit to Seattle?",
                     "Create a day-by-day itinerary for a 7-day trip to Seattle, with morning, afternoon and "
                     "evening activities for each day."),
    "seed_task_9": ("What movie should I watch this weekend, and why?",
                    "Recommend one movie to watch this weekend and explain in two or three sentences why it is "
                    "worth watching."),
    "seed_task_131": ("What home workouts help the most with losing belly fat?",
                      "List the five most effective exercises for reducing belly fat that can be done at home "
                      "without equipment, with a short note on each."),
    "seed_task_63": ("Tell me a knock-knock joke involving bananas.",
                     "Write a short, family-friendly knock-knock joke in which the punchline is about bananas."),
    "seed_task_79": ("Finish the words of this song.",
                     "Fill in the missing lines of the song lyrics given below."),
    "seed_task_48": ("Please respond to this question.",
                     "Give a clear, correct answer to the question below in a few sentences."),
    "seed_task_132": ("Put this list in ascending order.",
                      "Sort the items of the given list from smallest to largest and output the sorted list."),
}

# What the embedded SmolLM2-135M writes instead of a rewording (the first three are quoted from its
# instruction-expansion batches; the rest are the same kind: meta-talk, chatter, a different task).
JUNK = (
    "Your code already contains the requested extra information.",
    "Here are three examples that will help you improve your writing.",
    "The instructions will be in Spanish.",
    "I hope this helps! Let me know if you have any other questions.",
    "Sure, I can help you with that.",
    "Please provide more details so I can assist you better.",
    "This is a great question that many people ask.",
    "The answer is yes.",
    "Thank you for your request, it has been received.",
    "You can use the following format for your response.",
    "The request is clear and specific, so no changes are needed.",
    "Each version should be written in a different tone.",
)

# Real rows of the embedded SmolLM2-135M: every usable row of the batch `seed-studio generate --strategy
# instruction-expansion --count 8 --seed 6 --max-new-tokens 160` (the journey's settings, task "Answer everyday
# questions and small writing tasks in a friendly, concise way.", 2026-12-03): (its seed's id, its instruction).
OBSERVED: tuple[tuple[str, str], ...] = (
    ("seed_task_31", "Answer with a JSON array of 5 strings and nothing else."),
    ("seed_task_5", "[<interview_list>]"),
    ("seed_task_5", "[Enter your answer here]"),
    ("seed_task_69", "Input: [1,2,3] Output: [2, 3, 4, 5] Output: [2, 3, 4, 5] Output: 5,\nQuestion:\n(I know the "
                     "answer.)\n*"),
    ("seed_task_69", "Question:\n(I know the answer.)\n*"),
    ("seed_task_69", "Question:\n(I know the answer"),
    ("seed_task_15", "The answer to your request contains no extra spaces."),
    ("seed_task_15", "Question:\nWhat are some ways to create a sustainable energy system?"),
)

# Response expansion: seed id -> a valid answer in another style than the seed's (for the facts, not the
# style). Compared with the seed's answer.
ANSWERS: dict[str, str] = {
    "seed_task_140": "console.log(new Date().toString());",
    "seed_task_11": "1. Salmon fillets\n2. Brown rice\n3. Broccoli\n4. Lemons\n5. Olive oil\n6. Garlic",
    "seed_task_80": "What's the best trip you've ever taken? What are you reading lately? What do you do for fun?",
    "seed_task_157": "Mixed.",
    "seed_task_72": "def sort_desc(items):\n    return sorted(items, reverse=True)",
    "seed_task_30": "Soft pretzels, cheese puffs and hummus with pita are salty and soft.",
    "seed_task_10": "Try charades, Pictionary, or Two Truths and a Lie - all great with a big group!",
    "seed_task_63": "Knock knock. Who's there? Banana. Banana who? Banana split - see you later!",
    "seed_task_9": "Watch Paddington 2: it is warm, funny and short enough for a lazy Sunday.",
    "seed_task_131": "Planks, mountain climbers and bicycle crunches, plus brisk walking, help most at home.",
    "seed_task_52": "Step 1: march in place for a minute. Step 2: leg swings. Step 3: walking lunges.",
    "seed_task_40": "Day 1: Pike Place Market and the waterfront. Day 2: Space Needle and Chihuly. Day 3: ferry "
                    "to Bainbridge. Days 4-7: Mount Rainier, Fremont, museums and a day at Discovery Park.",
}


def quantiles(values: list[float], qs: tuple[float, ...] = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)) -> str:
    import numpy as np

    got = np.quantile(np.asarray(values), qs)
    return "  ".join(f"{'min' if q == 0 else 'max' if q == 1 else f'p{int(q * 100)}'} {v:.3f}"
                     for q, v in zip(qs, got, strict=True))


def main() -> None:
    import numpy as np

    seeds = {row["id"]: row for row in map(json.loads, SEEDS.read_text(encoding="utf-8").splitlines())}
    missing = sorted(set(FAITHFUL) - set(seeds))
    if missing:
        raise SystemExit(f"seeds not in {SEEDS}: {missing}")
    scratch = tempfile.TemporaryDirectory()
    embed = workspace_embed(Workspace(load_settings(Path(scratch.name) / "home")))
    embed(["warm-up"])

    texts = sorted({s["instruction"] for s in seeds.values()} | {t for pair in FAITHFUL.values() for t in pair}
                   | set(JUNK) | {t for _, t in OBSERVED} | {seeds[k]["output"] for k in ANSWERS}
                   | set(ANSWERS.values()))
    t0 = time.perf_counter()
    vectors = embed(texts)
    embed_s = time.perf_counter() - t0
    where = {t: i for i, t in enumerate(texts)}

    def cos(a: str, b: str) -> float:
        return float(vectors[where[a]] @ vectors[where[b]])

    paraphrase = {k: cos(seeds[k]["instruction"], p) for k, (p, _) in FAITHFUL.items()}
    refinement = {k: cos(seeds[k]["instruction"], r) for k, (_, r) in FAITHFUL.items()}
    other = [(k, o, cos(seeds[k]["instruction"], seeds[o]["instruction"])) for k in FAITHFUL for o in seeds if o != k]
    junk = [(k, j, cos(seeds[k]["instruction"], j)) for k in FAITHFUL for j in JUNK]
    observed = [(k, t, cos(seeds[k]["instruction"], t)) for k, t in OBSERVED]
    faithful = list(paraphrase.values()) + list(refinement.values())
    drifted = [c for *_, c in other] + [c for *_, c in junk] + [c for *_, c in observed]

    print(f"{len(texts)} texts embedded in {embed_s:.1f} s (all-MiniLM-L6-v2, as workspace_embed)")
    print(f"faithful, paraphrase  ({len(paraphrase):>4}): {quantiles(list(paraphrase.values()))}")
    print(f"faithful, refinement  ({len(refinement):>4}): {quantiles(list(refinement.values()))}")
    print(f"drifted, another seed ({len(other):>4}): {quantiles([c for *_, c in other])}")
    print(f"drifted, teacher junk ({len(junk):>4}): {quantiles([c for *_, c in junk])}")
    print(f"drifted, real 135M rows ({len(observed)}): " + "  ".join(f"{c:.3f}" for *_, c in observed))
    print("\nlowest faithful pairs:")
    for kind, scores in (("paraphrase", paraphrase), ("refinement", refinement)):
        for k in sorted(scores, key=scores.get)[:3]:
            text = FAITHFUL[k][0 if kind == "paraphrase" else 1]
            print(f"  {scores[k]:.3f} {kind:<10} {seeds[k]['instruction']!r} -> {text!r}")
    print("highest drifted pairs:")
    for k, o, c in sorted(other, key=lambda x: -x[2])[:5]:
        print(f"  {c:.3f} another   {seeds[k]['instruction']!r} -> {seeds[o]['instruction']!r}")
    for k, j, c in sorted(junk, key=lambda x: -x[2])[:3]:
        print(f"  {c:.3f} junk      {seeds[k]['instruction']!r} -> {j!r}")

    # Balanced accuracy: half the weight on keeping faithful rows, half on catching drifted ones.
    f, d = np.asarray(faithful), np.asarray(drifted)
    grid = np.round(np.arange(0.05, 0.90, 0.01), 2)
    rows = [(t, float((f >= t).mean()), float((d < t).mean())) for t in grid]
    best_t, keep, catch = max(rows, key=lambda r: (r[1] + r[2], -r[0]))
    best_ba = (keep + catch) / 2
    print("\nthreshold  faithful kept  drifted caught (another seed / junk / real 135M rows)  balanced accuracy")
    o_arr, j_arr = np.asarray([c for *_, c in other]), np.asarray([c for *_, c in junk])
    r_arr = np.asarray([c for *_, c in observed])
    for t, kept, caught in rows:
        if round(t * 100) % 5 == 0 or t == best_t:
            mark = "  <- best" if t == best_t else ""
            print(f"  {t:.2f}      {kept:6.1%}        {caught:6.1%} ({(o_arr < t).mean():6.1%} / "
                  f"{(j_arr < t).mean():6.1%} / {(r_arr < t).mean():6.1%})        {(kept + caught) / 2:.3f}{mark}")
    margin = float(f.min()) - MARGIN
    chosen = math.floor(margin * 100) / 100
    print(f"\nlowest faithful pair {f.min():.3f}; minus a {MARGIN:g} margin: {margin:.3f}, rounded down: "
          f"{chosen:.2f} (faithful kept {(f >= chosen).mean():.1%}, drifted caught {(d < chosen).mean():.1%}: "
          f"{(o_arr < chosen).mean():.1%} of another seed's, {(j_arr < chosen).mean():.1%} of junk, "
          f"{(r_arr < chosen).sum()} of {len(r_arr)} real 135M rows; balanced "
          f"accuracy {((f >= chosen).mean() + (d < chosen).mean()) / 2:.3f} against {best_ba:.3f} at {best_t:.2f})")

    styled = {k: cos(seeds[k]["output"], a) for k, a in ANSWERS.items()}
    answer_junk = [cos(seeds[k]["output"], j) for k in ANSWERS for j in JUNK]
    print(f"\nresponse expansion, valid answer vs seed answer ({len(styled)}): {quantiles(list(styled.values()))}")
    print(f"response expansion, junk vs seed answer       ({len(answer_junk)}): {quantiles(answer_junk)}")
    print(f"  valid answers the instruction threshold {chosen:.2f} would fail: "
          f"{sum(v < chosen for v in styled.values())} of {len(styled)}; gap between the highest junk "
          f"({max(answer_junk):.3f}) and the lowest valid answer ({min(styled.values()):.3f}): "
          f"{min(styled.values()) - max(answer_junk):.3f}")

    default = FilterConfig().fidelity_threshold
    print(f"\nstudio default fidelity_threshold: {default:g} (faithful kept {(f >= default).mean():.1%}, drifted "
          f"caught {(d < default).mean():.1%})")
    print(f"threshold: {chosen:.2f}")


if __name__ == "__main__":
    main()
