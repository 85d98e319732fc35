"""`seed-studio models list`: models the studio can use."""

from __future__ import annotations

from dataclasses import asdict

import typer

from studio.cli.common import HomeOption, JsonOption, open_workspace, print_json

models_app = typer.Typer(help="Models the studio can use.", no_args_is_help=True)


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


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
