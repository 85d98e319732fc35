"""Diversity report: exact numbers on crafted texts, cross-checks against sacrebleu / rouge_score, real rows
with the real embedded MiniLM, and reports of a batch and of a frozen dataset version from the database."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest

from studio.errors import QualityError
from studio.quality import diversity as d
from studio.quality.embeddings import embed_texts
from studio.workspace import Workspace, utc_now
from studio.workspace.seeds import list_seeds
from tests.factories import add_batch, offline_batch, project_with_seeds

SAME = "The quick brown fox jumps over the lazy dog near the river bank today."
VARIED = [
    "Write a haiku about autumn leaves falling in a quiet park.",
    "Convert 72 degrees Fahrenheit to Celsius and show the formula.",
    "List three differences between TCP and UDP for a network engineer.",
    "Summarise the causes of the French Revolution in two sentences.",
    "Suggest a vegetarian dinner recipe that uses chickpeas and spinach.",
    "Explain recursion to a ten-year-old using a Russian doll analogy.",
]


def shared_texts(path: Path) -> list[str]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["instruction"] + ("\n\n" + r["input"] if r["input"] else "") + "\n" + r["output"] for r in rows]


@pytest.fixture
def embed(ws: Workspace):
    return lambda texts: embed_texts(ws, texts)


def test_distinct_n_exact_values() -> None:
    texts = ["The cat sat.", "the CAT ran!"]
    assert d.distinct_n(texts, 1) == pytest.approx(4 / 6)  # the, cat, sat, ran of 6 words
    assert d.distinct_n(texts, 2) == pytest.approx(3 / 4)  # "the cat" twice; bigrams never span two rows
    assert d.distinct_n(["one", "two"], 2) is None  # no bigram at all
    assert d.words("Don't stop—it's 3.5 km_total") == ["don't", "stop", "it's", "3", "5", "km", "total"]


def test_identical_rows_without_embeddings() -> None:
    report = d.diversity_of_texts([SAME] * 5, VARIED)
    assert report.rows == 5 and report.seeds == len(VARIED)
    assert report.distinct_1 == pytest.approx(12 / 70)  # 14 words a row, 12 distinct ("the" three times)
    assert report.self_bleu == pytest.approx(100.0) and report.self_bleu_sample == 5
    assert report.share_close_to_seed == 0.0
    assert report.seed_distinct_1 == d.distinct_n(VARIED, 1)
    # No embed function: every embedding-based field is empty rather than made up.
    assert report.mean_nn_similarity is None and report.mean_seed_similarity is None and report.map_points == []
    assert report.embedded_rows == 0 and report.histograms == {}
    assert json.loads(json.dumps(report.to_dict()))["rows"] == 5


def test_self_bleu_equals_sacrebleu_and_samples_reproducibly(shared_seeds: Path) -> None:
    import sacrebleu

    texts = [*shared_texts(shared_seeds)[:25], SAME, SAME + " Again."]
    ours, drawn = d.self_bleu(texts)
    reference = np.mean([sacrebleu.sentence_bleu(h, texts[:i] + texts[i + 1:]).score for i, h in enumerate(texts)])
    assert drawn == len(texts) and ours == pytest.approx(reference, abs=1e-9)

    first, n = d.self_bleu(shared_texts(shared_seeds), sample=12, rng_seed=1)
    again, _ = d.self_bleu(shared_texts(shared_seeds), sample=12, rng_seed=1)
    other, _ = d.self_bleu(shared_texts(shared_seeds), sample=12, rng_seed=2)
    assert n == 12 and first == again and first != other
    assert d.self_bleu([SAME]) == (None, 1)


def test_near_copies_score_less_diverse_than_varied_rows() -> None:
    copies = [f"{SAME} Item {i}." for i in range(6)]
    close, varied = d.diversity_of_texts(copies, VARIED), d.diversity_of_texts(VARIED, copies)
    assert close.self_bleu > 80 > 10 > varied.self_bleu
    assert close.distinct_2 < 0.35 < 0.9 < varied.distinct_2


def test_rouge_l_matches_rouge_score_and_close_to_seed_is_exact(shared_seeds: Path) -> None:
    from rouge_score import rouge_scorer, tokenizers

    seeds = shared_texts(shared_seeds)
    scorer, tok = rouge_scorer.RougeScorer(["rougeL"]), tokenizers.DefaultTokenizer(use_stemmer=False)
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.choice(seeds), rng.choice(seeds)
        ta, tb = tok.tokenize(a), tok.tokenize(b)
        assert 2 * d.lcs_length(ta, tb) / (len(ta) + len(tb)) == pytest.approx(scorer.score(a, b)["rougeL"].fmeasure)

    # Rows at every distance from a seed: the sparse upper bound must never hide a close row.
    rows = []
    for i in range(40):
        words = seeds[i].split()
        keep = i / 40  # from nothing kept to almost all kept
        rows.append(" ".join(w if rng.random() < keep else "zzz" for w in words))
    flags = d.close_to_seed(rows, seeds)
    brute = [max(scorer.score(s, r)["rougeL"].fmeasure for s in seeds) >= 0.7 for r in rows]
    assert flags == brute and 0 < sum(flags) < len(rows)
    assert d.diversity_of_texts(rows, seeds).share_close_to_seed == pytest.approx(sum(brute) / len(rows))


def test_nearest_neighbours_in_blocks_match_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(11, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    full = v @ v.T
    np.fill_diagonal(full, -np.inf)
    monkeypatch.setattr(d, "_NN_BLOCK", 3)  # 11 rows in blocks of 3: the diagonal of every block is masked
    assert np.allclose(d.nearest_other(v), full.max(axis=1), atol=1e-6)
    coords = d.pca_2d(v)
    assert coords.shape == (11, 2) and np.allclose(coords, d.pca_2d(v.copy()))
    assert np.allclose(coords.mean(axis=0), 0, atol=1e-6)


def test_embeddings_identical_rows_near_one_varied_rows_lower(embed) -> None:
    same = d.diversity_of_texts([SAME] * 4, VARIED, embed=embed)
    varied = d.diversity_of_texts(VARIED, [SAME], embed=embed)
    assert same.mean_nn_similarity == pytest.approx(1.0, abs=1e-4)
    assert varied.mean_nn_similarity < 0.5
    assert varied.mean_seed_similarity < 0.5 and same.seed_mean_nn_similarity < 0.5
    assert len(same.histograms["nn_similarity"]) == 4 and len(same.histograms["seed_similarity"]) == 4
    kinds = [p["kind"] for p in same.map_points]
    assert kinds == ["seed"] * len(VARIED) + ["synthetic"] * 4 and same.embedded_rows == 4
    lines = d.interpretations(same)
    assert any("near-copies" in line for line in lines) and any("self-BLEU 100" in line for line in lines)


def test_batch_report_on_real_rows(ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    batch_id = offline_batch(ws, pid, count=40)
    report = d.batch_diversity(ws, batch_id)
    seeds = list_seeds(ws, pid)
    assert report.rows == 40 and report.seeds == len(seeds) == 120
    points = report.map_points
    assert len(points) == 120 + 40
    assert {p["id"] for p in points if p["kind"] == "seed"} == {s.id for s in seeds}
    with ws.read() as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=?", (batch_id,))}
    assert {p["id"] for p in points if p["kind"] == "synthetic"} == ids
    assert all(len(p["text"]) <= d.MAP_TEXT_CHARS and isinstance(p["x"], float) for p in points)
    assert len(report.histograms["nn_similarity"]) == len(report.histograms["seed_similarity"]) == 40
    # Keyboard typos of the seeds: each row stays close to the seed it came from, by words and by meaning.
    assert report.share_close_to_seed > 0.5 and report.mean_seed_similarity > 0.8
    assert 0 < report.distinct_2 <= 1 and 0 <= report.self_bleu <= 100
    lines = d.interpretations(report)
    assert len(lines) == 4 and "vs seeds" in lines[0] and "closely copy a seed" in lines[-1]

    # Filter marks and judge scores from the database shape the report of a filtered, judged batch.
    now = utc_now()
    first, second = sorted(ids)[:2]
    with ws.write() as conn:
        conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, score, reason, created_at) "
                     "VALUES (?, 'seed_overlap', 0, 0.9, 'same as seed', ?)", (first, now))
        conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, created_at) VALUES (?, 'parse', 1, ?)",
                     (second, now))
        conn.execute("INSERT INTO judgement(candidate_id, accuracy, tone, instruction_following, overall, "
                     "created_at) VALUES (?, 4, 4, 5, 4.3333, ?)", (second, now))
    passing = d.batch_diversity(ws, batch_id, only_passing=True, use_embeddings=False)
    assert passing.rows == 39 and passing.map_points == [] and passing.histograms == {"judge_overall": [4.3333]}
    assert d.batch_diversity(ws, batch_id, use_embeddings=False).rows == 40


def test_batch_without_usable_rows_is_refused(ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    batch_id = add_batch(ws, pid, [None, None])
    with pytest.raises(QualityError, match="no rows that parsed"):
        d.batch_diversity(ws, batch_id)
    with pytest.raises(QualityError, match="no synthetic rows"):
        d.diversity_of_texts([], ["a seed"])


def _version(ws: Workspace, pid: int, rows: list[tuple[str, str, int | None, dict]]) -> int:
    """A frozen dataset version written as freeze writes one: (split, origin, source_id, alpaca data).
    Origins: seed, synthetic, general (rows mixed in from a general-purpose file)."""
    now = utc_now()
    with ws.write() as conn:
        vid = conn.execute("INSERT INTO dataset_version(project_id, name, splits, created_at) VALUES (?, ?, ?, ?)",
                           (pid, f"v{now}{len(rows)}", json.dumps({"train": 0.9, "validation": 0.1}), now)).lastrowid
        for pos, (split, origin, source, data) in enumerate(rows):
            conn.execute("INSERT INTO dataset_row(version_id, split, position, origin, source_id, format, data) "
                         "VALUES (?, ?, ?, ?, ?, 'alpaca', ?)", (vid, split, pos, origin, source, json.dumps(data)))
    return vid


def test_version_report_reads_the_train_split(ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    seeds = list_seeds(ws, pid)[:8]
    rows = [("train", "seed", s.id, s.data) for s in seeds[:6]]
    rows += [("train", "synthetic", 1000 + i, {"instruction": VARIED[i], "input": "", "output": "Sure, here it is."})
             for i in range(5)]
    rows += [("train", "general", 1, {"instruction": SAME, "input": "", "output": "From a general file."}),
             ("validation", "seed", seeds[7].id, seeds[7].data),
             ("validation", "synthetic", 2000, {"instruction": SAME, "input": "", "output": "x"})]
    vid = _version(ws, pid, rows)
    report = d.version_diversity(ws, vid)
    assert (report.rows, report.seeds) == (5, 6)
    assert {p["id"] for p in report.map_points if p["kind"] == "synthetic"} == {1000, 1001, 1002, 1003, 1004}
    assert {p["id"] for p in report.map_points if p["kind"] == "seed"} == {s.id for s in seeds[:6]}
    assert report.share_close_to_seed == 0.0 and report.mean_nn_similarity is not None

    only_seeds = _version(ws, pid, [("train", "seed", s.id, s.data) for s in seeds])
    with pytest.raises(QualityError, match="no synthetic rows"):
        d.version_diversity(ws, only_seeds)
    with pytest.raises(QualityError, match="no dataset version 999"):
        d.version_diversity(ws, 999)


def test_large_report_is_fast_and_embeds_a_sample(shared_seeds: Path) -> None:
    seeds = shared_texts(shared_seeds)
    rng = random.Random(0)
    vocab = " ".join(seeds).split()
    rows = [" ".join(w if rng.random() > 0.3 else rng.choice(vocab) for w in rng.choice(seeds).split())
            for _ in range(5000)]
    calls: list[int] = []

    def fake_embed(texts: list[str]) -> np.ndarray:  # the real model is timed in the report, not here
        calls.append(len(texts))
        v = np.random.default_rng(len(texts)).normal(size=(len(texts), 32)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    start = time.monotonic()
    report = d.diversity_of_texts(rows, seeds, embed=fake_embed)
    assert time.monotonic() - start < 30
    assert calls == [len(seeds) + d.EMBED_SAMPLE] and report.embedded_rows == d.EMBED_SAMPLE
    assert len(report.map_points) == len(seeds) + d.EMBED_SAMPLE and report.self_bleu_sample == 200
    assert report.rows == 5000 and 0.2 < report.share_close_to_seed < 0.9
    assert any(f"on a sample of {d.EMBED_SAMPLE} rows" in line for line in d.interpretations(report))
