"""ROUGE-L between generated instructions and the human seeds, fast enough for 50,000 rows.

Self-Instruct drops a generated instruction whose ROUGE-L F with any instruction already in the pool is
above 0.7. Here the pool is the project's seeds. The numbers are those of rouge_score's
RougeScorer(['rougeL'], use_stemmer=False), to the last bit: its tokenizer (lower-case, every run of
characters outside [a-z0-9] is a space) and its F = 2PR / (P + R) with P = LCS/len(b), R = LCS/len(a).

Speed comes from never computing an LCS that cannot matter:
- LCS(a, b) is at most the multiset overlap Σ_t min(a_t, b_t), and min(x, y) ≤ √(x·y), so one sparse
  product of √count vectors bounds every (row, seed) pair at once (scipy), then
  F ≤ 2·min(bound, len a, len b) / (len a + len b);
- the exact LCS is computed only for pairs whose bound reaches the threshold, plus each row's most
  promising seed (highest bound) so that every row gets a meaningful score, with the bit-parallel LCS
  (Allison–Dix / Hyyrö): one big-integer update per token instead of a len(a)×len(b) table.
So the pass/fail verdict is exact (no pair that can reach the threshold is skipped); a row's score is
exact whenever it reaches the threshold, and otherwise is the F with its most promising seed.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_CHUNK_ROWS = 4096


def rouge_tokens(text: str) -> list[str]:
    """rouge_score's tokenizer without stemming: lower-case, split on anything outside [a-z0-9]."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def token_masks(tokens: Sequence[str]) -> dict[str, int]:
    """token -> bit mask of its positions in `tokens` (for the bit-parallel LCS)."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(tokens):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    return masks


def lcs_length(a: Sequence[str], b: Sequence[str], masks: dict[str, int] | None = None) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, exact).

    V has a zero bit for every position of `a` matched so far; each token of `b` updates it in O(1)
    big-integer operations (Hyyrö 2004): U = V & M[t]; V = (V + U) | (V - U).
    """
    if not a or not b:
        return 0
    masks = token_masks(a) if masks is None else masks
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        m = masks.get(tok)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_f(a: Sequence[str], b: Sequence[str], masks: dict[str, int] | None = None) -> float:
    """ROUGE-L F-measure of two token lists (symmetric; 0 when either is empty)."""
    if not a or not b:
        return 0.0
    return _f_measure(lcs_length(a, b, masks), len(a), len(b))


def _f_measure(lcs: int, len_a: int, len_b: int) -> float:
    # rouge_score's arithmetic, not the equal 2·lcs/(len a + len b): its float rounding decides ties with
    # the threshold (2·7/20 is 0.7, rouge_score says 0.7000000000000001 > 0.7), and Self-Instruct used it.
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len_b, lcs / len_a
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Overlap:
    seed: int | None
    """Index (into the seed texts) of the closest seed found; None when there are no seeds or no tokens."""
    score: float
    """ROUGE-L F with that seed."""


def best_overlaps(texts: Sequence[str], seed_texts: Sequence[str], threshold: float) -> list[Overlap]:
    """For each text, the seed with the highest ROUGE-L F among those that can reach `threshold`
    (exact: every such pair is computed), else its most promising seed."""
    import numpy as np
    from scipy import sparse

    rows = [rouge_tokens(t) for t in texts]
    seeds = [rouge_tokens(t) for t in seed_texts]
    if not rows:
        return []
    vocab: dict[str, int] = {}
    for toks in seeds:
        for tok in toks:
            vocab.setdefault(tok, len(vocab))
    if not vocab:
        return [Overlap(None, 0.0) for _ in rows]

    def sqrt_counts(token_lists: list[list[str]]) -> sparse.csr_matrix:
        data: list[float] = []
        cols: list[int] = []
        indptr = [0]
        for toks in token_lists:
            for tok, n in Counter(t for t in toks if t in vocab).items():
                cols.append(vocab[tok])
                data.append(math.sqrt(n))
            indptr.append(len(cols))
        return sparse.csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(cols, dtype=np.int64),
                                  np.asarray(indptr, dtype=np.int64)), shape=(len(token_lists), len(vocab)))

    seed_matrix = sqrt_counts(seeds).T.tocsc()
    seed_len = np.array([len(t) for t in seeds], dtype=np.float64)
    row_len = np.array([len(t) for t in rows], dtype=np.float64)
    seed_masks = [token_masks(t) for t in seeds]
    row_matrix = sqrt_counts(rows)
    out: list[Overlap] = []
    for start in range(0, len(rows), _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, len(rows))
        shared = (row_matrix[start:stop] @ seed_matrix).toarray()
        lengths = row_len[start:stop, None]
        bound = np.minimum(np.minimum(shared, lengths), seed_len[None, :])
        total = lengths + seed_len[None, :]
        f_bound = np.divide(2.0 * bound, total, out=np.zeros_like(bound), where=total > 0)
        # 1e-9: a bound computed in floating point must not fall just under an exact tie with the threshold.
        reach = f_bound >= threshold - 1e-9
        top = f_bound.argmax(axis=1)
        for i in range(stop - start):
            toks = rows[start + i]
            if not toks:
                out.append(Overlap(None, 0.0))
                continue
            best_seed, best = -1, -1.0
            for j in sorted({int(top[i]), *np.flatnonzero(reach[i]).tolist()}):
                if not seeds[j]:
                    continue
                f = rouge_l_f(seeds[j], toks, seed_masks[j])
                if f > best:
                    best_seed, best = j, f
            out.append(Overlap(best_seed, best) if best > 0 else Overlap(None, 0.0))
    return out
