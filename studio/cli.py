"""`seed-studio`: the studio without a browser. Every command calls the same core as the UI.

Errors a user can cause print the same plain message the UI shows and exit with status 2.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import Annotated

import typer

from studio.cli_common import HomeOption, JsonOption, ProjectOption, clip, open_workspace, pick_project, print_json
from studio.cli_compare import register as register_compare_commands
from studio.cli_dataset import register as register_dataset_commands
from studio.cli_generate import register as register_generation_commands
from studio.cli_publish import register as register_publish_commands
from studio.cli_report import register as register_report_commands
from studio.cli_review import register as register_review_commands
from studio.cli_train import register as register_train_commands
from studio.errors import MappingError, StudioError

app = typer.Typer(help="Seed Studio: from gold seed examples to a fine-tuned model.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
project_app = typer.Typer(help="Create, list and pick projects.", no_args_is_help=True)
seeds_app = typer.Typer(help="Import, list and delete seed examples.", no_args_is_help=True)
models_app = typer.Typer(help="Models the studio can use.", no_args_is_help=True)
app.add_typer(project_app, name="project")
app.add_typer(seeds_app, name="seeds")
app.add_typer(models_app, name="models")
register_generation_commands(app)
register_review_commands(app)
register_dataset_commands(app)
register_train_commands(app)
register_compare_commands(app)
register_report_commands(app)
register_publish_commands(app)

@app.command("app")
def run_app(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default $GRADIO_SERVER_NAME or "
                                                  "127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default $GRADIO_SERVER_PORT or 7860).")] = None,
    home: HomeOption = None,
) -> None:
    """Start the web studio."""
    if home:
        os.environ["STUDIO_HOME"] = str(home)
    from studio.ui.shell import launch

    launch(host=host, port=port)


# ---------------------------------------------------------------------------------------------- project


@project_app.command("create")
def project_create(
    name: str,
    task: Annotated[str, typer.Option(help="What the fine-tuned model should do, specifically.")] = "",
    base: Annotated[str | None, typer.Option(help="Base model ref (default: the embedded SmolLM2).")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model ref (default: the embedded SmolLM2).")] = None,
    home: HomeOption = None,
) -> None:
    """Create a project and make it the current one."""
    from studio.models.registry import DEFAULT_BASE_MODEL, DEFAULT_TEACHER
    from studio.task_advice import advise
    from studio.workspace.projects import create_project, use_project

    ws = open_workspace(home)
    p = create_project(ws, name, task_description=task, base_model_ref=base or DEFAULT_BASE_MODEL,
                       teacher_ref=teacher or DEFAULT_TEACHER)
    use_project(ws, str(p.id))
    typer.echo(f"Created project #{p.id} '{p.name}' (now current).")
    if task:
        for a in advise(task):
            typer.echo(f"  [{a.level}] {a.message}")


@project_app.command("example")
def project_example(home: HomeOption = None) -> None:
    """Create a project from the team's example (customer-support replies: task and seeds) and make it
    current: the quickest way to try the whole flow."""
    from studio.examples import create_example_project
    from studio.workspace.projects import use_project

    ws = open_workspace(home)
    p, result = create_example_project(ws)
    use_project(ws, str(p.id))
    typer.echo(f"Created project #{p.id} '{p.name}' (now current) with {result.imported} example seeds.")
    typer.echo("Next: seed-studio generate --strategy instruction-expansion --count 8")


@project_app.command("list")
def project_list(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """List projects (the current one is marked with *)."""
    from studio.workspace.projects import CLI_CURRENT_PROJECT, list_projects

    ws = open_workspace(home)
    projects = list_projects(ws)
    current = ws.get_setting(CLI_CURRENT_PROJECT)
    if as_json:
        print_json([asdict(p) | {"current": str(p.id) == current} for p in projects])
        return
    if not projects:
        typer.echo("No projects yet. Create one with: seed-studio project create NAME")
    for p in projects:
        mark = "*" if str(p.id) == current else " "
        typer.echo(f"{mark} #{p.id:<4} {p.name:<30} {p.seed_count:>5} seeds  base={p.base_model_ref}")


@project_app.command("use")
def project_use(name: str, home: HomeOption = None) -> None:
    """Make a project the current one for later commands."""
    from studio.workspace.projects import use_project

    p = use_project(open_workspace(home), name)
    typer.echo(f"Current project: #{p.id} '{p.name}'.")


@project_app.command("rename")
def project_rename(name: str, new_name: str, home: HomeOption = None) -> None:
    """Rename a project."""
    from studio.workspace.projects import find_project, rename_project

    ws = open_workspace(home)
    p = rename_project(ws, find_project(ws, name).id, new_name)
    typer.echo(f"Renamed to '{p.name}'.")


@project_app.command("set")
def project_set(
    task: Annotated[str | None, typer.Option(help="Task description.")] = None,
    base: Annotated[str | None, typer.Option(help="Base model ref.")] = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model ref.")] = None,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Change a project's task description, base model or teacher."""
    from studio.models.registry import resolve
    from studio.task_advice import advise
    from studio.teachers.spec import parse_teacher
    from studio.workspace.projects import update_project

    ws = open_workspace(home)
    p = pick_project(ws, project)
    if base:
        resolve(base, ws.models_dir)
    if teacher:
        spec = parse_teacher(teacher)
        if spec.kind == "local" and not spec.ref.startswith("run:"):
            resolve(spec.ref, ws.models_dir)
        teacher = spec.label
    p = update_project(ws, p.id, task_description=task, base_model_ref=base, teacher_ref=teacher)
    typer.echo(f"Project '{p.name}': base={p.base_model_ref} teacher={p.teacher_ref}")
    if task is not None:
        for a in advise(task):
            typer.echo(f"  [{a.level}] {a.message}")


# ---------------------------------------------------------------------------------------------- seeds


@seeds_app.command("import")
def seeds_import(
    source: Annotated[str, typer.Argument(help="A CSV/TSV/JSON/JSONL/Parquet file, or a Hub dataset id with "
                                               "--hub.")],
    fmt: Annotated[str | None, typer.Option("--format", help="alpaca, prompt_completion, messages, "
                                                             "classification or ner (default: detected).")] = None,
    maps: Annotated[list[str] | None, typer.Option("--map", help="column=field, e.g. --map question=instruction; "
                                                                 "repeat for each field.")] = None,
    hub: Annotated[bool, typer.Option("--hub", help="SOURCE is a Hugging Face Hub dataset id.")] = False,
    split: Annotated[str, typer.Option(help="Split of a Hub dataset.")] = "train",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show problems; import nothing.")] = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Validate seed examples and import the usable rows into the project, all at once or not at all."""
    from studio.data.formats import FORMATS, SeedFormat, parse_mapping_args
    from studio.data.importer import commit_import, preview_file, preview_hub
    from studio.workspace.projects import get_project

    ws = open_workspace(home)
    p = pick_project(ws, project)
    if fmt is not None and fmt not in {f.value for f in SeedFormat}:
        raise MappingError(f"--format '{fmt}' is not a seed format. Use one of: "
                           f"{', '.join(f.value for f in SeedFormat)}.")
    mapping = parse_mapping_args(maps) if maps else None
    if hub:
        preview = preview_hub(ws, source, split=split, project_id=p.id, fmt=fmt, mapping=mapping)
    else:
        preview = preview_file(ws, source, project_id=p.id, fmt=fmt, mapping=mapping)
    if preview.mapping_problem:
        raise MappingError(preview.mapping_problem + _map_hint(source, preview))
    if preview.detection.needs_mapping and fmt is None and mapping is None:
        raise MappingError(preview.detection.message + " Confirm it by running:\n  " + _map_hint(source, preview,
                                                                                           command_only=True))
    typer.echo(preview.summary())
    for problem in preview.problems[:20]:
        typer.echo(f"  {problem.severity}: {problem}")
    if len(preview.problems) > 20:
        typer.echo(f"  ... and {len(preview.problems) - 20} more")
    if dry_run:
        typer.echo(f"Dry run: nothing imported ({FORMATS[preview.format].title if preview.format else '?'}).")
        return
    result = commit_import(ws, p.id, preview)
    total = get_project(ws, p.id).seed_count
    typer.echo(result.message(preview.source) + f" Project '{p.name}' now has {total} seeds.")


def _map_hint(source: str, preview, command_only: bool = False) -> str:
    best = preview.detection.best
    if best is None:
        return "" if command_only else (" Pass --format and --map column=field for each field, e.g. "
                                        "--format alpaca --map question=instruction --map answer=output.")
    maps = " ".join(f"--map {col}={fld}" for fld, col in best.mapping.items())
    cmd = f"seed-studio seeds import {source} --format {best.format.value} {maps}"
    return cmd if command_only else f" For example: {cmd}"


@seeds_app.command("list")
def seeds_list(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """List the project's seeds."""
    from studio.data.formats import summary_text
    from studio.workspace.seeds import list_seeds

    ws = open_workspace(home)
    p = pick_project(ws, project)
    seeds = list_seeds(ws, p.id)
    if as_json:
        print_json([{"id": s.id, "format": s.format.value, "data": s.data, "meta": s.meta, "source": s.source,
                      "source_row": s.source_row, "created_at": s.created_at, "updated_at": s.updated_at}
                     for s in seeds])
        return
    typer.echo(f"Project '{p.name}': {len(seeds)} seeds")
    for s in seeds:
        prompt, answer = summary_text(s.format, s.data)
        typer.echo(f"#{s.id:<5} {clip(prompt, 60):<60}  →  {clip(answer, 40)}")


@seeds_app.command("delete")
def seeds_delete(ids: list[int], project: ProjectOption = None, home: HomeOption = None) -> None:
    """Delete seeds by id."""
    from studio.workspace.seeds import delete_seeds

    ws = open_workspace(home)
    p = pick_project(ws, project)
    n = delete_seeds(ws, p.id, ids)
    typer.echo(f"Deleted {n} seeds from '{p.name}'.")


# ---------------------------------------------------------------------------------------------- models


@models_app.command("list")
def models_list(as_json: JsonOption = False, home: HomeOption = None) -> None:
    """Models available here, and whether each is ready (nothing is loaded)."""
    from studio.models.registry import list_models

    ws = open_workspace(home)
    models = list_models(ws.models_dir)
    if as_json:
        print_json([asdict(m) for m in models])
        return
    for m in models:
        typer.echo(f"{m.ref:<40} {m.role:<10} {m.status}")


def main() -> None:
    try:
        app()
    except StudioError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
