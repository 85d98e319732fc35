"""Generation batches: plan one (checked before anything is written), run it as a job, stop, resume, preview.

Exactly-once rows across crashes: a batch is a sequence of numbered work units (see strategies.py).
Each step runs a handful of units and writes their candidate rows, their `batch_unit` rows and the
job's progress in ONE transaction. A kill -9 loses at most the step in flight, which was never
committed; resume skips every unit that has a `batch_unit` row and re-runs the rest. The UNIQUE
(batch_id, idx) constraint makes a double write impossible even if two processes raced.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from studio import jobs
from studio.augment.plan import DiversityPlan, PlanVersion, get_plan, plan_line, save_plan
from studio.augment.strategies import Example, Row, Strategy, StrategyOptions, get_strategy
from studio.augment.templates import render
from studio.data.formats import SeedFormat
from studio.errors import GenerationError, StudioError, TeacherError
from studio.teachers.base import GenerationParams, Teacher, finish_reason, structured_by
from studio.teachers.spec import TeacherSpec, build_teacher, describe_spec
from studio.workspace import Workspace, utc_now
from studio.workspace.projects import get_project
from studio.workspace.seeds import list_seeds

MAX_TARGET = 100_000
PREVIEW_ROWS = 5
JOB_KIND = "generate"
REVIEW_STATES = ("discarded", "selected")
"""batch.status values the review gate writes (studio.review.gate); a generation job never sets them."""


@dataclass
class BatchRequest:
    """Everything a user chooses before starting a batch (the UI form, the CLI flags)."""

    project_id: int
    strategy: str
    count: int
    teacher: TeacherSpec | None = None
    prompt_version_id: int | None = None
    """None: the strategy's newest prompt version in this project."""
    options: StrategyOptions = field(default_factory=StrategyOptions)
    params: GenerationParams = field(default_factory=GenerationParams)
    rng_seed: int | None = None
    plan_id: int | None = None
    """A saved diversity plan version to sample from (studio.augment.plan); None: `plan`, if any."""
    plan: DiversityPlan | None = None
    """A plan as typed: saved as the project's next plan version when the batch is planned or a preview
    kept (an unchanged plan is not saved twice); a preview uses it unsaved."""


@dataclass(frozen=True)
class Batch:
    id: int
    project_id: int
    strategy: str
    prompt_version_id: int | None
    prompt_version: int | None
    teacher: dict[str, Any]
    params: dict[str, Any]
    target_count: int
    status: str
    note: str
    seed_ids: list[int]
    created_at: str
    job: jobs.Job | None
    rows_ok: int
    rows_failed: int

    @property
    def state(self) -> str:
        """What a person should read: the review outcome once there is one (discarded, selected), else
        the job's status while there is one (running, interrupted…)."""
        if self.status in REVIEW_STATES:
            return self.status
        return self.job.status if self.job else self.status

    @property
    def resumable(self) -> bool:
        return self.state in jobs.RESUMABLE and self.rows_ok < self.target_count

    @property
    def options(self) -> StrategyOptions:
        return StrategyOptions.from_dict(self.params.get("options"))

    @property
    def teacher_label(self) -> str:
        if not self.teacher:
            return "no teacher (offline)"
        return TeacherSpec.from_dict(self.teacher).label


@dataclass
class PreviewRow:
    row: Row
    examples: list[Example]
    unit_idx: int


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def get_batch(ws: Workspace, batch_id: int) -> Batch:
    jobs.reconcile(ws)
    with ws.read() as conn:
        r = conn.execute(
            "SELECT b.*, pv.version AS pv_version, "
            "(SELECT COUNT(*) FROM candidate c WHERE c.batch_id=b.id AND c.data IS NOT NULL) AS rows_ok, "
            "(SELECT COUNT(*) FROM candidate c WHERE c.batch_id=b.id AND c.data IS NULL) AS rows_failed "
            "FROM batch b LEFT JOIN prompt_version pv ON pv.id = b.prompt_version_id WHERE b.id=?",
            (batch_id,)).fetchone()
        job_row = conn.execute("SELECT * FROM job WHERE id=?", (r["job_id"],)).fetchone() if r and r["job_id"] else None
    if r is None:
        raise GenerationError(f"There is no batch {batch_id}. `seed-studio batches list` shows the batches.")
    job = jobs._row(job_row) if job_row else None
    return Batch(r["id"], r["project_id"], r["strategy"], r["prompt_version_id"], r["pv_version"],
                 _loads(r["teacher"], {}), _loads(r["params"], {}), r["target_count"], r["status"], r["note"],
                 _loads(r["seed_ids"], []), r["created_at"], job, r["rows_ok"], r["rows_failed"])


def list_batches(ws: Workspace, project_id: int) -> list[Batch]:
    with ws.read() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM batch WHERE project_id=? ORDER BY id DESC", (project_id,))]
    return [get_batch(ws, i) for i in ids]


# --- planning --------------------------------------------------------------------------------------


def _check_count(count: Any) -> int:
    try:
        value = int(count)
    except (TypeError, ValueError):
        raise GenerationError(f"The number of rows must be a whole number (got {count!r}).") from None
    if value < 1:
        raise GenerationError("Ask for at least 1 row.")
    if value > MAX_TARGET:
        raise GenerationError(f"{value:,} rows is more than one batch can hold ({MAX_TARGET:,}). Generate in "
                              "several batches, reviewing each: a bad prompt then wastes one batch, not all.")
    return value


def _check_params(params: GenerationParams) -> None:
    if not 1 <= params.max_new_tokens <= 8192:
        raise GenerationError(f"Max new tokens must be between 1 and 8,192 (got {params.max_new_tokens}).")
    if not 0 <= params.temperature <= 2:
        raise GenerationError(f"Temperature must be between 0 and 2 (got {params.temperature}).")
    if not 0 < params.top_p <= 1:
        raise GenerationError(f"Top-p must be above 0 and at most 1 (got {params.top_p}).")


def human_examples(ws: Workspace, project_id: int, seed_ids: list[int] | None = None) -> list[Example]:
    seeds = list_seeds(ws, project_id)
    if seed_ids is not None:
        wanted = set(seed_ids)
        seeds = [s for s in seeds if s.id in wanted]
    return [Example(s.id, s.format, s.data) for s in seeds]


def accepted_synthetic(ws: Workspace, project_id: int, ids: list[int] | None = None) -> list[Example]:
    """Synthetic rows a person vouched for: selected after a passed review gate (the reviewer's edit where
    there was one), or accepted in review in a batch that was not discarded. Few-shot may show them."""
    sql = ("SELECT c.id, c.format, COALESCE(s.data, c.data) AS data FROM candidate c "
           "JOIN batch b ON b.id = c.batch_id LEFT JOIN selection s ON s.candidate_id = c.id "
           "WHERE b.project_id = ? AND c.data IS NOT NULL AND b.status != 'discarded' AND (s.id IS NOT NULL OR "
           "(SELECT r.verdict FROM review r WHERE r.candidate_id = c.id ORDER BY r.id DESC LIMIT 1) = 'accept') "
           "ORDER BY c.id")
    with ws.read() as conn:
        rows = conn.execute(sql, (project_id,)).fetchall()
    out = [Example(r["id"], SeedFormat(r["format"]), json.loads(r["data"]), synthetic=True) for r in rows]
    if ids is not None:
        wanted = set(ids)
        out = [e for e in out if e.ref in wanted]
    return out


@dataclass
class _Plan:
    strategy: Strategy
    pool: list[Example]
    synthetic: list[Example]
    template: str
    task: str
    prompt_version_id: int | None
    rng_seed: int
    diversity: PlanVersion | None = None


def _prepare(ws: Workspace, req: BatchRequest, *, write: bool = True) -> _Plan:
    """Every check a batch needs, before anything is written. write=False (preview) writes nothing at all."""
    from studio.augment.prompt_versions import get_version, latest

    project = get_project(ws, req.project_id)
    strategy = get_strategy(req.strategy)
    wants_plan = req.plan_id is not None or (req.plan is not None and not req.plan.empty)
    if wants_plan and not strategy.uses_plan:
        raise GenerationError(f"{strategy.title} keeps each seed's meaning, so a diversity plan does not apply "
                              "to it. Use it with few-shot generation or instruction expansion, or turn the "
                              "plan off.")
    req.options.check()
    _check_params(req.params)
    examples = human_examples(ws, project.id)
    strategy.check_seeds(examples, req.options)
    pool = strategy.usable(examples, req.options)
    if not pool:
        raise GenerationError(f"None of this project's seeds suits {strategy.title}. {strategy.suggestion()}")
    synthetic = accepted_synthetic(ws, project.id) if req.options.include_synthetic else []
    rng_seed = req.rng_seed if req.rng_seed is not None else random.randrange(2**31)
    template, version_id = "", None
    if strategy.uses_teacher:
        if req.teacher is None:
            raise TeacherError(f"{strategy.title} needs a teacher model. Pick one (the embedded SmolLM2 works "
                               "offline).")
        if req.prompt_version_id is None:
            version = latest(ws, project.id, strategy.name, create=write)
        else:
            version = get_version(ws, req.prompt_version_id)
            if version.project_id != project.id or version.strategy != strategy.name:
                raise GenerationError(f"Prompt version {version.id} belongs to {version.strategy} in another "
                                      "project or strategy; pick one of this strategy's versions.")
        template, version_id = version.template, version.id or None
        first = strategy.unit_examples(0, pool, req.options, rng_seed, synthetic)
        render(template, strategy.context(first, req.options, project.task_description))  # fails early
    diversity = None
    if req.plan_id is not None:
        diversity = get_plan(ws, req.plan_id)
        if diversity.project_id != project.id:
            raise GenerationError(f"Diversity plan {req.plan_id} belongs to another project; pick one of this "
                                  "project's plans.")
    elif wants_plan:
        assert req.plan is not None
        diversity = save_plan(ws, project.id, req.plan) if write else PlanVersion(0, project.id, 0, req.plan, "", "")
    return _Plan(strategy, pool, synthetic, template, project.task_description, version_id, rng_seed, diversity)


def plan_batch(ws: Workspace, req: BatchRequest, *, note: str = "") -> Batch:
    """Check the request, then record the batch and its job (status: stopped until a worker claims it)."""
    count = _check_count(req.count)
    plan = _prepare(ws, req)
    teacher = describe_spec(req.teacher) if (req.teacher and plan.strategy.uses_teacher) else {}
    params = {"options": req.options.to_dict(), "generation": req.params.to_dict(), "rng_seed": plan.rng_seed,
              "synthetic_ids": [e.ref for e in plan.synthetic]}
    if plan.diversity is not None:
        params.update(plan=plan.diversity.plan.to_dict(), plan_version=plan.diversity.version,
                      plan_id=plan.diversity.id)
    now = utc_now()
    with ws.write() as conn:
        cur = conn.execute(
            "INSERT INTO batch(project_id, strategy, prompt_version_id, teacher, params, target_count, status, "
            "seed_ids, note, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?, ?, ?)",
            (req.project_id, plan.strategy.name, plan.prompt_version_id, json.dumps(teacher), json.dumps(params),
             count, json.dumps([e.ref for e in plan.pool]), note, now, now))
        batch_id = int(cur.lastrowid)
        job_id = jobs.create(conn, kind=JOB_KIND, project_id=req.project_id, subject_id=batch_id, total=count,
                             message="Planned; not started yet.")
        conn.execute("UPDATE batch SET job_id=? WHERE id=?", (job_id, batch_id))
    return get_batch(ws, batch_id)


# --- running ---------------------------------------------------------------------------------------


ProgressCallback = Callable[[jobs.Job], None]


def run_batch(ws: Workspace, batch_id: int, *, api_key: str | None = None, teacher: Teacher | None = None,
              on_progress: ProgressCallback | None = None) -> Batch:
    """Run (or resume) a batch in this thread until it has its rows, is stopped, or fails.

    A teacher failure ends the job as `failed` with the reason; the rows made so far stay, and the
    batch can be resumed once the teacher is fixed. The error is also raised for the caller.
    """
    run = _claim(ws, batch_id)
    if run is None:
        return get_batch(ws, batch_id)
    return _execute(ws, run, api_key=api_key, teacher=teacher, on_progress=on_progress)


@dataclass
class _Run:
    """A claimed batch with everything its units need, loaded before the work starts."""

    batch: Batch
    strategy: Strategy
    options: StrategyOptions
    gen: GenerationParams
    rng_seed: int
    pool: list[Example]
    synthetic: list[Example]
    template: str
    task: str
    done_units: set[int]
    job_id: int
    plan: DiversityPlan | None = None


def _claim(ws: Workspace, batch_id: int) -> _Run | None:
    """Load the batch and mark its job running in this process; None when it already has its rows.
    Every problem that stops a batch from starting is raised here, to the caller who asked."""
    batch = get_batch(ws, batch_id)
    if batch.job is None:
        raise GenerationError(f"Batch {batch_id} was kept from a preview; it has nothing left to generate.")
    if batch.rows_ok >= batch.target_count:
        return None
    strategy = get_strategy(batch.strategy)
    pool = human_examples(ws, batch.project_id, batch.seed_ids)
    order = {sid: i for i, sid in enumerate(batch.seed_ids)}
    pool.sort(key=lambda e: order.get(e.ref, 0))  # the frozen order, so unit idx means the same after resume
    if not pool:
        raise GenerationError(f"Every seed batch {batch_id} drew from has been deleted; start a new batch.")
    synthetic = accepted_synthetic(ws, batch.project_id, batch.params.get("synthetic_ids") or [])
    template = ""
    if strategy.uses_teacher:
        from studio.augment.prompt_versions import get_version

        template = get_version(ws, batch.prompt_version_id).template  # type: ignore[arg-type]
    with ws.read() as conn:
        done_units = {r[0] for r in conn.execute("SELECT idx FROM batch_unit WHERE batch_id=?", (batch_id,))}
    if not jobs.claim(ws, batch.job.id, done=batch.rows_ok, total=batch.target_count,
                      message="Loading the teacher…" if strategy.uses_teacher else "Starting…"):
        raise GenerationError(f"Batch {batch_id} is already running. Stop it first, or wait for it to finish.")
    _set_status(ws, batch_id, "running")
    plan = DiversityPlan.from_dict(batch.params["plan"]) if batch.params.get("plan") else None
    return _Run(batch, strategy, batch.options, GenerationParams.from_dict(batch.params.get("generation", {})),
                int(batch.params.get("rng_seed", 0)), pool, synthetic, template,
                get_project(ws, batch.project_id).task_description, done_units, batch.job.id, plan)


def _execute(ws: Workspace, run: _Run, *, api_key: str | None = None, teacher: Teacher | None = None,
             on_progress: ProgressCallback | None = None) -> Batch:
    batch, strategy, options, job_id = run.batch, run.strategy, run.options, run.job_id
    batch_id, done_units, pool, synthetic, rng_seed = batch.id, run.done_units, run.pool, run.synthetic, run.rng_seed
    template, task, gen = run.template, run.task, run.gen
    rows_ok = batch.rows_ok
    expected = max(1, strategy.expected_rows(options))
    # Parse failures and duplicates make some units yield nothing: allow up to three times the units an
    # ideal run would need, then end the batch short rather than loop forever on a teacher that fails.
    max_units = math.ceil(batch.target_count / expected) * 3 + 5
    try:
        if strategy.uses_teacher and teacher is None:
            spec = TeacherSpec.from_dict(batch.teacher)
            teacher = build_teacher(ws, spec, api_key=api_key)
        step = _step_size(strategy, batch.teacher)
        next_idx = 0
        recorded_teacher = False
        while rows_ok < batch.target_count:
            if jobs.stop_requested(ws, job_id):
                jobs.finish(ws, job_id, "stopped", f"Stopped at {rows_ok} of {batch.target_count} rows. "
                            "Resume to continue.", done=rows_ok)
                _set_status(ws, batch_id, "stopped")
                return get_batch(ws, batch_id)
            needed_units = math.ceil((batch.target_count - rows_ok) / expected)
            idxs: list[int] = []
            while len(idxs) < min(step, needed_units) and next_idx < max_units:
                if next_idx not in done_units:
                    idxs.append(next_idx)
                next_idx += 1
            if not idxs:
                message = (f"Finished short: {rows_ok} usable rows of {batch.target_count}; the teacher's answers "
                           "often failed to parse. Look at the failed rows, then revise the prompt or the teacher.")
                jobs.finish(ws, job_id, "done", message, done=rows_ok)
                _set_status(ws, batch_id, "done")
                return get_batch(ws, batch_id)
            units = [(i, strategy.unit_examples(i, pool, options, rng_seed, synthetic)) for i in idxs]
            results = _run_units(strategy, units, options, teacher, template, task, gen, rng_seed, run.plan)
            if teacher is not None and not recorded_teacher:
                batch = _record_served_teacher(ws, batch, teacher)
                recorded_teacher = True
            rows_ok = _store_units(ws, batch, results, gen, rows_ok, job_id)
            done_units.update(idxs)
            if on_progress:
                on_progress(jobs.get(ws, job_id))
        jobs.finish(ws, job_id, "done", f"Done: {rows_ok} rows.", done=rows_ok)
        _set_status(ws, batch_id, "done")
        return get_batch(ws, batch_id)
    except StudioError as error:
        jobs.finish(ws, job_id, "failed", f"{error} ({rows_ok} rows kept; resume when fixed.)", done=rows_ok)
        _set_status(ws, batch_id, "failed")
        raise
    except BaseException as error:  # a bug or Ctrl-C: say so in the job, keep the rows
        status = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
        jobs.finish(ws, job_id, status, f"{type(error).__name__}: {error} ({rows_ok} rows kept; resume to "
                    "continue.)", done=rows_ok)
        _set_status(ws, batch_id, status)
        raise
    finally:
        jobs.release(job_id)


def _record_served_teacher(ws: Workspace, batch: Batch, teacher: Teacher) -> Batch:
    """Add what the teacher says about itself once it has answered (the model an endpoint actually
    serves when none was named, the device a local model runs on) to the batch's teacher record."""
    served = {k: v for k, v in teacher.describe().items() if isinstance(v, str | int | float | bool)}
    served.pop("base_url", None)  # the spec has the public URL already
    record = {**batch.teacher, "served": served}
    if record == batch.teacher:
        return batch
    with ws.write() as conn:
        conn.execute("UPDATE batch SET teacher=?, updated_at=? WHERE id=?", (json.dumps(record), utc_now(), batch.id))
    return replace(batch, teacher=record)


def _step_size(strategy: Strategy, teacher: dict[str, Any]) -> int:
    """Units per committed step: one teacher batch (local) or a few rounds of parallel requests."""
    if not strategy.uses_teacher:
        return 8
    spec = TeacherSpec.from_dict(teacher)
    return spec.batch_size if spec.kind == "local" else spec.concurrency * 2


def _run_units(strategy: Strategy, units: list[tuple[int, list[Example]]], options: StrategyOptions,
               teacher: Teacher | None, template: str, task: str, gen: GenerationParams,
               rng_seed: int, plan: DiversityPlan | None = None) -> list[tuple[int, list[Example], list[Row]]]:
    if not strategy.uses_teacher:
        return [(i, ex, strategy.run_offline(ex, options, _unit_seed(rng_seed, i))) for i, ex in units]
    assert teacher is not None
    per_unit = max(1, strategy.expected_rows(options))
    draws = {i: plan.sample_items(rng_seed, i, per_unit) if plan is not None and strategy.uses_plan else []
             for i, _ in units}
    conversations = [strategy.conversation(unit_prompt(strategy, template, ex, options, task, draws[i]))
                     for i, ex in units]
    # One sampling seed per step, derived from the batch seed and the first unit: reproducible, yet
    # different for every step so the teacher does not repeat itself.
    step_params = GenerationParams(gen.max_new_tokens, gen.temperature, gen.top_p,
                                   _unit_seed(rng_seed if gen.seed is None else gen.seed, units[0][0]))
    texts = _generate_by_schema(strategy, units, conversations, options, teacher, step_params, draws)
    out = []
    for (i, ex), text in zip(units, texts, strict=True):
        try:
            rows = strategy.parse(text or "", ex, options)
        except Exception as error:
            from studio.augment.strategies import failed_row

            rows = [failed_row(ex[0].format, text or "", f"Parser error: {error}")]
        cut_off = finish_reason(text) == "length"
        for position, row in enumerate(rows):
            row.raw_output = text or ""
            row.meta["structured"] = structured_by(text)
            if draws[i] and row.usable:
                item = row.meta.get("item", position)  # the answer item the row came from
                row.meta["plan"] = draws[i][item % len(draws[i])]
            if cut_off:
                _mark_cut_off(row, gen.max_new_tokens)
        out.append((i, ex, rows))
    return out


def unit_prompt(strategy: Strategy, template: str, examples: list[Example], options: StrategyOptions, task: str,
                draws: list[dict[str, str]]) -> str:
    """The prompt of one unit. A template saved before plans existed has no `plan` variable: the draws are
    then added at the end, so a plan always reaches the teacher."""
    text = render(template, {**strategy.context(examples, options, task), "plan": draws})
    if draws and "plan" not in template:
        text += "\n\n" + plan_line(draws)
    return text


def _generate_by_schema(strategy: Strategy, units: list[tuple[int, list[Example]]], conversations: list[Any],
                        options: StrategyOptions, teacher: Teacher, params: GenerationParams,
                        draws: dict[int, list[dict[str, str]]]) -> list[str]:
    """One teacher call for the step, each unit's answer under its own schema (they differ in the lengths
    that follow their seeds and in the plan draws they start items with; a local teacher masks each row
    with its own grammar)."""
    schemas = [strategy.answer_schema(ex, options, params.max_new_tokens, draws[i]) for i, ex in units]
    if all(s is None for s in schemas):
        return teacher.generate(conversations, params)
    return teacher.generate(conversations, params, schema=schemas)


def _mark_cut_off(row: Row, max_new_tokens: int) -> None:
    """A row from an answer that hit max_new_tokens: recorded as cut off, so the fix is plain."""
    row.meta["cut_off"] = True
    note = (f"The answer was cut off at the max new tokens limit ({max_new_tokens}); raise it or ask for fewer "
            "rows per call.")
    if row.data is None:
        row.parse_error = f"{note} {row.parse_error}".strip()
    elif row.parse_status == "ok":
        row.parse_status = "partial"
        row.parse_error = note


def _unit_seed(rng_seed: int, idx: int) -> int:
    return (rng_seed * 1_000_003 + idx) % (2**31)


def _store_units(ws: Workspace, batch: Batch, results: list[tuple[int, list[Example], list[Row]]],
                 gen: GenerationParams, rows_ok: int, job_id: int) -> int:
    """Write a step's rows, unit marks and progress together: all of it lands, or none of it."""
    now = utc_now()
    decoding = json.dumps(gen.to_dict()) if batch.teacher else "{}"
    with ws.write() as conn:
        for idx, examples, rows in results:
            room = batch.target_count - rows_ok
            kept_ok = 0
            failed = 0
            seed_ids = [e.ref for e in examples if not e.synthetic]
            for row in rows:
                if row.usable:
                    if kept_ok >= room:
                        continue  # the batch has its rows; extra ones from the last unit are not needed
                    kept_ok += 1
                else:
                    failed += 1
                _insert_candidate(conn, batch.id, row, examples, idx, decoding, now)
            rows_ok += kept_ok
            conn.execute("INSERT INTO batch_unit(batch_id, idx, seed_ids, rows_ok, rows_failed, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (batch.id, idx, json.dumps(seed_ids), kept_ok, failed, now))
        jobs.report(conn, job_id, done=rows_ok, message=f"Generating: {rows_ok} of {batch.target_count} rows.")
    return rows_ok


def _insert_candidate(conn: Any, batch_id: int, row: Row, examples: list[Example], unit_idx: int, decoding: str,
                      now: str) -> None:
    """One candidate row with its provenance: human seed ids, and the synthetic examples it was shown."""
    meta = dict(row.meta)
    synthetic_ids = [e.ref for e in examples if e.synthetic]
    if synthetic_ids:
        meta["example_candidate_ids"] = synthetic_ids
    conn.execute(
        "INSERT INTO candidate(batch_id, format, data, seed_ids, raw_output, parse_status, parse_error, "
        "decoding_params, meta, unit_idx, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (batch_id, str(row.format), json.dumps(row.data, ensure_ascii=False) if row.usable else None,
         json.dumps([e.ref for e in examples if not e.synthetic]), row.raw_output, row.parse_status, row.parse_error,
         decoding, json.dumps(meta, ensure_ascii=False), unit_idx, now))


def _set_status(ws: Workspace, batch_id: int, status: str) -> None:
    with ws.write() as conn:
        conn.execute("UPDATE batch SET status=?, updated_at=? WHERE id=?", (status, utc_now(), batch_id))


# --- background runs (the UI) ----------------------------------------------------------------------

_threads: dict[int, threading.Thread] = {}
_threads_lock = threading.Lock()


def start_in_background(ws: Workspace, batch_id: int, *, api_key: str | None = None) -> None:
    """Claim the batch here (so a problem is raised to the caller and the job shows `running` at once),
    then run it in a thread of this process; the UI follows it through the job row."""
    with _threads_lock:
        thread = _threads.get(batch_id)
        if thread is not None and thread.is_alive():
            raise GenerationError(f"Batch {batch_id} is already running.")
        run = _claim(ws, batch_id)
        if run is None:
            return

        def work() -> None:
            try:
                _execute(ws, run, api_key=api_key)
            except StudioError:
                pass  # recorded on the job row, which the UI shows
            except Exception:  # recorded on the job row by _execute; the traceback goes to the log
                import logging

                logging.getLogger(__name__).exception("batch %s failed", batch_id)

        thread = threading.Thread(target=work, name=f"batch-{batch_id}", daemon=True)
        _threads[batch_id] = thread
        thread.start()


def stop_batch(ws: Workspace, batch_id: int) -> Batch:
    batch = get_batch(ws, batch_id)
    if batch.job is not None:
        jobs.request_stop(ws, batch.job.id)
    return get_batch(ws, batch_id)


def wait_for(batch_id: int, timeout: float | None = None) -> None:
    """Join the background thread of a batch (tests, CLI)."""
    with _threads_lock:
        thread = _threads.get(batch_id)
    if thread is not None:
        thread.join(timeout)


# --- preview ---------------------------------------------------------------------------------------


def preview(ws: Workspace, req: BatchRequest, *, rows: int = PREVIEW_ROWS, api_key: str | None = None,
            teacher: Teacher | None = None) -> list[PreviewRow]:
    """Generate about `rows` rows in memory. Nothing is written."""
    plan = _prepare(ws, req, write=False)
    req.rng_seed = plan.rng_seed  # so rows kept from this preview record the seed that made them
    strategy, options = plan.strategy, req.options
    if strategy.uses_teacher and teacher is None:
        assert req.teacher is not None
        teacher = build_teacher(ws, req.teacher, api_key=api_key)
    expected = max(1, strategy.expected_rows(options))
    out: list[PreviewRow] = []
    idx = 0
    # At most three rounds, so a teacher whose answers never parse still returns its failures quickly.
    for _ in range(3):
        n_units = max(1, math.ceil((rows - sum(p.row.usable for p in out)) / expected))
        units = [(i, strategy.unit_examples(i, plan.pool, options, plan.rng_seed, plan.synthetic))
                 for i in range(idx, idx + n_units)]
        idx += n_units
        diversity = plan.diversity.plan if plan.diversity is not None else None
        for i, ex, unit_rows in _run_units(strategy, units, options, teacher, plan.template, plan.task, req.params,
                                           plan.rng_seed, diversity):
            out.extend(PreviewRow(r, ex, i) for r in unit_rows)
        if sum(p.row.usable for p in out) >= rows:
            break
    usable = [p for p in out if p.row.usable][:rows]
    return usable + [p for p in out if not p.row.usable]


def keep_preview(ws: Workspace, req: BatchRequest, rows: list[PreviewRow]) -> Batch:
    """Store previewed rows as a finished batch of their own (with full provenance)."""
    kept = [p for p in rows if p.row.usable]
    if not kept:
        raise GenerationError("There are no usable preview rows to keep. Generate a new preview first.")
    plan = _prepare(ws, req)
    teacher = describe_spec(req.teacher) if (req.teacher and plan.strategy.uses_teacher) else {}
    params = {"options": req.options.to_dict(), "generation": req.params.to_dict(), "rng_seed": plan.rng_seed,
              "preview": True}
    if plan.diversity is not None:
        params.update(plan=plan.diversity.plan.to_dict(), plan_version=plan.diversity.version,
                      plan_id=plan.diversity.id)
    now = utc_now()
    decoding = json.dumps(req.params.to_dict()) if teacher else "{}"
    with ws.write() as conn:
        cur = conn.execute(
            "INSERT INTO batch(project_id, strategy, prompt_version_id, teacher, params, target_count, status, "
            "seed_ids, note, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'done', ?, 'kept from a preview', ?, ?)",
            (req.project_id, plan.strategy.name, plan.prompt_version_id, json.dumps(teacher), json.dumps(params),
             len(kept), json.dumps(sorted({e.ref for p in kept for e in p.examples if not e.synthetic})), now, now))
        batch_id = int(cur.lastrowid)
        for p in kept:
            _insert_candidate(conn, batch_id, p.row, p.examples, p.unit_idx, decoding, now)
    return get_batch(ws, batch_id)

