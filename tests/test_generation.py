"""Generation batches end to end on the real human seeds: every strategy, provenance, stop/resume, preview,
prompt versions, and bad input that leaves the workspace untouched.

Teacher strategies talk to tests.scripted_llm (a real HTTP server speaking the OpenAI API through the
real EndpointTeacher), because no model that runs here follows JSON instructions reliably without a
grammar; the embedded SmolLM2 runs every strategy under its JSON schema in tests/test_structured.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from studio import jobs
from studio.augment import batches
from studio.augment.candidates import list_candidates
from studio.augment.prompt_versions import latest, list_versions, save_version
from studio.augment.strategies import StrategyOptions
from studio.data.importer import commit_import, preview_file
from studio.errors import GenerationError, StudioError, TeacherError, TemplateError
from studio.teachers.base import GenerationParams
from studio.teachers.spec import TeacherSpec, parse_teacher
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from studio.workspace.seeds import list_seeds
from tests.conftest import snapshot
from tests.scripted_llm import ScriptedLLM

TEACHER_STRATEGIES = ["instruction-expansion", "instruction-refinement", "response-expansion", "few-shot"]


def project_with_seeds(ws: Workspace, path: Path, name: str = "gen", task: str = "Helpful answers") -> int:
    p = create_project(ws, name, task_description=task)
    commit_import(ws, p.id, preview_file(ws, path, project_id=p.id))
    return p.id


@pytest.fixture
def pid(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds)


@pytest.fixture
def llm():
    with ScriptedLLM() as server:
        yield server


def endpoint(llm: ScriptedLLM, **kw) -> TeacherSpec:
    return parse_teacher(llm.url, model=llm.model, **kw)


def request(pid: int, strategy: str, count: int, teacher: TeacherSpec | None = None, **options) -> batches.BatchRequest:
    return batches.BatchRequest(pid, strategy, count, teacher, None, StrategyOptions(**options),
                                GenerationParams(max_new_tokens=128, temperature=0.7), rng_seed=7)


# --- every strategy, end to end --------------------------------------------------------------------


@pytest.mark.parametrize("strategy", TEACHER_STRATEGIES)
def test_teacher_strategy_fills_a_batch_with_provenance(ws: Workspace, pid: int, llm: ScriptedLLM,
                                                        strategy: str) -> None:
    b = batches.plan_batch(ws, request(pid, strategy, 12, endpoint(llm)))
    done = batches.run_batch(ws, b.id)
    assert done.state == "done" and done.rows_ok == 12
    rows = list_candidates(ws, batch_id=b.id)
    assert len([c for c in rows if c.usable]) == 12
    seed_ids = {s for c in rows for s in c.seed_ids}
    for c in rows:
        info = c.to_json()["provenance"]
        assert info["project_id"] == pid and info["batch_id"] == b.id and info["strategy"] == strategy
        assert info["seed_ids"] and info["prompt_version_id"] == done.prompt_version_id and info["prompt_version"] == 1
        assert info["teacher"]["kind"] == "endpoint" and info["teacher"]["model"] == llm.model
        assert info["teacher"]["base_url"] == llm.url and info["teacher"]["served"]["model"] == llm.model
        assert info["decoding_params"]["temperature"] == 0.7 and info["decoding_params"]["max_new_tokens"] == 128
        assert info["raw_output"] and info["parse_status"] in ("ok", "partial") and info["created_at"]
    # The rows are new text built on the seeds they name, never a copy of a seed.
    seeds = {json.dumps(s.data, sort_keys=True) for s in __import__("studio.workspace.seeds", fromlist=["x"])
             .list_seeds(ws, pid)}
    assert not {json.dumps(c.data, sort_keys=True) for c in rows} & seeds
    assert seed_ids


def test_each_strategy_writes_what_it_promises(ws: Workspace, pid: int, llm: ScriptedLLM) -> None:
    spec = endpoint(llm)
    by = {}
    for strategy in TEACHER_STRATEGIES:
        b = batches.run_batch(ws, batches.plan_batch(ws, request(pid, strategy, 3, spec,
                                                                 styles=["formal", "pirate: like a pirate"])).id)
        by[strategy] = list_candidates(ws, batch_id=b.id)
    seed = {s.id: s for s in list_seeds(ws, pid)}
    for c in by["instruction-expansion"]:  # same answer, new phrasing of the request
        original = seed[c.seed_ids[0]].data
        assert c.data["output"] == original["output"] and c.data["instruction"] != original["instruction"]
        assert original["instruction"] in c.data["instruction"]
    for c in by["instruction-refinement"]:
        original = seed[c.seed_ids[0]].data
        assert c.data["instruction"].startswith(original["instruction"]) and "three short sentences" in c.data[
            "instruction"]
        assert c.meta["original_instruction"] == original["instruction"]
        assert not c.data["instruction"].startswith('"')  # the preamble and quotes were stripped
    styles = {c.meta["style"] for c in by["response-expansion"]}
    assert styles <= {"formal", "pirate"} and "formal" in styles
    for c in by["response-expansion"]:
        assert c.data["instruction"] == seed[c.seed_ids[0]].data["instruction"]
    for c in by["few-shot"]:
        assert len(c.seed_ids) == 5 and c.data["instruction"].startswith("New instruction")


def test_nlpaug_batch_on_the_shared_seeds(ws: Workspace, pid: int) -> None:
    b = batches.run_batch(ws, batches.plan_batch(ws, request(pid, "nlpaug", 30, augmenter="keyboard", copies=2)).id)
    assert b.state == "done" and b.rows_ok == 30
    seeds = {s.id: s for s in list_seeds(ws, pid)}
    for c in list_candidates(ws, batch_id=b.id):
        original = seeds[c.seed_ids[0]].data
        assert c.data["output"] == original["output"] and c.data != original
        assert c.meta["augmenter"] == "keyboard" and c.decoding_params == {}
        assert c.to_json()["provenance"]["teacher"] == {}


def test_entity_swap_on_ner_seeds_and_marked_text(ws: Workspace, tmp_path: Path) -> None:
    ner = tmp_path / "ner.jsonl"
    ner.write_text("\n".join(json.dumps(r) for r in [
        {"tokens": ["Ada", "Lovelace", "visited", "Paris", "."], "tags": ["B-PER", "I-PER", "O", "B-LOC", "O"]},
        {"tokens": ["Acme", "Corp", "hired", "Bob", "in", "Berlin"], "tags": ["B-ORG", "I-ORG", "O", "B-PER", "O",
                                                                               "B-LOC"]},
        {"tokens": ["Call", "Maria", "tomorrow"], "tags": ["O", "B-PER", "O"]},
    ]) + "\n", encoding="utf-8")
    pid = project_with_seeds(ws, ner, "ner")
    b = batches.run_batch(ws, batches.plan_batch(ws, request(pid, "entity-swap", 6, copies=2, locale="de_DE")).id)
    assert b.rows_ok == 6
    for c in list_candidates(ws, batch_id=b.id):
        assert len(c.data["tokens"]) == len(c.data["tags"]) and "O" in c.data["tags"]
    marked = tmp_path / "marked.jsonl"
    marked.write_text(json.dumps({"instruction": "Write to [Ada Lovelace](PER) about her trip to [Paris](LOC).",
                                  "input": "", "output": "Dear [Ada Lovelace](PER), how was [Paris](LOC)?"}) + "\n",
                      encoding="utf-8")
    pid2 = project_with_seeds(ws, marked, "marked")
    b2 = batches.run_batch(ws, batches.plan_batch(ws, request(pid2, "entity-swap", 2, copies=2)).id)
    for c in list_candidates(ws, batch_id=b2.id):
        assert "(PER)" in c.data["instruction"] and "Ada Lovelace" not in c.data["instruction"]


def test_unparseable_answers_are_recorded_not_fatal(ws: Workspace, pid: int) -> None:
    with ScriptedLLM(garbage_every=2) as llm:
        b = batches.run_batch(ws, batches.plan_batch(ws, request(pid, "few-shot", 15, endpoint(llm, concurrency=1))).id)
    assert b.state == "done" and b.rows_ok == 15 and b.rows_failed >= 2
    failed = [c for c in list_candidates(ws, batch_id=b.id) if not c.usable]
    assert all(c.parse_status == "failed" and "weather" in c.raw_output and c.parse_error for c in failed)


# --- jobs: stop, resume, exactly-once --------------------------------------------------------------


def unit_counts(ws: Workspace, batch_id: int) -> tuple[list[int], int]:
    with ws.read() as conn:
        idxs = [r[0] for r in conn.execute("SELECT idx FROM batch_unit WHERE batch_id=? ORDER BY idx", (batch_id,))]
        orphan = conn.execute("SELECT COUNT(*) FROM candidate WHERE batch_id=? AND unit_idx NOT IN "
                              "(SELECT idx FROM batch_unit WHERE batch_id=?)", (batch_id, batch_id)).fetchone()[0]
    return idxs, orphan


def test_stop_then_resume_gives_exactly_the_target(ws: Workspace, pid: int) -> None:
    with ScriptedLLM(delay=0.15) as llm:
        b = batches.plan_batch(ws, request(pid, "few-shot", 40, endpoint(llm, concurrency=1), n=2))
        batches.start_in_background(ws, b.id)
        deadline = time.time() + 30
        while batches.get_batch(ws, b.id).rows_ok < 6 and time.time() < deadline:
            time.sleep(0.05)
        stopping = batches.stop_batch(ws, b.id)
        assert stopping.state in ("stopping", "stopped")
        batches.wait_for(b.id, 30)
        stopped = batches.get_batch(ws, b.id)
        assert stopped.state == "stopped" and 6 <= stopped.rows_ok < 40 and stopped.resumable
        assert "Resume" in stopped.job.message
        done = batches.run_batch(ws, b.id)
    assert done.state == "done" and done.rows_ok == 40
    idxs, orphan = unit_counts(ws, b.id)
    assert idxs == list(range(len(idxs))) and orphan == 0  # every unit once, no row without its unit
    texts = [json.dumps(c.data, sort_keys=True) for c in list_candidates(ws, batch_id=b.id)]
    assert len(texts) == len(set(texts)) == 40


def test_a_job_whose_process_died_becomes_interrupted(ws: Workspace, pid: int) -> None:
    b = batches.plan_batch(ws, request(pid, "nlpaug", 10))
    with ws.write() as conn:  # what a kill -9 leaves behind: running, with a pid that no longer exists
        conn.execute("UPDATE job SET status='running', pid=999999999 WHERE id=?", (b.job.id,))
    again = batches.get_batch(ws, b.id)
    assert again.state == "interrupted" and again.resumable and "Resume" in again.job.message
    assert batches.run_batch(ws, b.id).rows_ok == 10


def test_a_running_batch_cannot_be_started_twice(ws: Workspace, pid: int) -> None:
    with ScriptedLLM(delay=0.2) as llm:
        b = batches.plan_batch(ws, request(pid, "few-shot", 6, endpoint(llm, concurrency=1), n=1))
        batches.start_in_background(ws, b.id)
        time.sleep(0.1)
        with pytest.raises(GenerationError, match="already running"):
            batches.run_batch(ws, b.id)
        batches.wait_for(b.id, 30)
    assert batches.get_batch(ws, b.id).rows_ok == 6


def test_progress_reports_rate_and_eta(ws: Workspace, pid: int) -> None:
    seen: list[jobs.Job] = []
    with ScriptedLLM(delay=0.05) as llm:
        b = batches.plan_batch(ws, request(pid, "few-shot", 16, endpoint(llm, concurrency=1), n=2))
        batches.run_batch(ws, b.id, on_progress=seen.append)
    assert [j.done for j in seen] == sorted(j.done for j in seen) and seen[-1].done == 16
    assert any(j.rate_per_minute() for j in seen)
    assert "rows/min" in seen[-1].progress_text() and "/ 16 rows" in seen[-1].progress_text()


# --- preview --------------------------------------------------------------------------------------


def test_preview_saves_nothing_until_kept(ws: Workspace, pid: int, llm: ScriptedLLM) -> None:
    before = snapshot(ws)
    req = request(pid, "instruction-expansion", 5, endpoint(llm))
    rows = batches.preview(ws, req)
    assert len([r for r in rows if r.row.usable]) == 5
    assert snapshot(ws) == before
    kept = batches.keep_preview(ws, req, rows)
    assert kept.rows_ok == 5 and kept.state == "done" and kept.prompt_version == 1
    stored = list_candidates(ws, batch_id=kept.id)
    assert [c.data for c in stored] == [r.row.data for r in rows if r.row.usable]
    assert all(c.raw_output for c in stored)


# --- prompt versions -----------------------------------------------------------------------------


def test_prompt_edits_are_versions_and_batches_record_theirs(ws: Workspace, pid: int, llm: ScriptedLLM) -> None:
    v1 = latest(ws, pid, "few-shot")
    first = batches.run_batch(ws, batches.plan_batch(ws, request(pid, "few-shot", 2, endpoint(llm))).id)
    v2 = save_version(ws, pid, "few-shot", v1.template.replace("different cases", "different, harder cases"),
                      note="harder cases")
    second = batches.run_batch(ws, batches.plan_batch(ws, request(pid, "few-shot", 2, endpoint(llm))).id)
    assert (first.prompt_version, second.prompt_version) == (1, 2) and v2.parent_id == v1.id
    assert [v.version for v in list_versions(ws, pid, "few-shot")] == [2, 1]
    assert batches.get_batch(ws, first.id).prompt_version_id == v1.id  # history is never rewritten
    assert save_version(ws, pid, "few-shot", v2.template).id == v2.id  # no-op edits are not new versions


@pytest.mark.parametrize(("template", "message"), [
    ("{% for x in examples %}{{ x.instruction }", "Jinja error on line 1"),
    ("Write {{ n }} rows like {{ exmaples }}", "{{ exmaples }}"),
    ("", "empty"),
    ("{{ n | nosuchfilter }}", "Jinja error"),
])
def test_bad_templates_are_refused_and_nothing_is_written(ws: Workspace, pid: int, template: str,
                                                         message: str) -> None:
    latest(ws, pid, "few-shot")
    before = snapshot(ws)
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("}", r"\}")) as info:
        save_version(ws, pid, "few-shot", template)
    assert "\n" not in str(info.value)
    assert snapshot(ws) == before


# --- bad requests: clear messages, nothing half-written --------------------------------------------


@pytest.mark.parametrize(("count", "message"), [(0, "at least 1 row"), (10**7, "more than one batch can hold"),
                                                ("ten", "whole number")])
def test_bad_counts(ws: Workspace, pid: int, count: object, message: str) -> None:
    before = snapshot(ws)
    with pytest.raises(GenerationError, match=message):
        batches.plan_batch(ws, request(pid, "nlpaug", count))  # type: ignore[arg-type]
    assert snapshot(ws) == before


def test_entity_swap_on_seeds_without_entities(ws: Workspace, pid: int) -> None:
    before = snapshot(ws)
    with pytest.raises(GenerationError, match="NER seeds") as info:
        batches.plan_batch(ws, request(pid, "entity-swap", 10))
    assert "[Paris](LOC)" in str(info.value)
    assert snapshot(ws) == before


def test_strategy_needing_a_teacher_without_one(ws: Workspace, pid: int) -> None:
    with pytest.raises(TeacherError, match="needs a teacher"):
        batches.plan_batch(ws, request(pid, "few-shot", 5, None))


def test_unknown_strategy_and_bad_options(ws: Workspace, pid: int) -> None:
    with pytest.raises(GenerationError, match=r"Unknown strategy 'magic'.*few-shot"):
        batches.plan_batch(ws, request(pid, "magic", 5))
    with pytest.raises(GenerationError, match="Unknown augmenter"):
        batches.plan_batch(ws, request(pid, "nlpaug", 5, augmenter="telepathy"))
    with pytest.raises(GenerationError, match="Temperature"):
        batches.plan_batch(ws, batches.BatchRequest(pid, "nlpaug", 5, params=GenerationParams(temperature=9)))


def test_a_project_without_seeds(ws: Workspace) -> None:
    p = create_project(ws, "empty")
    with pytest.raises(GenerationError, match="no seeds yet"):
        batches.plan_batch(ws, request(p.id, "nlpaug", 5))


def test_endpoint_that_refuses_fails_the_job_clearly_and_keeps_earlier_rows(ws: Workspace, pid: int) -> None:
    from studio.teachers.endpoint import EndpointTeacher

    with ScriptedLLM(fail_after=2) as llm:
        b = batches.plan_batch(ws, request(pid, "few-shot", 30, endpoint(llm, concurrency=1), n=3))
        teacher = EndpointTeacher(llm.url, llm.model, concurrency=1, retries=1, backoff=0.01)
        with pytest.raises(TeacherError, match="500"):
            batches.run_batch(ws, b.id, teacher=teacher)
    failed = batches.get_batch(ws, b.id)
    assert failed.state == "failed" and "500" in failed.job.message and "resume" in failed.job.message
    # Units are all-or-nothing: the step that failed left no row behind.
    _, orphan = unit_counts(ws, b.id)
    assert orphan == 0 and failed.rows_ok == sum(1 for c in list_candidates(ws, batch_id=b.id) if c.usable)
    with ScriptedLLM() as healthy:
        resumed = batches.run_batch(ws, b.id, teacher=EndpointTeacher(healthy.url, healthy.model))
    assert resumed.rows_ok == 30 and resumed.state == "done"


def test_unreachable_endpoint(ws: Workspace, pid: int) -> None:
    from tests.conftest import free_port

    b = batches.plan_batch(ws, request(pid, "few-shot", 5, parse_teacher(f"http://127.0.0.1:{free_port()}/v1",
                                                                         model="m", timeout=2)))
    with pytest.raises(TeacherError) as info:
        batches.run_batch(ws, b.id)
    assert "127.0.0.1" in str(info.value)
    assert batches.get_batch(ws, b.id).state == "failed"


def test_api_keys_are_never_written(ws: Workspace, pid: int, llm: ScriptedLLM) -> None:
    secret = "sk-do-not-store-7f3a9"
    spec = parse_teacher(f"http://user:{secret}@127.0.0.1:{llm.url.split(':')[2]}", model=llm.model)
    b = batches.plan_batch(ws, request(pid, "few-shot", 3, spec))
    batches.run_batch(ws, b.id, api_key=secret)
    assert secret not in ws.db_path.read_bytes().decode("latin-1")
    wal = ws.db_path.with_name("studio.db-wal")
    assert not wal.exists() or secret not in wal.read_bytes().decode("latin-1")


# --- teachers: a finished run as the teacher of the next round ------------------------------------


def test_a_finished_run_can_teach(ws: Workspace, pid: int, tiny_chat_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from studio.teachers.spec import build_teacher, finished_runs

    out = ws.runs_dir / "1"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_chat_model)),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(str(out / "adapter"))
    with ws.write() as conn:
        conn.execute("INSERT INTO run(id, project_id, base_model_ref, method, status, output_dir, created_at, "
                     "updated_at) VALUES (1, ?, ?, 'lora', 'done', ?, '', '')", (pid, str(tiny_chat_model), str(out)))
    assert finished_runs(ws, pid) == [("run:1", f"Run 1: lora on {tiny_chat_model}")]
    teacher = build_teacher(ws, parse_teacher("run:1", batch_size=4))
    texts = teacher.generate([[{"role": "user", "content": "Hi"}]] * 2, GenerationParams(4, 0.0))
    assert len(texts) == 2
    b = batches.run_batch(ws, batches.plan_batch(ws, request(pid, "instruction-refinement", 2,
                                                             parse_teacher("run:1", batch_size=4))).id)
    assert b.teacher["ref"] == "run:1" and b.rows_failed + b.rows_ok >= 1
    with pytest.raises(TeacherError, match="no run 9"):
        build_teacher(ws, parse_teacher("run:9"))


def test_local_tiny_teacher_batch_records_failures_and_finishes_short(ws: Workspace, pid: int,
                                                                     tiny_chat_model: Path) -> None:
    spec = parse_teacher(str(tiny_chat_model), batch_size=8)
    req = request(pid, "few-shot", 4, spec)
    req.params = GenerationParams(max_new_tokens=8, temperature=0.0)
    b = batches.run_batch(ws, batches.plan_batch(ws, req).id)
    # A random model never writes parseable JSON: every unit is a recorded failure, the batch ends short.
    assert b.state == "done" and b.rows_ok == 0 and b.rows_failed > 0 and "short" in b.job.message
    assert b.teacher["kind"] == "local" and b.teacher["batch_size"] == 8


def test_studio_errors_carry_one_plain_sentence(ws: Workspace, pid: int) -> None:
    for bad in (lambda: batches.plan_batch(ws, request(pid, "nlpaug", 0)),
                lambda: batches.get_batch(ws, 12345)):
        with pytest.raises(StudioError) as info:
            bad()
        assert str(info.value)[0].isupper() and str(info.value).endswith(".")


def test_threads_do_not_leak(ws: Workspace, pid: int) -> None:
    before = threading.active_count()
    b = batches.plan_batch(ws, request(pid, "nlpaug", 4))
    batches.start_in_background(ws, b.id)
    batches.wait_for(b.id, 30)
    assert threading.active_count() <= before
