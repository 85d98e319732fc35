"""Batch evaluation: a fine-tuned run against its base model on a dataset version's test (or validation) split.

    ev = evaluate(ws, run_id, EvalConfig(split="test", limit=50, judge=True))   # create + run, in this thread
    ev.metrics["rows"]        # ROUGE-L, BLEU, exact match: base, tuned, delta
    ev.metrics["loss"]        # assistant-token loss of base and tuned on the same rows (perplexity beside it)
    ev.examples[0]            # the row that changed most

What is asked of the models. Each row of the split is a conversation ending with the assistant's answer
(studio.data.chat.to_messages, the same conversations training read). The reference is the LAST assistant
message; the prompt is everything before it (system and user turns, and earlier assistant turns of a
multi-turn row), sent through the model's chat template exactly as training saw it. Both sides get the same
prompt, decoding settings and seed (greedy by default), one model in memory with the adapter toggled
(SideBySide). `prompt` in the stored examples is that context as text: the user message itself for a
single-turn row, else a plain "Role: content" transcript (studio.data.chat.to_prompt_completion).

Scores: studio.evaluation.metrics.compare (offline rouge_score / sacrebleu); the loss of each side on the
same conversations (studio.evaluation.loss, assistant tokens only, truncated to the run's maximum length);
with `judge`, the teacher compares the two answers twice, positions swapped, and only a winner both orders
agree on counts (studio.evaluation.pairwise).

Lifecycle: create_eval checks everything, then writes an `eval` row (queued) and its `job` row (kind 'eval')
in one transaction. run_eval claims the job, reports progress on it (done / total: generated rows, then
judged rows), honours a stop asked from any client (jobs.request_stop, or stop_eval) between rows, and ends
the eval and its job as done / stopped / failed (message says why). A process that dies mid-way leaves
'running' with a dead pid: reconcile_evals marks it 'interrupted'. A stopped, failed or interrupted
evaluation can be run again with run_eval (from the start).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio import jobs
from studio.errors import QualityError, StudioError, TrainError
from studio.workspace import Workspace, utc_now

if TYPE_CHECKING:
    from studio.evaluation.sidebyside import SideBySide
    from studio.teachers.spec import TeacherSpec

SPLITS = ("test", "validation")
JOB_KIND = "eval"
STATUSES = ("queued", "running", "done", "failed", "stopped", "interrupted")
RERUNNABLE = ("queued", "stopped", "failed", "interrupted")
MAX_NEW_TOKENS = 4096
JUDGE_CHUNK = 8
"""Rows per judge request batch (two conversations each: both orders)."""
JUDGE_MAX_NEW_TOKENS = 64

Progress = Callable[[int, int, str], None]
"""(done, total, message): rows generated (then judged) so far."""


# --- configuration ---------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    """What a person picks for one evaluation (the Compare tab form, the CLI flags)."""

    split: str = "test"
    limit: int | None = None
    """Evaluate the first N rows of the split only (in row order); None: every row."""
    max_new_tokens: int = 128
    temperature: float = 0.0
    """0: greedy decoding (the default: reproducible, and fair to both sides)."""
    seed: int = 0
    judge: bool = False
    """Also ask the teacher which answer is better (both orders, to cancel position bias)."""
    version_id: int | None = None
    """The dataset version whose split is used; None: the one the run was trained on."""

    def check(self) -> None:
        """Raise QualityError saying what is wrong and what to do; reads and writes nothing."""
        if self.split not in SPLITS:
            raise QualityError(f"'{self.split}' cannot be evaluated on; use the test split (held out from "
                               "training) or the validation split.")
        if self.limit is not None and (not _is_int(self.limit) or self.limit < 1):
            raise QualityError(f"The number of rows to evaluate must be a whole number of at least 1 (got "
                               f"{self.limit!r}); leave it empty to evaluate every row.")
        if not _is_int(self.max_new_tokens) or not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise QualityError(f"Max new tokens must be a whole number between 1 and {MAX_NEW_TOKENS} (got "
                               f"{self.max_new_tokens!r}).")
        temp = self.temperature
        if isinstance(temp, bool) or not isinstance(temp, int | float) or not math.isfinite(temp) \
                or not 0 <= temp <= 2:
            raise QualityError(f"The temperature must be between 0 (greedy) and 2 (got {temp!r}).")
        if not _is_int(self.seed):
            raise QualityError(f"The seed must be a whole number (got {self.seed!r}).")
        if not isinstance(self.judge, bool):
            raise QualityError("judge must be true or false.")
        if self.version_id is not None and (not _is_int(self.version_id) or self.version_id < 1):
            raise QualityError(f"The dataset version must be a version id (got {self.version_id!r}); leave it "
                               "empty to use the version the run was trained on.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EvalConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- the record ------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    id: int
    run_id: int
    project_id: int
    dataset_version_id: int
    split: str
    base_model_ref: str
    status: str
    """queued | running | done | failed | stopped | interrupted"""
    config: EvalConfig
    metrics: dict[str, Any]
    examples: list[dict[str, Any]]
    message: str
    created_at: str
    finished_at: str
    job_id: int | None
    teacher: dict[str, Any] | None = None
    """The judge (teacher spec, no secret) when config.judge; else None."""
    job: jobs.Job | None = field(default=None, repr=False, compare=False)

    @property
    def progress(self) -> tuple[int, int]:
        """(done, total) from the job row: rows generated, then rows judged."""
        return (self.job.done, self.job.total) if self.job else (0, 0)

    @property
    def active(self) -> bool:
        return self.status == "running"

    def to_dict(self, *, examples: bool = True) -> dict[str, Any]:
        """Everything as plain JSON values: what `seed-studio eval --json` prints."""
        done, total = self.progress
        data = {
            "id": self.id, "run_id": self.run_id, "project_id": self.project_id,
            "dataset_version_id": self.dataset_version_id, "split": self.split,
            "base_model_ref": self.base_model_ref, "status": self.status, "config": self.config.to_dict(),
            "teacher": self.teacher, "metrics": self.metrics, "message": self.message,
            "created_at": self.created_at, "finished_at": self.finished_at, "job_id": self.job_id,
            "progress": {"done": done, "total": total, "text": self.job.progress_text() if self.job else ""},
        }
        if examples:
            data["examples"] = self.examples
        return data

    def table_markdown(self) -> str:
        """Base vs fine-tuned per metric, with the change; loss and perplexity (lower is better); the judge."""
        if self.status != "done" or not self.metrics.get("rows"):
            return f"No results: this evaluation is {self.status}. {self.message}".strip()
        lines = [f"Evaluated on {self.metrics.get('n', 0)} rows of the {self.split} split.", "",
                 "| Metric | Base | Fine-tuned | Change |", "|---|---:|---:|---:|"]
        for row in self.metrics["rows"]:
            label = _LABELS.get(row["metric"], row["metric"])
            lines.append(f"| {label} | {row['base']:.3f} | {row['tuned']:.3f} | {row['delta']:+.3f} |")
        for key, label, digits in (("loss", "Loss (lower is better)", 3), ("perplexity",
                                                                           "Perplexity (lower is better)", 2)):
            pair = self.metrics.get(key) or {}
            if "base" in pair and "tuned" in pair:
                base, tuned = pair["base"], pair["tuned"]
                lines.append(f"| {label} | {base:.{digits}f} | {tuned:.{digits}f} | {tuned - base:+.{digits}f} |")
        judge = self.metrics.get("judge")
        if judge:
            lines += ["", f"Judge ({judge.get('teacher', 'teacher')}, answers shown in both orders): "
                          f"{judge['message']}"]
        return "\n".join(lines)


_LABELS = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact": "Exact match"}


def _evaluation(conn: sqlite3.Connection, r: sqlite3.Row) -> Evaluation:
    stored = _loads(r["config"], {})
    job = None
    if r["job_id"] is not None:
        job_row = conn.execute("SELECT * FROM job WHERE id = ?", (r["job_id"],)).fetchone()
        job = jobs._row(job_row) if job_row else None
    return Evaluation(
        id=r["id"], run_id=r["run_id"], project_id=r["project_id"], dataset_version_id=r["dataset_version_id"],
        split=r["split"], base_model_ref=r["base_model_ref"], status=r["status"],
        config=EvalConfig.from_dict(stored), metrics=_loads(r["metrics"], {}), examples=_loads(r["examples"], []),
        message=r["message"], created_at=r["created_at"], finished_at=r["finished_at"], job_id=r["job_id"],
        teacher=stored.get("teacher"), job=job)


def _loads(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


# --- reading ---------------------------------------------------------------------------------------


def get_eval(ws: Workspace, eval_id: int) -> Evaluation:
    reconcile_evals(ws)
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM eval WHERE id = ?", (eval_id,)).fetchone()
        if row is None:
            raise QualityError(f"There is no evaluation #{eval_id} in this workspace. `seed-studio evals` lists "
                               "them.")
        return _evaluation(conn, row)


def list_evals(ws: Workspace, *, run_id: int | None = None, project_id: int | None = None) -> list[Evaluation]:
    """Evaluations, newest first; narrowed to one run and/or one project."""
    reconcile_evals(ws)
    sql, args = "SELECT * FROM eval WHERE 1=1", []
    if run_id is not None:
        sql, args = sql + " AND run_id = ?", [*args, run_id]
    if project_id is not None:
        sql, args = sql + " AND project_id = ?", [*args, project_id]
    with ws.read() as conn:
        return [_evaluation(conn, r) for r in conn.execute(sql + " ORDER BY id DESC", args).fetchall()]


def latest_eval(ws: Workspace, run_id: int, split: str = "test", *, done_only: bool = True) -> Evaluation | None:
    """The run's newest evaluation on `split` (only finished ones unless done_only=False)."""
    for ev in list_evals(ws, run_id=run_id):
        if ev.split == split and (ev.status == "done" or not done_only):
            return ev
    return None


def reconcile_evals(ws: Workspace) -> int:
    """Evaluations left running by a process that died become 'interrupted'. Returns how many changed."""
    jobs.reconcile(ws)
    with ws.read() as conn:
        stale = [r["id"] for r in conn.execute(
            "SELECT e.id FROM eval e JOIN job j ON j.id = e.job_id WHERE e.status = 'running' "
            "AND j.status = 'interrupted'")]
    if not stale:
        return 0
    now = utc_now()
    with ws.write() as conn:
        for eval_id in stale:
            conn.execute("UPDATE eval SET status='interrupted', message=?, finished_at=? WHERE id=? AND "
                         "status='running'", ("Interrupted: the studio stopped while this evaluation was running. "
                                              "Run it again to start over.", now, eval_id))
    return len(stale)


# --- checks and creation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    index: int
    conversation: list[dict[str, str]]
    context: list[dict[str, str]]
    """Everything before the last assistant message: what the models are asked to answer."""
    prompt: str
    reference: str


def _rows(ws: Workspace, version_id: int, split: str, limit: int | None) -> list[_Row]:
    """The split's rows as (context, reference) pairs, first `limit` rows in row order."""
    from studio.data.chat import render_turns, to_messages
    from studio.data.versions import version_rows

    out: list[_Row] = []
    for row in sorted(version_rows(ws, version_id, split), key=lambda r: r.id):
        if limit is not None and len(out) >= limit:
            break
        try:
            messages = to_messages(row.format, row.data)
        except (KeyError, TypeError, ValueError):  # a frozen row is complete; a damaged one is left out
            continue
        last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
        if last is None or not any(m["role"] == "user" for m in messages[:last]):
            continue
        context = messages[:last]
        only_user = len(context) == 1 and context[0]["role"] == "user"
        prompt = context[0]["content"] if only_user else render_turns(context)
        out.append(_Row(len(out), messages[: last + 1], context, prompt, messages[last]["content"]))
    return out


def _check_run(ws: Workspace, run_id: int) -> Any:
    from studio.train.runs import get_run

    run = get_run(ws, run_id)  # TrainError names the missing run
    if run.method not in ("lora", "qlora"):
        raise TrainError(f"{run.title} used {run.method} fine-tuning, so it has no adapter to switch on and off "
                         "over the base model. Only LoRA and QLoRA runs can be evaluated against their base here.")
    if run.status not in ("done", "stopped"):
        what = {"queued": "has not started yet", "running": "is still training", "stopping": "is stopping",
                "failed": "failed", "interrupted": "was interrupted"}.get(run.status, f"is {run.status}")
        raise TrainError(f"{run.title} {what}. Evaluate a run once it is done (or stopped after saving a "
                         "checkpoint).")
    if not (Path(run.output_dir) / "adapter" / "adapter_config.json").is_file():
        raise TrainError(f"{run.title} has no saved adapter in {Path(run.output_dir) / 'adapter'}, so there is "
                         "nothing to evaluate. Resume the run to finish it, or evaluate another run.")
    return run


def _teacher_for(ws: Workspace, project: Any, teacher: TeacherSpec | None) -> TeacherSpec:
    from studio.teachers.spec import parse_teacher

    if teacher is None:
        if not (project.teacher_ref or "").strip():
            raise QualityError(
                f"The judge needs a teacher model, and project '{project.name}' has none set. Pick one (a "
                "model, a finished run, or an endpoint URL): pass --teacher, or set the project's teacher "
                "with `seed-studio project set --teacher ...`.")
        teacher = parse_teacher(project.teacher_ref)
    if teacher.kind == "local" and not teacher.ref.startswith("run:"):
        from studio.models.registry import resolve

        resolve(teacher.ref, ws.models_dir)  # ModelRefError: a ref that names nothing
    return teacher


def create_eval(ws: Workspace, run_id: int, cfg: EvalConfig, *, teacher: TeacherSpec | None = None) -> Evaluation:
    """Check everything, then write the eval row (queued) and its job row in one transaction."""
    from studio.data.versions import get_version_by_id
    from studio.teachers.spec import describe_spec
    from studio.workspace.projects import get_project

    cfg.check()
    run = _check_run(ws, run_id)
    version_id = cfg.version_id if cfg.version_id is not None else run.dataset_version_id
    if version_id is None:
        raise QualityError(f"{run.title} does not record its dataset version (it may have been deleted). Pick a "
                           "dataset version to evaluate on.")
    version = get_version_by_id(ws, int(version_id))  # DatasetVersionError names the missing version
    if version.project_id != run.project_id:
        raise QualityError(f"Dataset version {version.name} (#{version.id}) belongs to another project than "
                           f"{run.title}. Pick one of the run's project's versions.")
    rows = _rows(ws, version.id, cfg.split, cfg.limit)
    if not rows:
        other = "validation" if cfg.split == "test" else "test"
        raise QualityError(f"Dataset version {version.name} has no {cfg.split} rows, so there is nothing to "
                           f"evaluate on. Pick the {other} split, or freeze a version with a {cfg.split} share "
                           "above 0.")
    project = get_project(ws, run.project_id)
    spec = _teacher_for(ws, project, teacher) if cfg.judge else None
    stored = {**cfg.to_dict(), "teacher": describe_spec(spec) if spec else None}
    total = len(rows) * (2 if cfg.judge else 1)
    now = utc_now()
    with ws.write() as conn:
        eval_id = int(conn.execute(
            "INSERT INTO eval(run_id, split, metrics, created_at, project_id, dataset_version_id, base_model_ref, "
            "status, config, examples, message) VALUES (?, ?, '{}', ?, ?, ?, ?, 'queued', ?, '[]', ?)",
            (run.id, cfg.split, now, run.project_id, version.id, run.base_model_ref, json.dumps(stored),
             f"Queued: {len(rows)} rows of the {cfg.split} split.")).lastrowid or 0)
        job_id = jobs.create(conn, kind=JOB_KIND, project_id=run.project_id, subject_id=eval_id, total=total,
                             message="Queued.")
        conn.execute("UPDATE eval SET job_id = ? WHERE id = ?", (job_id, eval_id))
    return get_eval(ws, eval_id)


# --- running ---------------------------------------------------------------------------------------


class _Stopped(Exception):
    """A stop was asked between two rows."""


def run_eval(ws: Workspace, eval_id: int, *, api_key: str | None = None, model: SideBySide | None = None,
             progress: Progress | None = None) -> Evaluation:
    """Run a queued (or stopped / failed / interrupted) evaluation to the end in this thread.

    `model`: a SideBySide already holding this run's adapter (the UI's cached one); None loads one.
    A StudioError ends the evaluation 'failed' with the reason and is raised again; Ctrl-C ends it 'stopped'.
    """
    from studio.train.runs import get_run

    ev = get_eval(ws, eval_id)
    if ev.status == "done":
        raise QualityError(f"Evaluation #{ev.id} is already done. Start a new evaluation to run it again.")
    if ev.job_id is None:
        raise QualityError(f"Evaluation #{ev.id} was recorded without a job, so it cannot run. Start a new one.")
    cfg = ev.config
    rows = _rows(ws, ev.dataset_version_id, ev.split, cfg.limit)
    total = len(rows) * (2 if cfg.judge else 1)
    if not jobs.claim(ws, ev.job_id, done=0, total=total, message="Loading the models…"):
        raise QualityError(f"Evaluation #{ev.id} is already running. Stop it first, or wait for it to finish.")
    _set(ws, ev.id, status="running", message="Loading the models…", finished_at="")
    try:
        if not rows:
            raise QualityError(f"The {ev.split} split of dataset version #{ev.dataset_version_id} has no rows any "
                               "more; nothing to evaluate.")
        run = get_run(ws, ev.run_id)
        metrics, examples = _execute(ws, ev, run, rows, total, api_key=api_key, model=model, progress=progress)
    except _Stopped as stop:
        _end(ws, ev, "stopped", str(stop), done=None)
        return get_eval(ws, ev.id)
    except StudioError as error:
        _end(ws, ev, "failed", f"{error}", done=None)
        raise
    except BaseException as error:  # a bug, or Ctrl-C: say so on the rows, then let it through
        status = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
        reason = "Stopped by the user." if status == "stopped" else f"{type(error).__name__}: {error}"
        _end(ws, ev, status, reason, done=None)
        raise
    finally:
        jobs.release(ev.job_id)
    message = f"Done: {metrics['n']} rows of the {ev.split} split."
    with ws.write() as conn:
        conn.execute("UPDATE eval SET status='done', metrics=?, examples=?, message=?, finished_at=? WHERE id=?",
                     (json.dumps(metrics), json.dumps(examples, ensure_ascii=False), message, utc_now(), ev.id))
    jobs.finish(ws, ev.job_id, "done", message, done=total)
    return get_eval(ws, ev.id)


def evaluate(ws: Workspace, run_id: int, cfg: EvalConfig, *, teacher: TeacherSpec | None = None,
             api_key: str | None = None, model: SideBySide | None = None,
             progress: Progress | None = None) -> Evaluation:
    """create_eval + run_eval in this thread."""
    ev = create_eval(ws, run_id, cfg, teacher=teacher)
    return run_eval(ws, ev.id, api_key=api_key, model=model, progress=progress)


def stop_eval(ws: Workspace, eval_id: int) -> Evaluation:
    """Ask a running evaluation to stop after its current row (from any client); a queued one stops now."""
    ev = get_eval(ws, eval_id)
    if ev.job_id is None:
        return ev
    if ev.status == "running":
        jobs.request_stop(ws, ev.job_id)
    elif ev.status == "queued":
        _end(ws, ev, "stopped", "Stopped before it started.", done=0)
    return get_eval(ws, eval_id)


def _set(ws: Workspace, eval_id: int, **values: Any) -> None:
    cols = ", ".join(f"{k} = ?" for k in values)
    with ws.write() as conn:
        conn.execute(f"UPDATE eval SET {cols} WHERE id = ?", (*values.values(), eval_id))


def _end(ws: Workspace, ev: Evaluation, status: str, message: str, *, done: int | None) -> None:
    _set(ws, ev.id, status=status, message=message, finished_at=utc_now())
    assert ev.job_id is not None
    jobs.finish(ws, ev.job_id, status, message, done=done)


def _execute(ws: Workspace, ev: Evaluation, run: Any, rows: list[_Row], total: int, *, api_key: str | None,
             model: SideBySide | None, progress: Progress | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from studio.evaluation import metrics as metric_lib
    from studio.evaluation.loss import split_loss

    cfg, job_id = ev.config, ev.job_id
    assert job_id is not None
    n = len(rows)

    def step(done: int, message: str) -> None:
        with ws.write() as conn:
            stop = jobs.report(conn, job_id, done=done, message=message)
            conn.execute("UPDATE eval SET message = ? WHERE id = ?", (message, ev.id))
        if progress:
            progress(done, total, message)
        if stop:
            where = f"after {done} of {n} rows" if done <= n else f"while judging, after {done - n} of {n} rows"
            raise _Stopped(f"Stopped {where}; nothing was scored. Run the evaluation again to start over.")

    if model is None:
        from studio.evaluation.sidebyside import SideBySide

        model = SideBySide.load(ws, ev.base_model_ref, [run.id])
    elif run.id not in model.run_ids:
        raise QualityError(f"The loaded comparison model does not hold {run.title}'s adapter; load the run first.")
    settings = {"max_new_tokens": cfg.max_new_tokens, "temperature": float(cfg.temperature), "seed": cfg.seed}
    base_preds: list[str] = []
    tuned_preds: list[str] = []
    step(0, f"Generating answers: 0 of {n} rows.")
    for row in rows:
        base_preds.append(model.generate(row.context, which="base", **settings))
        tuned_preds.append(model.generate(row.context, which=run.id, **settings))
        step(len(base_preds), f"Generating answers: {len(base_preds)} of {n} rows.")

    references = [r.reference for r in rows]
    table = metric_lib.compare(base_preds, tuned_preds, references)
    _message(ws, job_id, ev.id, "Computing the loss of both models…")
    max_length = int(run.config.get("max_seq_length") or 1024)
    conversations = [r.conversation for r in rows]
    base_loss = split_loss(model, conversations, "base", max_length=max_length)
    tuned_loss = split_loss(model, conversations, run.id, max_length=max_length)

    verdicts: list[str | None] = [None] * n
    judge: dict[str, Any] | None = None
    if cfg.judge:
        verdicts, judge = _judge(ws, ev, rows, base_preds, tuned_preds, api_key=api_key, step=step, start=n)

    examples = [{
        "index": e.index, "prompt": rows[e.index].prompt, "reference": e.reference, "base_pred": e.base_pred,
        "tuned_pred": e.tuned_pred, "base": e.base, "tuned": e.tuned, "delta": e.delta, "change": e.change,
        "judge": verdicts[e.index],
    } for e in table.examples]
    metrics = {
        "n": n,
        "rows": table.to_dict()["rows"],
        "loss": {"base": base_loss.loss, "tuned": tuned_loss.loss},
        "perplexity": {"base": base_loss.perplexity, "tuned": tuned_loss.perplexity},
        "loss_tokens": tuned_loss.tokens,
        "judge": judge,
        "settings": settings,
    }
    return metrics, examples


def _message(ws: Workspace, job_id: int, eval_id: int, message: str) -> None:
    with ws.write() as conn:
        conn.execute("UPDATE job SET message = ?, heartbeat_at = ?, updated_at = ? WHERE id = ?",
                     (message, utc_now(), utc_now(), job_id))
        conn.execute("UPDATE eval SET message = ? WHERE id = ?", (message, eval_id))


def _judge(ws: Workspace, ev: Evaluation, rows: list[_Row], base_preds: list[str], tuned_preds: list[str], *,
           api_key: str | None, step: Callable[[int, str], None],
           start: int) -> tuple[list[str | None], dict[str, Any]]:
    """Ask the teacher twice per row, (base, tuned) then (tuned, base), and combine the two verdicts."""
    from studio.evaluation.pairwise import combine, judge_messages, parse_preference, win_rate
    from studio.teachers.base import GenerationParams
    from studio.teachers.spec import TeacherSpec, build_teacher
    from studio.workspace.projects import get_project

    assert ev.teacher is not None
    spec = TeacherSpec.from_dict(ev.teacher)
    teacher = build_teacher(ws, spec, api_key=api_key)
    task = get_project(ws, ev.project_id).task_description or "(not described)"
    params = GenerationParams(max_new_tokens=JUDGE_MAX_NEW_TOKENS, temperature=0.0, top_p=1.0, seed=0)
    outcomes: list[str | None] = []
    unparsed = 0
    for first in range(0, len(rows), JUDGE_CHUNK):
        chunk = range(first, min(first + JUDGE_CHUNK, len(rows)))
        conversations = []
        for i in chunk:
            conversations.append(judge_messages(task, rows[i].prompt, base_preds[i], tuned_preds[i]))
            conversations.append(judge_messages(task, rows[i].prompt, tuned_preds[i], base_preds[i]))
        texts = teacher.generate(conversations, params)
        for k, _ in enumerate(chunk):
            a, b = parse_preference(texts[2 * k] or ""), parse_preference(texts[2 * k + 1] or "")
            unparsed += (a is None) + (b is None)
            outcomes.append(combine(a, b))
        step(start + len(outcomes), f"Judging: {len(outcomes)} of {len(rows)} rows.")
    summary = win_rate(outcomes)
    judged = summary.n
    decisive = summary.tuned_wins + summary.base_wins
    if decisive:
        message = (f"the fine-tuned model won {summary.tuned_wins} and the base model {summary.base_wins} of "
                   f"{judged} rows, {summary.ties} ties ({summary.win_rate:.0%} of decisive rows; likely between "
                   f"{summary.low:.0%} and {summary.high:.0%}).")
        if summary.low > 0.5:
            message += " The fine-tuned model is better."
        elif summary.high < 0.5:
            message += " The base model is better."
        else:
            message += " Not enough evidence to say which is better."
    elif judged:
        message = (f"no decisive verdict: {summary.ties} of {judged} rows were ties (the two orders disagreed, "
                   "or both said tie).")
    else:
        message = "no verdict: none of the judge's answers could be read."
    if unparsed:
        message += f" {unparsed} judge answers could not be read; their rows were left out."
    judge = {"tuned_wins": summary.tuned_wins, "base_wins": summary.base_wins, "ties": summary.ties,
             "n": summary.n, "win_rate": summary.win_rate, "low": summary.low, "high": summary.high,
             "message": message[0].upper() + message[1:], "unparsed": unparsed, "teacher": spec.label}
    return outcomes, judge
