"""Prompt templates as versions in the workspace: every edit is a new version, none is overwritten.

Version 1 of a strategy's prompt is the shipped default, recorded the first time a project uses it, so
every batch points at a real prompt_version row. A batch records the version it used; editing the
prompt later never changes what an earlier batch says it was generated with.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from studio.augment.strategies import StrategyOptions, get_strategy
from studio.augment.templates import check_template, default_template
from studio.errors import TemplateError
from studio.workspace import Workspace, utc_now


@dataclass(frozen=True)
class PromptVersion:
    id: int
    project_id: int
    strategy: str
    """The strategy's CLI name (instruction-expansion, …)."""
    version: int
    template: str
    note: str
    parent_id: int | None
    created_at: str

    @property
    def label(self) -> str:
        return f"v{self.version}" + (f" · {self.note}" if self.note else "")


def _row(r: sqlite3.Row) -> PromptVersion:
    return PromptVersion(r["id"], r["project_id"], r["strategy"], r["version"], r["template"], r["note"],
                         r["parent_id"], r["created_at"])


def list_versions(ws: Workspace, project_id: int, strategy: str) -> list[PromptVersion]:
    """Newest first. Creates v1 (the shipped default) if the project has none yet."""
    latest(ws, project_id, strategy)
    with ws.read() as conn:
        rows = conn.execute("SELECT * FROM prompt_version WHERE project_id=? AND strategy=? ORDER BY version DESC",
                            (project_id, get_strategy(strategy).name)).fetchall()
    return [_row(r) for r in rows]


def get_version(ws: Workspace, version_id: int) -> PromptVersion:
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM prompt_version WHERE id=?", (version_id,)).fetchone()
    if row is None:
        raise TemplateError(f"There is no prompt version {version_id}. `seed-studio prompts list` shows them.")
    return _row(row)


def latest(ws: Workspace, project_id: int, strategy: str, *, create: bool = True) -> PromptVersion:
    """The newest version of the strategy's prompt in this project (v1 = shipped default on first use).

    create=False never writes: with no version stored yet it returns the default as an unsaved v1
    (id 0), which is what a preview uses, since a preview must leave the workspace as it was.
    """
    strat = get_strategy(strategy)
    if not strat.uses_teacher:
        raise TemplateError(f"{strat.title} does not use a prompt: it runs without a teacher.")
    if not create:
        with ws.read() as conn:
            row = conn.execute("SELECT * FROM prompt_version WHERE project_id=? AND strategy=? "
                               "ORDER BY version DESC LIMIT 1", (project_id, strat.name)).fetchone()
        if row is not None:
            return _row(row)
        return PromptVersion(0, project_id, strat.name, 1, default_template(strat.template_name), "shipped default",
                             None, "")
    with ws.write() as conn:
        row = conn.execute("SELECT * FROM prompt_version WHERE project_id=? AND strategy=? "
                           "ORDER BY version DESC LIMIT 1", (project_id, strat.name)).fetchone()
        if row is None:
            cur = conn.execute("INSERT INTO prompt_version(project_id, strategy, version, template, note, created_at) "
                               "VALUES (?, ?, 1, ?, 'shipped default', ?)",
                               (project_id, strat.name, default_template(strat.template_name), utc_now()))
            row = conn.execute("SELECT * FROM prompt_version WHERE id=?", (cur.lastrowid,)).fetchone()
    return _row(row)


def save_version(ws: Workspace, project_id: int, strategy: str, template: str, *, note: str = "",
                 parent_id: int | None = None) -> PromptVersion:
    """Check the template, then store it as the next version. An unchanged template is not stored again."""
    strat = get_strategy(strategy)
    check_template(template, set(strat.variables), strat.sample_context(StrategyOptions()))
    current = latest(ws, project_id, strategy)
    if template.strip() == current.template.strip():
        return current
    with ws.write() as conn:
        version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM prompt_version WHERE project_id=? "
                               "AND strategy=?", (project_id, strat.name)).fetchone()[0]
        cur = conn.execute("INSERT INTO prompt_version(project_id, strategy, version, template, note, parent_id, "
                           "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (project_id, strat.name, version, template, note.strip(), parent_id or current.id,
                            utc_now()))
        row = conn.execute("SELECT * FROM prompt_version WHERE id=?", (cur.lastrowid,)).fetchone()
    return _row(row)


def reset_to_default(ws: Workspace, project_id: int, strategy: str) -> PromptVersion:
    strat = get_strategy(strategy)
    return save_version(ws, project_id, strategy, default_template(strat.template_name), note="reset to default")
