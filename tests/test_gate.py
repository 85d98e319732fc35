"""The review gate's statistics (Wilson interval) and every branch of its decision rule, on a real workspace."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from studio.errors import ReviewError
from studio.review.gate import GateConfig, evaluate_gate, wilson_interval
from studio.review.sampling import draw_sample
from studio.review.verdicts import record_verdict
from studio.workspace import Workspace
from tests.conftest import snapshot
from tests.factories import add_batch, project_with_seeds

# --- the interval ------------------------------------------------------------------------------------

# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in Medicine
# 17:857-872, Table I, method 3 (Wilson score interval without continuity correction), 95%.
NEWCOMBE = [((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)), ((0, 20), (0.0, 0.1611)),
            ((1, 29), (0.0061, 0.1718))]


@pytest.mark.parametrize(("kn", "expected"), [*NEWCOMBE, ((5, 50), (0.0435, 0.2136))])
def test_wilson_interval_matches_published_values(kn: tuple[int, int], expected: tuple[float, float]) -> None:
    low, high = wilson_interval(*kn)
    assert (round(low, 4), round(high, 4)) == expected


def _wilson_by_quadratic(k: int, n: int, z: float) -> tuple[float, float]:
    """The textbook derivation, solved independently: the p with |p̂ − p| = z·√(p(1−p)/n) are the roots of
    (1 + z²/n)·p² − (2p̂ + z²/n)·p + p̂² = 0."""
    phat = k / n
    a, b, c = 1 + z * z / n, -(2 * phat + z * z / n), phat * phat
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


@pytest.mark.parametrize(("k", "n", "confidence", "z"), [(2, 40, 0.95, 1.959964), (7, 31, 0.90, 1.644854),
                                                         (12, 25, 0.99, 2.575829)])
def test_wilson_interval_agrees_with_the_quadratic_form(k: int, n: int, confidence: float, z: float) -> None:
    low, high = wilson_interval(k, n, confidence)
    ref_low, ref_high = _wilson_by_quadratic(k, n, z)
    assert low == pytest.approx(ref_low, abs=1e-5) and high == pytest.approx(ref_high, abs=1e-5)
    assert (round(wilson_interval(2, 40)[0], 4), round(wilson_interval(2, 40)[1], 4)) == (0.0138, 0.1650)


def test_wilson_interval_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    narrow, wide = wilson_interval(5, 50, 0.90), wilson_interval(5, 50, 0.99)
    assert wide[0] < narrow[0] < 0.1 < narrow[1] < wide[1]
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


# --- the decision rule -------------------------------------------------------------------------------


def _rows(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"instruction": f"Explain topic number {i} to a new colleague.", "input": "",
             "output": f"Topic {i} works like this: first you look at it, then you decide."}
            for i in range(start, start + n)]


@pytest.fixture
def pid(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds)


def _reviewed(ws: Workspace, pid: int, rows: int, reviews: int, rejects: int, edits: int = 0) -> int:
    """A batch of `rows` rows whose sample's first `reviews` items are reviewed: rejects, then edits, then accepts."""
    batch_id = add_batch(ws, pid, _rows(rows))
    sample = draw_sample(ws, batch_id)
    with ws.read() as conn:
        data = {r["id"]: r["data"] for r in conn.execute("SELECT id, data FROM candidate WHERE batch_id=?",
                                                          (batch_id,))}
    for i, item in enumerate(sample.items[:reviews]):
        if i < rejects:
            record_verdict(ws, item.candidate_id, verdict="reject", reason_tags=["hallucination"], reviewer="ann")
        elif i < rejects + edits:
            import json

            fixed = {**json.loads(data[item.candidate_id]), "output": "A corrected answer."}
            record_verdict(ws, item.candidate_id, verdict="edit", edited_data=fixed, reviewer="ann")
        else:
            record_verdict(ws, item.candidate_id, verdict="accept", reviewer="ann")
    return batch_id


def test_too_few_reviews_is_inconclusive_and_says_how_many_more(ws: Workspace, pid: int) -> None:
    batch_id = _reviewed(ws, pid, 200, reviews=5, rejects=0)
    result = evaluate_gate(ws, batch_id)
    assert (result.decision, result.reviewed, result.more_reviews_needed) == ("inconclusive", 5, 15)
    assert "review 15 more" in result.message


def test_interval_wholly_above_threshold_fails(ws: Workspace, pid: int) -> None:
    result = evaluate_gate(ws, _reviewed(ws, pid, 200, reviews=20, rejects=10))
    assert result.decision == "fail" and result.low > 0.10
    assert result.message.startswith("10 of 20 reviewed rows had errors: 50.0% (95% interval")
    assert result.tag_counts == {"hallucination": 10}


def test_rate_at_or_below_threshold_passes_with_its_interval(ws: Workspace, pid: int) -> None:
    batch_id = _reviewed(ws, pid, 400, reviews=40, rejects=3)
    result = evaluate_gate(ws, batch_id)
    assert result.decision == "pass" and result.high > 0.10  # passes on the rate; the interval is shown
    assert result.message == ("3 of 40 reviewed rows had errors: 7.5% (95% interval 2.6%–19.9%), at most 10% "
                              "allowed: the batch passes.")
    exactly = evaluate_gate(ws, _reviewed(ws, pid, 200, reviews=20, rejects=2))
    assert exactly.rate == pytest.approx(0.10) and exactly.decision == "pass"


def test_rate_above_threshold_with_interval_below_asks_for_enough_reviews(ws: Workspace, pid: int) -> None:
    batch_id = _reviewed(ws, pid, 400, reviews=20, rejects=4)
    result = evaluate_gate(ws, batch_id)
    assert result.decision == "inconclusive" and result.low <= 0.10 < result.rate
    m, z = result.more_reviews_needed, 1.959964
    # At the same rate, m more reviews lift the low end above 10%, and m - 1 would not.
    assert _wilson_by_quadratic(0.2 * (20 + m), 20 + m, z)[0] > 0.10
    assert _wilson_by_quadratic(0.2 * (20 + m - 1), 20 + m - 1, z)[0] <= 0.10
    assert f"about {m} more reviews" in result.message


def test_more_reviews_needed_is_capped_at_the_rows_left(ws: Workspace, pid: int) -> None:
    batch_id = _reviewed(ws, pid, 25, reviews=20, rejects=4)
    result = evaluate_gate(ws, batch_id)
    assert result.decision == "inconclusive" and result.more_reviews_needed == 5 == result.reviewable_left


def test_when_every_row_is_reviewed_the_rate_decides(ws: Workspace, pid: int) -> None:
    failing = evaluate_gate(ws, _reviewed(ws, pid, 12, reviews=12, rejects=2))
    assert failing.decision == "fail" and failing.low < 0.10 < failing.rate
    assert "every row has been reviewed" in failing.message
    passing = evaluate_gate(ws, _reviewed(ws, pid, 10, reviews=10, rejects=1))
    assert passing.decision == "pass" and passing.reviewed == 10  # fewer than min_reviews, but nothing is left


def test_edits_count_as_errors_only_when_configured(ws: Workspace, pid: int) -> None:
    batch_id = _reviewed(ws, pid, 200, reviews=20, rejects=1, edits=6)
    counted = evaluate_gate(ws, batch_id)
    assert (counted.errors, counted.decision) == (7, "fail")
    lenient = evaluate_gate(ws, batch_id, GateConfig(count_edits_as_errors=False))
    assert (lenient.errors, lenient.decision) == (1, "pass")


def test_only_rows_of_the_sample_count(ws: Workspace, pid: int) -> None:
    batch_id = _reviewed(ws, pid, 200, reviews=20, rejects=0)
    sample = draw_sample(ws, batch_id)
    with ws.read() as conn:
        outside = [r[0] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=? ORDER BY id", (batch_id,))
                   if r[0] not in set(sample.candidate_ids)]
    for cid in outside[:15]:
        record_verdict(ws, cid, verdict="reject", reason_tags=["format"], reviewer="ann")
    result = evaluate_gate(ws, batch_id)
    assert (result.reviewed, result.errors, result.decision) == (20, 0, "pass")


def test_threshold_and_confidence_change_the_decision(ws: Workspace, pid: int) -> None:
    batch_id = _reviewed(ws, pid, 400, reviews=40, rejects=6)  # 15%
    assert evaluate_gate(ws, batch_id, GateConfig(threshold=0.2)).decision == "pass"
    # The low end is 10.9% at 60% confidence but 5.6% at 99%: the same reviews fail or need more.
    assert evaluate_gate(ws, batch_id, GateConfig(threshold=0.06, confidence=0.6)).decision == "fail"
    assert evaluate_gate(ws, batch_id, GateConfig(threshold=0.06, confidence=0.99)).decision == "inconclusive"


def test_no_sample_yet_is_a_plain_error(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(30))
    with pytest.raises(ReviewError, match="no review sample yet"):
        evaluate_gate(ws, batch_id)


@pytest.mark.parametrize("config", [GateConfig(threshold=0), GateConfig(threshold=1), GateConfig(threshold=-0.1),
                                    GateConfig(threshold=1.5), GateConfig(confidence=0.5),
                                    GateConfig(confidence=0.999), GateConfig(confidence=0.3),
                                    GateConfig(min_reviews=0), GateConfig(min_reviews=True),  # type: ignore[arg-type]
                                    GateConfig(threshold="0.1")])  # type: ignore[arg-type]
def test_bad_gate_settings_are_refused_and_write_nothing(ws: Workspace, pid: int, config: GateConfig) -> None:
    batch_id = _reviewed(ws, pid, 40, reviews=20, rejects=1)
    from studio.review.gate import apply_gate

    before = snapshot(ws)
    with pytest.raises(ReviewError):
        config.check()
    with pytest.raises(ReviewError):
        apply_gate(ws, batch_id, config)
    assert snapshot(ws) == before


def test_gate_config_round_trips() -> None:
    config = GateConfig(threshold=0.05, confidence=0.9, min_reviews=30, count_edits_as_errors=False)
    config.check()
    assert GateConfig.from_dict(config.to_dict()) == config
