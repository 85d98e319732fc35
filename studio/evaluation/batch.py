"""Batch evaluation: a fine-tuned run against its base model on a dataset version's test (or validation) split,
or on a held-out file a person uploads.

    ev = evaluate(ws, run_id, EvalConfig(split="test", limit=50, judge=True))   # create + run, in this thread
    ev = evaluate(ws, run_id, EvalConfig(file="held_out.csv", metrics=["meteor"]))  # split "file"
    ev.metrics["rows"]        # ROUGE-L, BLEU, exact match: base, tuned, delta
    ev.metrics["extra"]       # the extra metrics named in the config (evaluate hub ids or local modules)
    ev.metrics["loss"]        # assistant-token loss of base and tuned on the same rows (perplexity beside it)
    ev.examples[0]            # the row that changed most

What is asked of the models. Each row of the split is a conversation ending with the assistant's answer
(studio.data.chat.to_messages, the same conversations training read). The reference is the LAST assistant
message; the prompt is everything before it (system and user turns, and earlier assistant turns of a
multi-turn row), sent through the model's chat template exactly as training saw it. Both sides get the same
prompt, decoding settings and seed (greedy by default), one model in memory with the adapter toggled
(SideBySide). `prompt` in the stored examples is that context as text: the user message itself for a
single-turn row, else a plain "Role: content" transcript (studio.data.chat.to_prompt_completion).

A held-out file is read once, at creation, by the seed importer (any layout it reads; nothing is imported):
its usable rows become the evaluation's rows through the same conversion as a split's, and are stored with
the evaluation (eval_row), so a rerun sees the same rows after the upload is gone. Its name, sha256, format
and counts are the evaluation's `source`. Each row that repeats a row of the run's training split (same
content key) or only its prompt is flagged in its example (`overlap`) and counted (`metrics["overlap_train"]`):
such rows inflate the scores.

Scores: studio.evaluation.metrics.compare (the shipped evaluate modules, offline; extra ones by hub id or
path); the loss of each side on the same conversations (studio.evaluation.loss, assistant tokens only,
truncated to the run's maximum length); with `judge`, the teacher compares the two answers twice, positions
swapped, and only a winner both orders agree on counts (studio.evaluation.pairwise).

Lifecycle: create_eval checks everything (extra metrics are loaded and tried on the references), then writes
an `eval` row (queued), its `job` row (kind 'eval') and a file's rows in one transaction. run_eval claims the
job, reports progress on it (done / total: generated rows, then judged rows), honours a stop asked from any
client (jobs.request_stop, or stop_eval) between rows, and ends the eval and its job as done / stopped /
failed (message says why). A process that dies mid-way leaves 'running' with a dead pid: reconcile_evals
marks it 'interrupted'. A stopped, failed or interrupted evaluation can be run again with run_eval (from the
start; a file's evaluation on its stored rows).
"""

from __future__ import annotations

import dataclasses
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
FILE_SPLIT = "file"
"""The split of an evaluation on a held-out file."""
JOB_KIND = "eval"
STATUSES = ("queued", "running", "done", "failed", "stopped", "interrupted")
RERUNNABLE = ("queued", "stopped", "failed", "interrupted")
MAX_NEW_TOKENS = 4096
OVERLAP_ROW = "same row as training"
OVERLAP_PROMPT = "same prompt as training"
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
    file: str | None = None
    """A held-out file to evaluate on instead of a split (any layout the seed import reads). At creation its
    path; stored, its name (the rows are stored with the evaluation)."""
    metrics: list[str] = field(default_factory=list)
    """Extra metrics beside ROUGE-L, BLEU and exact match: evaluate hub ids or paths of local modules."""

    def check(self) -> None:
        """Raise QualityError saying what is wrong and what to do; reads and writes nothing."""
        if self.split not in (*SPLITS, FILE_SPLIT):
            raise QualityError(f"'{self.split}' cannot be evaluated on; use the test split (held out from "
                               "training), the validation split, or a held-out file.")
        self._check_file()
        if not isinstance(self.metrics, list | tuple) or not all(isinstance(m, str) for m in self.metrics):
            raise QualityError("Extra metrics must be a list of names (evaluate hub ids or metric folders).")
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

    def _check_file(self) -> None:
        if self.file is None:
            if self.split == FILE_SPLIT:
                raise QualityError("Give the held-out file to evaluate on (CSV, JSONL, Parquet, Excel: any file the "
                                   "seed import reads), or pick the test or validation split.")
            return
        if not isinstance(self.file, str) or not self.file.strip():
            raise QualityError("The held-out file's path is empty. Give the path of the file to evaluate on.")
        if self.split == "validation":
            raise QualityError("A held-out file replaces the split: evaluate on the file or on the validation "
                               "split, not both.")
        if self.version_id is not None:
            raise QualityError("A dataset version picks whose split is evaluated; a held-out file replaces the "
                               "split. Leave the version out (overlap is checked against the run's own training "
                               "rows).")

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
    dataset_version_id: int | None
    """The version whose split was evaluated; for a held-out file the run's own (its training rows were checked
    for overlap); None once that version is deleted."""
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
    source: dict[str, Any] = field(default_factory=dict)
    """A held-out file's name, sha256, format and counts; {} for a split."""
    job: jobs.Job | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        """What was evaluated on, in words: 'the test split', 'held-out file qa.csv'."""
        if self.split == FILE_SPLIT:
            return f"held-out file {self.source.get('name') or self.config.file or '(unnamed)'}"
        return f"the {self.split} split"

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
            "teacher": self.teacher, "source": self.source, "metrics": self.metrics, "message": self.message,
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
        from studio.evaluation.metrics import extra_markdown

        lines = [f"Evaluated on {self.metrics.get('n', 0)} rows of {self.where}.", *self.notes(), "",
                 "| Metric | Base | Fine-tuned | Change |", "|---|---:|---:|---:|"]
        for row in self.metrics["rows"]:
            label = _LABELS.get(row["metric"], row["metric"])
            lines.append(f"| {label} | {row['base']:.3f} | {row['tuned']:.3f} | {row['delta']:+.3f} |")
        lines += extra_markdown(self.metrics.get("extra") or [])
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

    def notes(self) -> list[str]:
        """A held-out file's provenance and its overlap with training, as lines for a table's caption."""
        if self.split != FILE_SPLIT or not self.source:
            return []
        src = self.source
        lines = [f"File {src.get('name')} (sha256 {str(src.get('sha256', ''))[:12]}…), read as "
                 f"{src.get('format_title', src.get('format'))}: {src.get('rows_used', 0)} rows used of "
                 f"{src.get('rows_read', 0)} read" + (f", {src['skipped']} skipped ({src.get('skipped_why')})"
                                                      if src.get("skipped") else "") + "."]
        overlap = self.metrics.get("overlap_train", src.get("overlap_train", 0))
        if overlap:
            n = self.metrics.get("n") or src.get("rows_used", 0)
            lines.append(f"⚠️ {overlap} of {n} rows repeat the training data ({overlap_text(src)}): the model saw "
                         "them in training, so they inflate the scores. Remove them from the file for a fair "
                         "number.")
        elif src.get("overlap_checked", True):
            lines.append("No row repeats a training row or prompt.")
        else:
            lines.append("Overlap with training was not checked: the run's dataset version is gone.")
        return lines


def overlap_text(source: dict[str, Any]) -> str:
    """'2 whole rows, 1 prompt only' from a held-out file's counts (kinds with none left out)."""
    kinds = source.get("overlap") or {}
    parts = [f"{kinds[k]} {one if kinds[k] == 1 else many}" for k, one, many in (
        ("same_row", "whole row", "whole rows"), ("same_prompt", "prompt only", "prompts only")) if kinds.get(k)]
    return ", ".join(parts)


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
        teacher=stored.get("teacher"), source=_loads(r["source"], {}), job=job)


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
    overlap: str | None = None
    """A held-out file's row that repeats training: OVERLAP_ROW or OVERLAP_PROMPT; else None."""


def to_row(index: int, fmt: Any, data: dict[str, Any], overlap: str | None = None) -> _Row | None:
    """One record (any seed format) as what the models answer and what they are scored against: the reference
    is the last assistant message, the context everything before it. None when there is no such pair."""
    from studio.data.chat import render_turns, to_messages

    try:
        messages = to_messages(fmt, data)
    except (KeyError, TypeError, ValueError):  # a damaged record is left out
        return None
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
    if last is None or not any(m["role"] == "user" for m in messages[:last]):
        return None
    context = messages[:last]
    only_user = len(context) == 1 and context[0]["role"] == "user"
    prompt = context[0]["content"] if only_user else render_turns(context)
    return _Row(index, messages[: last + 1], context, prompt, messages[last]["content"], overlap)


def _rows(ws: Workspace, version_id: int, split: str, limit: int | None) -> list[_Row]:
    """The split's rows as (context, reference) pairs, first `limit` rows in row order."""
    from studio.data.versions import version_rows

    out: list[_Row] = []
    for row in sorted(version_rows(ws, version_id, split), key=lambda r: r.id):
        if limit is not None and len(out) >= limit:
            break
        if (made := to_row(len(out), row.format, row.data)) is not None:
            out.append(made)
    return out


def _stored_rows(ws: Workspace, eval_id: int) -> list[_Row]:
    """A held-out file's rows, as stored with the evaluation at creation."""
    from studio.data.formats import SeedFormat

    with ws.read() as conn:
        stored = conn.execute("SELECT format, data, overlap FROM eval_row WHERE eval_id = ? ORDER BY position",
                              (eval_id,)).fetchall()
    out: list[_Row] = []
    for r in stored:
        made = to_row(len(out), SeedFormat(r["format"]), json.loads(r["data"]), r["overlap"] or None)
        if made is not None:
            out.append(made)
    return out


def _eval_rows(ws: Workspace, ev: Evaluation) -> list[_Row]:
    if ev.split == FILE_SPLIT:
        return _stored_rows(ws, ev.id)
    return _rows(ws, ev.dataset_version_id, ev.split, ev.config.limit)


# --- a held-out file -------------------------------------------------------------------------------


@dataclass
class _HeldOut:
    source: dict[str, Any]
    records: list[tuple[str, dict[str, Any], str]]
    """(format, record, overlap or '') of each row used, in file order."""
    rows: list[_Row]


def _prompt_key(row: _Row) -> str:
    """The prompt, case and whitespace ignored (content_key's normalisation)."""
    return " ".join(row.prompt.lower().split())


def _training_keys(ws: Workspace, version_id: int | None) -> tuple[set[str], set[str], str | None] | None:
    """(content keys, prompt keys, family) of the run's training rows; None when its version is gone."""
    from studio.data.formats import FORMATS, content_key
    from studio.data.versions import version_rows
    from studio.errors import DatasetVersionError

    if version_id is None:
        return None
    try:
        train = version_rows(ws, version_id, "train")
    except DatasetVersionError:
        return None
    keys, prompts = set(), set()
    for row in train:
        keys.add(content_key(row.format, row.data))
        if (made := to_row(0, row.format, row.data)) is not None:
            prompts.add(_prompt_key(made))
    family = FORMATS[train[0].format].family if train else None
    return keys, prompts, family


def _read_held_out(ws: Workspace, run: Any, path_text: str, limit: int | None) -> _HeldOut:
    """Read a held-out file with the seed importer (nothing written): its usable rows, flagged where they
    repeat the run's training rows, and what to record about the file. QualityError / SeedError say what is
    wrong with the file and what to do."""
    import hashlib

    from studio.data.formats import FORMATS

    path, preview = _preview_held_out(ws, path_text)
    name, fmt = preview.source, preview.format
    assert fmt is not None
    training = _training_keys(ws, run.dataset_version_id)
    family = FORMATS[fmt].family
    if training and training[2] and training[2] != family:
        raise QualityError(f"{name} was read as {FORMATS[fmt].title} rows ({family}), but {run.title} was trained "
                           f"on {training[2]} rows. Upload held-out rows of the kind it was trained on.")
    held = _flag_rows(preview, training, limit)
    counts = preview.counts
    if not held.rows:
        problems = "; ".join(str(p) for p in preview.problems[:3] if p.severity == "error")
        raise QualityError(f"None of the {counts['rows']} rows of {name} can be evaluated on"
                           + (f" ({problems})" if problems else " (each needs a prompt and the expected answer)")
                           + ". Fix the rows and upload the file again.")
    unusable = held.source["unusable"]
    why = [f"{n} {what}" for n, what in ((counts["with_errors"], "with problems"),
                                         (counts["duplicates"], "repeated in the file"),
                                         (unusable, "without a prompt and answer")) if n]
    overlap = {"same_row": sum(r.overlap == OVERLAP_ROW for r in held.rows),
               "same_prompt": sum(r.overlap == OVERLAP_PROMPT for r in held.rows)}
    held.source = {
        "kind": "file", "name": name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "format": fmt.value, "format_title": FORMATS[fmt].title, "layout": preview.table.layout,
        "rows_read": counts["rows"], "rows_used": len(held.rows),
        "skipped": counts["with_errors"] + counts["duplicates"] + unusable, "skipped_why": ", ".join(why),
        "limited": held.source["limited"], "problems": [str(p) for p in preview.problems[:5]],
        "overlap_checked": training is not None, "overlap": overlap,
        "overlap_train": overlap["same_row"] + overlap["same_prompt"],
    }
    return held


def _preview_held_out(ws: Workspace, path_text: str) -> tuple[Path, Any]:
    """(path, the importer's preview) of a file whose columns name a seed format without the mapping step."""
    from studio.data.importer import preview_file
    from studio.data.readers import safe_display_name
    from studio.errors import MappingError

    path = Path(path_text).expanduser()
    name = safe_display_name(path.name)
    if not path.is_file():
        raise QualityError(f"There is no file at {path}. Give the path of the held-out file to evaluate on (CSV, "
                           "JSONL, Parquet, Excel: any file the seed import reads).")
    preview = preview_file(ws, path, display_name=name)  # InputFileError names what is wrong with the file
    rename = ("A held-out file is read without the mapping step: name its columns as seed files do (prompt and "
              "completion; instruction, input and output; or messages) and upload it again.")
    if preview.format is None:
        columns = ", ".join(f"'{c}'" for c in preview.table.columns) or "none"
        raise MappingError(f"{name} has the columns {columns}, which do not match a seed format. {rename}")
    if preview.mapping_problem or preview.detection.needs_mapping:
        raise MappingError(f"{name}: {preview.mapping_problem or preview.detection.message} {rename}")
    return path, preview


def _flag_rows(preview: Any, training: tuple[set[str], set[str], str | None] | None, limit: int | None) -> _HeldOut:
    """The first `limit` usable rows as evaluation rows, each flagged where it repeats training (a whole row by
    its content key, else its prompt); source holds only 'unusable' and 'limited' so far."""
    records: list[tuple[str, dict[str, Any], str]] = []
    rows: list[_Row] = []
    unusable = 0
    usable = preview.usable
    for prepared in usable:
        if limit is not None and len(rows) >= limit:
            break
        made = to_row(len(rows), preview.format, prepared.record)
        if made is None:
            unusable += 1
            continue
        overlap = None
        if training and prepared.key in training[0]:
            overlap = OVERLAP_ROW
        elif training and _prompt_key(made) in training[1]:
            overlap = OVERLAP_PROMPT
        rows.append(dataclasses.replace(made, overlap=overlap))
        records.append((preview.format.value, prepared.record, overlap or ""))
    limited = limit is not None and len(usable) - unusable > len(rows)
    return _HeldOut({"unusable": unusable, "limited": limited}, records, rows)


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
    """Check everything, then write the eval row (queued), its job row and a held-out file's rows in one
    transaction. Extra metrics are loaded and tried here, so a name that cannot work fails before any answer."""
    from studio.evaluation.metrics import check_extra
    from studio.teachers.spec import describe_spec
    from studio.workspace.projects import get_project

    cfg.check()
    run = _check_run(ws, run_id)
    held_out = _read_held_out(ws, run, str(cfg.file), cfg.limit) if cfg.file is not None else None
    if held_out is not None:
        rows, version_id, split = held_out.rows, run.dataset_version_id, FILE_SPLIT
        where = f"held-out file {held_out.source['name']}"
    else:
        rows, split = _split_rows(ws, run, cfg), cfg.split
        version_id = cfg.version_id if cfg.version_id is not None else run.dataset_version_id
        where = f"the {split} split"
    extra = check_extra(cfg.metrics, [r.reference for r in rows], hosted=ws.settings.on_space) if cfg.metrics else []
    project = get_project(ws, run.project_id)
    spec = _teacher_for(ws, project, teacher) if cfg.judge else None
    stored = {**cfg.to_dict(), "split": split, "metrics": extra, "teacher": describe_spec(spec) if spec else None}
    source: dict[str, Any] = {}
    message = f"Queued: {len(rows)} rows of {where}."
    if held_out is not None:
        source = held_out.source
        stored["file"] = source["name"]  # the path was an upload's temporary copy: keep the name only
        if source["overlap_train"]:
            message += (f" {source['overlap_train']} of them repeat the training data ({overlap_text(source)}): "
                        "they inflate the scores.")
    total = len(rows) * (2 if cfg.judge else 1)
    now = utc_now()
    with ws.write() as conn:
        eval_id = int(conn.execute(
            "INSERT INTO eval(run_id, split, metrics, created_at, project_id, dataset_version_id, base_model_ref, "
            "status, config, examples, message, source) VALUES (?, ?, '{}', ?, ?, ?, ?, 'queued', ?, '[]', ?, ?)",
            (run.id, split, now, run.project_id, version_id, run.base_model_ref, json.dumps(stored), message,
             json.dumps(source, ensure_ascii=False))).lastrowid or 0)
        if held_out is not None:
            conn.executemany("INSERT INTO eval_row(eval_id, position, format, data, overlap) VALUES (?, ?, ?, ?, ?)",
                             [(eval_id, i, fmt, json.dumps(record, ensure_ascii=False), overlap)
                              for i, (fmt, record, overlap) in enumerate(held_out.records)])
        job_id = jobs.create(conn, kind=JOB_KIND, project_id=run.project_id, subject_id=eval_id, total=total,
                             message="Queued.")
        conn.execute("UPDATE eval SET job_id = ? WHERE id = ?", (job_id, eval_id))
    return get_eval(ws, eval_id)


def _split_rows(ws: Workspace, run: Any, cfg: EvalConfig) -> list[_Row]:
    """The rows of the picked split of the picked version (the run's own by default); QualityError if none."""
    from studio.data.versions import get_version_by_id

    version_id = cfg.version_id if cfg.version_id is not None else run.dataset_version_id
    if version_id is None:
        raise QualityError(f"{run.title} does not record its dataset version (it may have been deleted). Pick a "
                           "dataset version to evaluate on, or evaluate on a held-out file.")
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
    return rows


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
    rows = _eval_rows(ws, ev)
    total = len(rows) * (2 if cfg.judge else 1)
    if not jobs.claim(ws, ev.job_id, done=0, total=total, message="Loading the models…"):
        raise QualityError(f"Evaluation #{ev.id} is already running. Stop it first, or wait for it to finish.")
    _set(ws, ev.id, status="running", message="Loading the models…", finished_at="")
    try:
        if not rows:
            what = ev.where if ev.split == FILE_SPLIT else f"The {ev.split} split of dataset version " \
                                                          f"#{ev.dataset_version_id}"
            raise QualityError(f"{what[0].upper() + what[1:]} has no rows any more; nothing to evaluate. Start a "
                               "new evaluation.")
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
    message = f"Done: {metrics['n']} rows of {ev.where}."
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
    if cfg.metrics:
        _message(ws, job_id, ev.id, "Scoring the answers (with the extra metrics)…")
    table = metric_lib.compare(base_preds, tuned_preds, references, extra=cfg.metrics)
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
        "judge": verdicts[e.index], "overlap": rows[e.index].overlap,
    } for e in table.examples]
    scored = table.to_dict()
    metrics = {
        "n": n,
        "rows": scored["rows"],
        "extra": scored["extra"],
        "loss": {"base": base_loss.loss, "tuned": tuned_loss.loss},
        "perplexity": {"base": base_loss.perplexity, "tuned": tuned_loss.perplexity},
        "loss_tokens": tuned_loss.tokens,
        "judge": judge,
        "settings": settings,
    }
    if ev.split == FILE_SPLIT:
        metrics["overlap_train"] = sum(r.overlap is not None for r in rows)
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
