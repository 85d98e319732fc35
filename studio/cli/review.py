"""`seed-studio filter`, `judge`, `diversity` and `review ...`: the Review tab's twin."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, clip, open_workspace, print_json
from studio.cli.generate import ApiKeyEnvOption, TeacherModelOption, TeacherOption, _api_key

review_app = typer.Typer(help="Human review of a batch: sample, verdicts, the gate, prompt revision.",
                         no_args_is_help=True)

BatchOption = Annotated[int, typer.Option("--batch", "-b", help="Batch id (see `batches list`).")]


def _teacher_spec(ws: Any, batch_id: int, teacher: str | None, teacher_model: str) -> Any:
    from studio.augment.batches import get_batch
    from studio.models.registry import DEFAULT_TEACHER
    from studio.teachers.spec import parse_teacher
    from studio.workspace.projects import get_project

    project = get_project(ws, get_batch(ws, batch_id).project_id)
    return parse_teacher(teacher or project.teacher_ref or DEFAULT_TEACHER, model=teacher_model)


def filter_command(
    batch: BatchOption,
    off: Annotated[list[str] | None, typer.Option("--off", help="Turn a filter off (repeatable): parse, "
                                                  "exact_duplicate, near_duplicate, semantic_duplicate, "
                                                  "seed_overlap, heuristics, refusal, prompt_echo, "
                                                  "fidelity.")] = None,
    near: Annotated[float | None, typer.Option("--near", help="Near-duplicate Jaccard threshold (0-1).")] = None,
    semantic: Annotated[float | None, typer.Option("--semantic", help="Semantic duplicate cosine threshold "
                                                   "(0-1).")] = None,
    seed_overlap: Annotated[float | None, typer.Option("--seed-overlap", help="ROUGE-L F above which a row is "
                                                       "too close to a seed (0-1).")] = None,
    min_words: Annotated[int | None, typer.Option("--min-words", help="Shortest instruction, in words.")] = None,
    max_words: Annotated[int | None, typer.Option("--max-words", help="Longest instruction, in words.")] = None,
    fidelity: Annotated[float | None, typer.Option("--fidelity", help="Cosine with its seed's instruction below "
                                                   "which a reworded instruction has drifted (0-1).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Show what the filters would mark; write "
                                          "nothing.")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Run the automatic filters on a batch (marks rows with a reason; deletes nothing)."""
    from studio.quality.filters import FilterConfig, apply_filters, preview_filters

    ws = open_workspace(home)
    config = FilterConfig()
    for name in off or []:
        if name not in config.enabled:
            from studio.errors import QualityError

            raise QualityError(f"There is no filter called '{name}'. Filters: {', '.join(config.enabled)}.")
        config.enabled[name] = False
    for attr, value in (("near_duplicate_threshold", near), ("semantic_threshold", semantic),
                        ("seed_overlap_threshold", seed_overlap), ("min_words", min_words),
                        ("max_words", max_words), ("fidelity_threshold", fidelity)):
        if value is not None:
            setattr(config, attr, value)
    report = (preview_filters if preview else apply_filters)(ws, batch, config)
    if as_json:
        print_json(report.to_dict())
        return
    typer.echo(f"{'Preview (nothing written)' if preview else 'Applied'}: {len(report.passed_ids)} of "
               f"{report.total} rows pass.")
    for name, removed in report.failed_by.items():
        typer.echo(f"  {name:<20} {removed:>6} marked")


def judge_command(
    batch: BatchOption,
    teacher: TeacherOption = None,
    teacher_model: TeacherModelOption = "",
    all_rows: Annotated[bool, typer.Option("--all", help="Judge rows that failed a filter too.")] = False,
    limit: Annotated[int | None, typer.Option(help="Judge at most this many rows.")] = None,
    api_key_env: ApiKeyEnvOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Score a batch's rows with the teacher (accuracy, tone, instruction following; 1-5, with a rationale)."""
    from studio.quality.judge import judge_batch

    ws = open_workspace(home)
    spec = _teacher_spec(ws, batch, teacher, teacher_model)
    summary = judge_batch(ws, batch, spec, api_key=_api_key(api_key_env), only_passing=not all_rows, limit=limit)
    data = summary.to_dict() if hasattr(summary, "to_dict") else summary.__dict__
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key:<24} {value}")


def diversity_command(
    batch: Annotated[int | None, typer.Option("--batch", "-b", help="Batch id.")] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="Dataset version id or name.")] = None,
    as_json: JsonOption = False,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Project (for a version name).")] = None,
    home: HomeOption = None,
) -> None:
    """Diversity report of a batch or a dataset version: distinct-n, self-BLEU, neighbours, seed closeness."""
    from studio.errors import QualityError
    from studio.quality.diversity import batch_diversity, interpretations, version_diversity

    ws = open_workspace(home)
    if (batch is None) == (version is None):
        raise QualityError("Give exactly one of --batch ID or --version NAME.")
    if batch is not None:
        report = batch_diversity(ws, batch)
    else:
        from studio.cli.common import pick_project
        from studio.data.versions import get_version

        report = version_diversity(ws, get_version(ws, pick_project(ws, project).id, version).id)
    data = report.to_dict()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if not isinstance(value, list | dict):
            typer.echo(f"{key:<24} {value}")
    for line in interpretations(report):
        typer.echo(f"- {line}")


@review_app.command("sample")
def review_sample(
    batch: BatchOption,
    fraction: Annotated[float, typer.Option(help="Share of the rows that passed the filters.")] = 0.10,
    min_size: Annotated[int, typer.Option("--min", help="At least this many rows (or all, if fewer).")] = 20,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: from the batch id).")] = None,
    more: Annotated[int, typer.Option("--more", help="Add this many rows to the existing sample.")] = 0,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Draw (or show) the batch's review sample."""
    from studio.augment.candidates import get_candidate
    from studio.review.sampling import draw_sample, extend_sample
    from studio.review.verdicts import row_verdicts

    ws = open_workspace(home)
    sample = draw_sample(ws, batch, fraction=fraction, min_size=min_size, rng_seed=seed)
    if more:
        sample = extend_sample(ws, batch, more)
    verdicts = row_verdicts(ws, batch)
    items = []
    for item in sample.items:
        c = get_candidate(ws, item.candidate_id)
        prompt, answer = c.summary() if c else ("", "")
        v = verdicts.get(item.candidate_id)
        items.append({"position": item.position, "row": item.candidate_id, "stratum": item.stratum,
                      "verdict": v.verdict if v else None, "prompt": prompt, "answer": answer,
                      "seed_ids": c.seed_ids if c else []})
    if as_json:
        print_json({"sample_id": sample.id, "batch_id": batch, "rng_seed": sample.rng_seed, "items": items})
        return
    typer.echo(f"Sample of batch #{batch}: {len(items)} rows (seed {sample.rng_seed}).")
    for it in items:
        typer.echo(f"{it['position']:>4}  row {it['row']:<7} {it['verdict'] or '—':<8} {clip(it['prompt'], 70)}")


@review_app.command("verdict")
def review_verdict(
    batch: BatchOption,
    row: Annotated[int, typer.Option("--row", "-r", help="Candidate row id (see `review sample`).")],
    verdict: Annotated[str, typer.Option("--verdict", help="accept, reject or edit.")],
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Reason tag (repeatable): hallucination, "
                                                  "'wrong tone', off-task, format, unsafe, duplicate, "
                                                  "other.")] = None,
    edit_json: Annotated[str | None, typer.Option("--edit-json", help="With --verdict edit: the corrected "
                                                  "row as JSON (same fields as the row).")] = None,
    accuracy: Annotated[int | None, typer.Option(help="Accuracy 1-5.")] = None,
    tone: Annotated[int | None, typer.Option(help="Tone 1-5.")] = None,
    note: Annotated[str, typer.Option(help="Free-text note for the prompt revision.")] = "",
    reviewer: Annotated[str, typer.Option(help="Your name (verdicts of different reviewers never overwrite "
                                          "each other).")] = "cli",
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Record one verdict (saved at once; a newer verdict by the same reviewer supersedes it)."""
    from studio.augment.candidates import get_candidate
    from studio.errors import ReviewError
    from studio.review.sampling import get_sample
    from studio.review.verdicts import record_verdict, sample_progress

    ws = open_workspace(home)
    c = get_candidate(ws, row)
    if c is None or c.batch_id != batch:
        raise ReviewError(f"Row {row} is not in batch #{batch}. `seed-studio review sample --batch {batch}` "
                          "lists the rows to review.")
    edited = None
    if edit_json is not None:
        try:
            edited = json.loads(edit_json)
        except json.JSONDecodeError as exc:
            raise ReviewError(f"--edit-json is not valid JSON ({exc.msg} at character {exc.pos}).") from None
    sample = get_sample(ws, batch)
    review = record_verdict(ws, row, verdict=verdict, reviewer=reviewer, reason_tags=tag or [], edited_data=edited,
                            accuracy=accuracy, tone=tone, note=note, sample_id=sample.id if sample else None)
    done, total = sample_progress(ws, batch)
    if as_json:
        print_json({"review_id": review.id, "row": row, "verdict": review.verdict, "reviewed": done, "total": total})
        return
    typer.echo(f"Saved: row {row} {review.verdict}. Reviewed {done} / {total}.")


@review_app.command("gate")
def review_gate(
    batch: BatchOption,
    threshold: Annotated[float, typer.Option(help="Highest error rate a batch may have (0-1).")] = 0.10,
    confidence: Annotated[float, typer.Option(help="Confidence of the Wilson interval.")] = 0.95,
    min_reviews: Annotated[int, typer.Option("--min-reviews", help="Reviews needed before deciding.")] = 20,
    apply: Annotated[bool, typer.Option("--apply", help="Record the decision: discard the batch on fail, "
                                        "select rows on pass.")] = False,
    per_seed_cap: Annotated[int | None, typer.Option("--per-seed-cap", help="On pass: at most this many rows "
                                                     "per source seed.")] = None,
    min_judge: Annotated[float | None, typer.Option("--min-judge", help="On pass: keep rows whose judge score "
                                                    "is at least this (1-5).")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """The error rate of the reviewed sample with its Wilson interval, and the decision it supports."""
    from studio.review.gate import GateConfig, apply_gate, evaluate_gate
    from studio.review.selection import SelectionConfig

    ws = open_workspace(home)
    config = GateConfig(threshold=threshold, confidence=confidence, min_reviews=min_reviews)
    if apply:
        result = apply_gate(ws, batch, config, selection=SelectionConfig(per_seed_cap=per_seed_cap,
                                                                         min_judge_score=min_judge))
    else:
        result = evaluate_gate(ws, batch, config)
    if as_json:
        print_json(result.to_dict())
        return
    typer.echo(result.message)
    if min_judge:
        from studio.review.calibration import calibrate, threshold_for

        warning = calibrate(ws, batch, judge_threshold=threshold_for(min_judge)).judge_warning(min_judge)
        if warning:
            typer.echo(f"Warning: {warning}")


def _estimate(e: Any, pct: bool = False) -> str:
    if e is None or e.value is None:
        return "—"
    value = f"{e.value:.0%}" if pct else f"{e.value:.2f}"
    if e.low is None or e.high is None:
        return value
    return f"{value} ({e.low:.0%}–{e.high:.0%})" if pct else f"{value} [{e.low:.2f}, {e.high:.2f}]"


@review_app.command("calibration")
def review_calibration(
    batch_id: Annotated[int | None, typer.Argument(metavar="BATCH_ID", help="Batch id (see `batches list`).",
                                                   show_default=False)] = None,
    batch: Annotated[int | None, typer.Option("--batch", "-b", help="Batch id, as the other review "
                                              "commands take it.")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Judge score (1-5) below which the judge "
                                                    "counts as rejecting a row (default 3).")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence of the intervals.")] = 0.95,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """How far the judge and the filters agree with the reviewers, and the reviewers with each other."""
    from studio.errors import ReviewError
    from studio.review.calibration import calibrate

    if batch_id is not None and batch is not None and batch_id != batch:
        raise ReviewError(f"Two different batches given ({batch_id} and --batch {batch}): give one.")
    chosen = batch_id if batch_id is not None else batch
    if chosen is None:
        raise ReviewError("Say which batch: `seed-studio review calibration BATCH_ID` (see `batches list`).")
    ws = open_workspace(home)
    cal = calibrate(ws, chosen, judge_threshold=threshold, confidence=confidence)
    if as_json:
        print_json(cal.to_dict())
        return
    typer.echo(f"Batch #{chosen}: {cal.reviewed} reviewed rows, {cal.rejected} rejected.")
    typer.echo(f"{'check':<34} {'rows':>5}  {'agree':<16} {'recall of reject':<16} {'precision':<16} kappa")
    for check in [cal.judge, *cal.filters]:
        typer.echo(f"{clip(check.title, 34):<34} {check.n:>5}  {_estimate(check.accuracy, True):<16} "
                   f"{_estimate(check.recall, True):<16} {_estimate(check.precision, True):<16} "
                   f"{_estimate(check.kappa)}")
    if cal.judge.spearman is not None:
        typer.echo(f"Judge score vs verdict: Spearman {_estimate(cal.judge.spearman)}, "
                   f"Kendall tau-b {_estimate(cal.judge.kendall)}")
    typer.echo(cal.judge_message)
    r = cal.reviewers
    if r.rows:
        typer.echo(f"Reviewers: {r.rows} rows seen by two or more, all agree on {r.agreed}; Fleiss' kappa "
                   f"{_estimate(r.fleiss)}, Krippendorff's alpha {_estimate(r.alpha)}")
        for pair in r.pairs:
            typer.echo(f"  {pair.reviewers[0] or '(no name)'} / {pair.reviewers[1] or '(no name)'}: {pair.n} rows, "
                       f"agree {_estimate(pair.agreement, True)}, Cohen's kappa {_estimate(pair.kappa)}")
    else:
        typer.echo("Reviewers: no row has been reviewed by two people yet.")


@review_app.command("revise")
def review_revise(
    batch: BatchOption,
    teacher: TeacherOption = None,
    teacher_model: TeacherModelOption = "",
    no_teacher: Annotated[bool, typer.Option("--no-teacher", help="Draft without asking the teacher (rules "
                                             "from the reviewers' reasons).")] = False,
    save: Annotated[bool, typer.Option("--save", help="Save the draft as the next prompt version.")] = False,
    from_file: Annotated[str | None, typer.Option("--from-file", help="Save this file (your edited draft) as "
                                                  "the next prompt version.")] = None,
    note: Annotated[str, typer.Option(help="Note stored with the saved version.")] = "",
    api_key_env: ApiKeyEnvOption = None,
    home: HomeOption = None,
) -> None:
    """Draft a revised generation prompt from the reviewers' reasons and edits (and optionally save it)."""
    from pathlib import Path

    from studio.review.revision import draft_revision, save_revision

    ws = open_workspace(home)
    if from_file:
        v = save_revision(ws, batch, Path(from_file).read_text(encoding="utf-8"), note=note)
        typer.echo(f"Saved prompt version id {v.id} ({v.label}).")
        return
    spec = None if no_teacher else _teacher_spec(ws, batch, teacher, teacher_model)
    draft = draft_revision(ws, batch, spec=spec, api_key=_api_key(api_key_env))
    typer.echo(draft.template)
    typer.echo(f"\n# {draft.rationale}", err=True)
    if save:
        v = save_revision(ws, batch, draft.template, note=note or draft.rationale)
        typer.echo(f"Saved prompt version id {v.id} ({v.label}).", err=True)


@review_app.command("reopen")
def review_reopen(batch: BatchOption, home: HomeOption = None) -> None:
    """Undo a gate decision: the batch goes back to review (its rows were never deleted)."""
    from studio.review.gate import reopen_batch

    ws = open_workspace(home)
    reopen_batch(ws, batch)
    typer.echo(f"Batch #{batch} is open for review again.")


def register(app: typer.Typer) -> None:
    app.command("filter")(filter_command)
    app.command("judge")(judge_command)
    app.command("diversity")(diversity_command)
    app.add_typer(review_app, name="review")
