"""LLM-as-judge: reading judges' answers of every shape, and judging batches through a real HTTP endpoint
(tests.scripted_llm answers judge prompts like a careful judge) with the real EndpointTeacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.errors import QualityError, TeacherError
from studio.quality import diversity
from studio.quality.judge import (
    JUDGE_MARKER,
    judge_batch,
    judge_messages,
    latest_judgements,
    parse_judgement,
)
from studio.teachers.endpoint import EndpointTeacher
from studio.teachers.spec import TeacherSpec
from studio.workspace import Workspace, utc_now
from tests.conftest import snapshot
from tests.factories import add_batch, project_with_seeds
from tests.scripted_llm import ScriptedLLM

API_KEY = "sk-judge-SECRET-4f9a2c"


@pytest.mark.parametrize(("text", "scores", "rationale"), [
    ('{"accuracy": 4, "tone": 3, "instruction_following": 5, "rationale": "Good."}', (4, 3, 5), "Good."),
    ('Here you go:\n```json\n{\n "accuracy": 2,\n "tone": "4/5",\n "instruction_following": 5.0,\n'
     ' "reason": "Wrong year."\n}\n```\nHope it helps!', (2, 4, 5), "Wrong year."),
    ("Accuracy: 4\nTone: 3\nInstruction following: 5\nRationale: Clear, but a bit long.", (4, 3, 5),
     "Clear, but a bit long."),
    ("**Accuracy (1-5)**: 5\n**Tone (1-5)**: 4\n**Instruction-following (1-5)**: 3", (5, 4, 3), ""),
    ('{"scores": {"Accuracy": {"score": 3}, "Tone": 4, "Instruction Following": "5"}, "explanation": "Ok"}',
     (3, 4, 5), "Ok"),
    ("{'accuracy': 4, 'tone': 4, 'instruction_following': 3}", (4, 4, 3), ""),  # Python dict, not JSON
    ('{"accuracy": 4.5, "tone": 1, "instruction_following": 2}', (5, 1, 2), ""),  # halves round up
    ("Accuracy (1-5): 2. Tone (1 to 5): 5. Instruction following: 4 out of 5.", (2, 5, 4), ""),
    ('First {"note": "thinking"} then {"accuracy": 1, "tone": 2, "instruction_following": 3}', (1, 2, 3), ""),
])
def test_parse_judgement_reads_every_shape(text: str, scores: tuple[int, int, int], rationale: str) -> None:
    parsed = parse_judgement(text)
    assert parsed.status == "ok", parsed.error
    assert (parsed.accuracy, parsed.tone, parsed.instruction_following) == scores
    assert parsed.overall == pytest.approx(sum(scores) / 3, abs=1e-4) and parsed.rationale == rationale


@pytest.mark.parametrize(("text", "reason"), [
    ("I am sorry, but I would rather talk about the weather today", "no scores at all"),
    ("", "empty answer"),
    ('{"accuracy": 7, "tone": 3, "instruction_following": 4}', "accuracy 7 is outside 1-5"),
    ('{"accuracy": 4, "tone": 0, "instruction_following": 4}', "tone 0 is outside 1-5"),
    ("Accuracy: 8/10\nTone: 9/10\nInstruction following: 7/10", "out of 10"),
    ('{"accuracy": 4, "instruction_following": 4}', "no score for tone"),
    ('{"accuracy": true, "tone": null, "instruction_following": "great"}', "no scores at all"),
    ("Accuracy (1-5): excellent\nTone: 4\nInstruction following: 4", "no score for accuracy"),
])
def test_parse_judgement_refuses_unusable_answers(text: str, reason: str) -> None:
    parsed = parse_judgement(text)
    assert parsed.status == "failed" and reason in parsed.error
    assert (parsed.accuracy, parsed.tone, parsed.instruction_following, parsed.overall) == (None, None, None, None)


@pytest.mark.parametrize("text", ["{" * 100_000, "Accuracy: " + "9" * 5000, "\x00\xff" * 1000,
                                  '{"accuracy": 1e999, "tone": 3, "instruction_following": 3}', " " * 200_000])
def test_parse_judgement_never_raises(text: str) -> None:
    assert parse_judgement(text).status == "failed"


def test_judge_prompt_has_the_rubric_examples_and_candidate() -> None:
    messages = judge_messages("Answer travel questions politely", "Is Lyon far from Paris?",
                              "About two hours by train.", [("Best time to visit Rome?", "Spring or autumn.")])
    assert [m["role"] for m in messages] == ["system", "user"]
    text = messages[-1]["content"]
    assert text.startswith(JUDGE_MARKER)
    for needle in ("Answer travel questions politely", "Best time to visit Rome?", "Is Lyon far from Paris?",
                   "About two hours by train.", '"accuracy"', '"tone"', '"instruction_following"', '"rationale"'):
        assert needle in text


def _rows(n: int) -> list[dict | None]:
    rows: list[dict | None] = [{"instruction": f"Explain topic number {i} to a beginner.", "input": "",
                                "output": f"Topic {i} is about how things fit together, step by step."}
                               for i in range(n)]
    rows[1] = {"instruction": "Is water wet?", "input": "", "output": "Yes."}  # too short: the judge says so
    return [*rows, None]  # one parse failure: never judged


def _spec(llm: ScriptedLLM) -> TeacherSpec:
    return TeacherSpec("endpoint", base_url=llm.url, model=llm.model, concurrency=2)


def test_judge_batch_stores_scores_skips_judged_rows_and_never_the_key(ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    batch_id = add_batch(ws, pid, _rows(6))
    progress: list[tuple[int, int]] = []
    with ScriptedLLM() as llm:
        summary = judge_batch(ws, batch_id, _spec(llm), api_key=API_KEY, batch_size=4,
                              on_progress=lambda done, total: progress.append((done, total)))
        assert llm.requests == 6
        assert (summary.rows, summary.judged, summary.failed, summary.skipped) == (6, 6, 0, 0)
        assert progress == [(4, 6), (6, 6)]
        judged = latest_judgements(ws, batch_id)
        with ws.read() as conn:
            usable = [r[0] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=? AND data IS NOT NULL "
                                                 "ORDER BY id", (batch_id,))]
        assert sorted(judged) == usable
        short = judged[usable[1]]
        assert short.accuracy == 2 and short.rationale == "Too short to be useful."
        for j in judged.values():
            assert j.parse_status == "ok" and all(1 <= s <= 5 for s in (j.accuracy, j.tone, j.instruction_following))
            assert j.overall == pytest.approx((j.accuracy + j.tone + j.instruction_following) / 3, abs=1e-4)
            assert j.judge["base_url"] == llm.url and j.judge["model"] == llm.model and j.judge["rubric"] == 1
            assert j.judge["served"]["model"] == llm.model and j.raw_output
        assert summary.mean_overall == pytest.approx(sum(j.overall for j in judged.values()) / 6, abs=1e-3)
        assert "Judged 6 rows" in summary.message

        again = judge_batch(ws, batch_id, _spec(llm), api_key=API_KEY)
        assert llm.requests == 6 and (again.judged, again.skipped) == (0, 6)
        assert again.mean_overall == summary.mean_overall

        redo = judge_batch(ws, batch_id, _spec(llm), api_key=API_KEY, rejudge=True, limit=2)
        assert llm.requests == 8 and (redo.judged, redo.skipped) == (2, 0)
        # Greedy, deterministic judge: the newer rows repeat the scores, and the newest one counts.
        newer = latest_judgements(ws, batch_id)
        assert [newer[c].id > judged[c].id for c in usable] == [True, True, False, False, False, False]
        assert [newer[c].overall for c in usable] == [judged[c].overall for c in usable]

    assert diversity.batch_diversity(ws, batch_id, use_embeddings=False).histograms["judge_overall"]
    with ws.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM judgement").fetchone()[0] == 8
    for path in ws.home.glob("studio.db*"):
        assert API_KEY.encode() not in path.read_bytes(), path


def test_a_failing_judge_keeps_finished_chunks_and_a_rerun_continues(ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    batch_id = add_batch(ws, pid, _rows(8))
    with ScriptedLLM(fail_after=4) as llm:
        teacher = EndpointTeacher(llm.url, llm.model, concurrency=2, retries=1, backoff=0.01)
        with pytest.raises(TeacherError, match=r"HTTP 500.*stopped after 4 of 8 rows; their scores are saved"):
            judge_batch(ws, batch_id, _spec(llm), teacher=teacher, batch_size=2)
        assert len(latest_judgements(ws, batch_id)) == 4  # two chunks of two committed, the third not

        llm.fail_after = None  # the server is back
        rest = judge_batch(ws, batch_id, _spec(llm), teacher=teacher, batch_size=2)
        assert (rest.judged, rest.skipped) == (4, 4)
        assert len(latest_judgements(ws, batch_id)) == 8


def test_unreadable_answers_are_stored_as_failures_and_retried(ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    batch_id = add_batch(ws, pid, _rows(6))
    with ScriptedLLM(garbage_every=3) as llm:
        spec = TeacherSpec("endpoint", base_url=llm.url, model=llm.model, concurrency=1)
        summary = judge_batch(ws, batch_id, spec)
        assert (summary.judged, summary.failed) == (4, 2)  # requests 3 and 6 got prose
        failed = [j for j in latest_judgements(ws, batch_id).values() if j.parse_status == "failed"]
        assert len(failed) == 2
        for j in failed:
            assert (j.accuracy, j.tone, j.instruction_following, j.overall) == (None, None, None, None)
            assert "weather" in j.raw_output and "no scores at all" in j.rationale

        retried = judge_batch(ws, batch_id, spec)  # requests 7 and 8 are answered properly
        assert (retried.judged, retried.failed, retried.skipped) == (2, 0, 4)
        assert all(j.parse_status == "ok" for j in latest_judgements(ws, batch_id).values())


def test_only_passing_rows_are_judged_and_bad_requests_write_nothing(ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    batch_id = add_batch(ws, pid, _rows(3))
    with ws.read() as conn:
        first = conn.execute("SELECT MIN(id) FROM candidate WHERE batch_id=?", (batch_id,)).fetchone()[0]
    with ws.write() as conn:
        conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, reason, created_at) "
                     "VALUES (?, 'heuristics', 0, 'too short', ?)", (first, utc_now()))
    with ScriptedLLM() as llm:
        before = snapshot(ws)
        with pytest.raises(QualityError, match="between 1 and 256"):
            judge_batch(ws, batch_id, _spec(llm), batch_size=0)
        with pytest.raises(QualityError, match="cannot be negative"):
            judge_batch(ws, batch_id, _spec(llm), limit=-1)
        assert snapshot(ws) == before and llm.requests == 0

        summary = judge_batch(ws, batch_id, _spec(llm))
        assert summary.rows == 2 and first not in latest_judgements(ws, batch_id)
        assert judge_batch(ws, batch_id, _spec(llm), only_passing=False).judged == 1

    empty = add_batch(ws, pid, [None])
    with pytest.raises(QualityError, match="nothing to judge"):
        judge_batch(ws, empty, TeacherSpec("endpoint", base_url="http://127.0.0.1:9/v1"))
    assert json.loads(json.dumps(summary.to_dict()))["message"].startswith("Judged 2 rows")
