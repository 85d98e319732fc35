"""The automatic filters on a real workspace: crafted rows for each rule, the real human seeds copied and
perturbed, real nlpaug batches, the real embedded MiniLM for semantic duplicates; known values against
rouge_score and datasketch; the pruning and LSH against brute force; what is (not) written."""

from __future__ import annotations

import json
import random
import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.augment.candidates import list_candidates
from studio.data.formats import SeedFormat
from studio.errors import QualityError
from studio.quality.dedupe import (
    near_matches,
    semantic_matches,
    shingle_hash,
    shingle_set,
    shingles,
    signatures,
)
from studio.quality.filters import (
    FILTER_NAMES,
    FILTERS,
    THRESHOLDS,
    FilterConfig,
    FilterOutcome,
    FilterReport,
    apply_filters,
    passing_ids,
    preview_filters,
    row_text,
    run_filters,
    stored_config,
    stored_report,
    stored_results,
    workspace_embed,
)
from studio.quality.heuristics import REFUSAL_PATTERNS
from studio.quality.seed_overlap import best_overlaps, lcs_length, rouge_l_f, rouge_tokens
from studio.workspace import Workspace, utc_now
from studio.workspace.seeds import Seed, list_seeds
from tests.conftest import snapshot
from tests.factories import add_batch, offline_batch, project_with_seeds


@pytest.fixture
def pid(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds)


@pytest.fixture
def seeds(ws: Workspace, pid: int) -> list[Seed]:
    return list_seeds(ws, pid)


def lexical(**settings: Any) -> FilterConfig:
    """Every filter but the two that embed (no model to load): semantic_duplicate and fidelity
    (tests/test_fidelity.py covers fidelity; crafted rows here are not rewordings of their seeds)."""
    config = FilterConfig(**settings)
    config.enabled["semantic_duplicate"] = False
    config.enabled["fidelity"] = False
    return config


def outcome(report: FilterReport, cid: int, name: str) -> FilterOutcome | None:
    return next((o for o in report.outcomes if o.candidate_id == cid and o.filter == name), None)


def ids(ws: Workspace, batch_id: int) -> list[int]:
    return [c.id for c in list_candidates(ws, batch_id=batch_id)]


def exact_jaccard(a: str, b: str) -> float:
    sa, sb = set(shingles(a)), set(shingles(b))
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def alpaca(instruction: str, output: str, input: str = "") -> dict[str, str]:
    return {"instruction": instruction, "input": input, "output": output}


# --- settings ---------------------------------------------------------------------------------------------


def test_every_filter_and_threshold_has_a_title_and_help() -> None:
    assert tuple(FILTERS) == FILTER_NAMES
    for info in FILTERS.values():
        assert info.title and len(info.help) > 40
    config = FilterConfig()
    assert set(THRESHOLDS) == set(config.to_dict()) - {"enabled"}
    assert {t.field for f in FILTERS.values() for t in f.thresholds} == set(THRESHOLDS)
    assert all(t.title and len(t.help) > 20 for t in THRESHOLDS.values())
    assert config.to_dict()["enabled"] == dict.fromkeys(FILTER_NAMES, True)
    assert FilterConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert FilterConfig.from_dict(None) == config
    partial = FilterConfig.from_dict({"near_duplicate_threshold": "0.5", "max_words": 90.0,
                                      "enabled": {"refusal": False}})
    assert partial.near_duplicate_threshold == 0.5 and partial.max_words == 90
    assert partial.to_dict()["enabled"] == {**dict.fromkeys(FILTER_NAMES, True), "refusal": False}


BAD_SETTINGS = [
    ({"near_duplicate_threshold": 1.5}, "Near-duplicate threshold .* above 0 and at most 1; got 1.5"),
    ({"semantic_threshold": -0.1}, "Semantic-duplicate threshold .* got -0.1"),
    ({"seed_overlap_threshold": 0}, "Seed-overlap threshold .* above 0"),
    ({"near_duplicate_threshold": "high"}, "must be a number; got 'high'"),
    ({"semantic_threshold": float("nan")}, "must be a number"),
    ({"min_words": 10, "max_words": 5}, r"Minimum instruction words \(10\) is more than the maximum \(5\)"),
    ({"min_words": -1}, "whole number of at least 0"),
    ({"max_words": 2.5}, "whole number"),
    ({"enabled": {"semantic": False}}, "Unknown filter 'semantic'"),
    ({"enabled": {"refusal": "yes"}}, "switched on or off"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
def test_bad_settings_raise_and_leave_the_workspace_untouched(ws: Workspace, pid: int, settings: dict,
                                                                message: str) -> None:
    batch_id = add_batch(ws, pid, [alpaca("Write a haiku about the sea at night.", "Dark waves fold and turn.")])
    apply_filters(ws, batch_id, lexical())  # earlier results must survive the bad run
    before = snapshot(ws)
    config = lexical()
    for key, value in settings.items():
        setattr(config, key, {**config.enabled, **value} if key == "enabled" else value)
    for run in (apply_filters, preview_filters):
        with pytest.raises(QualityError, match=message):
            run(ws, batch_id, config)
    assert snapshot(ws) == before


def test_unknown_or_malformed_settings_are_refused_when_read() -> None:
    with pytest.raises(QualityError, match="Unknown filter setting 'near'"):
        FilterConfig.from_dict({"near": 0.5})
    with pytest.raises(QualityError, match="must be a number"):
        FilterConfig.from_dict({"min_words": True})
    with pytest.raises(QualityError, match="'enabled' must map"):
        FilterConfig.from_dict({"enabled": ["refusal"]})


# --- exact duplicates -------------------------------------------------------------------------------------


def test_exact_duplicates_ignore_case_punctuation_and_spacing(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    s = seeds[5].data
    rows = [alpaca(s["instruction"].upper() + "!!", "  " + s["output"].replace(" ", "   ") + " ...", s["input"]),
            alpaca("Name a fruit that is yellow.", "A banana is yellow."),
            alpaca("name a fruit, that is YELLOW", "A banana -- is yellow"),
            alpaca("Name a fruit that is red.", "A strawberry is red.")]
    batch_id = add_batch(ws, pid, rows)
    c = ids(ws, batch_id)
    report = run_filters(list_candidates(ws, batch_id=batch_id), seeds, lexical())
    got = [outcome(report, cid, "exact_duplicate") for cid in c]
    assert [o.passed for o in got] == [False, True, False, True]
    assert got[0].reason == f"same as seed #{seeds[5].id}" and got[0].score == 1.0
    assert got[2].reason == f"same as row #{c[1]}"
    assert report.failed_by["exact_duplicate"] == 2 and report.summary()["exact_duplicate"] == "removed 2"


def test_real_seeds_copied_verbatim_are_duplicates_of_those_seeds(ws: Workspace, pid: int,
                                                                  seeds: list[Seed]) -> None:
    picked = seeds[::4]  # 30 real seeds, re-added as generated rows
    batch_id = add_batch(ws, pid, [s.data for s in picked])
    report = apply_filters(ws, batch_id, lexical())
    for cid, seed in zip(ids(ws, batch_id), picked, strict=True):
        for name, reason in (("exact_duplicate", f"same as seed #{seed.id}"),
                             ("near_duplicate", f"near-duplicate of seed #{seed.id} (Jaccard 1.00"),
                             ("seed_overlap", f"too close to seed #{seed.id} (ROUGE-L 1.00 > 0.7)")):
            o = outcome(report, cid, name)
            assert not o.passed and o.reason.startswith(reason) and o.score == 1.0
        assert report.first_failure[cid].filter == "exact_duplicate"
    assert report.passed_ids == [] and passing_ids(ws, batch_id) == []


def test_lightly_perturbed_seeds_are_near_duplicates_or_too_close(ws: Workspace, pid: int,
                                                                  seeds: list[Seed]) -> None:
    rng = random.Random(7)
    rows, sources = [], []
    for seed in seeds[:60]:
        words = seed.data["output"].split()
        if len(words) > 4:  # one word of the answer replaced
            words[rng.randrange(len(words))] = "indeed"
        rows.append(alpaca(seed.data["instruction"] + " Be brief.", " ".join(words), seed.data["input"]))
        sources.append(seed)
    batch_id = add_batch(ws, pid, rows)
    report = run_filters(list_candidates(ws, batch_id=batch_id), seeds, lexical())
    flagged_near = 0
    for cid, row, seed in zip(ids(ws, batch_id), rows, sources, strict=True):
        near, overlap = outcome(report, cid, "near_duplicate"), outcome(report, cid, "seed_overlap")
        assert not overlap.passed and f"seed #{seed.id} " in overlap.reason  # the instruction is the seed's
        j = exact_jaccard(row_text(SeedFormat.ALPACA, row), row_text(SeedFormat.ALPACA, seed.data))
        # MinHash estimates Jaccard within a few hundredths: away from 0.8 the verdict is certain.
        if j >= 0.88:
            assert not near.passed and f"seed #{seed.id} " in near.reason
        if j < 0.72:
            assert near.passed
        if not near.passed:
            flagged_near += 1
            assert f"seed #{seed.id} " in near.reason
    assert flagged_near >= 20


def test_a_real_nlpaug_batch(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    batch_id = offline_batch(ws, pid, count=60)
    cands = list_candidates(ws, batch_id=batch_id)
    report = apply_filters(ws, batch_id, lexical())
    by_id = {s.id: s for s in seeds}
    seed_keys = {" ".join(re.sub(r"[^\w\s]", "", row_text(s.format, s.data).lower()).split()) for s in seeds}
    earlier: set[str] = set()
    for c in cands:
        # Keyboard typos in the instruction of a real seed: always too close to that very seed, which is the
        # point of a perturbation, so the filter passes the row and says what it would have found.
        overlap = outcome(report, c.id, "seed_overlap")
        assert overlap.passed and overlap.reason.startswith("not applied to nlpaug rows"), overlap
        assert f"too close to seed #{c.seed_ids[0]} " in overlap.reason and overlap.score > 0.7
        assert outcome(report, c.id, "parse").passed and outcome(report, c.id, "refusal").passed
        key = " ".join(re.sub(r"[^\w\s]", "", row_text(c.format, c.data).lower()).split())
        assert outcome(report, c.id, "exact_duplicate").passed == (key not in seed_keys | earlier)
        earlier.add(key)
        near = outcome(report, c.id, "near_duplicate")
        source = row_text(SeedFormat.ALPACA, by_id[c.seed_ids[0]].data)
        if exact_jaccard(row_text(c.format, c.data), source) >= 0.9:
            assert not near.passed
        if not near.passed:  # named twin: a seed, or an earlier row of this batch
            assert re.match(r"near-duplicate of (seed|row) #\d+ \(Jaccard 0\.\d\d ≥ 0\.8\)", near.reason)
    assert report.failed_by.get("seed_overlap", 0) == 0 and report.failed_by["near_duplicate"] >= 10
    assert stored_report(ws, batch_id).to_dict() == report.to_dict()


# --- near duplicates: MinHash LSH -------------------------------------------------------------------------


def test_signatures_are_datasketch_minhashes(seeds: list[Seed]) -> None:
    from datasketch import MinHash

    texts = [row_text(s.format, s.data) for s in seeds[:40]] + ["", "one", "two words", "!!!"]
    sig = signatures(texts)
    for text, values in zip(texts, sig, strict=True):
        m = MinHash(num_perm=128, seed=1, hashfunc=shingle_hash)
        m.update_batch(shingles(text))
        assert (m.hashvalues == values).all()
        assert set(shingle_set(text).tolist()) == {shingle_hash(x) for x in shingles(text)}


def test_lsh_finds_what_comparing_every_pair_finds(seeds: list[Seed]) -> None:
    """Greedy dedupe comparing every pair on its exact Jaccard vs LSH candidates: the same verdicts."""
    import numpy as np

    rng = random.Random(3)
    prior = [row_text(s.format, s.data) for s in seeds]
    rows = []
    for _ in range(300):
        words = rng.choice(prior).split()
        for _ in range(rng.randrange(0, 8)):  # 0-7 words dropped: from exact copies to loose ones
            if len(words) > 3:
                del words[rng.randrange(len(words))]
        rows.append(" ".join(words))
    texts = prior + rows
    sets = [set(shingles(t)) for t in texts]
    sig = signatures(texts)
    for threshold in (0.5, 0.8, 0.9):
        got = near_matches(texts, len(prior), threshold, sig=sig)
        kept = list(range(len(prior)))
        for i in range(len(prior), len(texts)):
            best = max(len(sets[i] & sets[k]) / len(sets[i] | sets[k]) for k in kept)
            m = got[i - len(prior)]
            assert (m.duplicate_of is not None) == (best >= threshold), (threshold, i)
            if best >= threshold:
                assert m.similarity >= threshold and m.score == pytest.approx(best)
                assert m.duplicate_of in kept
            else:
                kept.append(i)
        assert sum(m.duplicate_of is not None for m in got) > 50
    assert np.array_equal(sig, signatures(texts))  # reproducible


def test_near_duplicate_threshold_changes_the_outcome(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    seed = max(seeds, key=lambda s: len(s.data["output"].split()))
    words = seed.data["output"].split()
    for i in range(0, len(words), 9):  # every 9th word replaced: roughly 0.5-0.7 Jaccard on 3-grams
        words[i] = "zebra"
    row = alpaca(seed.data["instruction"], " ".join(words), seed.data["input"])
    j = exact_jaccard(row_text(SeedFormat.ALPACA, row), row_text(seed.format, seed.data))
    assert 0.35 < j < 0.75
    batch_id = add_batch(ws, pid, [row])
    cands = list_candidates(ws, batch_id=batch_id)
    loose = run_filters(cands, seeds, lexical(near_duplicate_threshold=round(j - 0.15, 2)))
    strict = run_filters(cands, seeds, lexical(near_duplicate_threshold=round(j + 0.15, 2)))
    assert outcome(loose, cands[0].id, "near_duplicate").reason.startswith(f"near-duplicate of seed #{seed.id} ")
    assert outcome(loose, cands[0].id, "near_duplicate").score == pytest.approx(j, abs=0.12)
    assert outcome(strict, cands[0].id, "near_duplicate").passed


# --- too close to a seed: ROUGE-L ------------------------------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list("abcAB12 .,-'é\n")), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_TEXT, _TEXT)
def test_rouge_l_is_rouge_scores(a: str, b: str) -> None:
    from rouge_score import rouge_scorer, tokenize

    assert rouge_tokens(a) == tokenize.tokenize(a, None)
    expected = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False).score(a, b)["rougeL"].fmeasure
    assert rouge_l_f(rouge_tokens(a), rouge_tokens(b)) == expected  # to the last bit: ties decide verdicts


def test_rouge_l_on_real_seed_pairs(seeds: list[Seed]) -> None:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = [s.data["instruction"] + " " + s.data["output"] for s in seeds[:30]]
    for a, b in combinations(texts, 2):
        assert rouge_l_f(rouge_tokens(a), rouge_tokens(b)) == scorer.score(a, b)["rougeL"].fmeasure
    # 2·7/20 is 0.7 exactly, but rouge_score (and so Self-Instruct) computes 0.7000000000000001 > 0.7.
    a, b = "Classify the sentiment of the sentence into positive, negative or mixed.", \
        "Classify the of the sentence Walk positive, 2023 or"
    assert rouge_l_f(rouge_tokens(a), rouge_tokens(b)) == scorer.score(a, b)["rougeL"].fmeasure > 0.7


def _lcs_table(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _rouge_f(lcs: int, len_a: int, len_b: int) -> float:
    """rouge_score.rouge_scorer._score_lcs's arithmetic."""
    if not lcs:
        return 0.0
    p, r = lcs / len_b, lcs / len_a
    return 2 * p * r / (p + r)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from("abcd"), max_size=80), st.lists(st.sampled_from("abcde"), max_size=80))
def test_bit_parallel_lcs_is_the_lcs(a: list[str], b: list[str]) -> None:
    assert lcs_length(a, b) == _lcs_table(a, b) == lcs_length(b, a)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.9])
def test_pruning_never_misses_a_pair_above_the_threshold(threshold: float) -> None:
    rng = random.Random(int(threshold * 10))
    vocab = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran"]  # few words: many pairs come close

    def text() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randrange(0, 25)))

    def near(seed: str) -> str:  # a seed with a few words replaced, dropped or added
        words = seed.split()
        for _ in range(rng.randrange(0, 5)):
            i = rng.randrange(len(words) + 1)
            words[i:i + rng.randrange(0, 2)] = [rng.choice(vocab)] * rng.randrange(0, 2)
        return " ".join(words)

    seed_texts = [text() for _ in range(60)]
    texts = [text() if i % 2 else near(rng.choice(seed_texts)) for i in range(400)]
    got = best_overlaps(texts, seed_texts, threshold)
    seed_toks = [rouge_tokens(t) for t in seed_texts]
    above = 0
    for text_, o in zip(texts, got, strict=True):
        toks = rouge_tokens(text_)
        scores = [_rouge_f(_lcs_table(s, toks), len(s), len(toks)) for s in seed_toks]
        best = max(scores)
        assert (o.score > threshold) == (best > threshold)
        if best >= threshold:
            above += 1
            assert o.score == pytest.approx(best) and scores[o.seed] == pytest.approx(best)
        assert o.score <= best + 1e-12
    assert above > 40


def test_seed_overlap_compares_instructions_and_its_threshold_matters(ws: Workspace, pid: int,
                                                                       seeds: list[Seed]) -> None:
    seed = next(s for s in seeds if len(rouge_tokens(s.data["instruction"])) >= 12)
    toks = seed.data["instruction"].split()
    half = " ".join(toks[: len(toks) // 2]) + " and then summarise everything for a busy manager in plain words"
    rows = [alpaca(half, "A new answer entirely."),
            alpaca("Tell me a joke about penguins.", seed.data["output"], seed.data["input"])]  # a seed's answer
    batch_id = add_batch(ws, pid, rows)
    cands = list_candidates(ws, batch_id=batch_id)
    f = rouge_l_f(rouge_tokens(half), rouge_tokens(seed.data["instruction"]))
    assert 0.4 < f < 0.8
    loose = run_filters(cands, seeds, lexical(seed_overlap_threshold=round(f - 0.1, 2)))
    strict = run_filters(cands, seeds, lexical(seed_overlap_threshold=round(f + 0.1, 2)))
    assert outcome(loose, cands[0].id, "seed_overlap").reason == (
        f"too close to seed #{seed.id} (ROUGE-L {f:.2f} > {round(f - 0.1, 2):g})")
    assert outcome(strict, cands[0].id, "seed_overlap").passed
    assert outcome(strict, cands[0].id, "seed_overlap").score == pytest.approx(f, abs=1e-4)
    # A seed's very answer under a new instruction: only the instruction is compared.
    assert outcome(run_filters(cands, seeds, lexical()), cands[1].id, "seed_overlap").passed


# --- heuristics and refusals -----------------------------------------------------------------------------

HEURISTIC_CASES = [
    (alpaca("Summarise this.", "Done."), "length"),
    (alpaca(" ".join(["word"] * 151), "An answer."), "length"),
    (alpaca("Draw a picture of a cat sitting on a fence.", "Here it is."), "blacklist"),
    (alpaca("Describe the flowchart of a login process.", "It starts with a form."), "blacklist"),
    (alpaca("Convert the following sentence to lower case.", "hello world", "hello world"), "input_equals_output"),
    (alpaca("Repeat after me: good morning.", "Repeat after me: good morning."), "input_equals_output"),
    (alpaca("Classify the following sentences by sentiment:", "Positive."), "trailing_colon"),
    (alpaca("- Name three rivers in Europe.", "The Danube, the Rhine and the Seine."), "starts_with_punctuation"),
    (alpaca("Перечислите три реки в Европе, пожалуйста.", "Дунай, Рейн, Сена."), "non_english_start"),
    (alpaca("Write a Python function that doubles a number.", "```python\ndef double(x):\n    return 2 * x"),
     "cut_off"),
    (alpaca("Write a Python function that doubles a number.", "def double(x):\n    return (2 * x"), "cut_off"),
    (alpaca("Explain why people enjoy autumn walks.", "The colours are warm, the air is fresh, and"), "cut_off"),
    (alpaca("Explain why people enjoy autumn walks.",
            "Autumn walks are popular because the colours are warm and the air feels fresh while the"), "cut_off"),
    (alpaca("Explain why people enjoy autumn walks.",
            "Many people enjoy them because the leaves change colour and the air gets cooler every"), "cut_off"),
]


def test_each_self_instruct_rule_names_itself(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    clean = alpaca("Classify the following sentence by sentiment:", "Positive", "I loved the film.")
    batch_id = add_batch(ws, pid, [row for row, _ in HEURISTIC_CASES] + [clean])
    report = run_filters(list_candidates(ws, batch_id=batch_id), seeds, lexical())
    c = ids(ws, batch_id)
    for cid, (row, rule) in zip(c[:-1], HEURISTIC_CASES, strict=True):
        o = outcome(report, cid, "heuristics")
        assert not o.passed and o.reason.startswith(rule + ": "), (row, o)
        assert o.score == len(o.reason.split("; "))
    assert outcome(report, c[-1], "heuristics").passed  # a colon with an input after it is fine


def test_word_limits_change_the_outcome(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    batch_id = add_batch(ws, pid, [alpaca("Name five large cities in Brazil.", "São Paulo, Rio, Brasília, "
                                                                               "Salvador, Fortaleza.")])
    cands = list_candidates(ws, batch_id=batch_id)
    assert outcome(run_filters(cands, seeds, lexical()), cands[0].id, "heuristics").passed
    narrow = outcome(run_filters(cands, seeds, lexical(min_words=7)), cands[0].id, "heuristics")
    assert not narrow.passed and narrow.reason == "length: the instruction has 6 words (allowed 7-150)"
    short = outcome(run_filters(cands, seeds, lexical(max_words=5)), cands[0].id, "heuristics")
    assert short.reason == "length: the instruction has 6 words (allowed 3-5)"


REFUSALS = [
    "As an AI language model, I cannot have favourite foods.",
    "I'm sorry, but I can't help with that request.",
    "I’m sorry, but I can’t share that.",  # typographic apostrophes
    "I cannot assist with creating that content.",
    "Sure. As a large language model I was trained on text.",
    "I don't have personal opinions, but here are some views.",
    "I apologize, but I am unable to browse the web.",
    "As of my last update, the record stood at 9.58 seconds.",
]


def test_refusals_and_ai_isms_are_caught_and_named(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    fine = ["I cannot help but smile when I see a puppy.", "The AI model in the story was called Ada.",
            "She said: I'm sorry, I was late."]
    rows = [alpaca("Tell me about yourself and your views.", text) for text in REFUSALS + fine]
    rows.append(alpaca("As an AI language model, list three colours.", "Red, green and blue."))
    batch_id = add_batch(ws, pid, rows)
    report = run_filters(list_candidates(ws, batch_id=batch_id), seeds, lexical())
    c = ids(ws, batch_id)
    got = [outcome(report, cid, "refusal") for cid in c]
    assert [o.passed for o in got] == [False] * len(REFUSALS) + [True] * len(fine) + [False]
    assert got[0].reason == 'the output says "As an AI language model"'
    assert got[2].reason == 'the output says "I’m sorry, but I can’t"'
    assert got[-1].reason == 'the instruction says "As an AI language model"'
    assert len(REFUSAL_PATTERNS) >= 10


def test_the_real_seeds_pass_the_rules_but_one(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    """Human-written rows are the false-positive check: only Self-Instruct's own 'music' blacklist fires."""
    report = run_filters([_as_candidate(s, 10_000 + s.id) for s in seeds], [], lexical())
    failed = {o.candidate_id - 10_000: o.reason for o in report.outcomes
              if not o.passed and o.filter in ("heuristics", "refusal")}
    assert len(failed) == 1
    [(seed_id, reason)] = failed.items()
    assert reason.startswith("blacklist: the instruction mentions 'music'")
    assert "music" in next(s for s in seeds if s.id == seed_id).data["instruction"].lower()


def _as_candidate(seed: Seed, cid: int) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(id=cid, format=seed.format, data=seed.data, parse_error="")


# --- formats, parse failures ------------------------------------------------------------------------------


def _project_from(ws: Workspace, tmp_path: Path, name: str, rows: list[dict]) -> int:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return project_with_seeds(ws, path, name=name)


def test_classification_rows_get_the_filters_that_make_sense(ws: Workspace, tmp_path: Path) -> None:
    texts = ["The delivery was fast and the box was intact.", "The screen cracked after two days of use.",
             "Customer service answered within minutes.", "The battery dies before lunch every day."]
    pid = _project_from(ws, tmp_path, "cls", [{"text": t, "label": lab} for t, lab in
                                               zip(texts, ["positive", "negative"] * 2, strict=True)])
    seeds = list_seeds(ws, pid)
    rows = [{"text": texts[1].upper(), "label": "positive"},  # a seed's text with the other label
            {"text": "The colours of the jumper faded after one wash.", "label": "negative"},
            {"text": "As an AI language model, I cannot write reviews.", "label": "negative"},
            {"text": "ok", "label": "positive"}]
    batch_id = add_batch(ws, pid, rows, fmt="classification")
    report = apply_filters(ws, batch_id, lexical())
    c = ids(ws, batch_id)
    assert outcome(report, c[0], "exact_duplicate").reason == (
        f"same as seed #{seeds[1].id} (labelled 'negative' there, 'positive' here)")
    assert not outcome(report, c[0], "seed_overlap").passed
    assert outcome(report, c[1], "exact_duplicate").passed and outcome(report, c[1], "seed_overlap").passed
    assert outcome(report, c[2], "refusal").reason == 'the text says "As an AI language model"'
    for cid in c:  # no instruction / output to judge: recorded as not applicable
        h = outcome(report, cid, "heuristics")
        assert h.passed and h.reason == "not applicable to text + label rows"
    assert report.passed_ids == [c[1], c[3]]


def test_ner_rows_are_compared_on_their_tokens(ws: Workspace, tmp_path: Path) -> None:
    seeds_rows = [{"tokens": ["Ada", "lives", "in", "Paris", "with", "her", "cat"],
                   "tags": ["B-PER", "O", "O", "B-LOC", "O", "O", "O"]},
                  {"tokens": ["Bob", "works", "at", "Acme", "in", "Berlin"],
                   "tags": ["B-PER", "O", "O", "B-ORG", "O", "B-LOC"]}]
    pid = _project_from(ws, tmp_path, "ner", seeds_rows)
    seeds = list_seeds(ws, pid)
    rows = [{"tokens": ["ada", "lives", "in", "Paris", "with", "her", "cat", "."],
             "tags": ["B-PER", "O", "O", "B-LOC", "O", "O", "O", "O"]},
            {"tokens": ["Chen", "flew", "to", "Lima", "on", "Monday"], "tags": ["B-PER", "O", "O", "B-LOC", "O", "O"]}]
    batch_id = add_batch(ws, pid, rows, fmt="ner")
    report = run_filters(list_candidates(ws, batch_id=batch_id), seeds, lexical())
    c = ids(ws, batch_id)
    assert outcome(report, c[0], "exact_duplicate").reason == f"same as seed #{seeds[0].id}"
    assert outcome(report, c[1], "exact_duplicate").passed and outcome(report, c[1], "near_duplicate").passed
    assert outcome(report, c[1], "heuristics").reason == "not applicable to tokens + tags rows"
    assert report.passed_ids == [c[1]]


def test_parse_failures_are_reported_and_skip_the_other_filters(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    rows = [alpaca("Name a mammal that can fly.", "The bat."), None, None]
    batch_id = add_batch(ws, pid, rows)
    c = ids(ws, batch_id)
    report = apply_filters(ws, batch_id, lexical())
    for cid in c[1:]:
        assert [o.filter for o in report.by_candidate()[cid]] == ["parse"]
        assert report.first_failure[cid] == FilterOutcome(cid, "parse", False, None,
                                                          "the answer holds no JSON and no list")
    assert report.failed_by["parse"] == 2 and report.passed_ids == [c[0]] and report.total == 3
    assert [o.filter for o in stored_results(ws, batch_id)[c[1]]] == ["parse"]
    # With the parse filter off a failure has no outcome at all, and still never passes.
    config = lexical()
    config.enabled["parse"] = False
    report = apply_filters(ws, batch_id, config)
    assert c[1] not in report.by_candidate() and report.passed_ids == [c[0]] == passing_ids(ws, batch_id)
    assert "parse" not in report.failed_by


# --- the workspace: preview, apply, re-apply, reference rows ---------------------------------------------


def test_apply_replaces_earlier_results_and_records_the_settings(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    rows = [seeds[0].data, alpaca("Name a mammal that can fly.", "The bat."),
            alpaca("Draw a map of your street.", "I cannot."), alpaca("name a mammal that can fly", "the bat")]
    batch_id = add_batch(ws, pid, rows)
    c = ids(ws, batch_id)
    assert passing_ids(ws, batch_id) is None and stored_results(ws, batch_id) == {}
    assert stored_report(ws, batch_id) is None and stored_config(ws, batch_id) is None
    first = apply_filters(ws, batch_id, lexical())
    assert first.passed_ids == [c[1]] == passing_ids(ws, batch_id)
    assert sum(len(v) for v in stored_results(ws, batch_id).values()) == len(first.outcomes) == 4 * 7

    second_config = lexical(min_words=3)
    for name in ("exact_duplicate", "near_duplicate", "seed_overlap", "heuristics", "prompt_echo"):
        second_config.enabled[name] = False
    second = apply_filters(ws, batch_id, second_config)
    stored = stored_results(ws, batch_id)
    assert {o.filter for os in stored.values() for o in os} == {"parse", "refusal"}
    assert stored == second.by_candidate() and second.passed_ids == c == passing_ids(ws, batch_id)
    assert stored_config(ws, batch_id) == second_config
    with ws.read() as conn:
        batch = conn.execute("SELECT filter_config, filtered_at FROM batch WHERE id=?", (batch_id,)).fetchone()
        params = {r["filter"]: json.loads(r["params"])
                  for r in conn.execute("SELECT filter, params FROM filter_result")}
    assert json.loads(batch["filter_config"]) == second_config.to_dict() and batch["filtered_at"]
    assert params == {"parse": {}, "refusal": {}}
    assert stored_report(ws, batch_id).to_dict() == second.to_dict()


def test_a_preview_writes_nothing(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    batch_id = add_batch(ws, pid, [seeds[3].data, alpaca("Name a mammal that can fly.", "The bat.")])
    apply_filters(ws, batch_id, lexical(near_duplicate_threshold=0.5))
    before = snapshot(ws)
    report = preview_filters(ws, batch_id, lexical())
    assert snapshot(ws) == before
    assert report.failed_by["exact_duplicate"] == 1 and report.total == 2


def test_rows_selected_from_other_batches_count_as_earlier_rows(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    old = add_batch(ws, pid, [alpaca("Name a mammal that can fly.", "The bat."),
                              alpaca("Name a bird that cannot fly.", "The penguin.")])
    old_ids = ids(ws, old)
    edited = alpaca("Name a mammal that is able to fly.", "The bat, a mammal.")  # the reviewer's edit
    with ws.write() as conn:
        conn.execute("INSERT INTO selection(batch_id, candidate_id, data, reason, created_at) VALUES (?, ?, ?, '', ?)",
                     (old, old_ids[0], json.dumps(edited), utc_now()))
    new = add_batch(ws, pid, [edited, alpaca("Name a bird that cannot fly.", "The penguin."),
                              alpaca("Name a mammal that can fly.", "The bat.")])
    report = preview_filters(ws, new, lexical())
    c = ids(ws, new)
    assert outcome(report, c[0], "exact_duplicate").reason == f"same as row #{old_ids[0]} (selected from batch #{old})"
    assert outcome(report, c[1], "exact_duplicate").passed  # not selected: not a reference
    assert outcome(report, c[2], "exact_duplicate").passed  # the selected version is the edit
    # The selected batch itself is not its own reference.
    assert outcome(preview_filters(ws, old, lexical()), old_ids[0], "exact_duplicate").passed


def test_batches_that_cannot_be_filtered(ws: Workspace, pid: int) -> None:
    gated = add_batch(ws, pid, [alpaca("Name a mammal that can fly.", "The bat.")], status="selected")
    empty = add_batch(ws, pid, [])
    before = snapshot(ws)
    with pytest.raises(QualityError, match=r"review gate .* Reopen the batch"):
        apply_filters(ws, gated, lexical())
    assert preview_filters(ws, gated, lexical()).total == 1  # looking is always allowed
    with pytest.raises(QualityError, match="no rows to filter"):
        preview_filters(ws, empty, lexical())
    with pytest.raises(QualityError, match="There is no batch 999"):
        apply_filters(ws, 999, lexical())
    with pytest.raises(QualityError, match="There is no batch 999"):
        passing_ids(ws, 999)
    assert snapshot(ws) == before


def test_embedding_happens_only_for_the_semantic_filter(seeds: list[Seed]) -> None:
    rows = [_as_candidate(s, 1_000 + s.id) for s in seeds[:5]]

    def boom(texts: list[str]) -> Any:
        raise AssertionError("embedded although the semantic filter is off")

    report = run_filters(rows, seeds, lexical(), embed=boom)
    assert "semantic_duplicate" not in report.failed_by
    with pytest.raises(ValueError, match="needs `embed`"):
        run_filters(rows, seeds, FilterConfig())


# --- semantic duplicates ----------------------------------------------------------------------------------


def _greedy_cosine(vectors: Any, n_prior: int, threshold: float) -> list[int | None]:
    kept = list(range(n_prior))
    out: list[int | None] = []
    for i in range(n_prior, len(vectors)):
        sims = [float(vectors[i] @ vectors[k]) for k in kept]
        best = max(range(len(sims)), key=sims.__getitem__) if sims else None
        if best is not None and sims[best] >= threshold:
            out.append(kept[best])
        else:
            out.append(None)
            kept.append(i)
    return out


def test_block_products_give_the_pairwise_answer() -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(20, 16))
    vectors = centres[rng.integers(0, 20, 400)] + rng.normal(scale=0.35, size=(400, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    for threshold in (0.8, 0.9, 0.95):
        expected = _greedy_cosine(vectors, 30, threshold)
        for block in (7, 64, 1024):
            got = [m.duplicate_of for m in semantic_matches(vectors, 30, threshold, block=block)]
            assert got == expected, (threshold, block)
        assert 20 < sum(e is not None for e in expected) < 370


@pytest.mark.slow
def test_semantic_duplicates_with_the_embedded_model(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    import numpy as np

    rows = [alpaca("Give three tips for staying healthy.", "Eat a balanced diet, exercise regularly and sleep "
                                                           "enough."),
            alpaca("List three ways to stay healthy.", "Eat balanced meals, exercise often, and get enough sleep."),
            alpaca("What are three tips for staying healthy?", "Eat a balanced diet, exercise regularly, and "
                                                              "sleep well."),
            alpaca("Translate 'good morning' into French.", "Bonjour."),
            alpaca("How do I reset my password?", "Open Settings, choose Account, then click Reset password."),
            alpaca("What are the steps to reset my password?", "Go to Settings, pick Account and press Reset "
                                                               "password."),
            seeds[10].data]
    batch_id = add_batch(ws, pid, rows)
    c = ids(ws, batch_id)
    before = snapshot(ws)
    report = preview_filters(ws, batch_id, FilterConfig())
    assert snapshot(ws) == before
    sem = [outcome(report, cid, "semantic_duplicate") for cid in c]
    assert [o.passed for o in sem] == [True, False, False, True, True, False, False]
    assert re.fullmatch(rf"says the same as row #{c[0]} \(cosine 0\.9\d ≥ 0\.9\)", sem[1].reason)
    assert sem[2].reason.startswith(f"says the same as row #{c[0]} ")  # row 2 was rejected: not an original
    assert sem[5].reason.startswith(f"says the same as row #{c[4]} ")
    assert sem[6].reason == f"says the same as seed #{seeds[10].id} (cosine 1.00 ≥ 0.9)"
    assert all(outcome(report, cid, "near_duplicate").passed for cid in c[:6])  # other words: lexically new
    seen: dict[str, Any] = {}
    embed = workspace_embed(ws)

    def cached(texts: list[str]) -> Any:  # the vectors the preview used, without a second model pass
        missing = [t for t in texts if t not in seen]
        if missing:
            seen.update(zip(missing, embed(missing), strict=True))
        return [seen[t] for t in texts]

    strict = run_filters(list_candidates(ws, batch_id=batch_id), seeds, FilterConfig(semantic_threshold=0.99),
                         embed=cached)
    assert [o.passed for o in strict.outcomes if o.filter == "semantic_duplicate"] == [True] * 6 + [False]

    # Real rows: an nlpaug batch of real seeds, against the pairwise greedy answer on the same vectors.
    real = offline_batch(ws, pid, count=80, rng_seed=11)
    cands = list_candidates(ws, batch_id=real)
    texts = [row_text(s.format, s.data) for s in seeds] + [row_text(x.format, x.data) for x in cands]
    cached(texts)
    vectors = np.stack([seen[t] for t in texts]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = _greedy_cosine(vectors, len(seeds), 0.9)
    report = run_filters(cands, seeds, FilterConfig(), embed=cached)
    got = [outcome(report, x.id, "semantic_duplicate") for x in cands]
    # nlpaug rows keep their seed's meaning on purpose: the filter passes them and notes what it found.
    assert all(o.passed for o in got)
    flagged = [o for o, e in zip(got, expected, strict=True) if e is not None]
    assert len(flagged) > 40
    for o, e in zip(got, expected, strict=True):
        if e is None:
            assert o.reason == ""
        else:
            assert o.score >= 0.9 and re.match(r"not applied to nlpaug rows.*says the same as (seed|row) #\d+ "
                                               r"\(cosine", o.reason), o.reason
