"""python -m studio.train.launch RUN_ID: train one run on several devices of this machine.

runs._spawn starts this module instead of the worker when a run's device column lists several devices. It
holds the devices' machine-wide locks (inherited from the launcher, studio.train.device_locks) while the
ranks train, runs them with the command `devices.launch_command` gives for the strategy picked at creation
(torchrun --standalone for DDP, with a free port; `accelerate launch` with a shipped DeepSpeed config for
ZeRO-2/3), then lets go of the devices and starts the next queued run. The ranks are children of torchrun,
which does not pass the lock files on; so a rank that dies (kill -9) ends torchrun, then this process, and the
locks with it.

The run row is rank 0's (studio.train.worker): this process writes to it only when the ranks never claimed
the run (a launcher that cannot start), so that the run does not stay queued forever.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import traceback

from studio.train import device_locks, devices
from studio.workspace import Workspace, utc_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.train.launch",
                                     description="Train one queued run on several devices (STUDIO_HOME set).")
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    ws = Workspace.open()
    with ws.read() as conn:
        row = conn.execute("SELECT device, provenance FROM run WHERE id = ?", (args.run_id,)).fetchone()
    if row is None:
        print(f"There is no run #{args.run_id} in this workspace.", file=sys.stderr, flush=True)
        return 2
    entries = devices.entries_of(row["device"])
    plan = json.loads(row["provenance"] or "{}").get("launch") or {}
    strategy = plan.get("strategy") or devices.pick_strategy(entries, "lora")
    command = devices.launch_command(args.run_id, entries, strategy)
    env = {k: v for k, v in os.environ.items() if k != device_locks.INHERITED_ENV}
    print(f"[{utc_now()}] run {args.run_id}: {strategy} on {devices.describe(entries)}: {shlex.join(command)}",
          flush=True)
    child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)  # close_fds: the locks stay here

    def forward(signum: int, frame: object) -> None:
        # A stop by signal reaches every rank: torchrun passes SIGTERM on, each rank saves and stops together.
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    print(f"[{utc_now()}] run {args.run_id}: the ranks ended with exit code {code}", flush=True)
    _fail_if_unclaimed(ws, args.run_id, code)
    device_locks.release_inherited()
    try:
        from studio.train import runs

        runs.launch_next(ws)
    except Exception:  # the queue is retried on the next poll; this run's result stands
        traceback.print_exc()
    return code


def _fail_if_unclaimed(ws: Workspace, run_id: int, code: int) -> None:
    """The launcher could not start any rank (a missing package, a bad config): say so on the run."""
    now = utc_now()
    message = (f"The training processes could not start (exit code {code}). See the run's log (`seed-studio runs "
               f"log {run_id}`), fix the cause, then resume the run.")
    with ws.write() as conn:
        conn.execute(
            "UPDATE run SET status = 'failed', pid = NULL, message = ?, finished_at = ?, updated_at = ? "
            "WHERE id = ? AND status = 'queued' AND pid = ?",
            (message, now, now, run_id, os.getpid()),
        )


if __name__ == "__main__":
    sys.exit(main())
