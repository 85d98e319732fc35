"""Long work as jobs: a row in the workspace with status, progress (done of total), message and pid.

The row is the truth for every client: the UI polls it, the CLI prints it, a reload replays it.

Statuses: ``queued`` (planned, not claimed yet) -> ``running`` -> ``stopping`` (stop asked; the worker
finishes its current step) -> ``stopped``;
``done``; ``failed`` (message says why); ``interrupted`` (the process died: kill -9, crash, reboot).
Stopped, failed and interrupted jobs can be resumed by whoever owns the subject (a batch, a run).

Why a database flag for stop rather than a signal: generation runs in a thread of the app (or in the
CLI process), and the flag works across threads, processes and machines sharing the workspace alike.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from studio.processes import pid_alive
from studio.workspace import Workspace, utc_now

ACTIVE = ("running", "stopping")
RESUMABLE = ("queued", "stopped", "failed", "interrupted")

# Jobs this process is working on right now. A row that says "running" with our pid but is not in
# here belongs to an earlier process that had the same pid (pid reuse after a restart): it is dead.
_live: set[int] = set()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class Job:
    id: int
    project_id: int | None
    kind: str
    subject_id: int | None
    status: str
    done: int
    total: int
    start_done: int
    message: str
    pid: int | None
    started_at: str
    heartbeat_at: str
    finished_at: str
    created_at: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    def rate_per_minute(self, now: datetime | None = None) -> float | None:
        """Rows per minute since the last (re)start; None until there is something to measure."""
        if not self.started_at or self.done <= self.start_done:
            return None
        end = _parse_time(self.finished_at) if self.finished_at else (now or datetime.now(UTC))
        seconds = (end - _parse_time(self.started_at)).total_seconds()
        return (self.done - self.start_done) * 60 / seconds if seconds > 0 else None

    def eta_seconds(self, now: datetime | None = None) -> float | None:
        rate = self.rate_per_minute(now)
        if not rate or not self.active:
            return None
        return max(0, self.total - self.done) * 60 / rate

    def progress_text(self) -> str:
        """`37 / 100 rows · 12.5 rows/min · about 5 min left` (plain words for UI and CLI)."""
        parts = [f"{self.done} / {self.total} rows"]
        rate = self.rate_per_minute()
        if rate is not None:
            parts.append(f"{rate:.1f} rows/min")
        eta = self.eta_seconds()
        if eta is not None:
            parts.append(f"about {format_duration(eta)} left")
        return " · ".join(parts)


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _row(r: sqlite3.Row) -> Job:
    return Job(id=r["id"], project_id=r["project_id"], kind=r["kind"], subject_id=r["subject_id"],
               status=r["status"], done=r["done"], total=r["total"], start_done=r["start_done"],
               message=r["message"], pid=r["pid"], started_at=r["started_at"], heartbeat_at=r["heartbeat_at"],
               finished_at=r["finished_at"], created_at=r["created_at"])


def create(conn: sqlite3.Connection, *, kind: str, project_id: int | None, subject_id: int | None, total: int,
           message: str = "") -> int:
    """Insert a job row inside the caller's transaction (so it lands with its subject), status `queued`
    until a worker claims it with `claim`."""
    now = utc_now()
    cur = conn.execute(
        "INSERT INTO job(project_id, kind, subject_id, status, total, message, created_at, updated_at) "
        "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)", (project_id, kind, subject_id, total, message, now, now))
    return int(cur.lastrowid)


def get(ws: Workspace, job_id: int) -> Job:
    reconcile(ws)
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM job WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise KeyError(job_id)
    return _row(row)


def list_jobs(ws: Workspace, project_id: int | None = None, kind: str | None = None) -> list[Job]:
    reconcile(ws)
    sql, args = "SELECT * FROM job WHERE 1=1", []
    if project_id is not None:
        sql += " AND project_id = ?"
        args.append(project_id)
    if kind is not None:
        sql += " AND kind = ?"
        args.append(kind)
    with ws.read() as conn:
        return [_row(r) for r in conn.execute(sql + " ORDER BY id DESC", args)]


def claim(ws: Workspace, job_id: int, *, done: int, total: int, message: str = "Starting…") -> bool:
    """Mark the job running in this process. False when it is already running somewhere else."""
    reconcile(ws)
    now = utc_now()
    with ws.write() as conn:
        cur = conn.execute(
            "UPDATE job SET status='running', pid=?, done=?, start_done=?, total=?, message=?, started_at=?, "
            "heartbeat_at=?, finished_at='', updated_at=? WHERE id=? AND status NOT IN ('running','stopping')",
            (os.getpid(), done, done, total, message, now, now, now, job_id))
        claimed = cur.rowcount == 1
    if claimed:
        with _live_lock:
            _live.add(job_id)
    return claimed


def report(conn: sqlite3.Connection, job_id: int, *, done: int, message: str) -> bool:
    """Record progress inside the caller's transaction (with the rows it made). True if stop was asked."""
    now = utc_now()
    conn.execute("UPDATE job SET done=?, message=?, heartbeat_at=?, updated_at=? WHERE id=?",
                 (done, message, now, now, job_id))
    row = conn.execute("SELECT status FROM job WHERE id=?", (job_id,)).fetchone()
    return row is not None and row["status"] == "stopping"


def stop_requested(ws: Workspace, job_id: int) -> bool:
    with ws.read() as conn:
        row = conn.execute("SELECT status FROM job WHERE id=?", (job_id,)).fetchone()
    return row is not None and row["status"] == "stopping"


def request_stop(ws: Workspace, job_id: int) -> Job:
    """Ask a running job to stop after its current step. A job that is not running is left as it is."""
    with ws.write() as conn:
        conn.execute("UPDATE job SET status='stopping', message='Stopping after the current step…', updated_at=? "
                     "WHERE id=? AND status='running'", (utc_now(), job_id))
    return get(ws, job_id)


def finish(ws: Workspace, job_id: int, status: str, message: str, *, done: int | None = None) -> None:
    assert status in ("done", "stopped", "failed"), status
    now = utc_now()
    with ws.write() as conn:
        if done is None:
            conn.execute("UPDATE job SET status=?, message=?, finished_at=?, updated_at=? WHERE id=?",
                         (status, message, now, now, job_id))
        else:
            conn.execute("UPDATE job SET status=?, message=?, done=?, finished_at=?, updated_at=? WHERE id=?",
                         (status, message, done, now, now, job_id))
    release(job_id)


def release(job_id: int) -> None:
    with _live_lock:
        _live.discard(job_id)


def is_live_here(job_id: int) -> bool:
    with _live_lock:
        return job_id in _live


def reconcile(ws: Workspace) -> int:
    """Jobs marked running whose process is gone become `interrupted`. Returns how many changed."""
    with ws.read() as conn:
        rows = conn.execute("SELECT id, pid FROM job WHERE status IN ('running','stopping')").fetchall()
    dead = [r["id"] for r in rows if not _alive(r["id"], r["pid"])]
    if not dead:
        return 0
    now = utc_now()
    with ws.write() as conn:
        for job_id in dead:
            conn.execute("UPDATE job SET status='interrupted', message='Interrupted: the studio stopped while this "
                         "was running. Resume it to pick up where it left off.', finished_at=?, updated_at=? "
                         "WHERE id=? AND status IN ('running','stopping')", (now, now, job_id))
    return len(dead)


def _alive(job_id: int, pid: int | None) -> bool:
    if pid is not None and pid == os.getpid():
        return is_live_here(job_id)
    return pid_alive(pid)
