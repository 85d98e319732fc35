"""Shared fixtures: a real workspace on disk per test, the real shared seeds, snapshots of the database."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from studio.config import load_settings
from studio.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SHARED_SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
EXAMPLE_SEEDS = ROOT / "assets" / "examples" / "support_replies.jsonl"


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Hub is unreachable here; tests that need it start tests.hub_server.HubServer and call
    # tests.hub_server.isolate_hf_client (huggingface_hub reads its environment at import time).
    # Subprocesses (app, CLI) read these at their own start.
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("STUDIO_HOME", raising=False)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace(load_settings(tmp_path / "home"))


@pytest.fixture
def shared_seeds() -> Path:
    assert SHARED_SEEDS.exists(), f"the shared human-written seeds are expected at {SHARED_SEEDS}"
    return SHARED_SEEDS


def snapshot(ws: Workspace) -> dict[str, list[tuple]]:
    """Every row of every table: compare before/after to prove nothing changed."""
    conn = sqlite3.connect(ws.db_path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                             "AND name NOT LIKE 'sqlite_%'")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Converted-model cache shared by the whole session (SEED_STUDIO_MODELS_DIR reuses one across runs)."""
    env = os.environ.get("SEED_STUDIO_MODELS_DIR")
    return Path(env) if env else tmp_path_factory.mktemp("models")
