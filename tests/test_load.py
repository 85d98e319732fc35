"""Ten reviewers at once while the CPU trains: every call answers and no acknowledged verdict is lost.

The short version of `bench/load.py` (10 gradio_client sessions x 21 actions against one `python app.py`,
a tiny-model LoRA run training in the app's worker meanwhile). No timing assertions: the CI machine is
shared; the latencies are the benchmark's business (bench/RESULTS.md).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.load import ACTIONS, lost_verdicts, prepare, run_phase, start_training, stop_training
from tests.conftest import SHARED_SEEDS, RunningApp

CLIENTS = 10
ACTIONS_EACH = 3 * len(ACTIONS)  # 21: every action three times per client


@pytest.mark.slow
def test_ten_sessions_review_and_browse_while_training(tmp_path: Path, tiny_chat_model: Path) -> None:
    home = tmp_path / "home"
    setup = prepare(home, SHARED_SEEDS)
    app = RunningApp(home)
    try:
        run_id = start_training(app.url, setup, tiny_chat_model)
        calls = run_phase(app.url, "load", CLIENTS, ACTIONS_EACH, setup, run_id)
        during = stop_training(app.url, run_id)
    finally:
        app.stop()

    assert len(calls) == CLIENTS * ACTIONS_EACH
    assert [c for c in calls if c.error] == []  # every call answered
    acknowledged = [c.verdict for c in calls if c.verdict]
    assert len(acknowledged) == CLIENTS * 3
    assert lost_verdicts(home / "studio.db", calls) == []
    with sqlite3.connect(home / "studio.db") as conn:
        # Nothing extra either: the review table holds exactly the acknowledged verdicts, once each.
        saved = conn.execute("SELECT id FROM review WHERE reviewer LIKE 'load-%'").fetchall()
        assert sorted(r[0] for r in saved) == sorted(v["review_id"] for v in acknowledged)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The training went on during the load (it was stopped afterwards, not failed by it).
    assert during["status"] in ("stopped", "interrupted", "done"), during
    assert during["step"] >= 2
