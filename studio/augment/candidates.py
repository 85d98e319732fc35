"""Candidate rows with their provenance: what the CLI lists, what the UI table shows, what review reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from studio.data.formats import SeedFormat, summary_text
from studio.workspace import Workspace


@dataclass(frozen=True)
class Candidate:
    id: int
    batch_id: int
    project_id: int
    format: SeedFormat
    data: dict[str, Any] | None
    seed_ids: list[int]
    strategy: str
    prompt_version_id: int | None
    prompt_version: int | None
    teacher: dict[str, Any]
    decoding_params: dict[str, Any]
    raw_output: str
    parse_status: str
    parse_error: str
    meta: dict[str, Any]
    unit_idx: int | None
    created_at: str

    @property
    def usable(self) -> bool:
        return self.data is not None

    def summary(self) -> tuple[str, str]:
        """(prompt, answer) for tables; ("", "") for a parse failure."""
        return summary_text(self.format, self.data) if self.data is not None else ("", "")

    def to_json(self) -> dict[str, Any]:
        """The row and its whole provenance, as `seed-studio candidates list --json` prints it."""
        return {
            "id": self.id,
            "format": str(self.format),
            "data": self.data,
            "provenance": {
                "project_id": self.project_id,
                "batch_id": self.batch_id,
                "strategy": self.strategy,
                "seed_ids": self.seed_ids,
                "prompt_version_id": self.prompt_version_id,
                "prompt_version": self.prompt_version,
                "teacher": self.teacher,
                "decoding_params": self.decoding_params,
                "raw_output": self.raw_output,
                "parse_status": self.parse_status,
                "parse_error": self.parse_error,
                "unit": self.unit_idx,
                "meta": self.meta,
                "created_at": self.created_at,
            },
        }


_SELECT = ("SELECT c.*, b.project_id, b.strategy, b.prompt_version_id, b.teacher, pv.version AS pv_version "
           "FROM candidate c JOIN batch b ON b.id = c.batch_id "
           "LEFT JOIN prompt_version pv ON pv.id = b.prompt_version_id")


def _row(r: Any) -> Candidate:
    return Candidate(r["id"], r["batch_id"], r["project_id"], SeedFormat(r["format"]),
                     json.loads(r["data"]) if r["data"] is not None else None, json.loads(r["seed_ids"]),
                     r["strategy"], r["prompt_version_id"], r["pv_version"], json.loads(r["teacher"] or "{}"),
                     json.loads(r["decoding_params"] or "{}"), r["raw_output"], r["parse_status"], r["parse_error"],
                     json.loads(r["meta"] or "{}"), r["unit_idx"], r["created_at"])


def list_candidates(ws: Workspace, *, project_id: int | None = None, batch_id: int | None = None,
                    limit: int | None = None, newest_first: bool = False) -> list[Candidate]:
    sql, args = _SELECT + " WHERE 1=1", []
    if project_id is not None:
        sql += " AND b.project_id = ?"
        args.append(project_id)
    if batch_id is not None:
        sql += " AND c.batch_id = ?"
        args.append(batch_id)
    sql += " ORDER BY c.id" + (" DESC" if newest_first else "")
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    with ws.read() as conn:
        return [_row(r) for r in conn.execute(sql, args)]


def get_candidate(ws: Workspace, candidate_id: int) -> Candidate | None:
    with ws.read() as conn:
        r = conn.execute(_SELECT + " WHERE c.id = ?", (candidate_id,)).fetchone()
    return _row(r) if r else None
