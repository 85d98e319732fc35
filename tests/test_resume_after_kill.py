"""kill -9 in the middle of a batch, then resume: no duplicate row, no lost row.

The teacher is tests.scripted_llm on loopback (its answers are a pure function of the prompt, and it is
slow on purpose, so the kill lands mid-batch). "No lost row" is checked the strongest way: the resumed
batch holds exactly the rows an uninterrupted run of the same batch (same seed) produces.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.augment import batches
from studio.augment.candidates import list_candidates
from studio.workspace import Workspace
from tests.conftest import ROOT, RunningApp
from tests.scripted_llm import ScriptedLLM

CLI = Path(sys.executable).with_name("seed-studio")
TARGET = 24


def cli(home: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "studio.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "STUDIO_HOME": str(home)}, timeout=300, **kw)


def rows_in(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM candidate WHERE data IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def wait_for_rows(db: Path, n: int, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while rows_in(db) < n:
        assert time.monotonic() < deadline, f"fewer than {n} rows after {timeout}s"
        if proc is not None:
            assert proc.poll() is None, f"the process ended early with {proc.returncode}"
        time.sleep(0.1)


def batch_rows(home: Path, batch_id: int) -> list[str]:
    ws = Workspace.open(home)
    return sorted(json.dumps(c.data, sort_keys=True) for c in list_candidates(ws, batch_id=batch_id) if c.usable)


def assert_exactly_once(home: Path, batch_id: int) -> None:
    conn = sqlite3.connect(home / "studio.db")
    try:
        idxs = [r[0] for r in conn.execute("SELECT idx FROM batch_unit WHERE batch_id=? ORDER BY idx", (batch_id,))]
        per_unit = conn.execute("SELECT unit_idx, COUNT(*) FROM candidate WHERE batch_id=? GROUP BY unit_idx",
                                (batch_id,)).fetchall()
    finally:
        conn.close()
    assert idxs == list(range(len(idxs)))
    assert {u for u, _ in per_unit} == set(idxs)  # every stored row belongs to a finished unit


def reference_rows(tmp_path: Path, shared_seeds: Path, llm: ScriptedLLM) -> list[str]:
    """The same batch, never interrupted."""
    home = tmp_path / "reference"
    assert cli(home, "project", "create", "ref", "--task", "Helpful answers").returncode == 0
    assert cli(home, "seeds", "import", str(shared_seeds)).returncode == 0
    done = cli(home, "generate", "--strategy", "few-shot", "--count", str(TARGET), "--teacher", llm.url,
               "--teacher-model", llm.model, "--per-call", "2", "--concurrency", "1", "--seed", "11", "--json")
    assert done.returncode == 0, done.stderr
    return batch_rows(home, json.loads(done.stdout)["id"])


@pytest.mark.slow
def test_cli_batch_killed_then_resumed(tmp_path: Path, shared_seeds: Path) -> None:
    home = tmp_path / "home"
    with ScriptedLLM(delay=0.25) as llm:
        assert cli(home, "project", "create", "kill", "--task", "Helpful answers").returncode == 0
        assert cli(home, "seeds", "import", str(shared_seeds)).returncode == 0
        cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "studio.cli"]
        log = (tmp_path / "generate.log").open("w")
        proc = subprocess.Popen([*cmd, "generate", "--strategy", "few-shot", "--count", str(TARGET), "--teacher",
                                 llm.url, "--teacher-model", llm.model, "--per-call", "2", "--concurrency", "1",
                                 "--seed", "11"], cwd=ROOT, env={**os.environ, "STUDIO_HOME": str(home)},
                                stdout=log, stderr=subprocess.STDOUT)
        wait_for_rows(home / "studio.db", 6, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        partial = rows_in(home / "studio.db")
        assert 6 <= partial < TARGET

        listed = cli(home, "batches", "list", "--json")
        batch = json.loads(listed.stdout)[0]
        assert batch["state"] == "interrupted" and batch["rows_ok"] == partial
        resumed = cli(home, "batches", "resume", str(batch["id"]), "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["state"] == "done"
        assert_exactly_once(home, batch["id"])
        assert batch_rows(home, batch["id"]) == reference_rows(tmp_path, shared_seeds, llm)


@pytest.mark.slow
def test_app_killed_mid_batch_then_resumed(tmp_path: Path, shared_seeds: Path) -> None:
    from gradio_client import Client, handle_file

    home = tmp_path / "home"
    with ScriptedLLM(delay=0.25) as llm:
        app = RunningApp(home)
        try:
            client = Client(app.url, verbose=False)
            project = client.predict("kill", "Helpful answers", api_name="/create_project")
            client.predict(project["id"], handle_file(str(shared_seeds)), "", api_name="/import_seeds")
            started = client.predict(project["id"], "few-shot", TARGET, llm.url, llm.model, {"n": 2},
                                     {"temperature": 0.7}, api_name="/start_generation")
            wait_for_rows(home / "studio.db", 6, app.proc)
        finally:
            app.proc.kill()  # SIGKILL: no clean-up code runs
            app.proc.wait()
        partial = rows_in(home / "studio.db")
        assert 6 <= partial < TARGET

        app = RunningApp(home)  # start-up turns the orphaned job into "interrupted"
        try:
            client = Client(app.url, verbose=False)
            status = client.predict(started["id"], api_name="/batch_status")
            assert status["state"] == "interrupted" and status["rows_ok"] == partial
            assert "Resume" in status["message"]
            client.predict(started["id"], api_name="/resume_generation")
            deadline = time.monotonic() + 120
            while (status := client.predict(started["id"], api_name="/batch_status"))["state"] not in ("done",
                                                                                                       "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.3)
            assert status["state"] == "done" and status["rows_ok"] == TARGET
        finally:
            app.stop()
        assert_exactly_once(home, started["id"])
        rows = batch_rows(home, started["id"])
        assert len(rows) == len(set(rows)) == TARGET
        ws = Workspace.open(home)
        assert batches.get_batch(ws, started["id"]).state == "done"
