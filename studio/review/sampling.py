"""The review sample: a reproducible, stratified random sample of a batch's rows for people to check.

Which rows can be sampled ("eligible"): the usable rows (they parsed) that passed every filter when the
batch was filtered, else every usable row. The sample is stratified by stratum (the strategy, plus the
answer style or the nlpaug augmenter when the row records one), with proportional allocation by the
largest-remainder method, so a style that makes a third of the batch makes about a third of the sample.

Size: `fraction` of the eligible rows, rounded up, but at least `min_size` (or all, if fewer).
Reproducible: the seed defaults to a number derived from the batch id, so drawing the same batch again
(in another tab, on another machine) gives the same rows in the same order. A batch keeps one sample;
`draw_sample` returns it once it exists, and `extend_sample` grows it (new items get the next positions)
when the gate needs more reviews.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from studio.errors import ReviewError
from studio.workspace import Workspace, utc_now

if TYPE_CHECKING:
    from studio.augment.batches import Batch

DEFAULT_FRACTION = 0.10
DEFAULT_MIN_SIZE = 20
STRATUM_META_KEYS = ("style", "augmenter")
"""Meta keys that split a strategy's rows into kinds worth sampling evenly (response styles, augmenters)."""


@dataclass(frozen=True)
class ReviewItem:
    position: int
    """1-based order in which reviewers see the rows."""
    candidate_id: int
    stratum: str


@dataclass(frozen=True)
class ReviewSample:
    id: int
    batch_id: int
    rng_seed: int
    items: list[ReviewItem]
    fraction: float = DEFAULT_FRACTION
    min_size: int = DEFAULT_MIN_SIZE
    created_at: str = ""

    @property
    def size(self) -> int:
        return len(self.items)

    @property
    def candidate_ids(self) -> list[int]:
        return [i.candidate_id for i in self.items]

    def strata(self) -> dict[str, int]:
        """stratum -> how many sampled rows it has."""
        out: dict[str, int] = defaultdict(int)
        for item in self.items:
            out[item.stratum] += 1
        return dict(out)


def default_seed(batch_id: int) -> int:
    """A stable seed per batch (not Python's hash(), which changes between processes)."""
    digest = hashlib.sha256(f"review-sample:{batch_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31)


def stratum_of(strategy: str, meta: dict[str, object]) -> str:
    for key in STRATUM_META_KEYS:
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return f"{strategy}/{value.strip()}"
    return strategy


# --- reading (connection-level helpers, shared by the gate and the selection) --------------------------


def batch_was_filtered(conn: sqlite3.Connection, batch_id: int) -> bool:
    row = conn.execute("SELECT filtered_at FROM batch WHERE id=?", (batch_id,)).fetchone()
    return bool(row and row["filtered_at"])


def passed_filters_sql(alias: str = "c") -> str:
    """SQL condition: the candidate has filter results and none of them failed."""
    return (f"EXISTS (SELECT 1 FROM filter_result f WHERE f.candidate_id = {alias}.id) AND NOT EXISTS "
            f"(SELECT 1 FROM filter_result f WHERE f.candidate_id = {alias}.id AND f.passed = 0)")


def eligible_rows(conn: sqlite3.Connection, batch_id: int) -> list[tuple[int, str]]:
    """(candidate id, stratum) of every row that may be sampled, by id."""
    sql = ("SELECT c.id, c.meta, b.strategy FROM candidate c JOIN batch b ON b.id = c.batch_id "
           "WHERE c.batch_id = ? AND c.data IS NOT NULL")
    if batch_was_filtered(conn, batch_id):
        sql += " AND " + passed_filters_sql("c")
    rows = conn.execute(sql + " ORDER BY c.id", (batch_id,)).fetchall()
    return [(r["id"], stratum_of(r["strategy"], _meta(r["meta"]))) for r in rows]


def _meta(text: str | None) -> dict[str, object]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def sample_row(conn: sqlite3.Connection, batch_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM review_sample WHERE batch_id=? ORDER BY id LIMIT 1", (batch_id,)).fetchone()


def load_sample(conn: sqlite3.Connection, batch_id: int) -> ReviewSample | None:
    row = sample_row(conn, batch_id)
    if row is None:
        return None
    items = [ReviewItem(r["position"], r["candidate_id"], r["stratum"]) for r in
             conn.execute("SELECT position, candidate_id, stratum FROM review_item WHERE sample_id=? "
                          "ORDER BY position", (row["id"],))]
    return ReviewSample(row["id"], row["batch_id"], row["rng_seed"], items, row["fraction"], row["min_size"],
                        row["created_at"])


def get_sample(ws: Workspace, batch_id: int) -> ReviewSample | None:
    with ws.read() as conn:
        return load_sample(conn, batch_id)


# --- drawing ---------------------------------------------------------------------------------------


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over strata in proportion to their sizes (largest remainder; ties by stratum name)."""
    population = sum(sizes.values())
    if population == 0 or total <= 0:
        return {s: 0 for s in sizes}
    total = min(total, population)
    exact = {s: total * n / population for s, n in sizes.items()}
    out = {s: math.floor(q) for s, q in exact.items()}
    left = total - sum(out.values())
    by_remainder = sorted(sizes, key=lambda s: (-(exact[s] - out[s]), s))
    for s in by_remainder:
        if left == 0:
            break
        if out[s] < sizes[s]:
            out[s] += 1
            left -= 1
    return out


def _stratified_pick(rows: list[tuple[int, str]], count: int, rng: random.Random) -> list[tuple[int, str]]:
    """`count` rows drawn per stratum by proportional allocation, then shuffled together."""
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for cid, stratum in rows:
        by_stratum[stratum].append(cid)
    quotas = allocate({s: len(ids) for s, ids in by_stratum.items()}, count)
    picked: list[tuple[int, str]] = []
    for stratum in sorted(by_stratum):
        ids = sorted(by_stratum[stratum])
        picked.extend((cid, stratum) for cid in rng.sample(ids, quotas[stratum]))
    rng.shuffle(picked)
    return picked


def require_batch(ws: Workspace, batch_id: int) -> Batch:
    """The batch, or ReviewError when there is none (jobs of dead processes are marked interrupted first)."""
    from studio.augment.batches import get_batch
    from studio.errors import GenerationError

    try:
        return get_batch(ws, batch_id)
    except GenerationError:
        raise ReviewError(f"There is no batch #{batch_id}. The Generate tab (or `seed-studio batches list`) "
                          "shows the batches.") from None


def is_generating(batch: Batch) -> bool:
    from studio.jobs import ACTIVE

    return batch.job is not None and batch.job.status in ACTIVE


def _check_batch(ws: Workspace, batch_id: int) -> None:
    """A batch can be sampled when it exists, is not generating, and was not discarded by the gate."""
    batch = require_batch(ws, batch_id)
    if batch.status == "discarded":
        raise ReviewError(f"Batch #{batch_id} was discarded by the review gate. Reopen it first if you want to "
                          "review it again.")
    if is_generating(batch):
        raise ReviewError(f"Batch #{batch_id} is still generating. Wait for it to finish (or stop it), then "
                          "draw the review sample.")


def _check_sizes(fraction: float, min_size: int) -> None:
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise ReviewError(f"The sample fraction must be above 0 and at most 1 (got {fraction!r}); 0.1 reviews "
                          "10% of the rows.")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ReviewError(f"The smallest sample must be a whole number of at least 1 row (got {min_size!r}).")


def sample_size(eligible: int, fraction: float, min_size: int) -> int:
    return min(eligible, max(min_size, math.ceil(eligible * fraction - 1e-9)))


def draw_sample(ws: Workspace, batch_id: int, *, fraction: float = DEFAULT_FRACTION,
                min_size: int = DEFAULT_MIN_SIZE, rng_seed: int | None = None) -> ReviewSample:
    """The batch's review sample: the existing one if there is one, else a new one, stored in one transaction."""
    existing = get_sample(ws, batch_id)
    if existing is not None:
        return existing
    _check_sizes(fraction, min_size)
    _check_batch(ws, batch_id)
    seed = default_seed(batch_id) if rng_seed is None else int(rng_seed)
    with ws.write() as conn:
        # Checked again under the write lock: two tabs drawing at once get the same single sample.
        if sample_row(conn, batch_id) is None:
            rows = eligible_rows(conn, batch_id)
            if not rows:
                why = ("no row passed the filters" if batch_was_filtered(conn, batch_id)
                       else "it has no usable rows")
                raise ReviewError(f"Batch #{batch_id} has nothing to review: {why}. Generate more rows, or loosen "
                                  "the filters and run them again.")
            picked = _stratified_pick(rows, sample_size(len(rows), fraction, min_size), random.Random(seed))
            sample_id = conn.execute(
                "INSERT INTO review_sample(batch_id, rng_seed, fraction, min_size, created_at) VALUES (?, ?, ?, ?, ?)",
                (batch_id, seed, fraction, min_size, utc_now())).lastrowid
            conn.executemany("INSERT INTO review_item(sample_id, candidate_id, position, stratum) VALUES (?, ?, ?, ?)",
                             [(sample_id, cid, pos, stratum) for pos, (cid, stratum) in enumerate(picked, 1)])
        sample = load_sample(conn, batch_id)
    assert sample is not None
    return sample


def extend_sample(ws: Workspace, batch_id: int, extra: int) -> ReviewSample:
    """Add `extra` rows (fewer if fewer are left) to the sample, drawn from the eligible rows not yet in it."""
    if isinstance(extra, bool) or not isinstance(extra, int) or extra < 1:
        raise ReviewError(f"Say how many rows to add to the sample: a whole number of at least 1 (got {extra!r}).")
    if get_sample(ws, batch_id) is None:
        raise ReviewError(f"Batch #{batch_id} has no review sample yet. Draw the sample first.")
    _check_batch(ws, batch_id)
    with ws.write() as conn:
        sample = load_sample(conn, batch_id)
        assert sample is not None
        taken = set(sample.candidate_ids)
        left = [(cid, s) for cid, s in eligible_rows(conn, batch_id) if cid not in taken]
        if not left:
            raise ReviewError(f"Every row of batch #{batch_id} that can be reviewed is already in the sample "
                              f"({sample.size} rows).")
        start = max((i.position for i in sample.items), default=0) + 1
        # Seeded by the sample's seed and where the extension starts: the same request adds the same rows.
        picked = _stratified_pick(left, extra, random.Random(f"{sample.rng_seed}:{start}"))
        conn.executemany("INSERT INTO review_item(sample_id, candidate_id, position, stratum) VALUES (?, ?, ?, ?)",
                         [(sample.id, cid, pos, stratum) for pos, (cid, stratum) in enumerate(picked, start)])
        grown = load_sample(conn, batch_id)
    assert grown is not None
    return grown
