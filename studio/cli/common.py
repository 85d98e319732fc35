"""Pieces every `seed-studio` command group shares: the --home/--project/--json options, opening things."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

HomeOption = Annotated[Path | None, typer.Option("--home", help="Workspace folder (default: $STUDIO_HOME "
                                                                 "or ./studio_home).", envvar="STUDIO_HOME")]
ProjectOption = Annotated[str | None, typer.Option("--project", "-p", help="Project name or id (default: the "
                                                                            "one picked with `project use`).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def open_workspace(home: Path | None) -> Any:
    from studio.workspace import Workspace

    return Workspace.open(home)


def pick_project(ws: Any, name_or_id: str | None) -> Any:
    from studio.workspace.projects import cli_current_project, find_project

    return find_project(ws, name_or_id) if name_or_id else cli_current_project(ws)


def print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def clip(text: str, n: int) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= n else one_line[: n - 1] + "…"
