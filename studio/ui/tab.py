"""What every tab module shares: the handle `build()` returns, and how a handler reports a problem."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from studio.errors import StudioError


@dataclass
class TabHandle:
    """`refresh(project_id)` re-reads the workspace for a project; its results go to `refresh_outputs`."""

    refresh: Any
    refresh_outputs: list[gr.components.Component]
    summary_changed: gr.components.Component | None = None
    """a component whose change means the project's one-line summary (the picker's label) is out of date."""


def fail(exc: StudioError) -> gr.Error:
    """The user's error as a message that stays on screen until closed."""
    return gr.Error(str(exc), duration=None)


def require_project(pid: int | None) -> int:
    if pid is None:
        raise gr.Error("Create or pick a project first (top of the page).")
    return int(pid)
