"""Batch evaluation for real: a run with a real (random) LoRA adapter over the tiny model, the real shared
seeds frozen into a version, real SQLite, the real pairwise judge through HTTP (tests.scripted_llm).

Sampling (temperature 0.7, fixed seed) is used where texts matter: the random tiny model's greedy answer
is only whitespace, and metrics on empty strings would prove little."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from studio import jobs
from studio.data.chat import to_messages
from studio.data.versions import FreezeConfig, freeze_version, version_rows
from studio.errors import DatasetVersionError, QualityError, StudioError, TrainError
from studio.evaluation import metrics as metric_lib
from studio.evaluation.batch import (
    EvalConfig,
    create_eval,
    evaluate,
    get_eval,
    latest_eval,
    list_evals,
    reconcile_evals,
    run_eval,
    stop_eval,
)
from studio.evaluation.loss import split_loss
from studio.evaluation.pairwise import MARKER
from studio.evaluation.sidebyside import SideBySide
from studio.teachers.spec import parse_teacher
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now
from studio.workspace.projects import create_project, update_project
from tests.conftest import SHARED_SEEDS, snapshot
from tests.factories import project_with_seeds
from tests.scripted_llm import ScriptedLLM
from tests.test_sidebyside import _make_adapter

SAMPLE = {"temperature": 0.7, "seed": 3, "max_new_tokens": 6}
MAX_SEQ = 256


@dataclass
class Env:
    ws: Workspace
    project_id: int
    version_id: int
    run_id: int
    base: Path
    model: SideBySide


def insert_run(ws: Workspace, project_id: int, version_id: int | None, base_ref: str, *, method: str = "lora",
               status: str = "done", adapter: Path | None = None) -> int:
    """A run row as a finished training run leaves it, with `adapter` copied to output_dir/adapter."""
    now = utc_now()
    config = TrainConfig(method=method, max_seq_length=MAX_SEQ).to_dict()
    with ws.write() as conn:
        run_id = int(conn.execute(
            "INSERT INTO run(project_id, dataset_version_id, base_model_ref, method, config, status, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, version_id, base_ref, method, json.dumps(config), status, now, now)).lastrowid or 0)
        out = ws.runs_dir / str(run_id)
        conn.execute("UPDATE run SET output_dir = ?, log_path = ? WHERE id = ?", (str(out), str(out / "train.log"),
                                                                                  run_id))
    out.mkdir(parents=True, exist_ok=True)
    if adapter is not None:
        shutil.copytree(adapter, out / "adapter")
    return run_id


def crafted_version(ws: Workspace, project_id: int, splits: dict[str, list[tuple[str, dict]]], name: str) -> int:
    """A version holding exactly these (format, record) rows per split."""
    with ws.write() as conn:
        version_id = int(conn.execute(
            "INSERT INTO dataset_version(project_id, name, family, splits, config, stats, created_at) "
            "VALUES (?, ?, 'instruction', ?, '{}', '{}', ?)",
            (project_id, name, json.dumps({s: len(r) for s, r in splits.items()}), utc_now())).lastrowid or 0)
        for split, rows in splits.items():
            for i, (fmt, record) in enumerate(rows):
                conn.execute("INSERT INTO dataset_row(version_id, split, position, origin, source_id, format, data) "
                             "VALUES (?, ?, ?, 'seed', ?, ?, ?)", (version_id, split, i, i + 1, fmt,
                                                                    json.dumps(record)))
    return version_id


@pytest.fixture(scope="module")
def adapter(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("eval-adapter"))


@pytest.fixture(scope="module")
def env(tiny_chat_model: Path, adapter: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    from studio.config import load_settings

    ws = Workspace(load_settings(tmp_path_factory.mktemp("eval") / "home"))
    project_id = project_with_seeds(ws, SHARED_SEEDS, name="eval", task="Answer everyday questions helpfully")
    version_id = freeze_version(ws, project_id, FreezeConfig()).id  # 84 train, 18 validation, 18 test
    run_id = insert_run(ws, project_id, version_id, str(tiny_chat_model), adapter=adapter)
    return Env(ws, project_id, version_id, run_id, tiny_chat_model, SideBySide.load(ws, str(tiny_chat_model),
                                                                                   [run_id]))


def split_rows(env: Env, split: str, limit: int) -> list[list[dict[str, str]]]:
    rows = sorted(version_rows(env.ws, env.version_id, split), key=lambda r: r.id)[:limit]
    return [to_messages(r.format, r.data) for r in rows]


# --- metrics, examples, the job ---------------------------------------------------------------------------


def test_eval_stores_metrics_equal_to_compare_on_its_predictions(env: Env) -> None:
    seen: list[tuple[int, int, str]] = []
    ev = evaluate(env.ws, env.run_id, EvalConfig(limit=4, **SAMPLE),  # loads its own SideBySide
                  progress=lambda d, t, m: seen.append((d, t, m)))
    assert ev.status == "done" and ev.split == "test" and ev.dataset_version_id == env.version_id
    assert ev.base_model_ref == str(env.base) and ev.message.startswith("Done: 4 rows")
    convs = split_rows(env, "test", 4)
    by_index = {e["index"]: e for e in ev.examples}
    assert sorted(by_index) == [0, 1, 2, 3]
    for i, conv in enumerate(convs):
        assert by_index[i]["prompt"] == conv[0]["content"] and by_index[i]["reference"] == conv[-1]["content"]
    base = [by_index[i]["base_pred"] for i in range(4)]
    tuned = [by_index[i]["tuned_pred"] for i in range(4)]
    assert all(base) and all(tuned) and base != tuned  # the adapter changes the answers
    table = metric_lib.compare(base, tuned, [c[-1]["content"] for c in convs])
    assert ev.metrics["n"] == 4
    assert ev.metrics["rows"] == table.to_dict()["rows"]
    assert [e["change"] for e in ev.examples] == [e.change for e in table.examples]
    assert [abs(e["change"]) for e in ev.examples] == sorted((abs(e["change"]) for e in ev.examples), reverse=True)
    assert all(e["judge"] is None for e in ev.examples) and ev.metrics["judge"] is None
    # The base side is the plain base model: the same answer as the model loaded without any adapter.
    plain = SideBySide(env.base)
    assert base == [plain.generate(c[:-1], which="base", **SAMPLE) for c in convs]
    # The job row is the progress every client polls: it ended done with every row counted.
    job = jobs.get(env.ws, ev.job_id)
    assert (job.kind, job.subject_id, job.status, job.done, job.total) == ("eval", ev.id, "done", 4, 4)
    assert ev.progress == (4, 4)
    assert [d for d, _, _ in seen] == [0, 1, 2, 3, 4] and all(t == 4 for _, t, _ in seen)
    # Stored and read back; listed newest first; the latest done test evaluation of the run.
    assert get_eval(env.ws, ev.id).to_dict() == ev.to_dict()
    assert json.loads(json.dumps(ev.to_dict()))["metrics"]["rows"] == ev.metrics["rows"]
    assert list_evals(env.ws, run_id=env.run_id)[0].id == ev.id
    assert any(e.id == ev.id for e in list_evals(env.ws, project_id=env.project_id))
    assert latest_eval(env.ws, env.run_id).id == max(e.id for e in list_evals(env.ws, run_id=env.run_id)
                                                     if e.status == "done" and e.split == "test")
    md = ev.table_markdown()
    for needle in ("ROUGE-L", "BLEU", "Exact match", "Loss (lower is better)", "Perplexity", "4 rows"):
        assert needle in md
    with pytest.raises(QualityError, match="already done"):
        run_eval(env.ws, ev.id)


def test_loss_is_assistant_tokens_only_and_base_equals_the_plain_model(env: Env) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.train.data import IGNORE_INDEX, tokenize_conversation

    ev = evaluate(env.ws, env.run_id, EvalConfig(split="validation", limit=3, max_new_tokens=2), model=env.model)
    assert ev.status == "done" and ev.split == "validation"
    convs = split_rows(env, "validation", 3)
    # The same number, computed directly with the plain model and transformers' own shifted loss.
    model = AutoModelForCausalLM.from_pretrained(str(env.base), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(env.base))
    total = count = 0.0
    with torch.no_grad():
        for conv in convs:
            tok = tokenize_conversation(tokenizer, conv, max_length=MAX_SEQ)
            n = sum(label != IGNORE_INDEX for label in tok["labels"][1:])
            out = model(input_ids=torch.tensor([tok["input_ids"]]), labels=torch.tensor([tok["labels"]]))
            total += float(out.loss) * n
            count += n
    assert ev.metrics["loss"]["base"] == pytest.approx(total / count, rel=1e-5)
    assert ev.metrics["loss_tokens"] == count
    assert ev.metrics["perplexity"]["base"] == pytest.approx(math.exp(ev.metrics["loss"]["base"]))
    assert ev.metrics["perplexity"]["tuned"] == pytest.approx(math.exp(ev.metrics["loss"]["tuned"]))
    assert abs(ev.metrics["loss"]["tuned"] - ev.metrics["loss"]["base"]) > 1e-3  # the adapter is on for tuned
    # Only assistant tokens count: changing a user turn leaves the token count alone.
    edited = [[{**m, "content": m["content"] + " please" if m["role"] == "user" else m["content"]} for m in c]
              for c in convs]
    assert split_loss(env.model, edited, "base", max_length=MAX_SEQ).tokens == count
    # The adapter is switched back off after the tuned pass.
    assert split_loss(env.model, convs, "base", max_length=MAX_SEQ).loss == pytest.approx(total / count, rel=1e-5)
    with pytest.raises(QualityError, match="nothing to compute a loss on"):
        split_loss(env.model, convs, "base", max_length=4)


# --- the judge: both orders asked, verdicts combined --------------------------------------------------------


def _judge_requests(llm: ScriptedLLM) -> list[str]:
    return [m[-1]["content"] for m in llm.prompts if any(MARKER in x["content"] for x in m)]


def test_judge_asks_both_orders_and_combines_them(env: Env) -> None:
    update_project(env.ws, env.project_id, teacher_ref="")
    with ScriptedLLM() as llm:  # prefers the longer answer, whichever position it is in
        teacher = parse_teacher(f"scripted-teacher@{llm.url}")
        ev = evaluate(env.ws, env.run_id, EvalConfig(limit=4, judge=True, **SAMPLE), teacher=teacher,
                      model=env.model)
        asked = _judge_requests(llm)
    assert ev.status == "done" and ev.teacher["base_url"] == llm.url
    assert len(asked) == 8 and ev.progress == (8, 8)
    expected = {"tuned": 0, "base": 0, "tie": 0}
    for ex in ev.examples:
        base, tuned = ex["base_pred"], ex["tuned_pred"]
        mine = [a for a in asked if f"Prompt:\n{ex['prompt']}\n\nAnswer 1:" in a]
        assert len(mine) == 2  # this row, asked twice: (base, tuned) as (1, 2), then swapped
        assert any(f"Answer 1:\n{base}\n\nAnswer 2:\n{tuned}\n\n" in a for a in mine)
        assert any(f"Answer 1:\n{tuned}\n\nAnswer 2:\n{base}\n\n" in a for a in mine)
        b, t = len(base), len(tuned)
        want = "tie" if b == t else ("tuned" if t > b else "base")
        assert ex["judge"] == want
        expected[want] += 1
    judge = ev.metrics["judge"]
    assert (judge["tuned_wins"], judge["base_wins"], judge["ties"], judge["n"]) == (
        expected["tuned"], expected["base"], expected["tie"], 4)
    assert expected["tuned"] + expected["base"] > 0  # the sample has decisive rows
    decisive = expected["tuned"] + expected["base"]
    assert judge["win_rate"] == pytest.approx(expected["tuned"] / decisive)
    assert judge["low"] <= judge["win_rate"] <= judge["high"] and judge["unparsed"] == 0
    assert "Judge (" in ev.table_markdown()

    # A judge that always picks answer 1 is following position, not content: every row is a tie.
    with ScriptedLLM(pairwise="first") as llm:
        teacher = parse_teacher(f"scripted-teacher@{llm.url}")
        biased = evaluate(env.ws, env.run_id, EvalConfig(limit=4, judge=True, **SAMPLE), teacher=teacher,
                          model=env.model)
    judge = biased.metrics["judge"]
    assert (judge["tuned_wins"], judge["base_wins"], judge["ties"], judge["win_rate"]) == (0, 0, 4, 0.5)
    assert {e["judge"] for e in biased.examples} == {"tie"}

    # Unreadable answers are left out, not guessed: every 3rd request of 8 gets prose with no verdict.
    with ScriptedLLM(garbage_every=3) as llm:
        teacher = parse_teacher(f"scripted-teacher@{llm.url}")
        noisy = evaluate(env.ws, env.run_id, EvalConfig(limit=4, judge=True, **SAMPLE), teacher=teacher,
                         model=env.model)
    judge = noisy.metrics["judge"]
    assert judge["unparsed"] == 2 and judge["n"] == sum(e["judge"] is not None for e in noisy.examples)
    assert 2 <= judge["n"] <= 3 and "could not be read" in judge["message"]


def test_judge_uses_the_projects_teacher_by_default(env: Env) -> None:
    with ScriptedLLM() as llm:
        update_project(env.ws, env.project_id, teacher_ref=f"scripted-teacher@{llm.url}")
        try:
            ev = evaluate(env.ws, env.run_id, EvalConfig(limit=2, judge=True, **SAMPLE), model=env.model)
        finally:
            update_project(env.ws, env.project_id, teacher_ref="")
        assert ev.status == "done" and ev.teacher["base_url"] == llm.url and len(_judge_requests(llm)) == 4


# --- stop, failure, interruption ---------------------------------------------------------------------------


def test_stop_midway_from_another_client(env: Env) -> None:
    ev = create_eval(env.ws, env.run_id, EvalConfig(limit=4, **SAMPLE))
    assert ev.status == "queued" and jobs.get(env.ws, ev.job_id).status == "queued"

    def progress(done: int, total: int, message: str) -> None:
        if done == 1:
            stop_eval(env.ws, ev.id)  # what the UI's Stop button or another process does: a flag on the job row
            assert jobs.get(env.ws, ev.job_id).status == "stopping"

    stopped = run_eval(env.ws, ev.id, model=env.model, progress=progress)
    assert stopped.status == "stopped" and "Stopped after 2 of 4 rows" in stopped.message
    assert stopped.metrics == {} and stopped.examples == [] and stopped.finished_at
    job = jobs.get(env.ws, ev.job_id)
    assert job.status == "stopped" and job.done == 2
    assert latest_eval(env.ws, env.run_id, done_only=False).id == ev.id
    # A stopped evaluation runs again from the start.
    again = run_eval(env.ws, ev.id, model=env.model)
    assert again.status == "done" and again.metrics["n"] == 4 and jobs.get(env.ws, ev.job_id).status == "done"
    # A queued one stops at once.
    queued = create_eval(env.ws, env.run_id, EvalConfig(limit=1))
    assert stop_eval(env.ws, queued.id).status == "stopped"


def test_failure_is_recorded_with_its_reason(env: Env, tiny_chat_model: Path) -> None:
    ev = create_eval(env.ws, env.run_id, EvalConfig(limit=2))
    other = SideBySide(tiny_chat_model)  # a loaded model without this run's adapter
    with pytest.raises(QualityError, match="does not hold"):
        run_eval(env.ws, ev.id, model=other)
    failed = get_eval(env.ws, ev.id)
    assert failed.status == "failed" and "does not hold" in failed.message
    assert jobs.get(env.ws, ev.job_id).status == "failed"


def test_reconcile_marks_a_dead_evaluation_interrupted(env: Env) -> None:
    ev = create_eval(env.ws, env.run_id, EvalConfig(limit=1))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with env.ws.write() as conn:  # what a process killed mid-way leaves behind
        conn.execute("UPDATE job SET status='running', pid=? WHERE id=?", (proc.pid, ev.job_id))
        conn.execute("UPDATE eval SET status='running' WHERE id=?", (ev.id,))
    assert reconcile_evals(env.ws) == 1
    got = get_eval(env.ws, ev.id)
    assert got.status == "interrupted" and "Interrupted" in got.message
    assert jobs.get(env.ws, ev.job_id).status == "interrupted"
    assert reconcile_evals(env.ws) == 0


# --- multi-turn rows -----------------------------------------------------------------------------------------


def test_multi_turn_rows_are_answered_with_their_whole_context(env: Env) -> None:
    conversation = [{"role": "system", "content": "You answer in one short sentence."},
                    {"role": "user", "content": "What is the capital of France?"},
                    {"role": "assistant", "content": "Paris."},
                    {"role": "user", "content": "And of Italy?"},
                    {"role": "assistant", "content": "Rome."}]
    version = crafted_version(env.ws, env.project_id, {
        "train": [], "validation": [("alpaca", {"instruction": "Say hi", "input": "", "output": "Hi!"})],
        "test": [("messages", {"messages": conversation}),
                 ("alpaca", {"instruction": "Name a colour", "input": "warm", "output": "Red."})]}, "multi-turn")
    ev = evaluate(env.ws, env.run_id, EvalConfig(version_id=version, **SAMPLE), model=env.model)
    assert ev.status == "done" and ev.dataset_version_id == version and ev.metrics["n"] == 2
    by_index = {e["index"]: e for e in ev.examples}
    multi, single = by_index[0], by_index[1]
    assert multi["reference"] == "Rome." and single["reference"] == "Red."
    assert multi["prompt"].startswith("System: You answer") and "Assistant: Paris." in multi["prompt"]
    assert single["prompt"] == "Name a colour\n\nwarm"
    assert multi["base_pred"] == env.model.generate(conversation[:-1], which="base", **SAMPLE)
    assert multi["tuned_pred"] == env.model.generate(conversation[:-1], which=env.run_id, **SAMPLE)
    assert multi["base_pred"] != env.model.generate("And of Italy?", which="base", **SAMPLE)


# --- bad input: a clear error and nothing written -------------------------------------------------------------


def test_bad_input_is_refused_before_anything_is_written(env: Env, tiny_chat_model: Path, adapter: Path) -> None:
    ws = env.ws
    full = insert_run(ws, env.project_id, env.version_id, str(tiny_chat_model), method="full")
    failed = insert_run(ws, env.project_id, env.version_id, str(tiny_chat_model), status="failed", adapter=adapter)
    no_adapter = insert_run(ws, env.project_id, env.version_id, str(tiny_chat_model))
    no_test = crafted_version(ws, env.project_id, {
        "train": [], "validation": [("alpaca", {"instruction": "Say hi", "input": "", "output": "Hi!"})],
        "test": []}, "no-test")
    other_project = create_project(ws, "elsewhere")
    foreign = crafted_version(ws, other_project.id, {"test": [("alpaca", {"instruction": "a", "input": "",
                                                                          "output": "b"})]}, "foreign")
    update_project(ws, env.project_id, teacher_ref="")
    before = snapshot(ws)
    cases: list[tuple[int, EvalConfig, type[StudioError], str]] = [
        (999, EvalConfig(), TrainError, "no run #999"),
        (full, EvalConfig(), TrainError, "full fine-tuning"),
        (failed, EvalConfig(), TrainError, "failed. Evaluate a run once"),
        (no_adapter, EvalConfig(), TrainError, "no saved adapter"),
        (env.run_id, EvalConfig(version_id=no_test), QualityError, "has no test rows"),
        (env.run_id, EvalConfig(version_id=foreign), QualityError, "belongs to another project"),
        (env.run_id, EvalConfig(version_id=9999), DatasetVersionError, "no dataset version #9999"),
        (env.run_id, EvalConfig(judge=True), QualityError, "needs a teacher"),
        (env.run_id, EvalConfig(split="train"), QualityError, "use the test split"),
        (env.run_id, EvalConfig(split="nope"), QualityError, "cannot be evaluated on"),
        (env.run_id, EvalConfig(limit=0), QualityError, "at least 1"),
        (env.run_id, EvalConfig(max_new_tokens=0), QualityError, "Max new tokens"),
        (env.run_id, EvalConfig(temperature=-1), QualityError, "temperature"),
        (env.run_id, EvalConfig(temperature=float("nan")), QualityError, "temperature"),
    ]
    for run_id, cfg, error, message in cases:
        with pytest.raises(error, match=message):
            create_eval(ws, run_id, cfg)
    with pytest.raises(QualityError, match="no evaluation #4242"):
        run_eval(ws, 4242)
    assert snapshot(ws) == before


# --- a held-out file -----------------------------------------------------------------------------------------


def held_out_file(env: Env, folder: Path, suffix: str = ".jsonl") -> tuple[Path, list[dict]]:
    """A file of five rows: a training row copied exactly, a training prompt with another answer, a new row,
    a row with no answer (a problem) and the new row again (a duplicate). Returns (path, training rows used)."""
    train = [r.data for r in sorted(version_rows(env.ws, env.version_id, "train"), key=lambda r: r.id)]
    same_row, same_prompt = train[0], train[1]
    rows = [dict(same_row),
            {"instruction": same_prompt["instruction"], "input": same_prompt.get("input", ""),
             "output": "A different answer than the one it trained on."},
            {"instruction": "Name a colour of the rainbow.", "input": "", "output": "Indigo."},
            {"instruction": "This row has no answer.", "input": "", "output": ""},
            {"instruction": "Name a colour of the rainbow.", "input": "", "output": "Indigo."}]
    rows = [{k: r.get(k, "") for k in ("instruction", "input", "output")} for r in rows]
    path = folder / f"held out{suffix}"
    if suffix == ".csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["instruction", "input", "output"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path, [same_row, same_prompt]


def test_eval_on_a_held_out_file_flags_training_overlap(env: Env, tmp_path: Path) -> None:
    import hashlib

    from tests.test_eval_metrics import LENGTH_RATIO, write_module

    path, (same_row, same_prompt) = held_out_file(env, tmp_path)
    extra = write_module(tmp_path, "length_ratio", LENGTH_RATIO)
    ev = create_eval(env.ws, env.run_id, EvalConfig(file=str(path), metrics=[str(extra)], **SAMPLE))
    assert ev.status == "queued" and ev.split == "file" and ev.where == "held-out file held out.jsonl"
    assert "3 rows of held-out file held out.jsonl" in ev.message and "2 of them repeat the training" in ev.message
    src = ev.source
    assert (src["name"], src["format"], src["rows_read"], src["rows_used"], src["skipped"]) == (
        "held out.jsonl", "alpaca", 5, 3, 2)
    assert src["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert src["overlap"] == {"same_row": 1, "same_prompt": 1} and src["overlap_train"] == 2
    assert "1 with problems" in src["skipped_why"] and "1 repeated in the file" in src["skipped_why"]
    # Stored: the file's name (never the path of what may be an upload's temporary copy) and the resolved metric.
    assert ev.config.file == "held out.jsonl" and ev.config.metrics == [str(extra.resolve())]
    with env.ws.read() as conn:
        stored = conn.execute("SELECT position, format, overlap FROM eval_row WHERE eval_id=? ORDER BY position",
                              (ev.id,)).fetchall()
    assert [tuple(r) for r in stored] == [(0, "alpaca", "same row as training"),
                                          (1, "alpaca", "same prompt as training"), (2, "alpaca", "")]

    path.unlink()  # the upload is gone; the evaluation has its rows
    done = run_eval(env.ws, ev.id, model=env.model)
    assert done.status == "done" and done.metrics["n"] == 3
    assert done.message == "Done: 3 rows of held-out file held out.jsonl."
    by_prompt = {e["prompt"]: e for e in done.examples}
    assert by_prompt[same_row["instruction"] + (f"\n\n{same_row['input']}" if same_row["input"] else "")][
        "overlap"] == "same row as training"
    prompt = same_prompt["instruction"] + (f"\n\n{same_prompt['input']}" if same_prompt["input"] else "")
    assert by_prompt[prompt]["overlap"] == "same prompt as training"
    assert by_prompt[prompt]["reference"] == "A different answer than the one it trained on."
    assert by_prompt["Name a colour of the rainbow."]["overlap"] is None
    assert done.metrics["overlap_train"] == 2
    # The scores are the metrics of its own predictions, like a split's; the extra metric is there too.
    ordered = sorted(done.examples, key=lambda e: e["index"])
    table = metric_lib.compare([e["base_pred"] for e in ordered], [e["tuned_pred"] for e in ordered],
                               [e["reference"] for e in ordered], extra=done.config.metrics)
    assert done.metrics["rows"] == table.to_dict()["rows"] and done.metrics["extra"] == table.to_dict()["extra"]
    assert {e["key"] for e in done.metrics["extra"]} == {"length_ratio", "longest"}
    md = done.table_markdown()
    assert "3 rows of held-out file held out.jsonl" in md and "read as Instruction / input / output" in md
    assert "⚠️ 2 of 3 rows repeat the training data (1 whole row, 1 prompt only)" in md
    assert "inflate the scores" in md and "| length_ratio |" in md
    assert latest_eval(env.ws, env.run_id, "file").id == ev.id
    assert all(e.split == "test" for e in [latest_eval(env.ws, env.run_id)] if e)  # a file is not the test split

    # Stopped and run again: the same stored rows, though the file is gone.
    again = create_eval(env.ws, env.run_id, EvalConfig(file=str(held_out_file(env, tmp_path, ".csv")[0]), limit=2,
                                                       **SAMPLE))
    assert again.source["format"] == "alpaca" and again.source["rows_used"] == 2 and again.source["limited"]
    (tmp_path / "held out.csv").unlink()
    stopped = run_eval(env.ws, again.id, model=env.model, progress=lambda d, t, m: d == 1 and stop_eval(
        env.ws, again.id))
    assert stopped.status == "stopped"
    rerun = run_eval(env.ws, again.id, model=env.model)
    assert rerun.status == "done" and rerun.metrics["n"] == 2 and rerun.metrics["overlap_train"] == 2
    with pytest.raises(Exception, match="fixed when it is created"), env.ws.write() as conn:
        conn.execute("UPDATE eval_row SET overlap='' WHERE eval_id=?", (again.id,))


def test_a_held_out_file_that_cannot_be_used_is_refused(env: Env, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.errors import InputFileError, MappingError
    from tests.test_eval_metrics import offline_evaluate

    offline_evaluate(monkeypatch, tmp_path)
    files = {"empty.csv": "", "columns.csv": "foo,bar\nhello there,general kenobi\n",
             "labels.csv": "text,label\nI love it,pos\nI hate it,neg\n",
             "broken.csv": "prompt,completion\nhi,\n,x\n", "notes.docx": "not a table"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    good = held_out_file(env, tmp_path)[0]
    before = snapshot(env.ws)
    cases: list[tuple[EvalConfig, type[StudioError], str]] = [
        (EvalConfig(file=str(tmp_path / "missing.csv")), QualityError, "There is no file at"),
        (EvalConfig(file=str(tmp_path / "empty.csv")), InputFileError, "empty"),
        (EvalConfig(file=str(tmp_path / "notes.docx")), InputFileError, "are not supported"),
        (EvalConfig(file=str(tmp_path / "columns.csv")), MappingError,
         "columns 'foo', 'bar', which do not match a seed format. A held-out file is read without the mapping"),
        (EvalConfig(file=str(tmp_path / "labels.csv")), QualityError, "was trained on chat rows"),
        (EvalConfig(file=str(tmp_path / "broken.csv")), QualityError,
         "None of the 2 rows of broken.csv can be evaluated on (row 1 (line 2), column 'completion'"),
        (EvalConfig(file=str(good), split="validation"), QualityError, "evaluate on the file or on the validation"),
        (EvalConfig(file=str(good), version_id=env.version_id), QualityError, "Leave the version out"),
        (EvalConfig(file="  "), QualityError, "path is empty"),
        (EvalConfig(split="file"), QualityError, "Give the held-out file"),
        (EvalConfig(file=str(good), metrics=["seed-studio-no-such-metric"]), QualityError, "(offline?)"),
        (EvalConfig(metrics=["bleu"]), QualityError, "always computed"),
    ]
    for cfg, error, message in cases:
        with pytest.raises(error, match=re.escape(message)):
            create_eval(env.ws, env.run_id, cfg)
    assert snapshot(env.ws) == before


# --- a really trained run ------------------------------------------------------------------------------------


def test_trained_run_validation_loss_matches_what_training_reported(tiny_chat_model: Path, ws: Workspace) -> None:
    """The tuned loss is the validation loss the training worker itself reported at the end (same masks,
    same truncation), and training lowered it below the base model's."""
    from studio.train import worker
    from tests.test_train_worker import make_run, seed_rows, tiny_config

    project = create_project(ws, "trained", task_description="Answer everyday questions")
    rows = seed_rows(SHARED_SEEDS, 12)
    version = crafted_version(ws, project.id, {
        "train": [("alpaca", r) for r in rows[:8]], "validation": [("alpaca", r) for r in rows[8:11]],
        "test": [("alpaca", rows[11])]}, "trained")
    run_id = make_run(ws, project.id, version, str(tiny_chat_model),
                      tiny_config(max_steps=6, eval_every_steps=6, per_device_batch_size=4))
    assert worker.run(ws, run_id, foreground=True).status == "done"
    reported = json.loads((ws.runs_dir / str(run_id) / "run.json").read_text())["final_metrics"]["eval_loss"]
    ev = evaluate(ws, run_id, EvalConfig(split="validation", max_new_tokens=2))
    assert ev.status == "done" and ev.metrics["n"] == 3
    assert ev.metrics["loss"]["tuned"] == pytest.approx(reported, rel=1e-5)
    assert ev.metrics["loss"]["tuned"] < ev.metrics["loss"]["base"]
