"""`seed-studio compare`, `eval` and `evals`: the Compare tab's twins.

compare: one prompt, the base model and one or two fine-tuned runs answering it in turn (one model in
memory, the adapter switched on and off), with the same decoding settings and seed; the answers stream
to the terminal. eval: a batch evaluation in the foreground with a progress bar (Ctrl-C stops it after
the current row), on a split or on a held-out file (`--file`), with extra evaluate metrics (`--metric`).
evals: the evaluations recorded so far.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, clip, open_workspace, pick_project, print_json
from studio.cli.generate import ApiKeyEnvOption, TeacherModelOption, _api_key

MaxNewTokensOption = Annotated[int, typer.Option("--max-new-tokens", help="Longest answer, in tokens.")]
TemperatureOption = Annotated[float, typer.Option("--temperature", help="0 = greedy (the same answer every "
                                                  "time); above 0 samples.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Sampling seed, the same for every side.")]


def compare(
    runs: Annotated[list[int], typer.Option("--run", "-r", help="Run id (repeat for a second run).",
                                            show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", help="What to ask the models.", show_default=False)],
    base: Annotated[str | None, typer.Option("--base", help="Base model ref (default: the first run's base "
                                             "model).")] = None,
    max_new_tokens: MaxNewTokensOption = 128,
    temperature: TemperatureOption = 0.0,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Ask the base model and fine-tuned runs the same prompt; their answers stream one after another."""
    from studio.errors import TrainError
    from studio.evaluation.sidebyside import BASE, SideBySide
    from studio.train.runs import get_run

    if not prompt.strip():
        raise TrainError("The prompt is empty. Pass the question with --prompt \"...\".")
    ws = open_workspace(home)
    run_ids = list(dict.fromkeys(runs))
    base_ref = base or get_run(ws, run_ids[0]).base_model_ref
    if not as_json:
        typer.echo(f"Loading {base_ref} with the adapter of {_runs_text(run_ids)}…", err=True)
    model = SideBySide.load(ws, base_ref, run_ids)
    sides: list[Any] = [BASE, *run_ids]
    labels = {BASE: "base", **{r: f"run {r}" for r in run_ids}}
    answers: dict[str, str] = {}
    shown = ""
    for side, text in model.stream(prompt, sides, max_new_tokens=max_new_tokens, temperature=temperature,
                                   seed=seed):
        label = labels[side]
        if label not in answers:
            if not as_json:
                title = f"{label} ({base_ref})" if side == BASE else f"{label} (fine-tuned)"
                typer.echo(("\n" if answers else "") + f"── {title} ──")
            shown = ""
        answers[label] = text
        if not as_json:
            # Print what is new; if the text was rewritten (whitespace), start a fresh line with all of it.
            new = text[len(shown):] if text.startswith(shown) else "\n" + text
            if new:
                typer.echo(new, nl=False)
                sys.stdout.flush()
            shown = text
    if as_json:
        print_json({"prompt": prompt, "base_model": base_ref, "runs": run_ids,
                    "settings": {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": 1.0,
                                 "seed": seed},
                    "answers": answers})
    else:
        typer.echo("")


def _runs_text(run_ids: list[int]) -> str:
    return " and ".join(f"run {r}" for r in run_ids)


def eval_command(
    run: Annotated[int, typer.Option("--run", "-r", help="Run id (see `runs list`).", show_default=False)],
    split: Annotated[str, typer.Option("--split", help="test (held out from training) or validation.")] = "test",
    file: Annotated[str | None, typer.Option("--file", help="Evaluate on this held-out file instead of a split "
                                             "(CSV, JSONL, Parquet, Excel: any file `seeds import` reads). Rows "
                                             "that repeat training rows are flagged.", show_default=False)] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="An extra metric: an evaluate hub id (like "
                                                     "meteor) or the path of a metric folder; repeat for more.",
                                                     show_default=False)] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate the first N rows only.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Dataset version name or id (default: the one "
                                                "the run was trained on).")] = None,
    judge: Annotated[bool, typer.Option("--judge", help="Also let the teacher compare each pair of answers "
                                        "(asked twice, positions swapped).")] = False,
    teacher: Annotated[str | None, typer.Option("--teacher", help="The judge, with --judge: a model ref, run:<id> "
                                                "or an endpoint URL (default: the project's teacher).")] = None,
    teacher_model: TeacherModelOption = "",
    api_key_env: ApiKeyEnvOption = None,
    max_new_tokens: MaxNewTokensOption = 128,
    temperature: TemperatureOption = 0.0,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Evaluate a run against its base model on a split or a held-out file: ROUGE-L, BLEU, exact match (and any
    --metric), loss, judge win-rate."""
    from studio.errors import QualityError
    from studio.evaluation.batch import EvalConfig, create_eval
    from studio.train.runs import get_run

    ws = open_workspace(home)
    if (teacher or teacher_model) and not judge:
        raise QualityError("--teacher and --teacher-model choose the judge; add --judge to use one.")
    version_id = None
    if version is not None:
        from studio.data.versions import get_version

        version_id = get_version(ws, get_run(ws, run).project_id, version).id
    spec = None
    if teacher:
        from studio.teachers.spec import parse_teacher

        spec = parse_teacher(teacher, model=teacher_model)
    cfg = EvalConfig(split=split, limit=limit, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                     judge=judge, version_id=version_id, file=file, metrics=list(metric or []))
    key = _api_key(api_key_env)
    ev = create_eval(ws, run, cfg, teacher=spec)
    typer.echo(f"Evaluation #{ev.id} of run {run} against {ev.base_model_ref}. {ev.message}", err=as_json)
    ev = _run_with_progress(ws, ev.id, key, as_json)
    if as_json:
        print_json(ev.to_dict())
        return
    typer.echo(ev.table_markdown())
    if ev.status == "done" and ev.examples:
        typer.echo("\nLargest changes (ROUGE-L):")
        for ex in ev.examples[:3]:
            flag = f" ({ex['overlap']})" if ex.get("overlap") else ""
            typer.echo(f"  [{ex['change']:+.2f}] {clip(ex['prompt'], 70)}{flag}\n      base:  "
                       f"{clip(ex['base_pred'], 70)}\n      tuned: {clip(ex['tuned_pred'], 70)}")
        flagged = [ex for ex in ev.examples if ex.get("overlap")]
        if flagged:
            typer.echo("\nRows that repeat the training data:")
            for ex in sorted(flagged, key=lambda e: e["index"]):
                typer.echo(f"  row {ex['index'] + 1}: {ex['overlap']} · {clip(ex['prompt'], 70)}")
    if ev.status != "done":
        raise typer.Exit(1)


def _run_with_progress(ws: Any, eval_id: int, api_key: str | None, as_json: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from studio.evaluation.batch import get_eval, run_eval

    quiet = as_json or not sys.stdout.isatty()
    with Progress(TextColumn("[bold]eval #{task.fields[eval]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[step]}"), TimeRemainingColumn(), disable=quiet) as bar:
        task = bar.add_task("eval", total=get_eval(ws, eval_id).progress[1] or None, eval=eval_id, step="")

        def on_progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, step=message.split(":")[0])
            if quiet:  # no live bar: one line per step, for logs and pipes
                typer.echo(f"eval #{eval_id}: {done} / {total} · {message}", err=True)

        try:
            return run_eval(ws, eval_id, api_key=api_key, progress=on_progress)
        except KeyboardInterrupt:
            typer.echo(f"\nEvaluation #{eval_id} stopped.", err=True)
            raise typer.Exit(130) from None


def evals_command(
    run: Annotated[int | None, typer.Option("--run", "-r", help="Only this run's evaluations.")] = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """List evaluations, newest first (the current project's, or one run's with --run)."""
    from studio.evaluation.batch import list_evals

    ws = open_workspace(home)
    if run is not None:
        from studio.train.runs import get_run

        get_run(ws, run)  # a clear error for a run that does not exist
        found = list_evals(ws, run_id=run)
    else:
        found = list_evals(ws, project_id=pick_project(ws, project).id)
    if as_json:
        print_json([ev.to_dict(examples=False) for ev in found])
        return
    if not found:
        typer.echo("No evaluations yet. Run one with: seed-studio eval --run ID")
    for ev in found:
        rows = {r["metric"]: r for r in ev.metrics.get("rows", [])}
        rouge = rows.get("rouge_l")
        score = f"ROUGE-L {rouge['base']:.3f} → {rouge['tuned']:.3f}" if rouge else ev.message
        where = clip(f"file {ev.source.get('name') or ev.config.file}", 30) if ev.split == "file" else ev.split
        typer.echo(f"#{ev.id:<4} run {ev.run_id:<4} {where:<10} {ev.status:<11} {clip(score, 70)}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
    app.command("eval")(eval_command)
    app.command("evals")(evals_command)
