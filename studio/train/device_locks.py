"""One training run per device on this machine, whichever workspace it belongs to.

A workspace's queue (studio.train.runs) keeps its own runs from sharing a device, but two workspaces (two
visitors of a Space, two projects folders of one engineer) each have their own database. So a launch also
takes an exclusive `flock` on `<lock dir>/<device>.lock` and hands the open file to the worker process
(`pass_fds`): the kernel drops the lock when the last process holding that file ends, however it ends
(done, failed, kill -9, a crash), so a lock is never left behind. The launcher writes who holds it into
the file (workspace, run, pid, since) for the queue's "waits for" message.

The lock dir is machine-wide: $SEED_STUDIO_DEVICE_LOCKS, else `seed-studio-devices` in the system's temp
folder, world-writable so every user's studio on the machine shares it (tests give each test its own).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from studio.workspace import utc_now

LOCK_DIR_ENV = "SEED_STUDIO_DEVICE_LOCKS"
INHERITED_ENV = "SEED_STUDIO_DEVICE_LOCK_FD"
"""The worker's environment names the lock files it inherited (comma-separated descriptors), so it can let go
before launching the next run."""


def lock_dir() -> Path:
    explicit = os.environ.get(LOCK_DIR_ENV, "").strip()
    folder = Path(explicit) if explicit else Path(tempfile.gettempdir()) / "seed-studio-devices"
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another user's studio must be able to lock here too
            folder.chmod(0o1777)
    return folder


def lock_path(device: str) -> Path:
    """'cuda:0' and 'cuda' are one GPU; every CPU run shares 'cpu'."""
    key = (device or "cpu").strip().lower()
    key = "cuda:0" if key == "cuda" else "cpu" if key.startswith("cpu") else key
    return lock_dir() / f"{key.replace(':', '-')}.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a device: read from the lock file, for the queue's message."""

    workspace: str
    run_id: int
    pid: int
    since: str

    def describe(self) -> str:
        return f"run {self.run_id} of the workspace at {self.workspace} (process {self.pid}, since {self.since})"


class DeviceLock:
    """A held device. `fd` goes to the worker through `pass_fds`; `close()` in the launcher then leaves the
    worker the only holder."""

    def __init__(self, device: str, fd: int) -> None:
        self.device = device
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DeviceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


RELEASE_GRACE = 3.0
"""Seconds to wait for a lock whose holder is already dead: the kernel closes a killed process's files a
moment after it is gone (a deferred close), and a resume right after a kill -9 lands in that moment."""


def try_acquire(device: str, *, workspace: Path, run_id: int, pid: int | None = None) -> DeviceLock | None:
    """The device's lock, or None when another live process (any workspace) holds it. Does not wait for a
    live holder; waits up to RELEASE_GRACE for a dead one's lock to be released."""
    import time

    from studio.processes import pid_alive

    deadline = time.monotonic() + RELEASE_GRACE
    while True:
        lock = _try_once(device, workspace=workspace, run_id=run_id, pid=pid)
        if lock is not None:
            return lock
        held = holder(device)
        if held is None:
            continue  # released just now
        if pid_alive(held.pid) or time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _try_once(device: str, *, workspace: Path, run_id: int, pid: int | None) -> DeviceLock | None:
    path = lock_path(device)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    record = {"workspace": str(workspace), "run_id": run_id, "pid": pid or os.getpid(), "since": utc_now()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return DeviceLock(device, fd)


def set_holder_pid(lock: DeviceLock, pid: int) -> None:
    """Once the worker exists, the file names its pid rather than the launcher's."""
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(os.pread(lock.fd, 4096, 0) or b"{}")
        record["pid"] = pid
        os.ftruncate(lock.fd, 0)
        os.pwrite(lock.fd, json.dumps(record).encode(), 0)


def holder(device: str) -> Holder | None:
    """Who holds the device now; None when it is free."""
    path = lock_path(device)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                record = json.loads(os.pread(fd, 4096, 0) or b"{}")
                return Holder(str(record["workspace"]), int(record["run_id"]), int(record["pid"]),
                              str(record["since"]))
            except (ValueError, KeyError, TypeError):
                return Holder("(unknown)", 0, 0, "")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def release_inherited() -> None:
    """In a worker: close the lock file the launcher handed over (the device is free for the next run)."""
    for value in os.environ.pop(INHERITED_ENV, "").split(","):
        if value.strip().isdigit():
            with contextlib.suppress(OSError):
                os.close(int(value))
