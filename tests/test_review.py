"""Review end to end on a real workspace: the sample, verdicts (two reviewers, threads, restarts), applying
the gate (discard / select with caps, edits and judge scores), reopening, and the prompt revision."""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from studio import jobs
from studio.augment import batches
from studio.augment.prompt_versions import get_version, latest, list_versions
from studio.augment.strategies import StrategyOptions
from studio.config import load_settings
from studio.errors import ReviewError, TeacherError, TemplateError
from studio.review.gate import GateConfig, apply_gate, decisions, evaluate_gate, reopen_batch
from studio.review.revision import TAG_INSTRUCTIONS, draft_revision, feedback, save_revision
from studio.review.sampling import allocate, default_seed, draw_sample, extend_sample, get_sample
from studio.review.selection import SelectionConfig, preview_selection, selected_rows
from studio.review.verdicts import REASON_TAGS, next_position, record_verdict, row_verdicts, sample_progress
from studio.teachers.base import GenerationParams
from studio.teachers.spec import parse_teacher
from studio.workspace import Workspace, utc_now
from studio.workspace.seeds import list_seeds
from tests.conftest import snapshot
from tests.factories import add_batch, offline_batch, project_with_seeds
from tests.scripted_llm import ScriptedLLM


def _rows(n: int, start: int = 0) -> list[dict[str, str]]:
    return [{"instruction": f"Explain topic number {i} to a new colleague.", "input": "",
             "output": f"Topic {i} works like this: first you look at it, then you decide."}
            for i in range(start, start + n)]


@pytest.fixture
def pid(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds)


def _data(ws: Workspace, cid: int) -> dict[str, Any]:
    with ws.read() as conn:
        return json.loads(conn.execute("SELECT data FROM candidate WHERE id=?", (cid,)).fetchone()[0])


def _ids(ws: Workspace, batch_id: int) -> list[int]:
    with ws.read() as conn:
        return [r[0] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=? ORDER BY id", (batch_id,))]


def _mark_filtered(ws: Workspace, batch_id: int, failing: set[int], unfiltered: set[int] = frozenset()) -> None:
    """Filter results as the filters write them: one row per (row, filter); `failing` rows fail one filter."""
    now = utc_now()
    with ws.write() as conn:
        for cid in _ids(ws, batch_id):
            if cid in unfiltered:
                continue
            for name in ("exact_duplicate", "heuristics"):
                passed = not (cid in failing and name == "heuristics")
                conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, reason, created_at) "
                             "VALUES (?, ?, ?, ?, ?)", (cid, name, int(passed), "" if passed else "too short", now))
        conn.execute("UPDATE batch SET filtered_at=?, filter_config='{}' WHERE id=?", (now, batch_id))


# --- the sample --------------------------------------------------------------------------------------


def test_sample_is_ten_percent_reproducible_and_shared(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(300))
    sample = draw_sample(ws, batch_id)
    assert sample.size == 30 and sample.rng_seed == default_seed(batch_id)
    assert [i.position for i in sample.items] == list(range(1, 31))
    assert len(set(sample.candidate_ids)) == 30 and set(sample.candidate_ids) <= set(_ids(ws, batch_id))
    assert sample.candidate_ids != sorted(sample.candidate_ids)  # shuffled, not in id order
    # A second draw (another tab, other settings) gets the stored sample.
    assert draw_sample(ws, batch_id, fraction=0.5, rng_seed=1) == sample
    # Drawn again from scratch with the same seed: the same rows in the same order.
    with ws.write() as conn:
        conn.execute("DELETE FROM review_sample WHERE batch_id=?", (batch_id,))
    assert draw_sample(ws, batch_id).items == sample.items
    with ws.write() as conn:
        conn.execute("DELETE FROM review_sample WHERE batch_id=?", (batch_id,))
    other = draw_sample(ws, batch_id, rng_seed=12345)
    assert other.rng_seed == 12345 and other.candidate_ids != sample.candidate_ids


def test_sample_has_at_least_twenty_rows_or_all(ws: Workspace, pid: int) -> None:
    assert draw_sample(ws, add_batch(ws, pid, _rows(50))).size == 20
    small = add_batch(ws, pid, [*_rows(12), None, None])
    sample = draw_sample(ws, small)
    assert sorted(sample.candidate_ids) == _ids(ws, small)[:12]  # every usable row, no parse failure
    assert draw_sample(ws, add_batch(ws, pid, _rows(205))).size == 21  # 10% rounded up
    assert draw_sample(ws, add_batch(ws, pid, _rows(100)), fraction=0.5, min_size=5).size == 50


def test_sample_is_stratified_by_style_in_proportion(ws: Workspace, pid: int) -> None:
    styles = ["formal"] * 100 + ["casual"] * 60 + ["bullet points"] * 40
    batch_id = add_batch(ws, pid, _rows(200), strategy="response-expansion", metas=[{"style": s} for s in styles])
    sample = draw_sample(ws, batch_id)
    assert sample.strata() == {"response-expansion/formal": 10, "response-expansion/casual": 6,
                               "response-expansion/bullet points": 4}
    by_id = dict(zip(_ids(ws, batch_id), styles, strict=True))
    assert all(item.stratum.endswith("/" + by_id[item.candidate_id]) for item in sample.items)
    # Largest remainder: quotas 2, 1.2, 0.8 of 4 -> 2, 1, 1.
    assert allocate({"a": 5, "b": 3, "c": 2}, 4) == {"a": 2, "b": 1, "c": 1}
    assert allocate({"a": 1, "b": 1}, 5) == {"a": 1, "b": 1}


def test_sample_of_a_real_nlpaug_batch_uses_the_augmenter_stratum(ws: Workspace, pid: int) -> None:
    batch_id = offline_batch(ws, pid, count=40)
    sample = draw_sample(ws, batch_id)
    assert sample.size == 20 and set(sample.strata()) == {"nlpaug/keyboard"}


def test_sample_draws_only_rows_that_passed_the_filters(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(60))
    ids = _ids(ws, batch_id)
    failing, unfiltered = set(ids[:30]), {ids[30]}
    _mark_filtered(ws, batch_id, failing, unfiltered)
    sample = draw_sample(ws, batch_id, fraction=1.0)
    assert sorted(sample.candidate_ids) == ids[31:]  # no failed row, and no row the filters never saw
    with pytest.raises(ReviewError, match="already in the sample"):
        extend_sample(ws, batch_id, 5)


def test_extend_adds_unsampled_rows_at_the_next_positions(ws: Workspace, pid: int) -> None:
    styles = ["formal"] * 150 + ["casual"] * 50
    batch_id = add_batch(ws, pid, _rows(200), strategy="response-expansion", metas=[{"style": s} for s in styles])
    first = draw_sample(ws, batch_id)
    grown = extend_sample(ws, batch_id, 8)
    assert grown.items[:20] == first.items and [i.position for i in grown.items] == list(range(1, 29))
    assert len(set(grown.candidate_ids)) == 28
    added = Counter(i.stratum for i in grown.items[20:])
    assert added == {"response-expansion/formal": 6, "response-expansion/casual": 2}
    everything = extend_sample(ws, batch_id, 1000)
    assert sorted(everything.candidate_ids) == _ids(ws, batch_id)
    with pytest.raises(ReviewError):
        extend_sample(ws, batch_id, 0)


def test_sample_is_refused_for_empty_generating_and_discarded_batches(ws: Workspace, pid: int) -> None:
    empty = add_batch(ws, pid, [None, None, None])
    before = snapshot(ws)
    with pytest.raises(ReviewError, match="no usable rows"):
        draw_sample(ws, empty)
    with pytest.raises(ReviewError, match="no review sample yet"):
        extend_sample(ws, empty, 5)
    with pytest.raises(ReviewError, match="There is no batch"):
        draw_sample(ws, 999)
    with pytest.raises(ReviewError, match="fraction"):
        draw_sample(ws, empty, fraction=0)
    assert snapshot(ws) == before

    filtered_out = add_batch(ws, pid, _rows(5))
    _mark_filtered(ws, filtered_out, set(_ids(ws, filtered_out)))
    with pytest.raises(ReviewError, match="no row passed the filters"):
        draw_sample(ws, filtered_out)

    running = add_batch(ws, pid, _rows(30), status="running")
    with ws.write() as conn:
        job_id = jobs.create(conn, kind="generate", project_id=pid, subject_id=running, total=30)
        conn.execute("UPDATE batch SET job_id=? WHERE id=?", (job_id, running))
    assert jobs.claim(ws, job_id, done=30, total=30)
    try:
        with pytest.raises(ReviewError, match="still generating"):
            draw_sample(ws, running)
    finally:
        jobs.finish(ws, job_id, "done", "Done.")
    assert draw_sample(ws, running).size == 20

    discarded = add_batch(ws, pid, _rows(30), status="discarded")
    with pytest.raises(ReviewError, match="discarded"):
        draw_sample(ws, discarded)


def test_two_tabs_drawing_at_once_share_one_sample(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(300))
    results: list[Any] = []

    def draw() -> None:
        results.append(draw_sample(Workspace(load_settings(ws.home)), batch_id))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)
    with ws.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM review_sample").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM review_item").fetchone()[0] == 30


# --- verdicts ----------------------------------------------------------------------------------------


def test_bad_verdicts_are_refused_and_change_nothing(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, [*_rows(30), None])
    sample = draw_sample(ws, batch_id)
    cid = sample.items[0].candidate_id
    failed = _ids(ws, batch_id)[-1]
    good = {**_data(ws, cid), "output": "A better answer."}
    before = snapshot(ws)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"verdict": "maybe"}, "accept, reject, edit"),
        ({"verdict": "reject", "reason_tags": ["boring"]}, "hallucination, wrong tone, off-task"),
        ({"verdict": "reject", "reason_tags": ["format", "nonsense"]}, "not a reason tag"),
        ({"verdict": "accept", "accuracy": 6}, "1 to 5"),
        ({"verdict": "accept", "tone": 0}, "1 to 5"),
        ({"verdict": "accept", "accuracy": 2.5}, "whole number"),
        ({"verdict": "accept", "tone": "good"}, "1 to 5"),
        ({"verdict": "edit"}, "needs the corrected row"),
        ({"verdict": "edit", "edited_data": {"instruction": "Only this."}}, "output"),
        ({"verdict": "edit", "edited_data": {**good, "instruction": "   "}}, "instruction is empty"),
        ({"verdict": "edit", "edited_data": "{not json"}, "not valid JSON"),
        ({"verdict": "edit", "edited_data": ["a", "b"]}, "must give each field"),
        ({"verdict": "edit", "edited_data": _data(ws, cid)}, "same as the original"),
        ({"verdict": "accept", "edited_data": good}, "'edit' verdict only"),
        ({"verdict": "accept", "sample_id": sample.id + 1}, "does not belong"),
        ({"verdict": "accept", "note": "x" * 6000}, "Shorten it"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ReviewError, match=message):
            record_verdict(ws, cid, **kwargs)
    with pytest.raises(ReviewError, match="failed to parse"):
        record_verdict(ws, failed, verdict="reject")
    with pytest.raises(ReviewError, match="no row #"):
        record_verdict(ws, 10**6, verdict="accept")
    assert snapshot(ws) == before


def test_verdicts_are_normalised_and_stored_with_their_sample(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(30))
    sample = draw_sample(ws, batch_id)
    cid = sample.items[0].candidate_id
    review = record_verdict(ws, cid, verdict=" Reject ", reason_tags=["Hallucination", "WRONG TONE", "off task",
                                                                        "hallucination"], accuracy="2", tone=3,
                            note="  Invents a product name. ", reviewer=" ann ")
    assert (review.verdict, review.reason_tags, review.accuracy, review.tone) == (
        "reject", ["hallucination", "wrong tone", "off-task"], 2, 3)
    assert (review.note, review.reviewer, review.sample_id) == ("Invents a product name.", "ann", sample.id)
    assert record_verdict(ws, cid, verdict="reject").reason_tags == []  # a reject without a tag is allowed
    # An edit is stored as the canonical record of the row's format.
    edited = record_verdict(ws, sample.items[1].candidate_id, verdict="edit",
                            edited_data={"instruction": "Explain it.\r\nPlease.", "output": "Like this."})
    assert edited.edited_data == {"instruction": "Explain it.\nPlease.", "input": "", "output": "Like this."}
    assert set(REASON_TAGS) == set(TAG_INSTRUCTIONS)


def test_verdicts_append_and_combine_over_reviewers(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(30))
    a, b, c = draw_sample(ws, batch_id).candidate_ids[:3]
    record_verdict(ws, a, verdict="accept", reviewer="ann")
    record_verdict(ws, a, verdict="reject", reason_tags=["format"], reviewer="ann")
    assert row_verdicts(ws, batch_id)[a].verdict == "reject"
    record_verdict(ws, a, verdict="accept", reviewer="ann")  # a changed mind is a newer row
    assert row_verdicts(ws, batch_id)[a].verdict == "accept"
    record_verdict(ws, a, verdict="reject", reason_tags=["unsafe"], reviewer="bob")  # any reject wins
    combined = row_verdicts(ws, batch_id)[a]
    assert combined.verdict == "reject" and combined.reviewers == ["ann", "bob"] and combined.reason_tags == ["unsafe"]

    first = {**_data(ws, b), "output": "First fix."}
    second = {**_data(ws, b), "output": "Second fix."}
    record_verdict(ws, b, verdict="edit", edited_data=first, reviewer="ann")
    record_verdict(ws, b, verdict="accept", reviewer="bob")
    assert (row_verdicts(ws, batch_id)[b].verdict, row_verdicts(ws, batch_id)[b].edited_data) == ("edit", first)
    record_verdict(ws, b, verdict="edit", edited_data=second, reviewer="bob")
    assert row_verdicts(ws, batch_id)[b].edited_data == second  # the newest edit is the one used
    record_verdict(ws, c, verdict="accept", reviewer="ann")
    record_verdict(ws, c, verdict="accept", reviewer="bob")
    assert row_verdicts(ws, batch_id)[c].verdict == "accept"
    with ws.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM review").fetchone()[0] == 9  # nothing was overwritten


def test_progress_and_resuming_where_a_reviewer_left_off(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(30))
    assert sample_progress(ws, batch_id) == (0, 0) and next_position(ws, batch_id, "ann") is None
    items = draw_sample(ws, batch_id).items
    for item in (items[0], items[1], items[3]):
        record_verdict(ws, item.candidate_id, verdict="accept", reviewer="ann")
    record_verdict(ws, items[2].candidate_id, verdict="reject", reviewer="bob")
    record_verdict(ws, items[0].candidate_id, verdict="reject", reviewer="bob")
    assert sample_progress(ws, batch_id, "ann") == (3, 20)
    assert sample_progress(ws, batch_id, "bob") == (2, 20)
    assert sample_progress(ws, batch_id) == (4, 20)
    assert next_position(ws, batch_id, "ann") == 3 and next_position(ws, batch_id, "bob") == 2
    assert next_position(ws, batch_id, "carol") == 1


def test_two_reviewers_in_threads_lose_no_verdict(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(60))
    ids = draw_sample(ws, batch_id, fraction=1.0).candidate_ids
    shared, errors = ids[:10], []
    rounds = 6

    def review(name: str, own: list[int]) -> None:
        mine = Workspace(load_settings(ws.home))  # its own Workspace, so its own connections
        try:
            for r in range(rounds):
                for cid in shared + own:
                    verdict = "reject" if (name == "bob" and r == rounds - 1 and cid in shared[:3]) else "accept"
                    record_verdict(mine, cid, verdict=verdict, reviewer=name, note=f"round {r}")
        except Exception as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=review, args=("ann", ids[10:35])),
               threading.Thread(target=review, args=("bob", ids[35:]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ws.read() as conn:
        per_reviewer = dict(conn.execute("SELECT reviewer, COUNT(*) FROM review GROUP BY reviewer").fetchall())
    assert per_reviewer == {"ann": rounds * 35, "bob": rounds * 35}
    verdicts = row_verdicts(ws, batch_id)
    assert len(verdicts) == 60
    assert {cid for cid, v in verdicts.items() if v.verdict == "reject"} == set(shared[:3])
    assert all(len(verdicts[cid].reviews) == 2 for cid in shared)
    assert sample_progress(ws, batch_id) == (60, 60)


def test_reviews_survive_a_restart(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(40))
    sample = draw_sample(ws, batch_id)
    record_verdict(ws, sample.items[0].candidate_id, verdict="reject", reason_tags=["duplicate"], reviewer="ann")
    record_verdict(ws, sample.items[1].candidate_id, verdict="accept", reviewer="ann")
    restarted = Workspace(load_settings(ws.home))
    assert get_sample(restarted, batch_id) == sample
    assert row_verdicts(restarted, batch_id) == row_verdicts(ws, batch_id)
    assert sample_progress(restarted, batch_id, "ann") == (2, 20) and next_position(restarted, batch_id, "ann") == 3


# --- applying the gate, selection, reopening ---------------------------------------------------------


def _review_all(ws: Workspace, batch_id: int, rejects: int = 0, edits: int = 0) -> list[int]:
    ids = draw_sample(ws, batch_id).candidate_ids
    for i, cid in enumerate(ids):
        if i < rejects:
            record_verdict(ws, cid, verdict="reject", reason_tags=["hallucination"], reviewer="ann",
                           note="Makes up a number.")
        elif i < rejects + edits:
            record_verdict(ws, cid, verdict="edit", edited_data={**_data(ws, cid), "output": f"Fixed answer {i}."},
                           reviewer="ann")
        else:
            record_verdict(ws, cid, verdict="accept", reviewer="ann")
    return ids


def test_a_failed_gate_discards_the_batch_but_keeps_its_rows(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(100))
    _review_all(ws, batch_id, rejects=10)
    result = apply_gate(ws, batch_id)
    assert result.decision == "fail"
    assert batches.get_batch(ws, batch_id).state == "discarded"
    assert len(_ids(ws, batch_id)) == 100 and selected_rows(ws, batch_id=batch_id) == []
    [decision] = decisions(ws, batch_id)
    assert (decision.decision, decision.reviewed, decision.errors) == ("fail", 20, 10)
    assert decision.details["tag_counts"] == {"hallucination": 10}
    assert decision.details["config"] == GateConfig().to_dict()
    assert batches.accepted_synthetic(ws, pid) == []  # accepted rows of a discarded batch are not examples
    with pytest.raises(ReviewError, match="discarded"):
        extend_sample(ws, batch_id, 5)
    with pytest.raises(ReviewError, match="already discarded"):
        apply_gate(ws, batch_id)


def test_a_passed_gate_selects_rows_with_edits_and_caps(ws: Workspace, pid: int) -> None:
    seeds = [s.id for s in list_seeds(ws, pid)]
    seed_ids = [[seeds[i % 5]] for i in range(100)]  # 20 rows from each of 5 seeds
    batch_id = add_batch(ws, pid, _rows(100), seed_ids=seed_ids)
    reviewed = _review_all(ws, batch_id, rejects=1, edits=1)
    rejected, edited = reviewed[0], reviewed[1]
    result = apply_gate(ws, batch_id, GateConfig(), SelectionConfig(per_seed_cap=12))
    assert result.decision == "pass" and batches.get_batch(ws, batch_id).state == "selected"
    rows = selected_rows(ws, batch_id=batch_id)
    assert len(rows) == 60 and rejected not in {r.candidate_id for r in rows}
    first_seed = {cid: seed_ids[i][0] for i, cid in enumerate(_ids(ws, batch_id))}
    assert max(Counter(first_seed[r.candidate_id] for r in rows).values()) == 12
    by_id = {r.candidate_id: r for r in rows}
    assert by_id[edited].data["output"] == "Fixed answer 1." and by_id[edited].reason == "edited in review"
    # Reviewed rows rank first, so every accepted or edited row of the sample was kept despite the cap.
    assert set(reviewed[1:]) <= set(by_id)
    assert [r.reason for r in rows[:19]].count("accepted in review") == 18
    assert decisions(ws, batch_id)[-1].details["selected"] == 60

    # Few-shot examples come from the selection, with the reviewer's edit.
    examples = {e.ref: e for e in batches.accepted_synthetic(ws, pid)}
    assert set(examples) == set(by_id) and examples[edited].data["output"] == "Fixed answer 1."
    assert all(e.synthetic for e in examples.values())


def test_selection_honours_judge_scores_filters_and_row_limit(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(40))
    ids = _ids(ws, batch_id)
    _mark_filtered(ws, batch_id, failing={ids[0]})
    now = utc_now()
    with ws.write() as conn:
        for i, cid in enumerate(ids[:30]):
            conn.execute("INSERT INTO judgement(candidate_id, overall, created_at) VALUES (?, ?, ?)",
                         (cid, 1.0, now))  # an older score: the newest one counts
            conn.execute("INSERT INTO judgement(candidate_id, overall, created_at) VALUES (?, ?, ?)",
                         (cid, 1 + (i % 5), now))
    assert len(preview_selection(ws, batch_id)) == 39  # the row that failed a filter is out
    assert len(preview_selection(ws, batch_id, SelectionConfig(use_filters=False))) == 40
    strict = preview_selection(ws, batch_id, SelectionConfig(min_judge_score=4))
    assert {r.candidate_id for r in strict} == {cid for i, cid in enumerate(ids[:30]) if 1 + i % 5 >= 4} - {ids[0]}
    assert [r.score for r in strict] == sorted((r.score for r in strict), reverse=True)
    top = preview_selection(ws, batch_id, SelectionConfig(max_rows=5))
    assert [r.score for r in top] == [5.0] * 5 and top[0].reason == "not reviewed; judge score 5"
    unjudged = preview_selection(ws, batch_id)[-1]
    assert unjudged.score is None and unjudged.reason == "not reviewed; passed the filters"
    with pytest.raises(ReviewError):
        preview_selection(ws, batch_id, SelectionConfig(min_judge_score=7))
    with pytest.raises(ReviewError):
        preview_selection(ws, batch_id, SelectionConfig(per_seed_cap=0))


def test_inconclusive_gate_records_only_the_decision_and_reopen_undoes_a_pass(ws: Workspace, pid: int) -> None:
    batch_id = add_batch(ws, pid, _rows(100))
    ids = draw_sample(ws, batch_id).candidate_ids
    for cid in ids[:5]:
        record_verdict(ws, cid, verdict="accept", reviewer="ann")
    result = apply_gate(ws, batch_id)
    assert result.decision == "inconclusive" and result.more_reviews_needed == 15
    assert batches.get_batch(ws, batch_id).status == "done" and selected_rows(ws, batch_id=batch_id) == []
    for cid in ids[5:]:
        record_verdict(ws, cid, verdict="accept", reviewer="ann")
    assert evaluate_gate(ws, batch_id).decision == "pass"
    apply_gate(ws, batch_id)
    assert len(selected_rows(ws, pid)) == 100
    reopened = reopen_batch(ws, batch_id)
    assert reopened.decision == "reopened" and reopened.details["selection_removed"] == 100
    assert batches.get_batch(ws, batch_id).status == "done" and selected_rows(ws, pid) == []
    assert [d.decision for d in decisions(ws, batch_id)] == ["inconclusive", "pass", "reopened"]
    assert len(row_verdicts(ws, batch_id)) == 20  # reviews are kept
    with pytest.raises(ReviewError, match="no pass or fail to undo"):
        reopen_batch(ws, batch_id)
    # Reopened, it can be reviewed further and decided again.
    for cid in ids[:3]:
        record_verdict(ws, cid, verdict="reject", reason_tags=["off-task"], reviewer="bob")
    assert apply_gate(ws, batch_id, GateConfig(threshold=0.01)).decision == "fail"
    reopen_batch(ws, batch_id)
    assert batches.get_batch(ws, batch_id).state == "done"


# --- prompt revision ---------------------------------------------------------------------------------


class RecordingTeacher:
    """An in-test teacher: tests/scripted_llm.py answers a revision request with 'OK' (not a template), so the
    teacher path that succeeds needs a stand-in that returns a real revised template."""

    def __init__(self, answer: str | None = None, error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.requests: list[list[dict[str, str]]] = []

    def generate(self, conversations: list[list[dict[str, str]]], params: GenerationParams) -> list[str]:
        self.requests.extend(conversations)
        if self.error:
            raise self.error
        return [self.answer or "" for _ in conversations]

    def describe(self) -> dict[str, Any]:
        return {"kind": "test"}


@pytest.fixture
def reviewed_teacher_batch(ws: Workspace, pid: int) -> int:
    """A real instruction-expansion batch from the scripted teacher, reviewed: 12 rejects, 2 edits."""
    with ScriptedLLM() as llm:
        req = batches.BatchRequest(pid, "instruction-expansion", 40, parse_teacher(llm.url, model=llm.model), None,
                                   StrategyOptions(n=4), GenerationParams(max_new_tokens=128), rng_seed=5)
        batch_id = batches.run_batch(ws, batches.plan_batch(ws, req).id).id
    ids = draw_sample(ws, batch_id).candidate_ids
    for i, cid in enumerate(ids):
        if i < 12:
            tags = ["hallucination"] if i < 8 else ["wrong tone", "format"]
            record_verdict(ws, cid, verdict="reject", reason_tags=tags, reviewer="ann",
                           note="Adds a deadline nobody asked for." if i == 0 else "")
        elif i < 14:
            data = _data(ws, cid)
            record_verdict(ws, cid, verdict="edit", reviewer="bob", reason_tags=["wrong tone"],
                           edited_data={**data, "instruction": f"Please explain case {i} {{{{ briefly }}}}."})
        else:
            record_verdict(ws, cid, verdict="accept", reviewer="ann")
    assert apply_gate(ws, batch_id).decision == "fail"
    return batch_id


def test_feedback_gathers_tags_notes_and_edits(ws: Workspace, reviewed_teacher_batch: int) -> None:
    fb = feedback(ws, reviewed_teacher_batch)
    assert fb.tag_counts == {"hallucination": 8, "wrong tone": 6, "format": 4}
    assert fb.notes == ["Adds a deadline nobody asked for."]
    assert len(fb.edits) == 2 and fb.edits[0][1] == "Please explain case 13 {{ briefly }}."
    assert fb.edits[0][0] != fb.edits[0][1] and (fb.reviewed, fb.rejected) == (20, 12)


def test_revision_falls_back_when_the_teacher_answer_is_not_a_template(ws: Workspace, pid: int,
                                                                      reviewed_teacher_batch: int) -> None:
    batch_id = reviewed_teacher_batch
    base = get_version(ws, batches.get_batch(ws, batch_id).prompt_version_id)
    before = snapshot(ws)
    with ScriptedLLM() as llm:  # a real endpoint round trip; the scripted model answers "OK"
        draft = draft_revision(ws, batch_id, spec=parse_teacher(llm.url, model=llm.model))
        assert llm.requests == 1
    assert snapshot(ws) == before  # a draft writes nothing
    assert not draft.from_teacher and "could not be used" in draft.rationale and draft.base_version_id == base.id
    template = draft.template
    assert template.startswith(base.template.rstrip())
    assert f"Reviewers of batch #{batch_id} found these problems; avoid them:" in template
    for tag in ("hallucination", "wrong tone", "format"):
        assert TAG_INSTRUCTIONS[tag] in template
    assert TAG_INSTRUCTIONS["unsafe"] not in template
    assert "Adds a deadline nobody asked for." in template and template.count("- Instead of ") == 2
    assert "{ { briefly }}" in template  # reviewer text cannot inject Jinja

    no_teacher = draft_revision(ws, batch_id)
    assert no_teacher.template == template and "no teacher was given" in no_teacher.rationale
    broken = draft_revision(ws, batch_id, teacher=RecordingTeacher(error=TeacherError("The server is down.")))
    assert not broken.from_teacher and "The server is down." in broken.rationale

    saved = save_revision(ws, batch_id, template + "Keep each rewrite under 30 words.\n", note="from review")
    assert (saved.version, saved.parent_id, saved.note) == (base.version + 1, base.id, "from review")
    assert latest(ws, pid, "instruction-expansion").id == saved.id
    with ws.read() as conn:
        assert conn.execute("SELECT source_batch_id FROM prompt_version WHERE id=?", (saved.id,)).fetchone()[0] \
            == batch_id


def test_revision_from_the_teacher_is_checked_and_saved(ws: Workspace, reviewed_teacher_batch: int) -> None:
    batch_id = reviewed_teacher_batch
    base = get_version(ws, batches.get_batch(ws, batch_id).prompt_version_id)
    revised = base.template.rstrip() + "\nState only facts from the request; keep a friendly, plain tone.\n"
    teacher = RecordingTeacher("Here is the revised template:\n```jinja\n" + revised + "```\nHope it helps!")
    draft = draft_revision(ws, batch_id, teacher=teacher)
    assert draft.from_teacher and draft.template.strip() == revised.strip()
    assert "teacher rewrote" in draft.rationale and "hallucination ×8" in draft.rationale
    [request] = teacher.requests
    sent = request[-1]["content"]
    assert base.template.strip() in sent and "- hallucination: 8 rows" in sent
    assert "Adds a deadline nobody asked for." in sent and sent.count("  after: ") == 2
    assert "Keep every {{ variable }}" in sent

    # A template that loses a variable or does not parse is not accepted from the teacher.
    for dropped in (base.template.replace("{{ n }}", "several"),
                    base.template.replace("{{ seed.instruction }}", "the request")):
        assert not draft_revision(ws, batch_id, teacher=RecordingTeacher(dropped)).from_teacher
    assert not draft_revision(ws, batch_id, teacher=RecordingTeacher(base.template + "{% if %}")).from_teacher
    assert not draft_revision(ws, batch_id, teacher=RecordingTeacher(base.template)).from_teacher

    version = save_revision(ws, batch_id, draft.template)
    assert version.note == f"revised after the review of batch #{batch_id}"
    before = snapshot(ws)
    with pytest.raises(ReviewError, match="same as the current"):
        save_revision(ws, batch_id, draft.template)
    with pytest.raises(TemplateError):
        save_revision(ws, batch_id, draft.template + "{{ unknown_variable }}")
    assert snapshot(ws) == before


def test_revision_needs_a_prompt_and_some_feedback(ws: Workspace, pid: int) -> None:
    offline = offline_batch(ws, pid, count=20)
    with pytest.raises(ReviewError, match="uses no prompt"):
        draft_revision(ws, offline)
    quiet = add_batch(ws, pid, _rows(30))
    for cid in draw_sample(ws, quiet).candidate_ids:
        record_verdict(ws, cid, verdict="accept", reviewer="ann")
    with pytest.raises(ReviewError, match="nothing to revise from"):
        draft_revision(ws, quiet)
    # A crafted batch without a recorded prompt version revises the project's current prompt.
    record_verdict(ws, draw_sample(ws, quiet).candidate_ids[0], verdict="reject", reason_tags=["duplicate"],
                   reviewer="bob")
    before = snapshot(ws)
    draft = draft_revision(ws, quiet)
    assert snapshot(ws) == before and draft.base_version_id is None
    assert TAG_INSTRUCTIONS["duplicate"] in draft.template
    saved = save_revision(ws, quiet, draft.template)
    [v2, v1] = list_versions(ws, pid, "instruction-expansion")
    assert (v2.id, v2.version, v2.parent_id, v1.note) == (saved.id, 2, v1.id, "shipped default")
