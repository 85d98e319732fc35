"""Reviewers' verdicts: accept, reject (with reason tags) or edit, appended and never updated.

Every verdict is a new `review` row, so two reviewers never overwrite each other and a changed mind is
simply a newer row; the newest row of each (row, reviewer) counts. Rows combine across reviewers
strictly: a row is rejected if any reviewer rejects it, else edited if any reviewer edited it (the newest
edit is the text used), else accepted.

A reject may carry no reason tag (the UI asks for one, because the tags are what the prompt revision
learns from, but a reviewer who cannot name the problem should still be able to say no).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from studio.data.formats import FORMATS, SeedFormat, normalise_row
from studio.errors import ReviewError
from studio.workspace import Workspace, utc_now

VERDICTS = ("accept", "reject", "edit")
REASON_TAGS = ("hallucination", "wrong tone", "off-task", "format", "unsafe", "duplicate", "other")
MAX_NOTE_CHARS = 5_000
MAX_REVIEWER_CHARS = 100


@dataclass(frozen=True)
class Review:
    id: int
    candidate_id: int
    reviewer: str
    verdict: str
    reason_tags: list[str]
    edited_data: dict[str, Any] | None
    accuracy: int | None
    tone: int | None
    note: str
    sample_id: int | None
    created_at: str


@dataclass(frozen=True)
class RowVerdict:
    candidate_id: int
    verdict: str
    """Combined over reviewers: reject > edit > accept."""
    reviews: list[Review]
    """The newest review of each reviewer, oldest first."""
    edited_data: dict[str, Any] | None = None
    """The newest edit among those reviews (None unless verdict is 'edit')."""
    reason_tags: list[str] = field(default_factory=list)

    @property
    def reviewers(self) -> list[str]:
        return [r.reviewer for r in self.reviews]


def _review(r: sqlite3.Row) -> Review:
    return Review(r["id"], r["candidate_id"], r["reviewer"], r["verdict"], json.loads(r["reason_tags"] or "[]"),
                  json.loads(r["edited_data"]) if r["edited_data"] else None, r["accuracy"], r["tone"], r["note"],
                  r["sample_id"], r["created_at"])


# --- validation ------------------------------------------------------------------------------------


def _check_verdict(verdict: Any) -> str:
    value = str(verdict or "").strip().lower()
    if value not in VERDICTS:
        raise ReviewError(f"'{verdict}' is not a verdict. Use one of: {', '.join(VERDICTS)}.")
    return value


def check_tags(tags: Any) -> list[str]:
    """Known tags, lower-cased, each once, in the order given."""
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags or ():
        value = " ".join(str(tag).strip().lower().replace("_", " ").split())
        if value == "off task":
            value = "off-task"
        if value not in REASON_TAGS:
            raise ReviewError(f"'{tag}' is not a reason tag. Use one of: {', '.join(REASON_TAGS)}.")
        if value not in out:
            out.append(value)
    return out


def _check_score(name: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or number != number or number != int(number) or not 1 <= number <= 5:
        raise ReviewError(f"The {name} score must be a whole number from 1 to 5, or left empty (got {value!r}).")
    return int(number)


def check_edit(fmt: SeedFormat, edited: Any) -> dict[str, Any]:
    """The edited row as a canonical record of the row's format, or ReviewError saying what is wrong."""
    if isinstance(edited, str):
        try:
            edited = json.loads(edited)
        except ValueError as exc:
            raise ReviewError(f"The edited row is not valid JSON ({exc}).") from None
    if not isinstance(edited, dict):
        raise ReviewError("The edited row must give each field of the row: "
                          f"{', '.join(f.name for f in FORMATS[fmt].fields)}.")
    identity = {f.name: f.name for f in FORMATS[fmt].fields}
    record, problems = normalise_row(fmt, identity, edited, row_no=1)
    errors = [p for p in problems if p.severity == "error"]
    if record is None or errors:
        what = "; ".join(f"{p.column}: {p.message}" if p.column else p.message for p in errors) or "it is empty"
        raise ReviewError(f"The edit was not saved: {what}. Fix the field and save again.")
    return record


# --- writing ---------------------------------------------------------------------------------------


def record_verdict(ws: Workspace, candidate_id: int, *, verdict: str, reviewer: str = "",
                   reason_tags: Any = (), edited_data: Any = None, accuracy: Any = None, tone: Any = None,
                   note: str = "", sample_id: int | None = None) -> Review:
    """Append one verdict. Everything is checked first; a bad value raises ReviewError and writes nothing."""
    value = _check_verdict(verdict)
    tags = check_tags(reason_tags)
    acc, ton = _check_score("accuracy", accuracy), _check_score("tone", tone)
    who = " ".join(str(reviewer or "").split())
    if len(who) > MAX_REVIEWER_CHARS:
        raise ReviewError(f"A reviewer name may be at most {MAX_REVIEWER_CHARS} characters.")
    text = str(note or "").strip()
    if len(text) > MAX_NOTE_CHARS:
        raise ReviewError(f"The note is {len(text):,} characters long; at most {MAX_NOTE_CHARS:,} are kept. "
                          "Shorten it.")
    with ws.read() as conn:
        row = conn.execute("SELECT id, batch_id, format, data FROM candidate WHERE id=?", (candidate_id,)).fetchone()
        if row is None:
            raise ReviewError(f"There is no row #{candidate_id} (its batch may have been deleted). Reload the sample.")
        batch_sample = conn.execute("SELECT id FROM review_sample WHERE batch_id=? ORDER BY id LIMIT 1",
                                    (row["batch_id"],)).fetchone()
        in_sample = batch_sample is not None and conn.execute(
            "SELECT 1 FROM review_item WHERE sample_id=? AND candidate_id=?",
            (batch_sample["id"], candidate_id)).fetchone() is not None
    if row["data"] is None:
        raise ReviewError(f"Row #{candidate_id} failed to parse, so there is nothing to review; the filters "
                          "already drop it.")
    if sample_id is not None and (batch_sample is None or int(sample_id) != batch_sample["id"]):
        raise ReviewError(f"Review sample {sample_id} does not belong to row #{candidate_id}'s batch. Reload "
                          "the sample.")
    if sample_id is None and in_sample:
        sample_id = batch_sample["id"]  # so the audit trail says which sample the verdict was given in
    edited_json = None
    if value == "edit":
        if edited_data is None:
            raise ReviewError("An 'edit' verdict needs the corrected row. Change the fields, then save.")
        fmt = SeedFormat(row["format"])
        record = check_edit(fmt, edited_data)
        if record == json.loads(row["data"]):
            raise ReviewError("The edited row is the same as the original. Accept it instead, or change it.")
        edited_json = json.dumps(record, ensure_ascii=False)
    elif edited_data is not None:
        raise ReviewError(f"Edited fields go with the 'edit' verdict only (the verdict was '{value}').")
    with ws.write() as conn:
        cur = conn.execute(
            "INSERT INTO review(candidate_id, reviewer, verdict, reason_tags, edited_data, accuracy, tone, note, "
            "sample_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (candidate_id, who, value, json.dumps(tags), edited_json, acc, ton, text, sample_id, utc_now()))
        saved = conn.execute("SELECT * FROM review WHERE id=?", (cur.lastrowid,)).fetchone()
    return _review(saved)


# --- reading ---------------------------------------------------------------------------------------


def latest_reviews(conn: sqlite3.Connection, batch_id: int) -> list[Review]:
    """The newest review of each (row, reviewer) of the batch, oldest first."""
    rows = conn.execute(
        "SELECT r.* FROM review r JOIN candidate c ON c.id = r.candidate_id WHERE c.batch_id = ? AND r.id = "
        "(SELECT MAX(r2.id) FROM review r2 WHERE r2.candidate_id = r.candidate_id AND r2.reviewer = r.reviewer) "
        "ORDER BY r.id", (batch_id,)).fetchall()
    return [_review(r) for r in rows]


def combine(candidate_id: int, reviews: list[Review]) -> RowVerdict:
    """One row's verdict from the newest review of each reviewer (reject > edit > accept)."""
    verdicts = {r.verdict for r in reviews}
    tags: list[str] = []
    for r in reviews:
        tags.extend(t for t in r.reason_tags if t not in tags)
    if "reject" in verdicts:
        return RowVerdict(candidate_id, "reject", reviews, None, tags)
    edits = [r for r in reviews if r.verdict == "edit"]
    if edits:
        return RowVerdict(candidate_id, "edit", reviews, max(edits, key=lambda r: r.id).edited_data, tags)
    return RowVerdict(candidate_id, "accept", reviews, None, tags)


def verdicts_in(conn: sqlite3.Connection, batch_id: int) -> dict[int, RowVerdict]:
    grouped: dict[int, list[Review]] = {}
    for review in latest_reviews(conn, batch_id):
        grouped.setdefault(review.candidate_id, []).append(review)
    return {cid: combine(cid, reviews) for cid, reviews in grouped.items()}


def row_verdicts(ws: Workspace, batch_id: int) -> dict[int, RowVerdict]:
    """candidate id -> combined verdict, for every reviewed row of the batch."""
    with ws.read() as conn:
        return verdicts_in(conn, batch_id)


def history(ws: Workspace, candidate_id: int) -> list[Review]:
    """Every verdict ever given on a row, oldest first (the audit trail)."""
    with ws.read() as conn:
        return [_review(r) for r in conn.execute("SELECT * FROM review WHERE candidate_id=? ORDER BY id",
                                                 (candidate_id,))]


def _reviewed_positions(conn: sqlite3.Connection, batch_id: int, reviewer: str | None) -> tuple[list[int], set[int]]:
    """(every position of the batch's sample, the positions reviewed by `reviewer` or, for None, anyone)."""
    sample = conn.execute("SELECT id FROM review_sample WHERE batch_id=? ORDER BY id LIMIT 1", (batch_id,)).fetchone()
    if sample is None:
        return [], set()
    positions = [r[0] for r in conn.execute("SELECT position FROM review_item WHERE sample_id=? ORDER BY position",
                                            (sample["id"],))]
    sql = ("SELECT DISTINCT i.position FROM review_item i JOIN review r ON r.candidate_id = i.candidate_id "
           "WHERE i.sample_id = ?")
    args: list[Any] = [sample["id"]]
    if reviewer is not None:
        sql += " AND r.reviewer = ?"
        args.append(" ".join(reviewer.split()))
    return positions, {r[0] for r in conn.execute(sql, args)}


def sample_progress(ws: Workspace, batch_id: int, reviewer: str | None = None) -> tuple[int, int]:
    """(sample rows reviewed by `reviewer`, or by anyone when None; rows in the sample)."""
    with ws.read() as conn:
        positions, reviewed = _reviewed_positions(conn, batch_id, reviewer)
    return len(reviewed), len(positions)


def next_position(ws: Workspace, batch_id: int, reviewer: str) -> int | None:
    """The first sample position this reviewer has not reviewed yet (None: all done, or no sample)."""
    with ws.read() as conn:
        positions, reviewed = _reviewed_positions(conn, batch_id, reviewer)
    return next((p for p in positions if p not in reviewed), None)
