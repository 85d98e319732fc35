"""How far to trust the judge, the filters and the reviewers: their agreement on a batch's reviewed rows.

People's verdicts are the reference. A row's human verdict is the combined one of verdicts.py (the newest
review per (row, reviewer); reject if any reviewer rejects, else edit, else accept), reduced to two
classes: "reject", or "keep" for accept and edit alike, since an edited row is kept (with the edit). Every
reviewed row of the batch counts, in the review sample or not.

Each automatic check makes the same two-way call on a row:
- the judge: "reject" when the overall score of the row's newest judgement is below `judge_threshold`.
  The default is 3.0, the middle of the 1-5 scale (the overall score is the mean of three 1-5 criteria,
  so below 3 is below "acceptable" on average); the gate and the Review tab pass the selection's lowest
  judge score instead when one is set, since that is the cut the judge would make;
- each filter: "reject" when it failed the row (its `filter_result` row has passed = 0).
Rows the review sample was drawn from had passed every filter, so a filter can only show its agreement on
reviewed rows it failed, i.e. rows reviewed outside the sample or filtered again after the review.

For the judge and each filter: accuracy (share of rows where it and the people agree), precision and
recall of "reject" (of the rows it rejects, how many people rejected; of the rows people rejected, how
many it caught), each with a Wilson interval, and Cohen's kappa (agreement beyond chance) with its
interval; for the judge's scores also Spearman's rho and Kendall's tau-b against the verdict (1 keep,
0 reject) and against the reviewers' 1-5 accuracy ratings (their mean per row) where they gave some.

Between reviewers, on rows two or more reviewed: the share of rows where all agree, Cohen's kappa per pair
of reviewers, Fleiss' kappa over the rows with the most common number of reviewers, and Krippendorff's
alpha (nominal) over all of them, on keep / reject.

`judge_usable` answers whether the judge may select rows by its score: None with fewer than MIN_JUDGED
rows both judged and reviewed (or when kappa is undefined, e.g. nobody rejected anything); False when
kappa's upper interval bound is below KAPPA_REACH (even the most favourable reading is short of
"moderate" agreement in Landis & Koch's (1977) terms) or kappa itself is below KAPPA_FLOOR ("slight" at
best, however wide a small sample's interval is); True otherwise.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from studio.errors import ReviewError
from studio.review.agreement import (
    Estimate,
    category_counts,
    cohen_kappa,
    fleiss_kappa,
    kendall_tau_b,
    krippendorff_alpha,
    spearman,
    wilson,
)
from studio.review.sampling import require_batch
from studio.review.selection import judge_scores
from studio.review.verdicts import Review, combine, latest_reviews
from studio.workspace import Workspace

DEFAULT_JUDGE_THRESHOLD = 3.0
MIN_JUDGED = 10
"""Rows both judged and reviewed before the judge is called usable or not."""
KAPPA_REACH = 0.4
"""Kappa's upper interval bound must reach this ("moderate" agreement, Landis & Koch 1977)..."""
KAPPA_FLOOR = 0.2
"""...and kappa itself must be at least this (above "slight")."""
REJECT, KEEP = "reject", "keep"


def human_label(verdict: str) -> str:
    """accept and edit keep the row (an edited row is kept, as edited); reject drops it."""
    return REJECT if verdict == "reject" else KEEP


def threshold_for(min_judge_score: float | None) -> float:
    """The judge's reject cut: the selection's lowest judge score when one is set, else 3.0."""
    return float(min_judge_score) if min_judge_score else DEFAULT_JUDGE_THRESHOLD


@dataclass(frozen=True)
class CheckAgreement:
    """One automatic check (the judge, or a filter) against the people's verdicts."""

    name: str
    title: str
    n: int
    """Rows both reviewed and checked."""
    agree: int
    both_reject: int
    check_only: int
    """Rows the check rejects and people kept."""
    people_only: int
    """Rows people rejected and the check kept."""
    both_keep: int
    accuracy: Estimate
    precision: Estimate
    """Of the rows the check rejects, the share people rejected."""
    recall: Estimate
    """Of the rows people rejected, the share the check rejects."""
    kappa: Estimate
    spearman: Estimate | None = None
    """Judge only: its score against the verdict (1 keep, 0 reject)."""
    kendall: Estimate | None = None
    spearman_accuracy: Estimate | None = None
    """Judge only: its score against the reviewers' 1-5 accuracy ratings (mean per row), where given."""
    kendall_accuracy: Estimate | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.__dataclass_fields__:
            value = getattr(self, key)
            out[key] = value.to_dict() if isinstance(value, Estimate) else value
        return out


@dataclass(frozen=True)
class ReviewerPair:
    reviewers: tuple[str, str]
    n: int
    agreement: Estimate
    kappa: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"reviewers": list(self.reviewers), "n": self.n, "agreement": self.agreement.to_dict(),
                "kappa": self.kappa.to_dict()}


@dataclass(frozen=True)
class ReviewerAgreement:
    rows: int
    """Rows reviewed by two or more people."""
    agreed: int
    """Of those, rows on which every reviewer gave the same keep / reject."""
    reviewers: list[str]
    all_agree: Estimate
    """agreed / rows, with its interval."""
    pairs: list[ReviewerPair]
    fleiss: Estimate
    fleiss_raters: int
    """Fleiss' kappa needs the same number of reviewers per row: the most common number, on its rows."""
    alpha: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "agreed": self.agreed, "reviewers": self.reviewers,
                "all_agree": self.all_agree.to_dict(),
                "pairs": [p.to_dict() for p in self.pairs], "fleiss": self.fleiss.to_dict(),
                "fleiss_raters": self.fleiss_raters, "alpha": self.alpha.to_dict()}


@dataclass(frozen=True)
class Calibration:
    batch_id: int
    reviewed: int
    rejected: int
    """Reviewed rows whose combined verdict is reject."""
    judge_threshold: float
    confidence: float
    judge: CheckAgreement
    filters: list[CheckAgreement]
    reviewers: ReviewerAgreement
    judge_usable: bool | None
    judge_message: str
    rules: dict[str, float] = field(default_factory=lambda: {"min_judged": MIN_JUDGED, "kappa_reach": KAPPA_REACH,
                                                             "kappa_floor": KAPPA_FLOOR})

    def to_dict(self) -> dict[str, Any]:
        return {"batch_id": self.batch_id, "reviewed": self.reviewed, "rejected": self.rejected,
                "judge_threshold": self.judge_threshold, "confidence": self.confidence,
                "judge": self.judge.to_dict(), "filters": [f.to_dict() for f in self.filters],
                "reviewers": self.reviewers.to_dict(), "judge_usable": self.judge_usable,
                "judge_message": self.judge_message, "rules": dict(self.rules)}

    def summary(self) -> dict[str, Any]:
        """The few numbers a gate decision records."""
        return {"reviewed": self.reviewed, "judge_threshold": self.judge_threshold,
                "judge_n": self.judge.n, "judge_agree": self.judge.agree,
                "judge_kappa": self.judge.kappa.value, "judge_kappa_low": self.judge.kappa.low,
                "judge_kappa_high": self.judge.kappa.high, "judge_usable": self.judge_usable,
                "judge_message": self.judge_message,
                "filters": {f.name: {"n": f.n, "agree": f.agree, "kappa": f.kappa.value} for f in self.filters},
                "reviewer_rows": self.reviewers.rows, "reviewer_alpha": self.reviewers.alpha.value}

    def judge_warning(self, min_judge_score: float | None) -> str | None:
        """The line the gate shows when rows would be selected by the judge's score but the judge is too far
        from the reviewers for that; None otherwise."""
        if not min_judge_score or self.judge_usable is not False:
            return None
        return (f"The judge is too far from the reviewers to select by its score: {self.judge_message} Set the "
                "lowest judge score to 0 to keep rows whatever the judge says.")


# --- the comparisons -----------------------------------------------------------------------------------


def _check(name: str, title: str, pairs: list[tuple[str, str]], confidence: float) -> CheckAgreement:
    """`pairs`: (people's label, the check's label) per row."""
    counts = Counter(pairs)
    both_reject, check_only = counts[(REJECT, REJECT)], counts[(KEEP, REJECT)]
    people_only, both_keep = counts[(REJECT, KEEP)], counts[(KEEP, KEEP)]
    n, agree = len(pairs), both_reject + both_keep
    precision = wilson(both_reject, both_reject + check_only, confidence)
    if precision.value is None:
        precision = Estimate(None, reason="it rejected none of these rows")
    recall = wilson(both_reject, both_reject + people_only, confidence)
    if recall.value is None:
        recall = Estimate(None, reason="people rejected none of these rows")
    kappa = cohen_kappa([p for p, _ in pairs], [c for _, c in pairs], confidence)
    return CheckAgreement(name, title, n, agree, both_reject, check_only, people_only, both_keep,
                          wilson(agree, n, confidence), precision, recall, kappa)


def _judge_verdict(judge: CheckAgreement) -> tuple[bool | None, str]:
    k = judge.kappa
    if judge.n < MIN_JUDGED:
        return None, (f"Not enough rows to tell: {judge.n} reviewed row{'s' if judge.n != 1 else ''} "
                      f"{'have' if judge.n != 1 else 'has'} a judge score, and {MIN_JUDGED} are needed.")
    agrees = f"The judge agrees with the reviewers on {judge.agree} of {judge.n} rows"
    if k.value is None:
        return None, f"{agrees}, but cannot be rated against chance: {k.reason}."
    stats = f"κ {k.value:.2f}"
    if k.low is not None and k.high is not None:
        stats += f", interval {k.low:.2f} to {k.high:.2f}"
    if (k.high is not None and k.high < KAPPA_REACH) or k.value < KAPPA_FLOOR:
        chance = "less than chance would" if k.value < 0 else "little more than chance would"
        return False, (f"{agrees}, {chance} ({stats}; at least {KAPPA_FLOOR:g} is needed, with an interval "
                       f"reaching {KAPPA_REACH:g}).")
    return True, f"{agrees} ({stats}): close enough to select rows by its score."


def _reviewer_agreement(reviews: list[Review], confidence: float) -> ReviewerAgreement:
    by_row: dict[int, dict[str, str]] = {}
    for r in reviews:
        by_row.setdefault(r.candidate_id, {})[r.reviewer] = human_label(r.verdict)
    shared = {cid: labels for cid, labels in by_row.items() if len(labels) >= 2}
    names = sorted({who for labels in shared.values() for who in labels})
    agreed = sum(len(set(labels.values())) == 1 for labels in shared.values())
    pairs = []
    for a, b in itertools.combinations(names, 2):
        both = [(labels[a], labels[b]) for labels in shared.values() if a in labels and b in labels]
        if both:
            pairs.append(ReviewerPair((a, b), len(both), wilson(sum(x == y for x, y in both), len(both), confidence),
                                      cohen_kappa([x for x, _ in both], [y for _, y in both], confidence)))
    sizes = Counter(len(labels) for labels in shared.values())
    raters = max(sizes, key=lambda m: (sizes[m], m)) if sizes else 0
    fleiss = fleiss_kappa(category_counts([list(labels.values()) for labels in shared.values()
                                           if len(labels) == raters], (KEEP, REJECT)), confidence)
    if not shared:
        fleiss = Estimate(None, reason="no row has two or more reviewers")
    alpha = krippendorff_alpha([[labels.get(who) for who in names] for labels in shared.values()], confidence)
    return ReviewerAgreement(len(shared), agreed, names, wilson(agreed, len(shared), confidence), pairs, fleiss,
                             raters, alpha)


def calibrate_in(conn: sqlite3.Connection, batch_id: int, *, judge_threshold: float | None = None,
                 confidence: float = 0.95) -> Calibration:
    """The calibration of a batch, read on `conn` (inside the caller's transaction)."""
    threshold = DEFAULT_JUDGE_THRESHOLD if judge_threshold is None else judge_threshold
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 1 <= threshold <= 5:
        raise ReviewError(f"The judge's threshold must be a score from 1 to 5, e.g. 3 (got {judge_threshold!r}).")
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0.5 < confidence < 0.999:
        raise ReviewError(f"The confidence must be above 0.5 and below 0.999, e.g. 0.95 (got {confidence!r}).")
    threshold, confidence = float(threshold), float(confidence)
    reviews = latest_reviews(conn, batch_id)
    grouped: dict[int, list[Review]] = {}
    for r in reviews:
        grouped.setdefault(r.candidate_id, []).append(r)
    people = {cid: human_label(combine(cid, rs).verdict) for cid, rs in grouped.items()}
    ratings = {cid: [r.accuracy for r in rs if r.accuracy is not None] for cid, rs in grouped.items()}

    scores = judge_scores(conn, batch_id)
    judged = sorted(cid for cid in people if cid in scores)
    judge = _check("judge", f"Judge (rejects below {threshold:g})",
                   [(people[cid], REJECT if scores[cid] < threshold else KEEP) for cid in judged], confidence)
    kept = [1.0 if people[cid] == KEEP else 0.0 for cid in judged]
    rated = [cid for cid in judged if ratings[cid]]
    mean_rating = [sum(ratings[cid]) / len(ratings[cid]) for cid in rated]
    judge = replace(judge, spearman=spearman([scores[c] for c in judged], kept, confidence),
                    kendall=kendall_tau_b([scores[c] for c in judged], kept, confidence),
                    spearman_accuracy=spearman([scores[c] for c in rated], mean_rating, confidence),
                    kendall_accuracy=kendall_tau_b([scores[c] for c in rated], mean_rating, confidence))

    from studio.quality.filters import FILTERS

    outcomes: dict[str, dict[int, bool]] = {}
    for row in conn.execute("SELECT fr.candidate_id, fr.filter, fr.passed FROM filter_result fr "
                            "JOIN candidate c ON c.id = fr.candidate_id WHERE c.batch_id = ? ORDER BY fr.id",
                            (batch_id,)):
        if row["candidate_id"] in people:
            outcomes.setdefault(row["filter"], {})[row["candidate_id"]] = bool(row["passed"])
    order = {name: i for i, name in enumerate(FILTERS)}
    filters = [_check(name, FILTERS[name].title if name in FILTERS else name,
                      [(people[cid], KEEP if passed else REJECT) for cid, passed in sorted(results.items())],
                      confidence)
               for name, results in sorted(outcomes.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))]

    usable, message = _judge_verdict(judge)
    return Calibration(batch_id, len(people), sum(v == REJECT for v in people.values()), threshold, confidence,
                       judge, filters, _reviewer_agreement(reviews, confidence), usable, message)


def calibrate(ws: Workspace, batch_id: int, *, judge_threshold: float | None = None,
              confidence: float = 0.95) -> Calibration:
    """How the judge and the filters agree with the reviewers on the batch, and the reviewers with each
    other, read in one transaction. Writes nothing."""
    require_batch(ws, batch_id)
    with ws.read() as conn:
        # One snapshot: verdicts, scores and filter marks as of the same moment, whatever is written meanwhile.
        conn.execute("BEGIN")
        try:
            return calibrate_in(conn, batch_id, judge_threshold=judge_threshold, confidence=confidence)
        finally:
            conn.execute("ROLLBACK")
