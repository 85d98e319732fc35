"""Named API endpoints of the running app, for `gradio_client` and scripts: the headless twin of the
tabs, over HTTP. Each wraps one core call; errors come back as the same plain message."""

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

    def api_start_generation(project_id: int, strategy: str, count: int, teacher: str = "", teacher_model: str = "",
                             options: dict | None = None, generation: dict | None = None) -> dict:
        """Plan a batch and run it in the background. `options`: StrategyOptions fields; `generation`:
        GenerationParams fields. An endpoint's API key comes from the server's environment."""
        from studio.augment import batches
        from studio.augment.strategies import StrategyOptions, get_strategy
        from studio.teachers.base import GenerationParams
        from studio.teachers.spec import parse_teacher
        from studio.workspace.projects import get_project

        try:
            strat = get_strategy(strategy)
            spec = None
            if strat.uses_teacher:
                ref = teacher or get_project(ws, int(project_id)).teacher_ref or DEFAULT_TEACHER
                spec = parse_teacher(ref, model=teacher_model)
            req = batches.BatchRequest(int(project_id), strat.name, count, spec, None,
                                       StrategyOptions.from_dict(options), GenerationParams.from_dict(generation or {}))
            b = batches.plan_batch(ws, req)
            batches.start_in_background(ws, b.id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        return batch_json(b.id)

    def batch_json(batch_id: int) -> dict:
        from studio.augment import batches

        b = batches.get_batch(ws, int(batch_id))
        return {"id": b.id, "strategy": b.strategy, "state": b.state, "rows_ok": b.rows_ok,
                "rows_failed": b.rows_failed, "target_count": b.target_count,
                "message": b.job.message if b.job else b.note, "progress": b.job.progress_text() if b.job else ""}

    def api_batch_status(batch_id: int) -> dict:
        try:
            return batch_json(batch_id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None

    def api_stop_generation(batch_id: int) -> dict:
        from studio.augment import batches

        try:
            batches.stop_batch(ws, int(batch_id))
            return batch_json(batch_id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None

    def api_resume_generation(batch_id: int) -> dict:
        from studio.augment import batches

        try:
            batches.start_in_background(ws, int(batch_id))
            return batch_json(batch_id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None

    def api_list_candidates(batch_id: int) -> list[dict]:
        from studio.augment.candidates import list_candidates

        return [c.to_json() for c in list_candidates(ws, batch_id=int(batch_id))]

    gr.api(api_start_generation, api_name="start_generation")
    gr.api(api_batch_status, api_name="batch_status")
    gr.api(api_stop_generation, api_name="stop_generation")
    gr.api(api_resume_generation, api_name="resume_generation")
    gr.api(api_list_candidates, api_name="list_candidates")
    gr.api(api_create_project, api_name="create_project")
    gr.api(api_list_projects, api_name="list_projects")
    gr.api(api_import_seeds, api_name="import_seeds")
    gr.api(api_list_seeds, api_name="list_seeds")
