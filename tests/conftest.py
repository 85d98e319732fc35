"""Shared fixtures: a real workspace on disk per test, the real shared seeds, snapshots of the database."""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest

from studio.config import load_settings
from studio.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SHARED_SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
EXAMPLE_SEEDS = ROOT / "assets" / "examples" / "support_replies.jsonl"


# Training runs lock their device machine-wide (studio.train.device_locks). This session gets its own lock
# folder, and each test its own below, so a test never waits for a run of another test or another checkout.
os.environ["SEED_STUDIO_DEVICE_LOCKS"] = tempfile.mkdtemp(prefix="seed-studio-devices-")
atexit.register(shutil.rmtree, os.environ["SEED_STUDIO_DEVICE_LOCKS"], ignore_errors=True)

# Torch's OpenMP threads spin between operations by default. The suite runs in two processes (pytest-xdist,
# `make test`) on a 2-core machine, each with apps and workers of its own: spinning threads of one process
# take the cores another is waiting for (bench/RESULTS.md: a training step 3x slower beside two spinning
# processes). Set before anything imports torch; the apps, CLIs and workers the tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The longest tests start first, so that with two processes neither is left alone with a four-minute test
# at the end (pytest-xdist hands out tests in collection order).
LONGEST_FIRST = ("test_journey.py", "test_browser_compare.py", "test_structured.py", "test_distributed.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within each file stays


@pytest.fixture(autouse=True)
def _own_device_locks(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("SEED_STUDIO_DEVICE_LOCKS", str(tmp_path_factory.mktemp("device-locks")))


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
    if os.environ.get("SEED_STUDIO_MODELS_DIR"):
        return load_settings().models_dir
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def converted_chat_model(models_dir: Path) -> Path:
    """The embedded SmolLM2 converted once per session (~20 s); returns the converted folder."""
    from studio.models.embedded import ensure_converted_chat_model

    return ensure_converted_chat_model(models_dir)


@pytest.fixture(scope="session")
def tiny_chat_model(converted_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama (about 1.3 M weights) with SmolLM2's tokenizer and chat template.

    It writes gibberish, fast: the right model for plumbing tests (batching, padding, parse failures).
    """
    from tests.factories import write_tiny_chat_model

    return write_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat"), converted_chat_model)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    """`python app.py` in its own process, on loopback, with its own workspace."""

    def __init__(self, home: Path, extra_env: dict[str, str] | None = None) -> None:
        import subprocess
        import sys

        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = home.parent / f"app-{self.port}.log"
        env = {**os.environ, "STUDIO_HOME": str(home), "GRADIO_SERVER_NAME": "127.0.0.1",
               "GRADIO_SERVER_PORT": str(self.port), "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_DISABLE_TELEMETRY": "1",
               # A closed loopback port: the app under test never reaches the real Hub, whatever the network.
               "HF_ENDPOINT": "http://127.0.0.1:9", **(extra_env or {})}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self, timeout: float = 60) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"app.py did not serve {self.url} within {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except Exception:
            self.proc.kill()
        self._kill_workers()

    def _kill_workers(self) -> None:
        """Training workers outlive the app by design (own session); a test's must not outlive the test."""
        import contextlib
        import signal
        import sqlite3

        db = self.home / "studio.db"
        if not db.exists():
            return
        with sqlite3.connect(db) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM run WHERE pid IS NOT NULL AND status IN "
                                               "('queued', 'running', 'stopping')")]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def running_app(tmp_path: Path):
    app = RunningApp(tmp_path / "home")
    yield app
    app.stop()
