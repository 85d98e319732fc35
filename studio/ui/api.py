"""Named API endpoints of the running app, for `gradio_client` and scripts: the headless twin of the
Task & Seeds tab, over HTTP. Each wraps one core call; errors come back as the same plain message."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import gradio as gr

from studio.data.formats import summary_text
from studio.data.importer import commit_import, preview_file
from studio.errors import StudioError
from studio.models.registry import DEFAULT_BASE_MODEL, DEFAULT_TEACHER
from studio.workspace import Workspace
from studio.workspace.projects import create_project, list_projects
from studio.workspace.seeds import list_seeds


def register(ws: Workspace) -> None:
    def api_create_project(name: str, task_description: str = "") -> dict:
        try:
            p = create_project(ws, name, task_description=task_description, base_model_ref=DEFAULT_BASE_MODEL,
                               teacher_ref=DEFAULT_TEACHER)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        return asdict(p)

    def api_list_projects() -> list[dict]:
        return [asdict(p) for p in list_projects(ws)]

    def api_import_seeds(project_id: int, file: gr.FileData, format: str = "") -> dict:
        path = file["path"] if isinstance(file, dict) else file.path
        name = (file.get("orig_name") if isinstance(file, dict) else file.orig_name) or Path(path).name
        try:
            preview = preview_file(ws, path, project_id=int(project_id), display_name=name, fmt=format or None)
            result = commit_import(ws, int(project_id), preview)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        return {"imported": result.imported, "skipped": result.skipped, "message": result.message(name),
                "problems": [str(p) for p in preview.problems]}

    def api_list_seeds(project_id: int) -> list[dict]:
        out = []
        for s in list_seeds(ws, int(project_id)):
            prompt, answer = summary_text(s.format, s.data)
            out.append({"id": s.id, "format": s.format.value, "data": s.data, "prompt": prompt, "response": answer})
        return out

    gr.api(api_create_project, api_name="create_project")
    gr.api(api_list_projects, api_name="list_projects")
    gr.api(api_import_seeds, api_name="import_seeds")
    gr.api(api_list_seeds, api_name="list_seeds")
