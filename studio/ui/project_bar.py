"""The project bar above the tabs: pick, create and rename projects. The pick is remembered in the
browser (localStorage), so a reload opens the same project."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.errors import StudioError
from studio.models.registry import DEFAULT_BASE_MODEL, DEFAULT_TEACHER
from studio.ui import texts
from studio.workspace import Workspace
from studio.workspace.projects import create_project, get_project, list_projects, rename_project


@dataclass
class ProjectBar:
    remembered: gr.BrowserState
    """project id stored in the browser; survives reloads (and restarts: the secret is in the workspace)."""
    current: gr.State
    """project id for this page's handlers (None when there is no project)."""
    picker: gr.Dropdown
    new_name: gr.Textbox
    create: gr.Button
    rename_to: gr.Textbox
    rename: gr.Button
    status: gr.Markdown
    try_example: gr.Button
    """creates the team's example project (studio.examples) and opens it."""


def _choices(ws: Workspace) -> list[tuple[str, int]]:
    return [(f"{p.name}  ·  {p.seed_count} seed{'' if p.seed_count == 1 else 's'}", p.id) for p in list_projects(ws)]


def pick_project(ws: Workspace, wanted: int | None) -> int | None:
    """The remembered project if it still exists, else the most recently used one (or None)."""
    if wanted is not None:
        try:
            return get_project(ws, int(wanted)).id
        except (StudioError, ValueError, TypeError):
            pass
    projects = list_projects(ws)
    return projects[0].id if projects else None


def browser_secret(ws: Workspace) -> str:
    """A per-workspace secret for BrowserState, so remembered picks survive an app restart."""
    import secrets

    from studio.ui.visitors import host

    ws = host(ws)  # one secret for the installation, also when each visitor has a workspace of their own
    secret = ws.get_setting("ui.browser_secret")
    if not secret:
        secret = secrets.token_hex(16)
        ws.set_setting("ui.browser_secret", secret)
    return secret


def build(ws: Workspace, try_example: gr.Button) -> ProjectBar:
    remembered = gr.BrowserState(None, storage_key="seed-studio-project", secret=browser_secret(ws))
    current = gr.State(None)
    # The min widths make the bar stack on a phone instead of squeezing the project names into a few letters.
    with gr.Row(equal_height=True, elem_id="project-bar"):
        picker = gr.Dropdown(label=texts.PROJECT_PICK, info=texts.PROJECT_PICK_HELP, choices=[], value=None,
                             scale=3, min_width=300, elem_id="project-picker", interactive=True)
        new_name = gr.Textbox(label=texts.PROJECT_NEW_NAME, placeholder=texts.PROJECT_NEW_PLACEHOLDER, scale=2,
                              min_width=240, elem_id="new-project-name")
        create = gr.Button(texts.PROJECT_CREATE, variant="primary", scale=1, min_width=160,
                           elem_id="create-project")
    with gr.Accordion(texts.PROJECT_RENAME_TO, open=False), gr.Row(equal_height=True):
        rename_to = gr.Textbox(label=texts.PROJECT_RENAME_TO, scale=3, elem_id="rename-project-name")
        rename = gr.Button(texts.PROJECT_RENAME, scale=1)
    status = gr.Markdown(texts.NO_PROJECT, visible=False, elem_id="project-status")
    return ProjectBar(remembered, current, picker, new_name, create, rename_to, rename, status, try_example)


def refresh_labels(ws: Workspace) -> dict:
    """Fresh picker labels (the seed counts), keeping the picked project."""
    return gr.update(choices=_choices(ws))


def wire(ws: Workspace, bar: ProjectBar, demo: gr.Blocks, refreshers: list[tuple[object, list]]) -> None:
    """Connect the bar. Every change of project re-runs each (fn, outputs) in `refreshers`."""
    bar_outputs = [bar.current, bar.remembered, bar.picker, bar.rename_to, bar.status]

    def show(pid: int | None) -> tuple:
        name = get_project(ws, pid).name if pid is not None else ""
        return (pid, pid, gr.update(choices=_choices(ws), value=pid), name,
                gr.update(visible=pid is None))

    def on_load(wanted: int | None) -> tuple:
        return show(pick_project(ws, wanted))

    def on_pick(pid: int | None) -> tuple:
        return show(pick_project(ws, pid))

    def on_create(name: str) -> tuple:
        try:
            p = create_project(ws, name, base_model_ref=DEFAULT_BASE_MODEL, teacher_ref=DEFAULT_TEACHER)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        gr.Info(f"Project “{p.name}” created.")
        return (*show(p.id), "")

    def on_try_example() -> tuple:
        from studio.examples import create_example_project

        try:
            p, result = create_example_project(ws)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        gr.Info(texts.TRY_EXAMPLE_DONE.format(name=p.name, n=result.imported))
        return show(p.id)

    def on_rename(pid: int | None, new: str) -> tuple:
        if pid is None:
            raise gr.Error("Create or pick a project first.")
        try:
            rename_project(ws, pid, new)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        return show(pid)

    def chain(event: gr.events.Dependency) -> None:
        for fn, outputs in refreshers:
            event = event.then(fn, inputs=[bar.current], outputs=outputs, show_progress="hidden")

    # Seed counts in the labels change on other tabs: fresh labels whenever the list is opened.
    bar.picker.focus(lambda: refresh_labels(ws), None, bar.picker, api_name=False,
                     show_progress="hidden")
    chain(demo.load(on_load, inputs=[bar.remembered], outputs=bar_outputs, api_name=False))
    chain(bar.picker.input(on_pick, inputs=[bar.picker], outputs=bar_outputs, api_name=False))
    chain(bar.create.click(on_create, inputs=[bar.new_name], outputs=[*bar_outputs, bar.new_name],
                           api_name=False))
    chain(bar.new_name.submit(on_create, inputs=[bar.new_name], outputs=[*bar_outputs, bar.new_name],
                              api_name=False))
    chain(bar.try_example.click(on_try_example, outputs=bar_outputs, api_name=False))
    chain(bar.rename.click(on_rename, inputs=[bar.current, bar.rename_to], outputs=bar_outputs,
                           api_name=False))
