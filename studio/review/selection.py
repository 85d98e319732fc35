"""Which rows of a batch that passed its gate go on to the dataset, and why each one does.

A row is selected when it parsed; passed every filter (when the batch was filtered and `use_filters`);
was not rejected in review (reviewers combined); and has a judge score of at least `min_judge_score` when
one is set (rows never judged are then left out). An edited row is selected with the reviewer's edit.
Rows are ranked reviewed-and-accepted first, then by judge score (highest first), then by id, before the
caps apply: `per_seed_cap` keeps at most N rows made from the same (first) seed, so one seed cannot
dominate the data, and `max_rows` caps the batch.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from studio.errors import ReviewError
from studio.review.sampling import batch_was_filtered, passed_filters_sql
from studio.review.verdicts import verdicts_in
from studio.workspace import Workspace


@dataclass
class SelectionConfig:
    use_filters: bool = True
    min_judge_score: float | None = None
    """1-5; None keeps rows whatever their judge score, and rows never judged."""
    per_seed_cap: int | None = None
    max_rows: int | None = None

    def check(self) -> None:
        if self.min_judge_score is not None and not (isinstance(self.min_judge_score, int | float)
                                                     and 1 <= self.min_judge_score <= 5):
            raise ReviewError(f"The lowest judge score must be between 1 and 5, or empty for no limit "
                              f"(got {self.min_judge_score!r}).")
        for name, value in (("per-seed cap", self.per_seed_cap), ("row limit", self.max_rows)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ReviewError(f"The {name} must be a whole number of at least 1, or empty for no limit "
                                  f"(got {value!r}).")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SelectionConfig:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


@dataclass(frozen=True)
class SelectedRow:
    candidate_id: int
    data: dict[str, Any]
    reason: str
    score: float | None
    """The judge's overall score (1-5), when the row was judged."""
    batch_id: int = 0
    format: str = ""


def judge_scores(conn: sqlite3.Connection, batch_id: int) -> dict[int, float]:
    """candidate id -> overall score of its newest judgement (rows whose newest judgement has none: absent)."""
    rows = conn.execute(
        "SELECT j.candidate_id, j.overall FROM judgement j JOIN candidate c ON c.id = j.candidate_id "
        "WHERE c.batch_id = ? AND j.id = (SELECT MAX(j2.id) FROM judgement j2 WHERE j2.candidate_id = j.candidate_id)",
        (batch_id,)).fetchall()
    return {r["candidate_id"]: float(r["overall"]) for r in rows if r["overall"] is not None}


def _unreviewed_reason(score: float | None, filtered: bool) -> str:
    if score is not None:
        return f"not reviewed; judge score {score:g}"
    return "not reviewed; passed the filters" if filtered else "not reviewed"


def select_in(conn: sqlite3.Connection, batch_id: int, cfg: SelectionConfig) -> list[SelectedRow]:
    cfg.check()
    filtered = cfg.use_filters and batch_was_filtered(conn, batch_id)
    sql = "SELECT c.id, c.format, c.data, c.seed_ids FROM candidate c WHERE c.batch_id = ? AND c.data IS NOT NULL"
    if filtered:
        sql += " AND " + passed_filters_sql("c")
    rows = conn.execute(sql + " ORDER BY c.id", (batch_id,)).fetchall()
    verdicts = verdicts_in(conn, batch_id)
    scores = judge_scores(conn, batch_id)

    ranked: list[tuple[tuple[Any, ...], SelectedRow, int | None]] = []
    for r in rows:
        cid = r["id"]
        verdict = verdicts.get(cid)
        if verdict is not None and verdict.verdict == "reject":
            continue
        score = scores.get(cid)
        if cfg.min_judge_score is not None and (score is None or score < cfg.min_judge_score):
            continue
        if verdict is not None and verdict.verdict == "edit" and verdict.edited_data is not None:
            data, reason = verdict.edited_data, "edited in review"
        elif verdict is not None:
            data, reason = json.loads(r["data"]), "accepted in review"
        else:
            data = json.loads(r["data"])
            reason = _unreviewed_reason(score, filtered)
        seeds = json.loads(r["seed_ids"] or "[]")
        key = (0 if verdict is not None else 1, -(score if score is not None else float("-inf")), cid)
        ranked.append((key, SelectedRow(cid, data, reason, score, batch_id, r["format"]), seeds[0] if seeds else None))
    ranked.sort(key=lambda t: t[0])

    out: list[SelectedRow] = []
    per_seed: dict[int, int] = {}
    for _, row, first_seed in ranked:
        if cfg.max_rows is not None and len(out) >= cfg.max_rows:
            break
        if cfg.per_seed_cap is not None and first_seed is not None:
            if per_seed.get(first_seed, 0) >= cfg.per_seed_cap:
                continue
            per_seed[first_seed] = per_seed.get(first_seed, 0) + 1
        out.append(row)
    return out


def preview_selection(ws: Workspace, batch_id: int, cfg: SelectionConfig | None = None) -> list[SelectedRow]:
    """The rows the gate would select on a pass, best first. Writes nothing."""
    with ws.read() as conn:
        return select_in(conn, batch_id, cfg or SelectionConfig())


def selected_rows(ws: Workspace, project_id: int | None = None, batch_id: int | None = None) -> list[SelectedRow]:
    """Rows in the selection table (chosen when a batch passed its gate): by batch, best first within one."""
    sql = ("SELECT s.candidate_id, s.data, s.reason, s.score, s.batch_id, c.format FROM selection s "
           "JOIN candidate c ON c.id = s.candidate_id JOIN batch b ON b.id = s.batch_id WHERE 1=1")
    args: list[Any] = []
    if project_id is not None:
        sql += " AND b.project_id = ?"
        args.append(project_id)
    if batch_id is not None:
        sql += " AND s.batch_id = ?"
        args.append(batch_id)
    with ws.read() as conn:
        rows = conn.execute(sql + " ORDER BY s.batch_id, s.id", args).fetchall()
    return [SelectedRow(r["candidate_id"], json.loads(r["data"]), r["reason"], r["score"], r["batch_id"], r["format"])
            for r in rows]
