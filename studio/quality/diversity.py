"""How varied a batch (or a dataset version) is, next to the human seeds it grew from.

Definitions (all on "row text" = prompt + "\\n" + answer, see `studio.data.formats.summary_text`):

- distinct-n: unique word n-grams / all word n-grams, over every synthetic row (n-grams never span two
  rows). Words: lower-cased runs of letters/digits (apostrophes kept inside words), punctuation dropped.
  distinct-n falls as a corpus grows, so `distinct_*_matched` also gives it on random samples of as many
  synthetic rows as there are seeds: only equal-sized sets compare fairly with `seed_distinct_*`.
- self-BLEU (0-100, lower = more varied): up to `sample` rows drawn with a fixed seed; each one is a
  hypothesis scored against all the other drawn rows as references with sacrebleu's sentence BLEU
  (13a tokens, exp smoothing, effective order); the mean. Identical rows score 100.
- mean nearest-neighbour similarity: for each synthetic row, the highest cosine (sentence embeddings,
  all-MiniLM-L6-v2 by default) to any other synthetic row; the mean. Near 1: rows are near-copies.
- share close to a seed: the share of synthetic rows whose ROUGE-L F1 (rouge_score tokens, no stemming)
  with some seed is at least 0.7 — the Self-Instruct novelty test, computed here directly so the number
  does not depend on whether or how the batch was filtered.
- map points: seeds and synthetic rows projected on the first two principal components of their
  embeddings, for a scatter plot.

Embedding is the slow part (all-MiniLM-L6-v2 embeds roughly 25-70 rows of ~100 tokens a second on two CPU cores), so
the embedding-based fields (nearest-neighbour and seed similarity, their histograms, the map) use a seeded
random sample of at most `embed_sample` synthetic rows (1,000 by default; `embedded_rows` says how many),
and all the seeds. On a sample the nearest neighbour is looked for within the sample, so for a big batch
the mean nearest-neighbour similarity reads a little low; everything else uses every row.

Everything heavy (numpy, scipy, sacrebleu, rouge_score) is imported inside the functions.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from studio.data.formats import SeedFormat, summary_text
from studio.errors import QualityError
from studio.workspace import Workspace

if TYPE_CHECKING:
    import numpy as np

Embed = Callable[[list[str]], "np.ndarray"]
"""texts -> (len(texts), dim) unit vectors."""

SEED_ROUGE_THRESHOLD = 0.7
MAP_TEXT_CHARS = 120
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_NN_BLOCK = 1024  # rows per block of the similarity matrix: 1024 x 10,000 float32 is 40 MB
_MATCHED_DRAWS = 5
EMBED_SAMPLE = 1000


@dataclass
class DiversityReport:
    rows: int
    seeds: int
    distinct_1: float | None
    distinct_2: float | None
    distinct_1_matched: float | None
    """distinct-1 of random samples of `seeds` synthetic rows (mean of a few draws): compare with seed_distinct_1."""
    distinct_2_matched: float | None
    self_bleu: float | None
    self_bleu_sample: int
    """How many rows the self-BLEU was computed on."""
    embedded_rows: int
    """How many synthetic rows the embedding-based fields were computed on (0: no embeddings)."""
    mean_nn_similarity: float | None
    share_close_to_seed: float | None
    mean_seed_similarity: float | None
    """Mean over synthetic rows of the highest cosine to a seed."""
    seed_distinct_1: float | None
    seed_distinct_2: float | None
    seed_self_bleu: float | None
    seed_mean_nn_similarity: float | None
    map_points: list[dict[str, Any]] = field(default_factory=list)
    histograms: dict[str, list[float]] = field(default_factory=dict)
    """Per-row values: nn_similarity, seed_similarity (cosine), judge_overall (rows with a judge score)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the pure part -------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique n-grams / total n-grams over `texts` (None when there is no n-gram at all)."""
    return distinct_n_words([words(text) for text in texts], n)


def distinct_n_words(token_lists: Sequence[Sequence[str]], n: int) -> float | None:
    """distinct_n of texts already split with `words` (callers that also need the words split them once)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for toks in token_lists:
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else None


def self_bleu(texts: Sequence[str], *, sample: int = 200, rng_seed: int = 0) -> tuple[float | None, int]:
    """(mean sentence BLEU of each drawn row against the other drawn rows, rows drawn); None below 2 rows.

    Same numbers as sacrebleu.sentence_bleu(row, others), computed from each row's n-gram counts once:
    for every n-gram the two largest counts (and the owner of the largest) give the best reference count
    excluding the row itself, so 200 rows take milliseconds instead of 200 x 199 reference scans.
    """
    picked = sample_indices(len(texts), sample, rng_seed)
    if len(picked) < 2:
        return None, len(picked)
    from sacrebleu.metrics.bleu import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenize = Tokenizer13a()
    stats = [extract_all_word_ngrams(tokenize(texts[i].rstrip()), 1, 4) for i in picked]
    best: dict[tuple[str, ...], list[int]] = {}  # ngram -> [largest count, its owner, second largest]
    for owner, (grams, _) in enumerate(stats):
        for gram, count in grams.items():
            top = best.get(gram)
            if top is None:
                best[gram] = [count, owner, 0]
            elif count > top[0]:
                best[gram] = [count, owner, top[0]]
            elif count > top[2]:
                top[2] = count
    lengths = [length for _, length in stats]
    scores = []
    for i, (grams, hyp_len) in enumerate(stats):
        correct, total = [0] * 4, [0] * 4
        for gram, count in grams.items():
            top = best[gram]
            ref = top[2] if top[1] == i else top[0]
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, ref)
        ref_len = _closest_length(hyp_len, lengths[:i] + lengths[i + 1:])
        scores.append(BLEU.compute_bleu(correct, total, hyp_len, ref_len, smooth_method="exp",
                                        effective_order=True).score)
    return sum(scores) / len(scores), len(picked)


def _closest_length(hyp_len: int, ref_lens: list[int]) -> int:
    """sacrebleu's rule: the reference length nearest the hypothesis, the shorter one on a tie."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def sample_indices(n: int, sample: int, rng_seed: int) -> list[int]:
    """Sorted indices of a seeded random sample of `sample` out of `n` (all of them when n <= sample)."""
    if n <= sample:
        return list(range(n))
    return sorted(random.Random(rng_seed).sample(range(n), sample))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence of two token lists, bit-parallel (Hyyrö 2004): one pass over `b`."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def close_to_seed(synthetic: Sequence[str], seeds: Sequence[str],
                  threshold: float = SEED_ROUGE_THRESHOLD) -> list[bool]:
    """Per synthetic row: is its ROUGE-L F1 with some seed >= threshold?

    ROUGE-L F1 = 2 * LCS / (len_a + len_b), and LCS is at most the bag-of-words overlap, which a sparse
    matrix product bounds from above for all pairs at once; only pairs whose bound reaches the threshold
    get the exact LCS. Exact, and fast for 10,000 rows x hundreds of seeds.
    """
    if not synthetic or not seeds:
        return [False] * len(synthetic)
    import numpy as np
    from rouge_score.tokenizers import DefaultTokenizer
    from scipy import sparse

    tokenizer = DefaultTokenizer(use_stemmer=False)
    syn = [tokenizer.tokenize(t) for t in synthetic]
    ref = [tokenizer.tokenize(t) for t in seeds]
    vocab: dict[str, int] = {}

    def counts(docs: list[list[str]]) -> Any:
        rows, cols, vals = [], [], []
        for r, toks in enumerate(docs):
            for tok, c in Counter(toks).items():
                rows.append(r)
                cols.append(vocab.setdefault(tok, len(vocab)))
                vals.append(c)
        return rows, cols, vals

    a_parts, b_parts = counts(syn), counts(ref)
    shape_v = len(vocab)
    a = sparse.csr_matrix((a_parts[2], (a_parts[0], a_parts[1])), shape=(len(syn), shape_v), dtype=np.float32)
    b = sparse.csr_matrix((b_parts[2], (b_parts[0], b_parts[1])), shape=(len(ref), shape_v), dtype=np.float32)
    a_bin, b_bin = (a > 0).astype(np.float32), (b > 0).astype(np.float32)
    len_a = np.array([len(t) for t in syn], dtype=np.float32)
    len_b = np.array([len(t) for t in ref], dtype=np.float32)
    out = [False] * len(syn)
    for start in range(0, len(syn), _NN_BLOCK):
        stop = min(start + _NN_BLOCK, len(syn))
        overlap = np.minimum((a[start:stop] @ b_bin.T).toarray(), (a_bin[start:stop] @ b.T).toarray())
        denom = len_a[start:stop, None] + len_b[None, :]
        bound = np.divide(2 * overlap, denom, out=np.zeros_like(overlap), where=denom > 0)
        for local in np.nonzero((bound >= threshold - 1e-6).any(axis=1))[0]:
            i = start + int(local)
            for j in np.argsort(-bound[local]):
                if bound[local, j] < threshold - 1e-6:
                    break
                if 2 * lcs_length(syn[i], ref[j]) / (len(syn[i]) + len(ref[j])) >= threshold:
                    out[i] = True
                    break
    return out


def nearest_other(vectors: np.ndarray) -> np.ndarray:
    """For each unit vector, the highest cosine to any other one (block products: memory stays small)."""
    import numpy as np

    n = len(vectors)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, _NN_BLOCK):
        stop = min(start + _NN_BLOCK, n)
        sims = vectors[start:stop] @ vectors.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        out[start:stop] = sims.max(axis=1)
    return np.clip(out, -1.0, 1.0)


def nearest_seed(vectors: np.ndarray, seed_vectors: np.ndarray) -> np.ndarray:
    """For each unit vector, the highest cosine to any seed vector (block products: memory stays small)."""
    import numpy as np

    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), _NN_BLOCK):
        stop = min(start + _NN_BLOCK, len(vectors))
        out[start:stop] = (vectors[start:stop] @ seed_vectors.T).max(axis=1)
    return np.clip(out, -1.0, 1.0)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates on the first two principal components; signs fixed so reruns plot the same."""
    import numpy as np

    x = np.asarray(vectors, dtype=np.float64)
    if len(x) < 2:
        return np.zeros((len(x), 2))
    x = x - x.mean(axis=0)
    # Eigenvectors of the (dim x dim) covariance: cheaper than an SVD of the (n x dim) matrix for n >> dim.
    _, vecs = np.linalg.eigh(x.T @ x)
    comps = vecs[:, ::-1][:, :2]
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), [0, 1]])
    comps = comps * np.where(signs == 0, 1, signs)
    return x @ comps


def _clip(text: str, limit: int = MAP_TEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _matched_distinct(texts: Sequence[str], size: int, n: int, rng_seed: int) -> float | None:
    if size <= 0:
        return None
    if len(texts) <= size:
        return distinct_n(texts, n)
    rng = random.Random(rng_seed + n)
    values = [v for v in (distinct_n(rng.sample(list(texts), size), n) for _ in range(_MATCHED_DRAWS))
              if v is not None]
    return sum(values) / len(values) if values else None


def diversity_of_texts(synthetic: list[str], seeds: list[str], *, embed: Embed | None = None, sample: int = 200,
                       rng_seed: int = 0, synthetic_ids: Sequence[int] | None = None,
                       seed_ids: Sequence[int] | None = None, embed_sample: int | None = EMBED_SAMPLE
                       ) -> DiversityReport:
    """The report for these texts (pure). Without `embed`, the embedding fields are None and there is no map.
    `embed_sample` caps the synthetic rows embedded (None: all of them).

    `synthetic_ids` / `seed_ids` name the map points (row ids); by default their positions.
    """
    if not synthetic:
        raise QualityError("There are no synthetic rows to measure. Generate a batch (or pick one with usable "
                           "rows) first.")
    syn_ids = list(synthetic_ids) if synthetic_ids is not None else list(range(len(synthetic)))
    s_ids = list(seed_ids) if seed_ids is not None else list(range(len(seeds)))
    bleu, drawn = self_bleu(synthetic, sample=sample, rng_seed=rng_seed)
    seed_bleu, _ = self_bleu(seeds, sample=sample, rng_seed=rng_seed)
    close = close_to_seed(synthetic, seeds)
    report = DiversityReport(
        rows=len(synthetic), seeds=len(seeds),
        distinct_1=distinct_n(synthetic, 1), distinct_2=distinct_n(synthetic, 2),
        distinct_1_matched=_matched_distinct(synthetic, len(seeds), 1, rng_seed),
        distinct_2_matched=_matched_distinct(synthetic, len(seeds), 2, rng_seed),
        self_bleu=bleu, self_bleu_sample=drawn, embedded_rows=0,
        mean_nn_similarity=None,
        share_close_to_seed=(sum(close) / len(close)) if seeds else None,
        mean_seed_similarity=None,
        seed_distinct_1=distinct_n(seeds, 1), seed_distinct_2=distinct_n(seeds, 2),
        seed_self_bleu=seed_bleu, seed_mean_nn_similarity=None)
    if embed is None:
        return report
    import numpy as np

    if embed_sample is not None and len(synthetic) > embed_sample:
        keep = sample_indices(len(synthetic), embed_sample, rng_seed)
        synthetic, syn_ids = [synthetic[i] for i in keep], [syn_ids[i] for i in keep]
    report.embedded_rows = len(synthetic)
    vectors = np.asarray(embed(list(seeds) + list(synthetic)), dtype=np.float32)
    seed_vecs, syn_vecs = vectors[: len(seeds)], vectors[len(seeds):]
    if len(synthetic) >= 2:
        nn = nearest_other(syn_vecs)
        report.mean_nn_similarity = float(nn.mean())
        report.histograms["nn_similarity"] = [round(float(v), 4) for v in nn]
    if len(seeds) >= 2:
        report.seed_mean_nn_similarity = float(nearest_other(seed_vecs).mean())
    if len(seeds):
        to_seed = nearest_seed(syn_vecs, seed_vecs)
        report.mean_seed_similarity = float(to_seed.mean())
        report.histograms["seed_similarity"] = [round(float(v), 4) for v in to_seed]
    coords = pca_2d(vectors)
    kinds = ["seed"] * len(seeds) + ["synthetic"] * len(synthetic)
    report.map_points = [
        {"x": round(float(x), 5), "y": round(float(y), 5), "kind": kind, "id": ident, "text": _clip(text)}
        for (x, y), kind, ident, text in zip(coords, kinds, s_ids + syn_ids, list(seeds) + list(synthetic),
                                              strict=True)]
    return report


# --- plain-language reading ----------------------------------------------------------------------


def interpretations(report: DiversityReport) -> list[str]:
    """One line per measure, in plain words, for the UI and the CLI."""
    lines: list[str] = []
    d2, seed_d2 = report.distinct_2_matched, report.seed_distinct_2
    if d2 is not None and seed_d2:
        ratio = d2 / seed_d2
        verdict = ("the synthetic rows repeat phrases more than your seeds" if ratio < 0.85 else
                   "the synthetic rows use more varied phrasing than your seeds" if ratio > 1.15 else
                   "the synthetic rows vary their phrasing about as much as your seeds")
        counts = (f"on {report.seeds} rows each" if report.rows >= report.seeds else
                  f"{report.rows} synthetic rows, {report.seeds} seeds")
        lines.append(f"distinct-2 {d2:.2f} vs seeds {seed_d2:.2f} ({counts}): {verdict}.")
    elif report.distinct_2 is not None:
        lines.append(f"distinct-2 {report.distinct_2:.2f}: share of word pairs that are not repeats (1 = none "
                     "repeats).")
    if report.self_bleu is not None:
        level = ("many rows share long word sequences with each other" if report.self_bleu >= 50 else
                 "rows share some phrasing" if report.self_bleu >= 25 else "rows rarely reuse each other's wording")
        seeds = f" (seeds {report.seed_self_bleu:.0f})" if report.seed_self_bleu is not None else ""
        lines.append(f"self-BLEU {report.self_bleu:.0f}{seeds}, on {report.self_bleu_sample} rows, 0-100 where "
                     f"lower is more varied: {level}.")
    if report.mean_nn_similarity is not None:
        nn = report.mean_nn_similarity
        seed_nn = report.seed_mean_nn_similarity
        level = ("many rows are near-copies of another row" if nn >= 0.95 else
                 "rows cluster around a few ideas" if nn >= 0.85 else
                 "rows resemble each other more than your seeds do" if seed_nn is not None and nn > seed_nn + 0.15
                 else "rows cover different content")
        seeds = f" (seeds {seed_nn:.2f})" if seed_nn is not None else ""
        sampled = f", on a sample of {report.embedded_rows} rows" if report.embedded_rows < report.rows else ""
        lines.append(f"closest-neighbour similarity {nn:.2f}{seeds}{sampled}: {level}.")
    if report.share_close_to_seed is not None:
        share = report.share_close_to_seed
        tail = ("they add little beyond your seeds; ask the teacher for new tasks, not rewrites" if share >= 0.2
                else "most rows are new material")
        lines.append(f"{share:.0%} of rows closely copy a seed (ROUGE-L ≥ {SEED_ROUGE_THRESHOLD}): {tail}.")
    return lines


# --- from the workspace --------------------------------------------------------------------------


def row_text(fmt: SeedFormat | str, data: dict[str, Any]) -> str:
    prompt, answer = summary_text(SeedFormat(fmt), data)
    return prompt + "\n" + answer


def _default_embed(ws: Workspace) -> Embed:
    from studio.quality.embeddings import embed_texts

    return lambda texts: embed_texts(ws, texts)


def _judge_overall(ws: Workspace, candidate_ids: list[int]) -> list[float]:
    """The newest judge score of each of these candidates that has one (failed judgements have none)."""
    out: list[float] = []
    with ws.read() as conn:
        for start in range(0, len(candidate_ids), 500):  # SQLite caps the number of bound parameters
            chunk = candidate_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out += [float(r[0]) for r in conn.execute(
                f"SELECT j.overall FROM judgement j WHERE j.id IN (SELECT MAX(id) FROM judgement "
                f"WHERE candidate_id IN ({marks}) GROUP BY candidate_id) AND j.overall IS NOT NULL", chunk)]
    return out


def batch_diversity(ws: Workspace, batch_id: int, *, only_passing: bool = False,
                    use_embeddings: bool = True) -> DiversityReport:
    """The report for a batch's usable rows (`only_passing`: those no filter failed, once it was filtered)."""
    from studio.augment.batches import get_batch
    from studio.augment.candidates import list_candidates
    from studio.workspace.seeds import list_seeds

    batch = get_batch(ws, batch_id)
    rows = [c for c in list_candidates(ws, batch_id=batch_id) if c.data is not None]
    if only_passing:
        with ws.read() as conn:
            failing = {r[0] for r in conn.execute(
                "SELECT DISTINCT f.candidate_id FROM filter_result f JOIN candidate c ON c.id = f.candidate_id "
                "WHERE c.batch_id = ? AND f.passed = 0", (batch_id,))}
        rows = [c for c in rows if c.id not in failing]
    if not rows:
        which = "passed the filters" if only_passing else "parsed"
        raise QualityError(f"Batch {batch_id} has no rows that {which}, so there is nothing to measure.")
    seeds = list_seeds(ws, batch.project_id)
    report = diversity_of_texts(
        [row_text(c.format, c.data) for c in rows if c.data is not None],
        [row_text(s.format, s.data) for s in seeds],
        embed=_default_embed(ws) if use_embeddings else None,
        synthetic_ids=[c.id for c in rows], seed_ids=[s.id for s in seeds])
    judged = _judge_overall(ws, [c.id for c in rows])
    if judged:
        report.histograms["judge_overall"] = judged
    return report


def version_diversity(ws: Workspace, version_id: int, *, use_embeddings: bool = True) -> DiversityReport:
    """The report for a frozen dataset version's train split: its synthetic rows against its seed rows.

    Rows mixed in from a general-purpose file (origin 'general') are neither, and are left out."""
    with ws.read() as conn:
        version = conn.execute("SELECT id, name FROM dataset_version WHERE id = ?", (version_id,)).fetchone()
        rows = conn.execute("SELECT id, origin, source_id, format, data FROM dataset_row WHERE version_id = ? "
                            "AND split = 'train' ORDER BY position", (version_id,)).fetchall()
    if version is None:
        raise QualityError(f"There is no dataset version {version_id}. The Dataset tab lists the versions.")
    seeds = [r for r in rows if r["origin"] == "seed"]
    synthetic = [r for r in rows if r["origin"] == "synthetic"]
    if not synthetic:
        raise QualityError(f"Dataset version '{version['name']}' has no synthetic rows in its train split, so "
                           "there is no generated data to measure.")

    def ident(r: Any) -> int:
        return int(r["source_id"]) if r["source_id"] is not None else int(r["id"])

    report = diversity_of_texts(
        [row_text(r["format"], json.loads(r["data"])) for r in synthetic],
        [row_text(r["format"], json.loads(r["data"])) for r in seeds],
        embed=_default_embed(ws) if use_embeddings else None,
        synthetic_ids=[ident(r) for r in synthetic], seed_ids=[ident(r) for r in seeds])
    judged = _judge_overall(ws, [r["source_id"] for r in synthetic if r["source_id"] is not None])
    if judged:
        report.histograms["judge_overall"] = judged
    return report
