"""`seed-studio`: the studio without a browser. Every command calls the same core as the UI.

The typer app, the top-level `app` command and `main()`; each command group lives in its own module in
this package and is attached here with its `register(app)`.

Errors a user can cause print the same plain message the UI shows and exit with status 2.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from studio.cli.common import HomeOption
from studio.cli.compare import register as register_compare_commands
from studio.cli.dataset import register as register_dataset_commands
from studio.cli.export import register as register_export_commands
from studio.cli.generate import register as register_generation_commands
from studio.cli.models import register as register_model_commands
from studio.cli.plan import register as register_plan_commands
from studio.cli.projects import register as register_project_commands
from studio.cli.publish import register as register_publish_commands
from studio.cli.report import register as register_report_commands
from studio.cli.review import register as register_review_commands
from studio.cli.seeds import register as register_seed_commands
from studio.cli.train import register as register_train_commands
from studio.errors import StudioError

app = typer.Typer(help="Seed Studio: from gold seed examples to a fine-tuned model.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
register_project_commands(app)
register_seed_commands(app)
register_model_commands(app)
register_generation_commands(app)
register_plan_commands(app)
register_review_commands(app)
register_dataset_commands(app)
register_train_commands(app)
register_compare_commands(app)
register_report_commands(app)
register_publish_commands(app)
register_export_commands(app)


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


def main() -> None:
    try:
        app()
    except StudioError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(2)
