"""Seed Studio web app: `python app.py` (also the Hugging Face Spaces entry point).

Honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Spaces sets them), STUDIO_HOME for the workspace and
SEED_STUDIO_MAX_UPLOAD_MB for the upload limit. No model is loaded at start-up.
"""

from __future__ import annotations

from studio.ui.shell import build_app, launch_kwargs
from studio.workspace import Workspace


def launch(host: str | None = None, port: int | None = None) -> None:
    ws = Workspace.open()
    demo = build_app(ws)
    # None lets Gradio read GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860).
    demo.queue(default_concurrency_limit=8).launch(server_name=host, server_port=port, **launch_kwargs(ws))


if __name__ == "__main__":
    launch()
