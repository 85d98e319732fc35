"""The review gate: is this batch good enough to keep, judging from the rows people reviewed?

An error is a rejected row, and also an edited row when `count_edits_as_errors` (a row that needed an
edit was not right as generated). Only rows of the batch's review sample count, combined over reviewers
(a row is rejected if any reviewer rejected it). The error rate comes with its Wilson score interval at
the chosen confidence, which stays honest for small samples and for rates near 0.

The decision rule, in order:

1. Too few reviews: fewer than `min_reviews` rows reviewed while more rows could still be reviewed ->
   inconclusive; review the missing number of rows.
2. The whole interval lies above the threshold (its low end is above it) -> fail: even the most
   favourable reading of the reviews says the batch has too many errors.
3. The error rate is at or below the threshold -> pass (the interval is reported with it, so a person
   can see how sure the pass is).
4. Otherwise the rate is above the threshold but the interval still reaches below it -> inconclusive,
   with an estimate of how many more reviews at the current rate would push the low end above the
   threshold (at most the rows left to review). When every reviewable row has been reviewed, no more
   evidence can come: the rate itself decides, and a rate above the threshold fails.

Applying a decision records it (with the per-tag counts, both configurations and how far the judge and
the filters agree with the reviewers, calibration.py) in `gate_decision`; when rows are selected by judge
score and the judge is too far from the reviewers, the details say so (`judge_warning`). As for
the batch: fail marks it 'discarded' (its rows stay, for the audit trail and the prompt revision); pass
stores the selected rows in `selection` and marks the batch 'selected', in the same transaction;
inconclusive records only the decision. `reopen_batch` undoes a pass or a fail.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

from studio.errors import ReviewError
from studio.review.sampling import eligible_rows, is_generating, load_sample, require_batch
from studio.review.selection import SelectionConfig, select_in
from studio.review.verdicts import verdicts_in
from studio.workspace import Workspace, utc_now

DECISIONS = ("pass", "fail", "inconclusive")
REVIEW_STATES = ("discarded", "selected")  # the batch statuses a gate decision sets (batches.REVIEW_STATES)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z2 / (4 * n * n))) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials: (p + z²/2n ± z·√(p(1-p)/n + z²/4n²)) / (1 + z²/n)."""
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n == 0:
        return 0.0, 1.0
    low, high = _wilson(k / n, n, _z(confidence))
    # The closed form gives 0 and 1 exactly at the ends, up to rounding; say so exactly.
    return (0.0 if k == 0 else low), (1.0 if k == n else high)


@dataclass
class GateConfig:
    threshold: float = 0.10
    """The highest error rate a batch may have."""
    confidence: float = 0.95
    min_reviews: int = 20
    count_edits_as_errors: bool = True

    def check(self) -> None:
        if not isinstance(self.threshold, int | float) or not 0 < self.threshold < 1:
            raise ReviewError(f"The error threshold must be between 0 and 1, e.g. 0.1 for 10% (got "
                              f"{self.threshold!r}).")
        if not isinstance(self.confidence, int | float) or not 0.5 < self.confidence < 0.999:
            raise ReviewError(f"The confidence must be above 0.5 and below 0.999, e.g. 0.95 (got "
                              f"{self.confidence!r}).")
        if isinstance(self.min_reviews, bool) or not isinstance(self.min_reviews, int) or self.min_reviews < 1:
            raise ReviewError(f"The reviews needed before deciding must be a whole number of at least 1 (got "
                              f"{self.min_reviews!r}).")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GateConfig:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


@dataclass(frozen=True)
class GateResult:
    decision: str
    reviewed: int
    errors: int
    rate: float | None
    """None until a row has been reviewed."""
    low: float
    high: float
    threshold: float
    confidence: float
    more_reviews_needed: int
    message: str
    sample_size: int = 0
    reviewable_left: int = 0
    """Rows that could still be reviewed (in the sample or not) that have no verdict yet."""
    tag_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    id: int
    batch_id: int
    decision: str
    """pass, fail, inconclusive, or 'reopened' (a pass or fail undone)."""
    reviewed: int
    errors: int
    rate: float | None
    low: float | None
    high: float | None
    threshold: float
    confidence: float
    details: dict[str, Any]
    created_at: str


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def reviews_to_decide(rate: float, reviewed: int, threshold: float, z: float, limit: int) -> int:
    """Fewest extra reviews m (<= limit) after which the same rate's interval lies above the threshold;
    `limit` when even that many would not be enough."""
    for m in range(1, limit + 1):
        if _wilson(rate, reviewed + m, z)[0] > threshold:
            return m
    return limit


def _evaluate(conn: sqlite3.Connection, batch_id: int, config: GateConfig) -> GateResult:
    sample = load_sample(conn, batch_id)
    if sample is None:
        raise ReviewError(f"Batch #{batch_id} has no review sample yet. Draw the sample and review it first.")
    in_sample = set(sample.candidate_ids)
    verdicts = {cid: v for cid, v in verdicts_in(conn, batch_id).items() if cid in in_sample}
    error_kinds = ("reject", "edit") if config.count_edits_as_errors else ("reject",)
    errors = sum(v.verdict in error_kinds for v in verdicts.values())
    tags = Counter(t for v in verdicts.values() if v.verdict in ("reject", "edit") for t in v.reason_tags)
    n = len(verdicts)
    left = sum(1 for cid, _ in eligible_rows(conn, batch_id) if cid not in verdicts)
    allowed = f"at most {config.threshold * 100:.4g}% allowed"

    def result(decision: str, more: int, message: str, rate: float | None, low: float, high: float) -> GateResult:
        return GateResult(decision, n, errors, rate, low, high, config.threshold, config.confidence, more, message,
                          sample.size, left, dict(sorted(tags.items())))

    if n < config.min_reviews and left > 0:
        more = min(config.min_reviews - n, left)
        done = f"{n} row{'s' if n != 1 else ''} reviewed so far" if n else "No row reviewed yet"
        return result("inconclusive", more, f"{done}; the gate decides after {config.min_reviews}: review {more} "
                      "more.", errors / n if n else None, *wilson_interval(errors, n, config.confidence))
    if n == 0:  # nothing reviewable at all
        return result("inconclusive", 0, "There is nothing to review in this batch, so the gate cannot decide.",
                      None, 0.0, 1.0)
    rate = errors / n
    low, high = wilson_interval(errors, n, config.confidence)
    stats = (f"{errors} of {n} reviewed rows had errors: {_pct(rate)} ({config.confidence * 100:.4g}% interval "
             f"{_pct(low)}–{_pct(high)}), {allowed}")
    if low > config.threshold:
        return result("fail", 0, f"{stats}: the batch fails.", rate, low, high)
    if rate <= config.threshold:
        return result("pass", 0, f"{stats}: the batch passes.", rate, low, high)
    if left == 0:
        return result("fail", 0, f"{stats}, and every row has been reviewed: the batch fails.", rate, low, high)
    more = reviews_to_decide(rate, n, config.threshold, _z(config.confidence), left)
    return result("inconclusive", more, f"{stats}: not sure yet. At this rate, about {more} more reviews would "
                  "settle it.", rate, low, high)


def evaluate_gate(ws: Workspace, batch_id: int, config: GateConfig | None = None) -> GateResult:
    """The gate's verdict on the reviews so far. Writes nothing."""
    config = config or GateConfig()
    config.check()
    require_batch(ws, batch_id)
    with ws.read() as conn:
        return _evaluate(conn, batch_id, config)


def _record(conn: sqlite3.Connection, batch_id: int, decision: str, reviewed: int, errors: int, rate: float | None,
            low: float | None, high: float | None, threshold: float, confidence: float,
            details: dict[str, Any]) -> None:
    conn.execute("INSERT INTO gate_decision(batch_id, decision, reviewed, errors, rate, low, high, threshold, "
                 "confidence, details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (batch_id, decision, reviewed, errors, rate, low, high, threshold, confidence,
                  json.dumps(details), utc_now()))


def apply_gate(ws: Workspace, batch_id: int, config: GateConfig | None = None,
               selection: SelectionConfig | None = None) -> GateResult:
    """Evaluate and act on it in one transaction: fail discards the batch, pass selects its rows."""
    config = config or GateConfig()
    selection = selection or SelectionConfig()
    config.check()
    selection.check()
    batch = require_batch(ws, batch_id)
    if is_generating(batch):
        raise ReviewError(f"Batch #{batch_id} is still generating. Let it finish (or stop it) before the gate.")
    with ws.write() as conn:
        # Read again under the write lock: another tab may have decided in the meantime.
        status = conn.execute("SELECT status FROM batch WHERE id=?", (batch_id,)).fetchone()["status"]
        if status in REVIEW_STATES:
            raise ReviewError(f"Batch #{batch_id} is already {status}. Reopen it first to decide again.")
        result = _evaluate(conn, batch_id, config)
        details: dict[str, Any] = {"tag_counts": result.tag_counts, "config": config.to_dict(),
                                   "selection": selection.to_dict(), "previous_status": status,
                                   "more_reviews_needed": result.more_reviews_needed, "message": result.message}
        # How far the judge and the filters agree with the reviewers, as of this decision (calibration.py
        # builds on this module's Wilson interval, hence the import here).
        from studio.review.calibration import calibrate_in, threshold_for

        calibration = calibrate_in(conn, batch_id, judge_threshold=threshold_for(selection.min_judge_score),
                                   confidence=config.confidence)
        details["calibration"] = calibration.summary()
        warning = calibration.judge_warning(selection.min_judge_score)
        if warning:
            details["judge_warning"] = warning
        now = utc_now()
        if result.decision == "pass":
            rows = select_in(conn, batch_id, selection)
            conn.execute("DELETE FROM selection WHERE batch_id=?", (batch_id,))
            conn.executemany("INSERT INTO selection(batch_id, candidate_id, data, reason, score, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             [(batch_id, r.candidate_id, json.dumps(r.data, ensure_ascii=False), r.reason, r.score,
                               now) for r in rows])
            conn.execute("UPDATE batch SET status='selected', updated_at=? WHERE id=?", (now, batch_id))
            details["selected"] = len(rows)
        elif result.decision == "fail":
            conn.execute("DELETE FROM selection WHERE batch_id=?", (batch_id,))
            conn.execute("UPDATE batch SET status='discarded', updated_at=? WHERE id=?", (now, batch_id))
        _record(conn, batch_id, result.decision, result.reviewed, result.errors, result.rate, result.low, result.high,
                result.threshold, result.confidence, details)
    return result


def reopen_batch(ws: Workspace, batch_id: int) -> GateDecision:
    """Undo a pass or a fail: the batch returns to the status it had, its selected rows are removed, and a
    'reopened' decision is recorded. Reviews and the sample are kept."""
    require_batch(ws, batch_id)
    with ws.write() as conn:
        status = conn.execute("SELECT status FROM batch WHERE id=?", (batch_id,)).fetchone()["status"]
        if status not in REVIEW_STATES:
            raise ReviewError(f"Batch #{batch_id} has no pass or fail to undo (it is {status}).")
        last = conn.execute("SELECT * FROM gate_decision WHERE batch_id=? AND decision IN ('pass','fail') "
                            "ORDER BY id DESC LIMIT 1", (batch_id,)).fetchone()
        previous = json.loads(last["details"]).get("previous_status", "done") if last else "done"
        if previous in REVIEW_STATES or not previous:
            previous = "done"
        removed = conn.execute("DELETE FROM selection WHERE batch_id=?", (batch_id,)).rowcount
        conn.execute("UPDATE batch SET status=?, updated_at=? WHERE id=?", (previous, utc_now(), batch_id))
        _record(conn, batch_id, "reopened", last["reviewed"] if last else 0, last["errors"] if last else 0,
                last["rate"] if last else None, last["low"] if last else None, last["high"] if last else None,
                last["threshold"] if last else 0.0, last["confidence"] if last else 0.0,
                {"undid": last["id"] if last else None, "status_was": status, "selection_removed": removed})
    return decisions(ws, batch_id)[-1]


def decisions(ws: Workspace, batch_id: int) -> list[GateDecision]:
    """Every applied gate decision of the batch, oldest first (the audit trail)."""
    with ws.read() as conn:
        rows = conn.execute("SELECT * FROM gate_decision WHERE batch_id=? ORDER BY id", (batch_id,)).fetchall()
    return [GateDecision(r["id"], r["batch_id"], r["decision"], r["reviewed"], r["errors"], r["rate"], r["low"],
                         r["high"], r["threshold"], r["confidence"], json.loads(r["details"] or "{}"), r["created_at"])
            for r in rows]
