"""Duplicates among texts: exact (after normalising), near (MinHash LSH), semantic (embedding cosine).

Each function takes the texts (or vectors) of an ordered list of items: first `n_prior` items that are
already in the project (seeds, rows selected from other batches), then the batch's rows in order. Prior
items are never judged. A batch row is a duplicate when it is too close to a prior item or to an
earlier batch row that was itself kept (greedy, as Self-Instruct grows its pool): the first occurrence
passes, later ones fail, and every failed row names an item that stays. When a row is too close to
several items, one with index below `prefer_below` (a seed) is named: that is the more useful reason.

Near duplicates: Jaccard similarity of the sets of word 3-shingles of the normalised text (lower-case,
punctuation removed, whitespace collapsed). Word shingles rather than character ones: rows are short,
and a word 3-gram changes with every edited word, so Jaccard 0.8 means "the same row with a few words
changed". MinHash (datasketch's "affine32" scheme, 128 permutations) estimates it; the LSH bands are
chosen so a pair exactly at the threshold becomes a candidate with probability >= 99.99% (datasketch's
default optimum misses more than half of them); candidates whose estimate comes near the threshold are then
checked on their exact Jaccard, which decides.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

NUM_PERM = 128
MINHASH_SEED = 1
SHINGLE_WORDS = 3
LSH_RECALL_AT_THRESHOLD = 0.9999
ESTIMATE_MARGIN = 0.15
"""Candidates whose MinHash estimate is at least threshold - this get an exact Jaccard (4 standard
deviations of a 128-permutation estimate near 0.8)."""
_SCHEME = "affine32"
_PUNCT = re.compile(r"[^\w\s]|_")
# Multipliers that combine three word hashes into one shingle hash (odd, so no low bit is lost).
_K1, _K2 = 0x9E3779B1, 0x85EBCA77
_SIG_CHUNK = 200_000  # shingles per numpy step: (200k x 128) uint32 is 100 MB


def normalise(text: str) -> str:
    """Lower-case, punctuation removed, whitespace collapsed: what 'the same text' means for duplicates."""
    return " ".join(_PUNCT.sub("", text.lower()).split())


@dataclass(frozen=True)
class Match:
    duplicate_of: int | None
    """Index of the kept item this one duplicates; None when it is kept."""
    score: float
    """The highest similarity found with an earlier kept item (1.0 for an exact duplicate)."""
    similarity: float = 0.0
    """The similarity with `duplicate_of` (can be below `score` when a seed is named before a closer row)."""


def exact_matches(texts: Sequence[str], n_prior: int) -> list[Match]:
    """One Match per batch row (items from `n_prior` on): the first earlier item with the same normalised
    text (seeds come first in the list, so a seed is named whenever there is one)."""
    first: dict[str, int] = {}
    out: list[Match] = []
    for i, text in enumerate(texts):
        key = normalise(text)
        j = first.get(key)
        if i >= n_prior:
            out.append(Match(j, 1.0, 1.0) if j is not None else Match(None, 0.0))
        if j is None:
            first[key] = i
    return out


# --- MinHash ----------------------------------------------------------------------------------------


def _word_hash(word: str, cache: dict[str, int]) -> int:
    h = cache.get(word)
    if h is None:
        h = cache[word] = zlib.crc32(word.encode("utf-8"))
    return h


def shingle_hash(words: Sequence[str]) -> int:
    """The 32-bit hash of one shingle (up to SHINGLE_WORDS words); what `signatures` feeds MinHash."""
    h = [zlib.crc32(w.encode("utf-8")) for w in words] + [0] * (SHINGLE_WORDS - len(words))
    return ((h[0] * _K1 + h[1]) * _K2 + h[2]) & 0xFFFFFFFF


def shingles(text: str) -> list[tuple[str, ...]]:
    """The word 3-shingles of the normalised text (one shorter shingle for a text of 1-2 words)."""
    words = normalise(text).split()
    if not words:
        return []
    if len(words) < SHINGLE_WORDS:
        return [tuple(words)]
    return [tuple(words[i:i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)]


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's finalizer, as datasketch's affine32 scheme pre-mixes every input hash.
    import numpy as np

    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(texts: Sequence[str], *, num_perm: int = NUM_PERM, seed: int = MINHASH_SEED) -> np.ndarray:
    """(len(texts), num_perm) uint32 MinHash signatures of the texts' word 3-shingles.

    The same values as datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash).update_batch(shingles)
    (tests check it), computed for many texts at once: one numpy pass per chunk instead of one MinHash
    object per row. A text without words gets the empty signature (all 0xFFFFFFFF).
    """
    import numpy as np
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=_SCHEME).permutations
    a, b = a.astype(np.uint32), b.astype(np.uint32)
    sig = np.full((len(texts), num_perm), 0xFFFFFFFF, dtype=np.uint32)
    cache: dict[str, int] = {}
    flat: list[int] = []  # word hashes, each text padded with zeros to at least SHINGLE_WORDS words
    counts: list[int] = []  # shingles per text
    owners: list[int] = []
    pending = 0

    def flush() -> None:
        nonlocal flat, counts, owners, pending
        if not counts:
            return
        words = np.asarray(flat, dtype=np.uint32)
        n_sh = np.asarray(counts, dtype=np.int64)
        word_start = np.concatenate(([0], np.cumsum(n_sh + SHINGLE_WORDS - 1)[:-1]))
        sh_start = np.concatenate(([0], np.cumsum(n_sh)[:-1]))
        pos = np.repeat(word_start - sh_start, n_sh) + np.arange(int(n_sh.sum()))
        hv = (words[pos] * np.uint32(_K1) + words[pos + 1]) * np.uint32(_K2) + words[pos + 2]
        hv = _fmix32(hv)
        sig[owners] = np.minimum.reduceat(hv[:, None] * a[None, :] + b[None, :], sh_start, axis=0)
        flat, counts, owners, pending = [], [], [], 0

    for i, text in enumerate(texts):
        words = normalise(text).split()
        if not words:
            continue
        hashes = [_word_hash(w, cache) for w in words]
        if len(hashes) < SHINGLE_WORDS:
            hashes += [0] * (SHINGLE_WORDS - len(hashes))
        flat.extend(hashes)
        counts.append(len(hashes) - SHINGLE_WORDS + 1)
        owners.append(i)
        pending += counts[-1]
        if pending >= _SIG_CHUNK:
            flush()
    flush()
    return sig


def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows per band): the most selective banding (at least 2 bands, as datasketch requires) that
    still makes a pair at `threshold` a candidate with probability >= LSH_RECALL_AT_THRESHOLD."""
    best = (num_perm, 1)
    for r in range(2, num_perm // 2 + 1):
        b = num_perm // r
        if 1 - (1 - threshold ** r) ** b >= LSH_RECALL_AT_THRESHOLD:
            best = (b, r)
    return best


def shingle_set(text: str, cache: dict[str, int] | None = None) -> np.ndarray:
    """Sorted distinct shingle hashes of a text (the values `shingle_hash` gives), for exact Jaccard."""
    import numpy as np

    cache = {} if cache is None else cache
    words = normalise(text).split()
    if not words:
        return np.zeros(0, dtype=np.uint32)
    h = np.asarray([_word_hash(w, cache) for w in words] + [0] * (SHINGLE_WORDS - len(words)), dtype=np.uint32)
    return np.unique((h[:-2] * np.uint32(_K1) + h[1:-1]) * np.uint32(_K2) + h[2:])


def near_matches(texts: Sequence[str], n_prior: int, threshold: float, *, prefer_below: int = 0,
                 sig: np.ndarray | None = None) -> list[Match]:
    """One Match per batch row: the kept item whose Jaccard reaches `threshold` (the best one, a seed
    first). MinHash LSH proposes candidates; candidates whose estimate is within ESTIMATE_MARGIN of the
    threshold get their exact Jaccard (on shingle hashes), which decides: the estimate alone would flip
    rows within a few hundredths of the threshold. Score: the best Jaccard among the candidates (exact
    when it was computed, else the estimate)."""
    import numpy as np
    from datasketch import LeanMinHash, MinHashLSH

    sig = signatures(texts) if sig is None else sig
    num_perm = sig.shape[1]
    empty = (sig == np.uint32(0xFFFFFFFF)).all(axis=1)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=lsh_params(threshold, num_perm))
    words: dict[str, int] = {}
    sets: dict[int, np.ndarray] = {}

    def exact(i: int, k: int) -> float:
        for j in (i, k):
            if j not in sets:
                sets[j] = shingle_set(texts[j], words)
        inter = np.intersect1d(sets[i], sets[k], assume_unique=True).size
        return inter / (sets[i].size + sets[k].size - inter)

    def sketch(i: int) -> LeanMinHash:
        return LeanMinHash(seed=MINHASH_SEED, hashvalues=sig[i], scheme=_SCHEME)

    for i in range(min(n_prior, len(texts))):
        if not empty[i]:
            lsh.insert(i, sketch(i))
    out: list[Match] = []
    for i in range(n_prior, len(texts)):
        if empty[i]:
            out.append(Match(None, 0.0))
            continue
        mh = sketch(i)
        found = np.asarray(sorted(lsh.query(mh)), dtype=np.int64)
        jac = (sig[found] == sig[i]).mean(axis=1) if found.size else np.zeros(0)
        close = jac >= threshold - ESTIMATE_MARGIN
        if close.any():
            found = found[close]
            jac = np.array([exact(i, int(k)) for k in found])
        hits = jac >= threshold
        best = float(jac.max()) if jac.size else 0.0
        if not hits.any():
            out.append(Match(None, best))
            lsh.insert(i, mh)
            continue
        preferred = hits & (found < prefer_below)
        pool = preferred if preferred.any() else hits
        k = int(np.flatnonzero(pool)[np.argmax(jac[pool])])
        out.append(Match(int(found[k]), best, float(jac[k])))
        sets.pop(i, None)  # a rejected row is never compared again
    return out


# --- embeddings -------------------------------------------------------------------------------------


def semantic_matches(vectors: np.ndarray, n_prior: int, threshold: float, *, prefer_below: int = 0,
                     block: int = 1024) -> list[Match]:
    """One Match per batch row: the kept item with cosine >= `threshold` (best one, a seed first).

    `vectors` are unit vectors (a dot product is the cosine). Rows are taken a block at a time: one
    matrix product gives the block's cosines with every earlier item, then the greedy pass over the
    block is a per-row argmax over columns still kept (rejected columns are set to -inf as it goes).
    """
    import numpy as np

    vec = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vec)
    kept = np.zeros(n, dtype=bool)
    kept[:n_prior] = True
    out: list[Match] = []
    for start in range(n_prior, n, block):
        stop = min(start + block, n)
        sims = vec[start:stop] @ vec[:stop].T
        sims[:, :start][:, ~kept[:start]] = -np.inf
        for j in range(start, stop):
            row = sims[j - start, :j]
            if row.size == 0:
                kept[j] = True
                out.append(Match(None, 0.0))
                continue
            k = int(row.argmax())
            best = float(row[k])
            if not best >= threshold:
                kept[j] = True
                out.append(Match(None, best if np.isfinite(best) else 0.0))
                continue
            head = row[:prefer_below]
            if head.size and float(head.max()) >= threshold:
                k = int(head.argmax())
            out.append(Match(k, best, float(row[k])))
            sims[:, j] = -np.inf  # a rejected row is nobody's original
    return out
