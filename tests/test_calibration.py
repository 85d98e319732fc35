"""Calibration on a real workspace: a batch with judge scores, filter marks and two reviewers' verdicts, the
exact counts and statistics it gives (worked out by hand, and checked against scikit-learn / statsmodels /
krippendorff), the degenerate batches, the gate's record and warning, the Review tab's block and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.errors import ReviewError
from studio.review.calibration import calibrate
from studio.review.gate import GateConfig, apply_gate, decisions, evaluate_gate
from studio.review.sampling import draw_sample
from studio.review.selection import SelectionConfig
from studio.review.verdicts import record_verdict
from studio.workspace import Workspace, utc_now
from tests.factories import add_batch, project_with_seeds

# The first 20 sample items, by position i = 0..19. People reject (combined) rows 0-5 and 7:
#   ana: reject 0-5, edit 6, accept 7-19 (accuracy 1 on her rejects, 4 on rows 6-9, none after);
#   bo:  the first 10 rows; agrees with ana except row 5 (accepts) and row 7 (rejects). His first word on
#        row 8 was reject; he changed it to accept (the newest review counts).
PEOPLE_REJECT = {0, 1, 2, 3, 4, 5, 7}
# The judge's overall scores: low (reject at 3) on 0-3, 7 and 8-9; high on the rest (it misses 4 and 5).
SCORES = {0: 2.0, 1: 2.0, 2: 1.6667, 3: 2.3333, 4: 4.0, 5: 3.6667, 6: 4.0, 7: 2.3333, 8: 2.6667, 9: 2.6667,
          **{i: 4.3333 if i % 2 else 4.6667 for i in range(10, 20)}}
HEURISTICS_FAIL = {4, 10}


def _rows(n: int) -> list[dict[str, str]]:
    return [{"instruction": f"Explain topic number {i} to a new colleague.", "input": "",
             "output": f"Topic {i} works like this: first you look at it, then you decide."} for i in range(n)]


@pytest.fixture
def pid(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds)


def _judge(ws: Workspace, scores: dict[int, float | None]) -> None:
    """Judgements as judge.py stores them: an older one, then the newest that counts."""
    now = utc_now()
    with ws.write() as conn:
        for cid, overall in scores.items():
            conn.execute("INSERT INTO judgement(candidate_id, overall, created_at) VALUES (?, 5.0, ?)", (cid, now))
            conn.execute("INSERT INTO judgement(candidate_id, overall, parse_status, created_at) VALUES (?, ?, ?, ?)",
                         (cid, overall, "ok" if overall is not None else "failed", now))


def _filters(ws: Workspace, results: dict[int, dict[str, bool]]) -> None:
    now = utc_now()
    with ws.write() as conn:
        for cid, by_name in results.items():
            for name, passed in by_name.items():
                conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, reason, created_at) "
                             "VALUES (?, ?, ?, ?, ?)", (cid, name, int(passed), "" if passed else "marked", now))


@pytest.fixture
def batch(ws: Workspace, pid: int) -> tuple[int, list[int]]:
    """(batch id, candidate ids of the first 20 sample items, by position)."""
    batch_id = add_batch(ws, pid, _rows(30))
    items = [i.candidate_id for i in draw_sample(ws, batch_id).items[:20]]
    with ws.read() as conn:
        data = {r["id"]: json.loads(r["data"]) for r in conn.execute("SELECT id, data FROM candidate")}
    for i, cid in enumerate(items):
        if i == 6:
            record_verdict(ws, cid, verdict="edit", reviewer="ana", accuracy=4,
                           edited_data={**data[cid], "output": "A corrected answer."})
        else:
            reject = i <= 5
            record_verdict(ws, cid, verdict="reject" if reject else "accept", reviewer="ana",
                           reason_tags=["hallucination"] if reject else [],
                           accuracy=1 if reject else (4 if i <= 9 else None))
    for i, cid in enumerate(items[:10]):
        if i == 8:
            record_verdict(ws, cid, verdict="reject", reviewer="bo", reason_tags=["format"])
        reject = (i <= 4) or i == 7
        record_verdict(ws, cid, verdict="reject" if reject else "accept", reviewer="bo",
                       reason_tags=["format"] if reject else [])
    outside = [r for r in range(1, 31) if r not in items][:3]  # unreviewed rows: judged and filtered, not counted
    _judge(ws, {**{items[i]: s for i, s in SCORES.items()}, **{cid: 1.0 for cid in outside}})
    _filters(ws, {cid: {"exact_duplicate": True, "heuristics": i not in HEURISTICS_FAIL}
                  for i, cid in enumerate(items)} | {cid: {"heuristics": False} for cid in outside})
    return batch_id, items


def test_judge_filters_and_reviewers_against_hand_computed_values(ws: Workspace, batch: tuple[int, list[int]]
                                                                  ) -> None:
    from scipy.stats import kendalltau, spearmanr
    from sklearn.metrics import cohen_kappa_score

    batch_id, _ = batch
    cal = calibrate(ws, batch_id)
    assert (cal.reviewed, cal.rejected, cal.judge_threshold) == (20, 7, 3.0)

    # Judge rejects {0,1,2,3,7,8,9}; people {0,1,2,3,4,5,7}: both 5, judge only 2 (8, 9), people only 2 (4, 5),
    # both keep 11. Accuracy 16/20; precision 5/7, recall 5/7.
    # p_o = 0.8, p_e = 0.35² + 0.65² = 0.545, kappa = (0.8 − 0.545) / 0.455 = 0.56044.
    j = cal.judge
    assert (j.n, j.agree, j.both_reject, j.check_only, j.people_only, j.both_keep) == (20, 16, 5, 2, 2, 11)
    assert j.accuracy.value == 0.8 and j.precision.value == pytest.approx(5 / 7) == j.recall.value
    assert j.kappa.value == pytest.approx(0.255 / 0.455)
    people = ["reject" if i in PEOPLE_REJECT else "keep" for i in range(20)]
    judge = ["reject" if SCORES[i] < 3 else "keep" for i in range(20)]
    assert j.kappa.value == pytest.approx(cohen_kappa_score(people, judge))
    assert j.kappa.low < j.kappa.value < j.kappa.high
    assert 0 < j.accuracy.low < 0.8 < j.accuracy.high < 1
    scores = [SCORES[i] for i in range(20)]
    kept = [0 if i in PEOPLE_REJECT else 1 for i in range(20)]
    assert j.spearman.value == pytest.approx(spearmanr(scores, kept).statistic)
    assert j.kendall.value == pytest.approx(kendalltau(scores, kept).statistic)
    # Accuracy ratings on rows 0-9 only (ana's; bo gave none): 1 on 0-5, 4 on 6-9.
    ratings = [1] * 6 + [4] * 4
    assert j.spearman_accuracy.n == 10
    assert j.spearman_accuracy.value == pytest.approx(spearmanr(scores[:10], ratings).statistic)
    assert j.kendall_accuracy.value == pytest.approx(kendalltau(scores[:10], ratings).statistic)
    assert cal.judge_usable is True
    assert cal.judge_message.startswith("The judge agrees with the reviewers on 16 of 20 rows (κ 0.56")

    # Filters: only reviewed rows count (the 3 unreviewed rows that fail heuristics do not).
    by_name = {f.name: f for f in cal.filters}
    assert list(by_name) == ["exact_duplicate", "heuristics"]
    h = by_name["heuristics"]
    # Fails rows 4 (people reject) and 10 (people keep): both 1, filter only 1, people only 6, both keep 12.
    assert (h.n, h.agree, h.both_reject, h.check_only, h.people_only, h.both_keep) == (20, 13, 1, 1, 6, 12)
    assert h.precision.value == 0.5 and h.recall.value == pytest.approx(1 / 7)
    assert h.kappa.value == pytest.approx(cohen_kappa_score(people, ["reject" if i in HEURISTICS_FAIL else "keep"
                                                                     for i in range(20)]))
    d = by_name["exact_duplicate"]  # passes every row: no better than chance, and no precision to speak of
    assert d.kappa.value == 0.0 and d.precision.value is None and "rejected none" in d.precision.reason
    assert d.spearman is None

    # Reviewers: ana and bo share rows 0-9 and agree on 8 (not 5, not 7).
    # Cohen: p_o = 0.8, both reject 6/10: p_e = 0.36 + 0.16 = 0.52, kappa = 0.28 / 0.48 = 0.58333.
    # Fleiss (m = 2): P̄ = 0.8, pooled p_reject = 12/20: P̄_e = 0.52, kappa = 0.58333.
    # Krippendorff: o_RR = 10, o_KK = 6, o_RK = o_KR = 2; n_R = 12, n_K = 8, n = 20:
    #   alpha = 1 − 19·4 / (400 − 144 − 64) = 1 − 76/192 = 0.604167.
    r = cal.reviewers
    assert (r.rows, r.agreed, r.reviewers, r.fleiss_raters) == (10, 8, ["ana", "bo"], 2)
    (pair,) = r.pairs
    assert pair.reviewers == ("ana", "bo") and pair.n == 10 and pair.agreement.value == 0.8
    assert pair.kappa.value == pytest.approx(0.28 / 0.48) == r.fleiss.value
    assert r.alpha.value == pytest.approx(1 - 76 / 192)
    assert r.fleiss.low < r.fleiss.value < r.fleiss.high and r.alpha.low < r.alpha.value <= r.alpha.high
    assert calibrate(ws, batch_id).to_dict() == cal.to_dict()  # deterministic, bootstrap intervals included
    json.dumps(cal.to_dict())  # plain data all the way down


def test_the_threshold_moves_the_judges_cut(ws: Workspace, batch: tuple[int, list[int]]) -> None:
    batch_id, _ = batch
    # At 4.5, 4.0 / 3.6667 / 4.3333 are rejects too: the judge rejects 15 rows, 7 of them rightly.
    strict = calibrate(ws, batch_id, judge_threshold=4.5)
    assert (strict.judge.both_reject, strict.judge.check_only, strict.judge.people_only) == (7, 8, 0)
    assert strict.judge.title == "Judge (rejects below 4.5)"
    for bad in (0.5, 6, "3", True):
        with pytest.raises(ReviewError, match="score from 1 to 5"):
            calibrate(ws, batch_id, judge_threshold=bad)  # type: ignore[arg-type]
    with pytest.raises(ReviewError, match="confidence"):
        calibrate(ws, batch_id, confidence=1.0)
    with pytest.raises(ReviewError, match="no batch #999"):
        calibrate(ws, 999)


def test_three_reviewers_fleiss_takes_the_most_common_count(ws: Workspace, pid: int) -> None:
    import krippendorff
    import numpy as np
    from statsmodels.stats.inter_rater import fleiss_kappa

    batch_id = add_batch(ws, pid, _rows(20))
    items = [i.candidate_id for i in draw_sample(ws, batch_id).items]
    votes = {  # row -> (ana, bo, cy); None: did not review it
        0: ("reject", "reject", "reject"), 1: ("reject", "accept", "reject"), 2: ("accept", "accept", "accept"),
        3: ("accept", "accept", "reject"), 4: ("reject", "reject", "accept"), 5: ("accept", "accept", None),
        6: ("reject", None, "reject"), 7: (None, "accept", "accept"),
    }
    for row, by in votes.items():
        for who, verdict in zip(("ana", "bo", "cy"), by, strict=True):
            if verdict:
                record_verdict(ws, items[row], verdict=verdict, reviewer=who,
                               reason_tags=["other"] if verdict == "reject" else [])
    r = calibrate(ws, batch_id).reviewers
    assert (r.rows, r.agreed, r.fleiss_raters, r.fleiss.n) == (8, 5, 3, 5)
    table = np.array([[sum(v == "accept" for v in by), sum(v == "reject" for v in by)]
                      for by in list(votes.values())[:5]])
    assert r.fleiss.value == pytest.approx(fleiss_kappa(table))
    data = np.array([[np.nan if by[k] is None else float(by[k] == "reject") for by in votes.values()]
                     for k in range(3)])
    assert r.alpha.value == pytest.approx(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    assert [(p.reviewers, p.n) for p in r.pairs] == [(("ana", "bo"), 6), (("ana", "cy"), 6), (("bo", "cy"), 6)]


def test_degenerate_batches_say_why_instead_of_crashing(ws: Workspace, pid: int) -> None:
    empty = add_batch(ws, pid, _rows(25))
    cal = calibrate(ws, empty)  # no sample, no review, no judge
    assert (cal.reviewed, cal.judge.n, cal.judge_usable, cal.filters, cal.reviewers.rows) == (0, 0, None, [], 0)
    assert cal.judge_message == "Not enough rows to tell: 0 reviewed rows have a judge score, and 10 are needed."
    assert cal.judge.accuracy.reason == "no rows" and cal.judge.spearman.reason == "no rows"
    assert cal.reviewers.alpha.value is None and cal.reviewers.fleiss.reason == "no row has two or more reviewers"

    # Everyone keeps everything: the judge cannot be rated against chance yet.
    calm = add_batch(ws, pid, _rows(25))
    items = [i.candidate_id for i in draw_sample(ws, calm).items]
    for cid in items[:12]:
        record_verdict(ws, cid, verdict="accept", reviewer="ana")
    _judge(ws, {cid: 4.0 for cid in items[:12]})
    cal = calibrate(ws, calm)
    assert (cal.judge.n, cal.judge.agree, cal.judge_usable) == (12, 12, None)
    assert "cannot be rated against chance: both gave the same single answer" in cal.judge_message
    assert cal.judge.spearman.value is None and "the same" in cal.judge.spearman.reason
    assert cal.judge_warning(3.0) is None  # unknown is not "too far"

    # Unreadable judge answers (no overall score) are not scores.
    _judge(ws, {items[0]: None})
    assert calibrate(ws, calm).judge.n == 11

    # A judge that agrees on every row: kappa 1 with no interval (it would have no width); usable.
    record_verdict(ws, items[1], verdict="reject", reviewer="ana", reason_tags=["other"])
    _judge(ws, {items[1]: 2.0})
    cal = calibrate(ws, calm)
    assert (cal.judge.kappa.value, cal.judge.kappa.high, cal.judge_usable) == (1.0, None, True)
    assert cal.judge_message == ("The judge agrees with the reviewers on 11 of 11 rows (κ 1.00): close enough to "
                                 "select rows by its score.")


def bad_judge_batch(ws: Workspace, pid: int) -> int:
    """20 reviewed rows, 4 rejected; the judge scores them the wrong way round."""
    batch_id = add_batch(ws, pid, _rows(30))
    items = [i.candidate_id for i in draw_sample(ws, batch_id).items[:20]]
    for i, cid in enumerate(items):
        record_verdict(ws, cid, verdict="reject" if i < 4 else "accept", reviewer="ana",
                       reason_tags=["hallucination"] if i < 4 else [])
    _judge(ws, {cid: (4.6667 if i < 4 else 2.0 if i < 12 else 4.0) for i, cid in enumerate(items)})
    return batch_id


def test_a_judge_far_from_the_reviewers_is_flagged_and_the_gate_records_it(ws: Workspace, pid: int) -> None:
    batch_id = bad_judge_batch(ws, pid)
    cal = calibrate(ws, batch_id)
    # Judge rejects rows 4-11 (8), people rows 0-3 (4): agreement on 8 of 20 (rows 12-19), kappa < 0.
    assert (cal.judge.agree, cal.judge.n, cal.judge_usable) == (8, 20, False)
    assert cal.judge.kappa.value < 0 and cal.judge.kappa.high < 0.4
    assert "less than chance would" in cal.judge_message
    assert cal.judge_warning(None) is None and cal.judge_warning(0) is None
    warning = cal.judge_warning(3.0)
    assert warning.startswith("The judge is too far from the reviewers to select by its score")

    gate = GateConfig(threshold=0.25)
    expected = evaluate_gate(ws, batch_id, gate)
    result = apply_gate(ws, batch_id, gate, selection=SelectionConfig(min_judge_score=3.0))
    assert result == expected and result.decision == "pass"  # the gate's arithmetic is untouched
    details = decisions(ws, batch_id)[-1].details
    assert details["judge_warning"] == warning
    summary = details["calibration"]
    assert (summary["judge_usable"], summary["judge_n"], summary["judge_agree"]) == (False, 20, 8)
    assert summary["judge_kappa"] == pytest.approx(cal.judge.kappa.value)


def test_a_gate_without_judge_selection_records_calibration_but_no_warning(ws: Workspace, pid: int) -> None:
    from studio.review.gate import reopen_batch

    batch_id = bad_judge_batch(ws, pid)
    apply_gate(ws, batch_id, GateConfig(threshold=0.25))
    details = decisions(ws, batch_id)[-1].details
    assert "judge_warning" not in details and details["calibration"]["judge_usable"] is False
    reopen_batch(ws, batch_id)
    apply_gate(ws, batch_id, GateConfig(threshold=0.25), selection=SelectionConfig(min_judge_score=4.5))
    # At 4.5 the judge's cut is a different one: rows under 4.5 are its rejects.
    assert decisions(ws, batch_id)[-1].details["calibration"]["judge_threshold"] == 4.5


def test_review_tab_block_shows_the_numbers_and_the_warning(ws: Workspace, pid: int,
                                                            batch: tuple[int, list[int]]) -> None:
    from studio.ui.review import calibration_html

    batch_id, _ = batch
    html = calibration_html(calibrate(ws, batch_id), 3.0)
    assert "data-judge-usable='true'" in html and "data-warning='false'" in html
    assert "16 of 20 rows" in html and "data-reviewer-rows='10'" in html
    assert "Reviewers (ana, bo) saw 10 rows in common and all agreed on 8" in html
    bad = calibration_html(calibrate(ws, bad_judge_batch(ws, pid)), 3.0)
    assert "data-judge-usable='false'" in bad and "data-warning='true'" in bad
    assert "too far from the reviewers to select by its score" in bad
    assert "data-warning='false'" in calibration_html(calibrate(ws, bad_judge_batch(ws, pid)), 0)


def test_cli_calibration(ws: Workspace, pid: int, batch: tuple[int, list[int]]) -> None:
    from typer.testing import CliRunner

    from studio.cli import app

    batch_id, _ = batch
    home = str(ws.home)

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--home", home])
        assert result.exit_code == 0, (result.stdout, result.exception)
        return result.stdout

    data = json.loads(cli("review", "calibration", str(batch_id), "--json"))
    assert data == json.loads(json.dumps(calibrate(ws, batch_id).to_dict()))
    assert data["judge"]["agree"] == 16 and data["judge_usable"] is True and data["reviewers"]["rows"] == 10
    assert json.loads(cli("review", "calibration", "--batch", str(batch_id), "--json", "--threshold", "4.5")
                      )["judge"]["check_only"] == 8
    text = cli("review", "calibration", str(batch_id))
    assert "Judge (rejects below 3)" in text and "80% (58%–92%)" in text and "ana / bo: 10 rows" in text
    assert "The judge agrees with the reviewers on 16 of 20 rows" in text
    result = CliRunner().invoke(app, ["review", "calibration", "--home", home])
    assert isinstance(result.exception, ReviewError) and "Say which batch" in str(result.exception)
    # `review gate` warns when it would keep rows by the score of a judge far from the reviewers.
    bad = str(bad_judge_batch(ws, pid))
    assert "Warning: The judge is too far" in cli("review", "gate", "--batch", bad, "--min-judge", "3")
    assert "Warning" not in cli("review", "gate", "--batch", bad)
    assert "Warning" not in cli("review", "gate", "--batch", str(batch_id), "--min-judge", "3")
