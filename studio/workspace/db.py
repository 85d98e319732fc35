"""SQLite connections for the workspace: WAL journal, foreign keys on, versioned migrations.

A connection is opened per unit of work (they are cheap) so that Gradio's worker threads, the CLI
and job processes never share one. `transaction()` is the only way to write: it either commits
everything it did or nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction covers exactly
    # what `transaction()` wraps, DDL included.
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    _use_wal(conn)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL (a no-op once it is: the mode is stored in the file).

    The switch needs the file to itself, and SQLite answers "database is locked" at once, without waiting
    out the busy timeout, when another connection is opening the same new file (the app and a worker
    starting together, or several visitors' first page loads): retry within the same time budget."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (then re-raise)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migration_scripts() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every shipped migration, in order."""
    folder = resources.files("studio.workspace").joinpath("migrations")
    scripts = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            scripts.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    scripts.sort()
    versions = [v for v, _, _ in scripts]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, ... without gaps; found {versions}")
    return scripts


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the file's user_version; return the resulting version.

    Each migration and its version bump commit together (user_version is transactional), and the
    version is re-read under the write lock so two processes starting at once apply it once.
    """
    for version, _name, sql in migration_scripts():
        if schema_version(conn) >= version:
            continue
        conn.execute("BEGIN EXCLUSIVE")
        try:
            if schema_version(conn) < version:
                for statement in _split_statements(sql):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return schema_version(conn)


def _split_statements(sql: str) -> list[str]:
    # executescript() would COMMIT behind our back; run statement by statement instead.
    statements, buf = [], ""
    for line in sql.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements
