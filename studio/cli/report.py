"""`seed-studio ablation start|show|list` and `seed-studio report`: the Compare tab's ablation and export twins.

    seed-studio ablation start --version v2 [--base REF] [--preset quick] [--max-steps N] [--device cpu] [--json]
    seed-studio ablation show 1 [--evaluate] [--json]     # --evaluate: evaluate finished runs lacking one
    seed-studio ablation list [--json]
    seed-studio report --run 3 [--format md|html] [--out PATH]

`ablation start` returns once both runs are queued (they train one after the other in the background, like
`train --detach`); follow them with `runs list` / `ablation show`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, open_workspace, pick_project, print_json

ablation_app = typer.Typer(help="Augmentation ablation: the same training on seeds only vs seeds + synthetic rows.",
                           no_args_is_help=True)


@ablation_app.command("start")
def ablation_start(
    version: Annotated[str, typer.Option("--version", "-v", help="Dataset version (name or id) holding synthetic "
                                         "rows; its seeds-only twin is frozen for you.", show_default=False)],
    base: Annotated[str | None, typer.Option("--base", help="Base model ref (default: the project's base "
                                             "model).")] = None,
    preset: Annotated[str, typer.Option("--preset", help="quick, balanced or thorough (the same for both "
                                        "runs).")] = "balanced",
    method: Annotated[str, typer.Option("--method", help="lora or qlora.")] = "lora",
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop each run after this many steps "
                                                  "(default: the preset's epochs).")] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda:0 (default: $STUDIO_TRAIN_DEVICE, "
                                               "else a visible GPU, else cpu).")] = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Train two runs with the same settings: seeds only, and seeds + the version's synthetic rows."""
    from studio.data.versions import get_version
    from studio.evaluation.ablation import start_ablation
    from studio.models.registry import DEFAULT_BASE_MODEL
    from studio.train.settings import TrainConfig

    ws = open_workspace(home)
    p = pick_project(ws, project)
    v = get_version(ws, p.id, version)
    config = TrainConfig.from_dict({"method": method}).with_preset(preset)
    if max_steps is not None:
        config = config.replace(max_steps=max_steps)
    ab = start_ablation(ws, p.id, version_id=v.id, base_model_ref=base or p.base_model_ref or DEFAULT_BASE_MODEL,
                        config=config, device=device)
    if as_json:
        print_json(ab.to_dict())
        return
    seeds_v = ab.config.get("seeds_version", {})
    reused = " (reused)" if seeds_v.get("reused") else ""
    typer.echo(f"Ablation #{ab.id} started on version {v.name}: run #{ab.seeds_run_id} trains on "
               f"{seeds_v.get('name')}{reused} (seeds only), run #{ab.augmented_run_id} on {v.name} (seeds + "
               "synthetic).")
    typer.echo(f"They train one after the other. Follow them with: seed-studio ablation show {ab.id}")


@ablation_app.command("show")
def ablation_show(
    ablation_id: int,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Evaluate finished runs that have no test "
                                           "evaluation on the shared human test rows yet.")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="With --evaluate: only the first N test "
                                              "rows.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", help="With --evaluate: longest "
                                                       "answer in tokens (default 128).")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Where an ablation stands; once both runs are done, the validation-loss and metric deltas and a verdict."""
    from studio.evaluation.ablation import ablation_report

    ws = open_workspace(home)
    eval_config = None
    if limit is not None or max_new_tokens is not None:
        from studio.evaluation.batch import EvalConfig

        eval_config = EvalConfig(limit=limit, **({"max_new_tokens": max_new_tokens} if max_new_tokens else {}))
        eval_config.check()
    if evaluate:
        typer.echo(f"Evaluating the finished runs of ablation #{ablation_id} where needed…", err=True)
    report = ablation_report(ws, ablation_id, evaluate_missing=evaluate, eval_config=eval_config)
    if as_json:
        print_json(report.to_dict())
        return
    typer.echo(f"Ablation #{report.ablation.id}")
    typer.echo(report.to_markdown())


@ablation_app.command("list")
def ablation_list(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """The project's ablations, newest first."""
    from studio.evaluation.ablation import list_ablations

    ws = open_workspace(home)
    p = pick_project(ws, project)
    items = list_ablations(ws, p.id)
    if as_json:
        print_json([a.to_dict() for a in items])
        return
    if not items:
        typer.echo("No ablations yet. Start one with: seed-studio ablation start --version v1")
    for a in items:
        source = a.config.get("source_version", {}).get("name", a.source_version_id)
        seeds = a.config.get("seeds_version", {}).get("name", a.seeds_version_id)
        typer.echo(f"#{a.id:<4} {source} vs {seeds}: runs #{a.augmented_run_id} (seeds + synthetic) and "
                   f"#{a.seeds_run_id} (seeds only)  {a.created_at}")


def report(
    run_id: Annotated[int, typer.Option("--run", help="The fine-tuned run (see `runs list`).", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", help="md (Markdown) or html (with charts).")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="File (or folder) to write; default: the "
                                             "workspace's exports folder.")] = None,
    home: HomeOption = None,
) -> None:
    """Export the comparison report of a run (metrics, votes, ablation, sample pairs) and print its path."""
    from studio.evaluation.report import export_report

    path = export_report(open_workspace(home), run_id, fmt, out)
    typer.echo(str(path))


def register(app: Any) -> None:
    app.add_typer(ablation_app, name="ablation")
    app.command("report")(report)
