"""One training run per device on the machine: two workspaces (two visitors of a Space) never train on the
same device at once, and the one that waits says what it waits for.

Real locks (flock on files in a per-test folder), real processes holding them. The worker is the test's
stand-in process (tests.test_train_runs.StandIn: it sleeps and holds the lock file it inherits, as the
worker does); the real worker's hand-over of the lock is covered by the end-to-end runs of
test_train_runs, which go through the same launch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.data.versions import FreezeConfig, freeze_version
from studio.train import device_locks, runs
from studio.train.settings import TrainConfig
from studio.workspace import Workspace
from tests.conftest import SHARED_SEEDS
from tests.factories import project_with_seeds
from tests.test_train_runs import StandIn, fake_model, set_row


def test_a_lock_is_held_by_one_process_and_freed_when_it_dies(tmp_path: Path) -> None:
    lock = device_locks.try_acquire("cuda:0", workspace=tmp_path / "a", run_id=7)
    assert lock is not None
    assert device_locks.try_acquire("cuda", workspace=tmp_path / "b", run_id=1) is None  # 'cuda' is cuda:0
    assert device_locks.try_acquire("cuda:1", workspace=tmp_path / "b", run_id=1) is not None
    held = device_locks.holder("cuda:0")
    assert held is not None and (held.workspace, held.run_id, held.pid) == (str(tmp_path / "a"), 7, os.getpid())

    # Handed to a child, the lock outlives the launcher's copy and ends with the child, even on kill -9.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=(lock.fd,))
    device_locks.set_holder_pid(lock, child.pid)
    lock.close()
    assert device_locks.holder("cuda:0").pid == child.pid
    assert device_locks.try_acquire("cuda:0", workspace=tmp_path / "b", run_id=1) is None
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert device_locks.holder("cuda:0") is None
    again = device_locks.try_acquire("cuda:0", workspace=tmp_path / "b", run_id=1)
    assert again is not None
    again.close()


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch):
    fake = StandIn()
    monkeypatch.setattr(runs, "_spawn", fake)
    yield fake
    fake.close()


def _workspace_with_run(home: Path, model: Path, name: str) -> tuple[Workspace, int]:
    ws = Workspace.open(home)
    project_id = project_with_seeds(ws, SHARED_SEEDS, name=name)
    version = freeze_version(ws, project_id, FreezeConfig())
    run = runs.create_run(ws, project_id, dataset_version_id=version.id, base_model_ref=str(model),
                          config=TrainConfig(), name=name, device="cpu")
    return ws, run.id


def test_two_workspaces_one_device(tmp_path: Path, stand_in: StandIn) -> None:
    model = fake_model(tmp_path / "model")
    ws_a, run_a = _workspace_with_run(tmp_path / "ana", model, "ana's run")
    ws_b, run_b = _workspace_with_run(tmp_path / "ben", model, "ben's run")

    first = runs.start(ws_a, run_a)
    assert first.launching and len(stand_in.procs) == 1
    set_row(ws_a, run_a, status="running")  # the worker claims it

    # Ben's studio has its own database, where the device looks free: the machine-wide lock says otherwise.
    waiting = runs.start(ws_b, run_b)
    assert (waiting.status, waiting.pid) == ("queued", None) and len(stand_in.procs) == 1
    assert waiting.message.startswith(f"Queued: waits for run {run_a} of the workspace at {ws_a.home}")
    assert f"(process {stand_in.procs[0].pid}," in waiting.message and waiting.message.endswith("on cpu.")
    assert runs.launch_next(ws_b) == []  # the page's poll: still taken

    # Ana's worker ends (its process exits, whatever the reason): Ben's next poll starts his run.
    stand_in.procs[0].kill()
    stand_in.procs[0].wait()
    set_row(ws_a, run_a, status="done")
    launched = runs.launch_next(ws_b)
    assert [r.id for r in launched] == [run_b] and launched[0].pid == stand_in.procs[1].pid
    assert device_locks.holder("cpu").run_id == run_b
    # ... and now Ana's next run waits for Ben's.
    again = runs.create_run(ws_a, runs.get_run(ws_a, run_a).project_id,
                            dataset_version_id=runs.get_run(ws_a, run_a).dataset_version_id,
                            base_model_ref=str(model), config=TrainConfig(), device="cpu")
    assert f"waits for run {run_b} of the workspace at {ws_b.home}" in runs.start(ws_a, again.id).message


def test_a_launch_that_loses_the_race_leaves_the_run_queued(tmp_path: Path, stand_in: StandIn) -> None:
    """The lock is taken between the workspace's own check and the spawn: nothing starts, the run stays
    queued with no pid (so the next poll tries again), nothing else changes."""
    model = fake_model(tmp_path / "model")
    ws, run_id = _workspace_with_run(tmp_path / "ana", model, "ana's run")
    other = device_locks.try_acquire("cpu", workspace=tmp_path / "elsewhere", run_id=99)
    try:
        run = runs.start(ws, run_id)
        assert (run.status, run.pid, stand_in.procs) == ("queued", None, [])
        assert "waits for run 99 of the workspace at" in run.message
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while not runs.launch_next(ws):
        assert time.monotonic() < deadline
    assert runs.get_run(ws, run_id).pid == stand_in.procs[0].pid
