"""Seeds in the workspace: list, edit (validated like an import), delete."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from studio.data.formats import FORMATS, SeedFormat, content_key, normalise_row
from studio.errors import SeedError
from studio.workspace.store import Workspace, utc_now


@dataclass(frozen=True)
class Seed:
    id: int
    project_id: int
    format: SeedFormat
    data: dict[str, Any]
    meta: dict[str, Any]
    source: str
    source_row: int | None
    created_at: str
    updated_at: str


def _row(r: sqlite3.Row) -> Seed:
    return Seed(r["id"], r["project_id"], SeedFormat(r["format"]), json.loads(r["data"]), json.loads(r["meta"]),
                r["source"], r["source_row"], r["created_at"], r["updated_at"])


def list_seeds(ws: Workspace, project_id: int) -> list[Seed]:
    with ws.read() as conn:
        return [_row(r) for r in conn.execute("SELECT * FROM seed WHERE project_id = ? ORDER BY id",
                                              (project_id,))]


def get_seed(ws: Workspace, seed_id: int) -> Seed:
    with ws.read() as conn:
        r = conn.execute("SELECT * FROM seed WHERE id = ?", (seed_id,)).fetchone()
    if r is None:
        raise SeedError(f"Seed #{seed_id} does not exist (it may have been deleted in another tab). "
                        "Reload the seed list.")
    return _row(r)


def existing_keys(conn: sqlite3.Connection, project_id: int) -> dict[str, int]:
    """content key -> seed id, for duplicate checks."""
    return {r["content_key"]: r["id"] for r in
            conn.execute("SELECT id, content_key FROM seed WHERE project_id = ?", (project_id,))}


def project_family(conn: sqlite3.Connection, project_id: int) -> str | None:
    r = conn.execute("SELECT format FROM seed WHERE project_id = ? LIMIT 1", (project_id,)).fetchone()
    return FORMATS[SeedFormat(r["format"])].family if r else None


def update_seed(ws: Workspace, seed_id: int, fields: dict[str, Any]) -> Seed:
    """Replace a seed's fields (texts, lists as JSON text or lists), validated like an imported row."""
    seed = get_seed(ws, seed_id)
    identity = {f.name: f.name for f in FORMATS[seed.format].fields}
    record, problems = normalise_row(seed.format, identity, fields, row_no=1)
    errors = [p for p in problems if p.severity == "error"]
    if record is None or errors:
        what = "; ".join(f"{p.column}: {p.message}" for p in errors)
        raise SeedError(f"Seed #{seed_id} was not changed: {what}. Fix the field and save again.")
    key = content_key(seed.format, record)
    with ws.write() as conn:
        twin = conn.execute("SELECT id FROM seed WHERE project_id = ? AND content_key = ? AND id != ?",
                            (seed.project_id, key, seed_id)).fetchone()
        if twin:
            raise SeedError(f"Seed #{seed_id} was not changed: the edit makes it a duplicate of seed "
                            f"#{twin['id']}. Change it further, or delete one of the two.")
        cur = conn.execute("UPDATE seed SET data = ?, content_key = ?, updated_at = ? WHERE id = ?",
                           (json.dumps(record, ensure_ascii=False), key, utc_now(), seed_id))
        if cur.rowcount == 0:
            raise SeedError(f"Seed #{seed_id} no longer exists; nothing was changed.")
    return get_seed(ws, seed_id)


def delete_seeds(ws: Workspace, project_id: int, seed_ids: list[int]) -> int:
    """Delete seeds of one project; returns how many were deleted."""
    if not seed_ids:
        return 0
    marks = ",".join("?" * len(seed_ids))
    with ws.write() as conn:
        cur = conn.execute(f"DELETE FROM seed WHERE project_id = ? AND id IN ({marks})",
                           (project_id, *seed_ids))
        return cur.rowcount
