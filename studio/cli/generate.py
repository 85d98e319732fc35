"""`seed-studio generate`, `batches`, `candidates`, `prompts` and `teacher`: the Generate tab's twin."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, clip, open_workspace, pick_project, print_json
from studio.cli.plan import TopicOption, TopicsFileOption, VaryOption, typed_plan

batches_app = typer.Typer(help="Generation batches: list, stop, resume, profile.", no_args_is_help=True)
candidates_app = typer.Typer(help="Generated rows with their provenance.", no_args_is_help=True)
prompts_app = typer.Typer(help="Prompt templates and their versions.", no_args_is_help=True)
teacher_app = typer.Typer(help="Teacher models.", no_args_is_help=True)

TeacherOption = Annotated[str | None, typer.Option(
    "--teacher", help="Model ref, run:<id> (a finished fine-tune), or an OpenAI-compatible endpoint URL "
                      "(default: the project's teacher).")]
TeacherModelOption = Annotated[str, typer.Option("--teacher-model", help="Model name at the endpoint URL.")]
ApiKeyEnvOption = Annotated[str | None, typer.Option(
    "--api-key-env", help="Name of the environment variable holding the endpoint's API key (default: "
                          "SEED_STUDIO_TEACHER_API_KEY, then OPENAI_API_KEY, then HF_TOKEN). Keys are never stored.")]


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        from studio.errors import TeacherError

        raise TeacherError(f"The environment variable {env_name} is empty or not set; export the API key in it.")
    return value


def _parse_values(items: list[str]) -> dict[str, list[str]]:
    from studio.errors import GenerationError

    out: dict[str, list[str]] = {}
    for item in items:
        kind, eq, values = item.partition("=")
        if not eq or not kind.strip() or not values.strip():
            raise GenerationError(f"--values takes TYPE=value1,value2 (e.g. LOC=Lyon,Porto); got '{item}'.")
        out.setdefault(kind.strip().upper(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return out


def generate(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="instruction-expansion, instruction-refinement, "
                                          "response-expansion, few-shot, nlpaug or entity-swap.")] = "",
    count: Annotated[int, typer.Option("--count", "-n", help="How many usable rows the batch should hold.")] = 0,
    teacher: TeacherOption = None,
    teacher_model: TeacherModelOption = "",
    prompt_version: Annotated[int | None, typer.Option("--prompt-version", help="Prompt version id (default: "
                                                       "the newest; see `prompts list`).")] = None,
    per_call: Annotated[int, typer.Option("--per-call", help="Phrasings per seed (expansion) or new examples per "
                                          "call (few-shot).")] = 5,
    styles: Annotated[str, typer.Option(help="Response styles, comma-separated; custom ones as 'name: how'.")] = "",
    shots: Annotated[int, typer.Option("--shots", "-k", help="Few-shot: examples shown per call.")] = 5,
    include_synthetic: Annotated[bool, typer.Option(help="Few-shot: also show accepted synthetic rows.")] = False,
    hint: Annotated[str, typer.Option(help="Diversity hint: topics, conditions, personas to vary.")] = "",
    augmenter: Annotated[str, typer.Option(help="nlpaug augmenter (see `teacher augmenters`).")] = "keyboard",
    copies: Annotated[int, typer.Option(help="nlpaug / entity swap: variants per seed.")] = 2,
    strength: Annotated[float, typer.Option(help="nlpaug: share of characters/words changed.")] = 0.1,
    locale: Annotated[str, typer.Option(help="Entity swap: Faker locale.")] = "en_US",
    values: Annotated[list[str] | None, typer.Option("--values", help="Entity swap: your own values, "
                                                     "TYPE=a,b,c (repeatable).")] = None,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.8,
    top_p: Annotated[float, typer.Option("--top-p")] = 0.95,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 256,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Local teacher: prompts per forward pass.")] = 16,
    concurrency: Annotated[int, typer.Option(help="Endpoint teacher: parallel requests.")] = 4,
    timeout: Annotated[float, typer.Option(help="Endpoint teacher: seconds per request.")] = 60.0,
    seed: Annotated[int | None, typer.Option(help="Random seed (same seed, same units).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Generate 5 rows and show them; nothing is saved "
                                          "unless you keep them.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="With --preview: keep the rows without asking.")] = False,
    resume: Annotated[int | None, typer.Option("--resume", help="Resume this stopped or interrupted batch.")] = None,
    plan: Annotated[int | None, typer.Option("--plan", help="Sample from this saved diversity plan (id; see "
                                                             "`plan list`).")] = None,
    topic: TopicOption = None,
    topics_file: TopicsFileOption = None,
    vary: VaryOption = None,
    api_key_env: ApiKeyEnvOption = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Generate synthetic rows from the project's seeds (a batch, a preview, or a resume)."""
    from studio.augment import batches
    from studio.augment.strategies import StrategyOptions, get_strategy
    from studio.errors import GenerationError
    from studio.teachers.base import GenerationParams
    from studio.teachers.spec import parse_teacher

    ws = open_workspace(home)
    key = _api_key(api_key_env)
    if resume is not None:
        _run_with_progress(ws, resume, key, as_json)
        return
    if not strategy:
        raise GenerationError("Say which strategy to use with --strategy (e.g. --strategy few-shot).")
    strat = get_strategy(strategy)
    p = pick_project(ws, project)
    spec = None
    if strat.uses_teacher:
        from studio.models.registry import DEFAULT_TEACHER

        spec = parse_teacher(teacher or p.teacher_ref or DEFAULT_TEACHER, model=teacher_model,
                             batch_size=batch_size, concurrency=concurrency, timeout=timeout)
    options = StrategyOptions(n=per_call, styles=[s.strip() for s in styles.split(",") if s.strip()] or
                              StrategyOptions().styles, k=shots, include_synthetic=include_synthetic,
                              diversity_hint=hint, augmenter=augmenter, copies=copies, strength=strength,
                              locale=locale, user_values=_parse_values(values or []))
    req = batches.BatchRequest(p.id, strat.name, count if count else (batches.PREVIEW_ROWS if preview else 0),
                               spec, prompt_version, options,
                               GenerationParams(max_new_tokens, temperature, top_p, seed), seed,
                               plan_id=plan, plan=typed_plan(topic, topics_file, vary))
    if plan is not None and req.plan is not None:
        raise GenerationError("Give either --plan (a saved plan) or --topic/--topics-file/--vary, not both.")
    if preview:
        rows = batches.preview(ws, req, api_key=key)
        _show_preview(rows, as_json)
        if keep or (not as_json and sys.stdin.isatty() and typer.confirm("Keep the usable rows?", default=False)):
            kept = batches.keep_preview(ws, req, rows)
            typer.echo(f"Kept {kept.rows_ok} rows as batch #{kept.id}.")
        return
    batch = batches.plan_batch(ws, req)
    typer.echo(f"Batch #{batch.id}: {strat.title}, {batch.target_count} rows, teacher {batch.teacher_label}"
               + (f", prompt v{batch.prompt_version}" if batch.prompt_version else "") + ".", err=as_json)
    _run_with_progress(ws, batch.id, key, as_json)


def _run_with_progress(ws: Any, batch_id: int, api_key: str | None, as_json: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from studio.augment import batches

    batch = batches.get_batch(ws, batch_id)
    console_err = as_json or not sys.stdout.isatty()
    with Progress(TextColumn("[bold]batch #{task.fields[batch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), transient=False,
                  disable=console_err) as progress:
        task = progress.add_task("generate", total=batch.target_count, completed=batch.rows_ok, batch=batch_id,
                                 rate="")

        def on_progress(job: Any) -> None:
            rate = job.rate_per_minute()
            progress.update(task, completed=job.done, rate=f"{rate:.1f} rows/min" if rate else "")
            if console_err:  # no live bar: one line per step, for logs and pipes
                typer.echo(f"batch #{batch_id}: {job.progress_text()}", err=True)

        batch = batches.run_batch(ws, batch_id, api_key=api_key, on_progress=on_progress)
    if as_json:
        print_json(_batch_json(batch))
    else:
        typer.echo(batch.job.message if batch.job else f"Batch #{batch.id}: {batch.rows_ok} rows.")


def _show_preview(rows: list[Any], as_json: bool) -> None:
    if as_json:
        print_json([{"format": str(r.row.format), "data": r.row.data, "parse_status": r.row.parse_status,
                     "parse_error": r.row.parse_error, "raw_output": r.row.raw_output, "meta": r.row.meta,
                     "seed_ids": [e.ref for e in r.examples if not e.synthetic]} for r in rows])
        return
    from studio.data.formats import summary_text

    for r in rows:
        if r.row.usable:
            prompt, answer = summary_text(r.row.format, r.row.data)
            typer.echo(f"✓ {clip(prompt, 70)}\n    → {clip(answer, 70)}")
        else:
            typer.echo(f"✗ parse failed: {r.row.parse_error}\n    raw: {clip(r.row.raw_output, 70)}")


def _batch_json(b: Any) -> dict[str, Any]:
    return {"id": b.id, "project_id": b.project_id, "strategy": b.strategy, "state": b.state,
            "target_count": b.target_count, "rows_ok": b.rows_ok, "rows_failed": b.rows_failed,
            "prompt_version_id": b.prompt_version_id, "prompt_version": b.prompt_version, "teacher": b.teacher,
            "params": b.params, "note": b.note, "created_at": b.created_at,
            "message": b.job.message if b.job else ""}


@batches_app.command("list")
def batches_list(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """List the project's batches, newest first."""
    from studio.augment.batches import list_batches

    ws = open_workspace(home)
    p = pick_project(ws, project)
    items = list_batches(ws, p.id)
    if as_json:
        print_json([_batch_json(b) for b in items])
        return
    if not items:
        typer.echo("No batches yet. Start one with: seed-studio generate --strategy few-shot --count 20")
    for b in items:
        typer.echo(f"#{b.id:<4} {b.strategy:<24} {b.state:<12} {b.rows_ok:>5}/{b.target_count:<5} rows "
                   f"({b.rows_failed} failed)  {clip(b.teacher_label, 40)}")


@batches_app.command("stop")
def batches_stop(batch_id: int, home: HomeOption = None) -> None:
    """Ask a running batch to stop after its current step."""
    from studio.augment.batches import stop_batch

    b = stop_batch(open_workspace(home), batch_id)
    typer.echo(f"Batch #{b.id}: {b.state}.")


@batches_app.command("resume")
def batches_resume(batch_id: int, api_key_env: ApiKeyEnvOption = None, as_json: JsonOption = False,
                   home: HomeOption = None) -> None:
    """Resume a stopped, failed or interrupted batch where it left off."""
    _run_with_progress(open_workspace(home), batch_id, _api_key(api_key_env), as_json)


EmbedOption = Annotated[bool, typer.Option("--embed", help="Also measure closeness to the seeds by meaning (sentence "
                                           "embeddings of up to 1,000 rows; slower).")]


@batches_app.command("profile")
def batches_profile(batch_id: int, embed: EmbedOption = False, as_json: JsonOption = False,
                    home: HomeOption = None) -> None:
    """Data profile of a batch: rows by status, uniqueness and lengths per field, plan coverage, novelty."""
    from studio.quality.profile import available_embed, batch_profile, summary_lines

    ws = open_workspace(home)
    embed_fn = available_embed(ws) if embed else None
    if embed and embed_fn is None:
        typer.echo("The sentence embedder is not installed: closeness is measured by words only.", err=True)
    profile = batch_profile(ws, batch_id, embed=embed_fn)
    if as_json:
        print_json(profile.to_dict())
        return
    for line in summary_lines(profile):
        typer.echo(line)


@candidates_app.command("list")
def candidates_list(
    batch: Annotated[int | None, typer.Option("--batch", help="Only this batch.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many rows.")] = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """List generated rows; --json prints each with its full provenance."""
    from studio.augment.candidates import list_candidates

    ws = open_workspace(home)
    if batch is not None:
        rows = list_candidates(ws, batch_id=batch, limit=limit)
    else:
        rows = list_candidates(ws, project_id=pick_project(ws, project).id, limit=limit)
    if as_json:
        print_json([c.to_json() for c in rows])
        return
    for c in rows:
        if c.usable:
            prompt, answer = c.summary()
            typer.echo(f"#{c.id:<6} b{c.batch_id:<4} {clip(prompt, 55):<55} → {clip(answer, 35)}")
        else:
            typer.echo(f"#{c.id:<6} b{c.batch_id:<4} [parse failed] {clip(c.parse_error, 70)}")


@prompts_app.command("list")
def prompts_list(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name.")],
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """List the versions of a strategy's prompt, newest first."""
    from studio.augment.prompt_versions import list_versions

    ws = open_workspace(home)
    versions = list_versions(ws, pick_project(ws, project).id, strategy)
    if as_json:
        print_json([v.__dict__ for v in versions])
        return
    for v in versions:
        typer.echo(f"id {v.id:<5} {v.label:<40} {v.created_at}")


@prompts_app.command("show")
def prompts_show(version_id: int, home: HomeOption = None) -> None:
    """Print one prompt version's template."""
    from studio.augment.prompt_versions import get_version

    typer.echo(get_version(open_workspace(home), version_id).template)


@prompts_app.command("save")
def prompts_save(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="Jinja template file.", exists=True, dir_okay=False)],
    note: Annotated[str, typer.Option(help="What changed and why.")] = "",
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Check a template and save it as the strategy's next prompt version."""
    from studio.augment.prompt_versions import save_version

    ws = open_workspace(home)
    v = save_version(ws, pick_project(ws, project).id, strategy, file.read_text(encoding="utf-8"), note=note)
    typer.echo(f"Saved prompt version id {v.id} ({v.label}).")


@teacher_app.command("test")
def teacher_test(
    teacher: TeacherOption = None,
    teacher_model: TeacherModelOption = "",
    api_key_env: ApiKeyEnvOption = None,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Check that a teacher answers (one tiny request)."""
    from studio.models.registry import DEFAULT_TEACHER
    from studio.teachers.spec import parse_teacher, try_teacher

    ws = open_workspace(home)
    ref = teacher or pick_project(ws, project).teacher_ref or DEFAULT_TEACHER
    typer.echo(try_teacher(ws, parse_teacher(ref, model=teacher_model), api_key=_api_key(api_key_env)))


@teacher_app.command("augmenters")
def teacher_augmenters(as_json: JsonOption = False) -> None:
    """The nlpaug augmenters, and why any is unavailable here."""
    from studio.augment.classic import available_augmenters

    infos = available_augmenters()
    if as_json:
        print_json([i.__dict__ for i in infos])
        return
    for i in infos:
        typer.echo(f"{i.name:<20} {'yes' if i.available else 'no ':<4} {i.help if i.available else i.reason}")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.add_typer(batches_app, name="batches")
    app.add_typer(candidates_app, name="candidates")
    app.add_typer(prompts_app, name="prompts")
    app.add_typer(teacher_app, name="teacher")
