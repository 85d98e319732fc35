"""The training loop's link to the workspace: metrics, progress, stop requests and the overfitting alarm.

`StudioCallback` is a transformers `TrainerCallback`. On every log it writes run_metric rows (INSERT OR REPLACE:
a resumed run logs the steps after its checkpoint again) and the run row's step / max_steps / heartbeat_at /
message. Metric names (split in brackets): loss [train], loss [validation] (the eval loss), learning_rate,
tokens_per_second (real, non-padding tokens per second of training compute, evaluation excluded),
memory_bytes (peak: RSS high-water mark on CPU, torch.cuda.max_memory_allocated on GPU), epoch; for preference
runs also reward_accuracy, reward_margin, reward_chosen, reward_rejected [train and validation].

Stop: at the end of each step it reads run.status (at most once per second) and a process-wide stop event
(set by the worker's SIGTERM handler); either asks the Trainer to save a checkpoint now and end.

Overfitting alarm: validation loss rose `overfit_patience` evaluations in a row while the training loss fell
-> OVERFIT_MESSAGE in run.message (the Train tab offers Stop next to it). It clears once validation loss falls.

The class does not subclass `transformers.TrainerCallback`, so importing this module stays light (no torch):
the Trainer only calls `on_<event>` methods by name, and every event this class does not handle is a no-op.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from studio.workspace import Workspace, utc_now

STOP_POLL_SECONDS = 1.0

OVERFIT_MESSAGE = (
    "Validation loss has risen for {n} evaluations while training loss fell: the model is starting "
    "to memorise. Stop now, or let early stopping end it."
)


REWARD_METRICS = {
    "rewards/accuracies": "reward_accuracy",
    "rewards/margins": "reward_margin",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
}
"""What TRL's DPO and ORPO trainers log -> the run_metric names (share of pairs whose chosen answer gets the higher
implicit reward; mean reward gap; mean rewards of the chosen and the rejected answers)."""


def peak_memory_bytes(device: str) -> int:
    """Peak memory of this process: CUDA allocator peak on GPU, resident-set high-water mark on CPU."""
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # kB on Linux


@dataclass
class _Eval:
    step: int
    loss: float
    train_loss: float | None
    """Mean training loss logged since the previous evaluation."""


@dataclass
class OverfitWatch:
    """Validation loss rising `patience` evaluations in a row while training loss falls."""

    patience: int
    evals: list[_Eval] = field(default_factory=list)
    _train_losses: list[float] = field(default_factory=list)
    fired_at: list[int] = field(default_factory=list)
    """Steps at which the alarm was (re)raised."""

    def add_train(self, loss: float) -> None:
        self._train_losses.append(loss)

    def add_eval(self, step: int, loss: float) -> int:
        """Record an evaluation; returns how many evaluations in a row validation loss has risen (if alarming)."""
        train = sum(self._train_losses) / len(self._train_losses) if self._train_losses else None
        self._train_losses = []
        self.evals = [e for e in self.evals if e.step < step]  # a resumed run repeats steps
        self.evals.append(_Eval(step, loss, train))
        rises = 0
        for prev, cur in zip(self.evals[-2::-1], self.evals[::-1], strict=False):
            if cur.loss > prev.loss:
                rises += 1
            else:
                break
        if rises < max(1, self.patience):
            return 0
        first, last = self.evals[-1 - rises], self.evals[-1]
        if first.train_loss is None or last.train_loss is None or not last.train_loss < first.train_loss:
            return 0
        if not self.fired_at or self.fired_at[-1] != step:
            self.fired_at.append(step)
        return rises


def _agree_across_ranks(stop: bool) -> bool:
    """Under multi-GPU training every rank must stop at the same step, or the next collective hangs:
    any rank's stop (rank 0's database poll, a SIGTERM anywhere) stops them all."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) <= 1:
        return stop
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return stop
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    flag = torch.tensor([1 if stop else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _no_op(*args: Any, **kwargs: Any) -> None:
    return None


class StudioCallback:
    """Writes a run's progress into the workspace and turns stop requests into a checkpoint + stop."""

    def __init__(
        self,
        ws: Workspace,
        run_id: int,
        *,
        overfit_patience: int,
        device: str,
        stop_event: threading.Event | None = None,
        poll_seconds: float = STOP_POLL_SECONDS,
        writes: bool = True,
    ) -> None:
        self.ws = ws
        self.run_id = run_id
        self.device = device
        self.stop_event = stop_event or threading.Event()
        self.poll_seconds = poll_seconds
        self.writes = writes
        """False on ranks other than 0 of a multi-GPU run: they train, rank 0 reports."""
        self.watch = OverfitWatch(overfit_patience)
        self.recording = True
        """False during the worker's final evaluation: it must not overwrite the curve."""
        self.stop_requested = False
        self.alarm: str = ""
        self._last_poll = 0.0
        self._step_started: float | None = None
        self._compute_seconds = 0.0
        self._tokens_seen: float | None = None
        self._last_train_loss: float | None = None
        self._last_eval_loss: float | None = None

    def __getattr__(self, name: str) -> Any:
        # Every other Trainer event (on_init_end, on_evaluate, on_prediction_step, ...) does nothing here.
        if name.startswith("on_"):
            return _no_op
        raise AttributeError(name)

    # --- the Trainer's events --------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.writes:
            return
        self._reload_history(state.global_step)
        with self.ws.write() as conn:
            conn.execute(
                "UPDATE run SET step = ?, max_steps = ?, heartbeat_at = ?, updated_at = ? WHERE id = ?",
                (state.global_step, state.max_steps, utc_now(), utc_now(), self.run_id),
            )

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step_started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._step_started is not None:
            self._compute_seconds += time.perf_counter() - self._step_started
            self._step_started = None
        if _agree_across_ranks(self._stop_wanted()):
            self.stop_requested = True
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if not logs or not self.recording or not self.writes:
            return
        step = int(state.global_step)
        points: list[tuple[str, str, float]] = []
        if "loss" in logs:
            loss = float(logs["loss"])
            self._last_train_loss = loss
            self.watch.add_train(loss)
            points += [
                ("train", "loss", loss),
                ("train", "epoch", float(state.epoch or 0.0)),
                ("train", "memory_bytes", float(peak_memory_bytes(self.device))),
            ]
            if "learning_rate" in logs:
                points.append(("train", "learning_rate", float(logs["learning_rate"])))
            rate = self._tokens_per_second(logs.get("num_tokens"))
            if rate is not None:
                points.append(("train", "tokens_per_second", rate))
        for key, name in REWARD_METRICS.items():  # preference runs (DPO, ORPO)
            if key in logs:
                points.append(("train", name, float(logs[key])))
            if f"eval_{key}" in logs:
                points.append(("validation", name, float(logs[f"eval_{key}"])))
        if "eval_loss" in logs:
            loss = float(logs["eval_loss"])
            self._last_eval_loss = loss
            points.append(("validation", "loss", loss))
            rises = self.watch.add_eval(step, loss)
            self.alarm = OVERFIT_MESSAGE.format(n=rises) if rises else ""
        if points:
            self._write(step, int(state.max_steps), points)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from pathlib import Path

        if not self.writes:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        with self.ws.write() as conn:
            conn.execute(
                "UPDATE run SET last_checkpoint = ?, best_checkpoint = ?, heartbeat_at = ?, updated_at = ? "
                "WHERE id = ?",
                (str(checkpoint), state.best_model_checkpoint or "", utc_now(), utc_now(), self.run_id),
            )

    # --- helpers ---------------------------------------------------------------------------------------

    def progress_message(self, step: int, max_steps: int) -> str:
        if self.alarm:
            return self.alarm
        parts = [f"Step {step} of {max_steps}"]
        if self._last_train_loss is not None:
            parts.append(f"training loss {self._last_train_loss:.3f}")
        if self._last_eval_loss is not None:
            parts.append(f"validation loss {self._last_eval_loss:.3f}")
        return ", ".join(parts) + "."

    def _write(self, step: int, max_steps: int, points: list[tuple[str, str, float]]) -> None:
        now = utc_now()
        with self.ws.write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO run_metric(run_id, step, split, name, value, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(self.run_id, step, s, n, v, now) for s, n, v in points],
            )
            conn.execute(
                # While a stop is pending, the message keeps saying so (runs.request_stop wrote it).
                "UPDATE run SET step = ?, max_steps = ?, heartbeat_at = ?, updated_at = ?, "
                "message = CASE WHEN status = 'stopping' THEN message ELSE ? END WHERE id = ?",
                (step, max_steps, now, now, self.progress_message(step, max_steps), self.run_id),
            )

    def _tokens_per_second(self, num_tokens: float | None) -> float | None:
        # TRL logs the running total of real tokens (attention-mask ones, or the flattened length when
        # padding-free); the rate is its growth over the training compute time since the last log.
        if num_tokens is None:
            return None
        previous = self._tokens_seen
        self._tokens_seen = float(num_tokens)
        seconds, self._compute_seconds = self._compute_seconds, 0.0
        if previous is None or num_tokens < previous:  # first log, or a fresh trainer after resume
            previous = 0.0
        if seconds <= 0:
            return None
        return (float(num_tokens) - previous) / seconds

    def _stop_wanted(self) -> bool:
        if self.stop_event.is_set():
            return True
        if not self.writes:
            return False  # rank 0 polls the database; _agree_across_ranks shares its answer
        now = time.monotonic()
        if now - self._last_poll < self.poll_seconds:
            return False
        self._last_poll = now
        with self.ws.read() as conn:
            row = conn.execute("SELECT status FROM run WHERE id = ?", (self.run_id,)).fetchone()
        return row is not None and row["status"] == "stopping"

    def _reload_history(self, upto_step: int) -> None:
        """After a resume, the alarm keeps counting from the evaluations already logged."""
        if upto_step <= 0:
            return
        with self.ws.read() as conn:
            rows = conn.execute(
                "SELECT step, split, value FROM run_metric WHERE run_id = ? AND name = 'loss' "
                "AND step <= ? ORDER BY step, split",
                (self.run_id, upto_step),
            ).fetchall()
        for r in rows:
            if r["split"] == "train":
                self.watch.add_train(float(r["value"]))
                self._last_train_loss = float(r["value"])
            elif r["split"] == "validation":
                self.watch.add_eval(int(r["step"]), float(r["value"]))
                self._last_eval_loss = float(r["value"])
