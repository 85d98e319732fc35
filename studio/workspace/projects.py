"""Projects: a task description, a base model and a teacher, and everything made for that task."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from studio.errors import ProjectError
from studio.workspace.store import Workspace, utc_now

CLI_CURRENT_PROJECT = "cli.current_project"
MAX_NAME_LENGTH = 80


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    task_description: str
    base_model_ref: str
    teacher_ref: str
    created_at: str
    updated_at: str
    seed_count: int = 0


_SELECT = """SELECT p.*, (SELECT COUNT(*) FROM seed s WHERE s.project_id = p.id) AS seed_count
             FROM project p"""


def _row(r: sqlite3.Row) -> Project:
    return Project(r["id"], r["name"], r["task_description"], r["base_model_ref"], r["teacher_ref"],
                   r["created_at"], r["updated_at"], r["seed_count"])


def _clean_name(name: str) -> str:
    clean = " ".join((name or "").split())
    if not clean:
        raise ProjectError("A project needs a name. Type one, for example 'Support email replies'.")
    if len(clean) > MAX_NAME_LENGTH:
        raise ProjectError(f"Project names can be at most {MAX_NAME_LENGTH} characters; this one has "
                           f"{len(clean)}. Pick a shorter name.")
    return clean


def create_project(ws: Workspace, name: str, *, task_description: str = "", base_model_ref: str = "",
                   teacher_ref: str = "") -> Project:
    clean = _clean_name(name)
    now = utc_now()
    try:
        with ws.write() as conn:
            cur = conn.execute(
                "INSERT INTO project(name, task_description, base_model_ref, teacher_ref, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (clean, task_description, base_model_ref, teacher_ref, now, now))
            project_id = cur.lastrowid
    except sqlite3.IntegrityError:
        raise ProjectError(f"A project called '{clean}' already exists. Pick another name, or switch to "
                           "that project.") from None
    assert project_id is not None
    return get_project(ws, project_id)


def list_projects(ws: Workspace) -> list[Project]:
    with ws.read() as conn:
        return [_row(r) for r in conn.execute(_SELECT + " ORDER BY p.updated_at DESC, p.id DESC")]


def get_project(ws: Workspace, project_id: int) -> Project:
    with ws.read() as conn:
        r = conn.execute(_SELECT + " WHERE p.id = ?", (project_id,)).fetchone()
    if r is None:
        raise ProjectError(f"There is no project #{project_id} in this workspace. Pick one from the list "
                           "or create a new one.")
    return _row(r)


def find_project(ws: Workspace, name_or_id: str) -> Project:
    """A project by exact name (case-insensitive) or by numeric id."""
    with ws.read() as conn:
        r = conn.execute(_SELECT + " WHERE p.name = ?", (" ".join(name_or_id.split()),)).fetchone()
    if r is not None:
        return _row(r)
    if name_or_id.strip().isdigit():
        return get_project(ws, int(name_or_id))
    names = ", ".join(p.name for p in list_projects(ws)) or "none yet"
    raise ProjectError(f"No project is called '{name_or_id}'. Projects: {names}. Create it with "
                       f"`seed-studio project create \"{name_or_id}\"`.")


def rename_project(ws: Workspace, project_id: int, new_name: str) -> Project:
    clean = _clean_name(new_name)
    try:
        with ws.write() as conn:
            cur = conn.execute("UPDATE project SET name = ?, updated_at = ? WHERE id = ?",
                               (clean, utc_now(), project_id))
            if cur.rowcount == 0:
                raise ProjectError(f"There is no project #{project_id} to rename.")
    except sqlite3.IntegrityError:
        raise ProjectError(f"A project called '{clean}' already exists. Pick another name.") from None
    return get_project(ws, project_id)


def update_project(ws: Workspace, project_id: int, *, task_description: str | None = None,
                   base_model_ref: str | None = None, teacher_ref: str | None = None) -> Project:
    changes = {k: v for k, v in (("task_description", task_description), ("base_model_ref", base_model_ref),
                                 ("teacher_ref", teacher_ref)) if v is not None}
    if changes:
        sets = ", ".join(f"{k} = ?" for k in changes)
        with ws.write() as conn:
            cur = conn.execute(f"UPDATE project SET {sets}, updated_at = ? WHERE id = ?",
                               (*changes.values(), utc_now(), project_id))
            if cur.rowcount == 0:
                raise ProjectError(f"There is no project #{project_id} to update.")
    return get_project(ws, project_id)


def cli_current_project(ws: Workspace) -> Project:
    """The project `seed-studio project use` picked (falling back to the only/most recent one)."""
    chosen = ws.get_setting(CLI_CURRENT_PROJECT)
    if chosen and chosen.isdigit():
        try:
            return get_project(ws, int(chosen))
        except ProjectError:
            pass
    projects = list_projects(ws)
    if not projects:
        raise ProjectError("There is no project yet. Create one with `seed-studio project create NAME`.")
    return projects[0]


def use_project(ws: Workspace, name_or_id: str) -> Project:
    project = find_project(ws, name_or_id)
    ws.set_setting(CLI_CURRENT_PROJECT, str(project.id))
    return project
