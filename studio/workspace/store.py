"""`Workspace`: where everything lives. Opening one creates the folders and migrates the database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from studio.config import Settings, load_settings
from studio.workspace import db


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Workspace:
    """STUDIO_HOME on disk: studio.db, models/, runs/, exports/."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home
        self.db_path = self.home / "studio.db"
        for area in (self.home, self.models_dir, self.runs_dir, self.exports_dir):
            area.mkdir(parents=True, exist_ok=True)
        with closing(db.connect(self.db_path)) as conn:
            self.schema_version = db.migrate(conn)

    @classmethod
    def open(cls, home: str | Path | None = None) -> Workspace:
        return cls(load_settings(home))

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with closing(db.connect(self.db_path)) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction: everything inside commits together, or nothing does."""
        with closing(db.connect(self.db_path)) as conn, db.transaction(conn):
            yield conn

    def get_setting(self, key: str) -> str | None:
        with self.read() as conn:
            row = conn.execute("SELECT value FROM setting WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.write() as conn:
            conn.execute("INSERT INTO setting(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))
