"""`seed-studio train` and `seed-studio runs list|show|stop|resume|log`: the Train tab's twin.

The training settings flags are generated from `studio.train.settings.cli_options()` (the same metadata
the Train tab and docs/TRAINING.md use), so a new setting shows up here by itself. Every setting flag
defaults to "the preset's value"; flags given explicitly win over the preset.

Foreground (default): follows the run row and prints a progress line; Ctrl-C asks the run to stop (it
saves a checkpoint) and waits until it has. --detach starts it in the background and prints the run id.
"""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, clip, open_workspace, pick_project, print_json

runs_app = typer.Typer(help="Training runs: list, show, stop, resume, log.", no_args_is_help=True)

DetachOption = Annotated[bool, typer.Option("--detach", "-d", help="Start in the background, print the run id "
                                            "and return (follow it with `runs show ID`).")]
POLL_SECONDS = 1.0
# Settings with their own hand-written options in `train` (they decide the base config, not tweak it).
_OWN_FLAGS = ("method", "preset")


# ---------------------------------------------------------------------------------------------- train


def train(
    dataset: Annotated[str, typer.Option("--dataset", "-v", help="Dataset version name or id (see `dataset "
                                         "list`).", show_default=False)],
    base: Annotated[str | None, typer.Option("--base", help="Base model ref (default: the project's base "
                                             "model).")] = None,
    method: Annotated[str, typer.Option("--method", help="lora, qlora (4-bit, least memory; needs "
                                        "bitsandbytes) or full (every weight; models up to 1.5B).")] = "lora",
    preset: Annotated[str, typer.Option("--preset", help="quick, balanced or thorough.")] = "balanced",
    name: Annotated[str, typer.Option("--name", help="A name for the run.")] = "",
    device: Annotated[str | None, typer.Option("--devices", "--device", help="Where to train: cpu, cuda:1, "
                                               "several GPUs (0,1 or cuda:0,cuda:1 or all: data parallel, one "
                                               "process each), or cpu*2 (two processes on the CPU). Default: "
                                               "$STUDIO_TRAIN_DEVICE, else a visible GPU, else cpu. One run per "
                                               "device at a time; others wait in the queue.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Start even when the estimate says it will not "
                                        "fit in memory.")] = False,
    detach: DetachOption = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
    **settings: Any,
) -> None:
    """Fine-tune the base model on a frozen dataset version (prints the estimate first)."""
    from studio.data.versions import get_version
    from studio.errors import TrainError
    from studio.models.registry import DEFAULT_BASE_MODEL
    from studio.train.runs import create_run, start
    from studio.train.settings import TrainConfig

    ws = open_workspace(home)
    p = pick_project(ws, project)
    version = get_version(ws, p.id, dataset)
    base_ref = base or p.base_model_ref or DEFAULT_BASE_MODEL
    # The objective before the preset: preference runs take a quarter of its learning rate, as on the Train tab.
    config = TrainConfig.from_dict({"method": method, "objective": settings.get("objective") or "sft"}).with_preset(
        preset)
    explicit = {key: value for key, value in settings.items() if value is not None}
    if explicit:
        config = config.replace(**explicit)
    config.check()
    est = _estimate(ws, config, base_ref, version, device)
    if est is not None:
        typer.echo(f"Estimate: {est.summary()}", err=as_json)
        if not est.fits and not force:
            advice = "".join(f"\n- {a}" for a in est.advice)
            raise TrainError(f"This run will probably not fit in memory: {est.summary()}{advice}\nChange the "
                             "settings as advised, or pass --force to start anyway.")
    run = create_run(ws, p.id, dataset_version_id=version.id, base_model_ref=base_ref, config=config, name=name,
                     device=device)
    run = start(ws, run.id)
    _announce(run, as_json)
    if detach:
        _print_run(run, as_json, short=True)
        return
    _follow(ws, run.id, as_json)


def _estimate(ws: Any, config: Any, base_ref: str, version: Any, device: str | None) -> Any:
    """The estimate, or None when the model's size is not known here (a Hub model not downloaded yet)."""
    from studio.errors import TrainError
    from studio.train import devices
    from studio.train.estimate import estimate
    from studio.train.workload import version_workload

    target = devices.estimate_target(devices.parse(device))  # a bad list is refused here, before anything runs
    work = version_workload(ws, version.id, config)  # examples, or preference pairs for DPO / ORPO
    try:
        return estimate(config, model_ref=base_ref, models_dir=ws.models_dir, **work.estimate_kwargs(),
                        **target.estimate_kwargs())
    except TrainError:
        return None


def _announce(run: Any, as_json: bool) -> None:
    where = "started" if run.status != "queued" or run.launching else f"queued ({run.message})"
    typer.echo(f"Run #{run.id} {where}: {run.method} on {run.base_model_ref}, device {run.device}. Log: "
               f"{run.log_path}", err=as_json)


def _follow(ws: Any, run_id: int, as_json: bool) -> None:
    """Print progress until the run ends; Ctrl-C = ask it to stop and wait for its checkpoint."""
    from studio.train.runs import get_run, launch_next, request_stop

    live = not as_json and sys.stdout.isatty()
    last = ""
    stop_asked = False
    while True:
        try:
            run = get_run(ws, run_id)
            line = f"run #{run.id}: {run.progress_text()}"
            if line != last:
                if live:
                    typer.echo(f"\r{line:<100}", nl=False)
                else:
                    typer.echo(line, err=True)
                last = line
            if run.ended:
                break
            if run.status == "queued" and run.pid is None:
                # It may wait for a run of another workspace, whose worker cannot start ours when it ends.
                launch_next(ws, device=run.device)
            time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            if stop_asked:  # a second Ctrl-C: leave; the run still stops in its own process
                typer.echo(f"\nNot waiting any longer; run #{run_id} stops in the background.", err=True)
                raise typer.Exit(130) from None
            stop_asked = True
            typer.echo(f"\nStopping run #{run_id}: saving a checkpoint (Ctrl-C again to stop waiting)…",
                       err=True)
            run = get_run(ws, run_id)
            if not run.ended:
                request_stop(ws, run_id)
    if live:
        typer.echo("")
    _print_run(run, as_json, short=True)
    if run.status in ("failed", "interrupted"):
        raise typer.Exit(1)


def _print_run(run: Any, as_json: bool, short: bool = False) -> None:
    if as_json:
        data = run.to_dict()
        if short:
            data.pop("curves", None)
        print_json(data)
        return
    state = run.progress_text() if not run.ended else f"{run.status}. {run.message}"
    typer.echo(f"Run #{run.id} {run.title}: {state}".rstrip())
    if run.resumable:
        typer.echo(f"Resume it with: seed-studio runs resume {run.id}")


def _setting_parameters() -> list[inspect.Parameter]:
    """One keyword-only typer option per training setting (except method and preset)."""
    from studio.train.settings import cli_options

    params = []
    for opt in cli_options():
        if opt["name"] in _OWN_FLAGS:
            continue
        kind: Any = opt["type"]
        flag = opt["flag"]
        decls = [f"{flag}/--no-{flag.removeprefix('--')}"] if kind is bool else [flag]
        default = opt["default"]
        shown = ("on" if default else "off") if kind is bool else default
        option = typer.Option(*decls, help=f"{opt['help']} Default: {shown}, or the preset's value.",
                              show_default=False, rich_help_panel="Advanced settings" if opt["advanced"]
                              else "Settings")
        params.append(inspect.Parameter(opt["name"], inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[kind | None, option]))
    return params


def _train_command() -> Any:
    """`train` with the generated setting options in its signature (typer reads the signature)."""
    base = [p for p in inspect.signature(train, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD]
    extra = _setting_parameters()
    names = {p.name for p in extra}

    def command(**kwargs: Any) -> None:
        settings = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        train(**kwargs, **settings)

    command.__name__ = "train"
    command.__doc__ = train.__doc__
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in base] + extra
    command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


# ---------------------------------------------------------------------------------------------- runs


@runs_app.command("list")
def runs_list(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """List the project's training runs, newest first."""
    from studio.train.runs import list_runs

    ws = open_workspace(home)
    p = pick_project(ws, project)
    items = list_runs(ws, p.id)
    if as_json:
        print_json([_without_curves(r.to_dict()) for r in items])
        return
    if not items:
        typer.echo("No training runs yet. Start one with: seed-studio train --dataset v1")
    for r in items:
        typer.echo(f"#{r.id:<4} {r.status:<11} {r.method:<5} {clip(r.title, 24):<24} {clip(r.progress_text(), 48)}"
                   f"  {clip(r.base_model_ref, 40)}")


@runs_app.command("show")
def runs_show(run_id: int, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """A run's settings, status, metrics summary and loss curves."""
    from studio.train.runs import get_run, latest_checkpoint

    ws = open_workspace(home)
    run = get_run(ws, run_id)
    checkpoint = latest_checkpoint(run)
    if as_json:
        print_json(run.to_dict() | {"latest_checkpoint": str(checkpoint) if checkpoint else None})
        return
    typer.echo(f"Run #{run.id} {run.title}: {run.status} — {run.progress_text()}")
    if run.message:
        typer.echo(f"  {run.message}")
    typer.echo(f"  base model  {run.base_model_ref}\n  method      {run.method}\n  device      {run.device}\n"
               f"  dataset     {run.provenance.get('dataset_version', {}).get('name', run.dataset_version_id)}\n"
               f"  output      {run.output_dir}\n  checkpoint  {checkpoint or '-'}")
    summary = [("train loss", run.train_loss), ("validation loss", run.validation_loss),
               ("best validation loss", run.best_validation_loss), ("tokens/s", run.tokens_per_second)]
    for label, value in summary:
        if value is not None:
            typer.echo(f"  {label:<22}{value:,.4g}")
    if run.overfitting:
        typer.echo("  overfitting: the validation loss rises while the training loss falls.")
    typer.echo("  settings: " + ", ".join(f"{k}={v}" for k, v in run.config.items()))
    for split, points in run.curves.items():
        if points:
            shown = points if len(points) <= 12 else [*points[::max(1, len(points) // 12)], points[-1]]
            typer.echo(f"  {split} loss: " + "  ".join(f"{s}:{v:.3f}" for s, v in shown))


@runs_app.command("stop")
def runs_stop(run_id: int, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Ask a run to stop (a running run saves a checkpoint first; a queued one just leaves the queue)."""
    from studio.train.runs import request_stop

    run = request_stop(open_workspace(home), run_id)
    if as_json:
        print_json(_without_curves(run.to_dict()))
        return
    _print_run(run, False)


@runs_app.command("resume")
def runs_resume(run_id: int, detach: DetachOption = False, as_json: JsonOption = False,
                home: HomeOption = None) -> None:
    """Resume a stopped, interrupted or failed run from its newest checkpoint."""
    from studio.train.runs import resume

    ws = open_workspace(home)
    run = resume(ws, run_id)
    _announce(run, as_json)
    if detach:
        _print_run(run, as_json, short=True)
        return
    _follow(ws, run.id, as_json)


@runs_app.command("log")
def runs_log(run_id: int, lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines from the "
                                                             "end.")] = 40, home: HomeOption = None) -> None:
    """The end of a run's log (the worker's output)."""
    from studio.train.runs import get_run

    run = get_run(open_workspace(home), run_id)
    path = Path(run.log_path)
    if not path.is_file():
        typer.echo(f"Run #{run.id} has no log yet ({path}); it is written when the run starts.")
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    typer.echo("\n".join(text.splitlines()[-max(1, lines):]))


def _without_curves(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("curves", None)
    return data


def register(app: typer.Typer) -> None:
    app.command("train")(_train_command())
    app.add_typer(runs_app, name="runs")
