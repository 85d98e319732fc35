"""`seed-studio project create|example|list|use|rename|set`: create, list and pick projects."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, open_workspace, pick_project, print_json

project_app = typer.Typer(help="Create, list and pick projects.", no_args_is_help=True)


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


def register(app: typer.Typer) -> None:
    app.add_typer(project_app, name="project")
