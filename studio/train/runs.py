"""Training runs as queued jobs, each trained in its own OS process (`python -m studio.train.worker RUN_ID`).

    run = create_run(ws, project_id, dataset_version_id=v.id, base_model_ref=ref, config=TrainConfig())
    run = start(ws, run.id)            # launches the worker now, or leaves it queued behind another run
    request_stop(ws, run.id); resume(ws, run.id)

Statuses (the run row is the truth for the UI, the CLI and the worker):

    queued ──start──▶ running ──▶ done | failed
       │                 │ request_stop
       │                 ▼
       │              stopping ──(worker saves a checkpoint)──▶ stopped
       └─request_stop──────────────────────────────────────────▶ stopped
    running/stopping whose process vanished (kill -9, crash, reboot) ──reconcile──▶ interrupted
    stopped | interrupted | failed ──resume──▶ queued ──▶ running (from the newest checkpoint)

Queue: one run per device at a time. A queued row whose `pid` is set is being launched (the worker has
not claimed it yet): it holds the device like a running one, so two callers cannot start two workers.
The launch is claimed with a conditional UPDATE inside a write transaction (BEGIN IMMEDIATE), which
SQLite serialises across threads and processes. `launch_next` starts the oldest queued run of each free
device; the worker calls it when it ends, the UI on start and poll, and `reconcile` when it finds a dead run.
Across workspaces (each has its own database) a launch also takes the device's machine-wide lock
(studio.train.device_locks) and hands it to the worker; a run whose device another workspace holds stays
queued with no pid and a message naming the holder, and the next poll (page or CLI) tries again.

Device: an explicit `device` argument, else $STUDIO_TRAIN_DEVICE, else 'cuda:0' when a GPU is visible
($CUDA_VISIBLE_DEVICES names one, or the NVIDIA driver lists one under /proc), else 'cpu'. torch is not
imported to find out: this module stays light (the web app imports it at start). The argument may name several
devices ('cuda:0,cuda:1', 'all', 'cpu,cpu': studio.train.devices); the run then holds all of them, queues behind
any run that shares one, and is launched through studio.train.launch (torchrun or accelerate, one rank each).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio.errors import DatasetVersionError, TrainError
from studio.processes import pid_alive
from studio.train import device_locks, devices
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now

STATUSES = ("queued", "running", "stopping", "stopped", "done", "failed", "interrupted")
ACTIVE = ("running", "stopping")
RESUMABLE = ("stopped", "interrupted", "failed")
ENDED = ("done", "stopped", "failed", "interrupted")

MIN_TRAIN_ROWS = 4
MIN_VALIDATION_ROWS = 1
FULL_MAX_PARAMS = 1_500_000_000
"""Full fine-tuning keeps weights, gradients and optimizer state of every parameter: above this it does
not fit the machines the studio targets; LoRA/QLoRA do."""

# Architectures whose projections are transformers' Conv1D, not nn.Linear: bitsandbytes cannot quantize them.
CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer"})

CHECKPOINTS_DIRNAME = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
LOG_NAME = "train.log"

# Metric names the worker writes (studio/train/callbacks.py): split 'train' or 'validation'.
LOSS = "loss"
TOKENS_PER_SECOND = "tokens_per_second"
VALIDATION_SPLITS = ("validation", "eval")

# --------------------------------------------------------------------------------------------- the Run


@dataclass(frozen=True)
class Run:
    id: int
    project_id: int
    dataset_version_id: int | None
    base_model_ref: str
    method: str
    config: dict[str, Any]
    status: str
    pid: int | None
    output_dir: str
    last_checkpoint: str
    created_at: str
    updated_at: str
    name: str
    device: str
    message: str
    log_path: str
    step: int
    max_steps: int
    best_checkpoint: str
    started_at: str
    heartbeat_at: str
    finished_at: str
    provenance: dict[str, Any]
    queue_position: int | None = None
    """1 = next to start on its device; None when not waiting in the queue."""
    tokens_per_second: float | None = None
    seconds_per_step: float | None = None
    """Measured since the last (re)start, from the times the worker logged its metrics."""
    train_loss: float | None = None
    validation_loss: float | None = None
    best_validation_loss: float | None = None
    overfitting: bool = False
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict, repr=False, compare=False)
    rewards: dict[str, list[tuple[int, float]]] = field(default_factory=dict, repr=False, compare=False)
    """Preference runs: "reward_accuracy" / "reward_margin" -> {"train" | "validation": [(step, value)]} flattened
    as "reward_accuracy:validation" keys; empty for runs that learn from examples."""

    @property
    def title(self) -> str:
        return self.name or f"Run {self.id}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def launching(self) -> bool:
        """Queued and being launched: the worker process exists but has not claimed the run yet."""
        return self.status == "queued" and self.pid is not None

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.active or not self.seconds_per_step or self.max_steps <= 0:
            return None
        return max(0, self.max_steps - self.step) * self.seconds_per_step

    def progress_text(self) -> str:
        """`step 12 / 40 · 1,830 tokens/s · about 2 min left` (plain words for the UI and the CLI)."""
        if self.status == "queued":
            if self.launching:
                return "starting…"
            return (
                f"queued (number {self.queue_position} in line on {self.device})" if self.queue_position else "queued"
            )
        parts = [f"step {self.step} / {self.max_steps}" if self.max_steps else f"step {self.step}"]
        if self.active and self.tokens_per_second:
            parts.append(f"{self.tokens_per_second:,.0f} tokens/s")
        eta = self.eta_seconds
        if eta is not None:
            parts.append(f"about {_duration(eta)} left")
        if self.status == "stopping":
            parts.append("stopping (saving a checkpoint)")
        elif not self.active:
            parts.append(self.status)
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["curves"] = {k: [list(p) for p in v] for k, v in self.curves.items()}
        data["rewards"] = {k: [list(p) for p in v] for k, v in self.rewards.items()}
        data.update(
            title=self.title,
            eta_seconds=self.eta_seconds,
            progress=self.progress_text(),
            resumable=self.resumable,
            launching=self.launching,
        )
        return data


def _duration(seconds: float) -> str:
    from studio.jobs import format_duration

    return format_duration(seconds)


# ----------------------------------------------------------------------------------------- create a run


def create_run(
    ws: Workspace,
    project_id: int,
    *,
    dataset_version_id: int,
    base_model_ref: str,
    config: TrainConfig,
    name: str = "",
    device: str | None = None,
) -> Run:
    """Check everything, then write a `queued` run row (it does not start; call `start`).

    Refuses with TrainError (or ModelRefError for a model reference that means nothing) before anything
    is written: the version must be this project's with >= 4 train and >= 1 validation rows, the base
    model must resolve to a chat model, the method must be usable with it, and the settings must pass
    `config.check()`."""
    from studio.workspace.projects import get_project

    project = get_project(ws, project_id)
    version = _check_version(ws, project_id, dataset_version_id)
    info = _check_model(ws, base_model_ref)
    config.check()
    _check_method(ws, config.method, info)
    train_rows = version.splits.get("train", 0)
    if config.learns_preferences:
        train_rows = _check_pairs(version, config)
        from studio.train.preference import parent_adapter

        parent_adapter(ws, project_id, config, info.ref)
    elif config.start_from_run:
        raise TrainError("'Start from run' continues an adapter with preference pairs (DPO or ORPO); for learning "
                         "from examples set it to 0 and start from the base model.")
    # GPU numbers are checked against nvidia-smi's list where there is one (without it they cannot be told).
    entries = devices.parse(device, devices.visible_gpus() or None)
    if entries[0] == "cpu" and space_without_gpu(ws):
        raise TrainError(SPACE_NO_GPU)
    device = devices.text(entries)
    clean_name = " ".join((name or "").split())
    if len(clean_name) > 80:
        raise TrainError(
            f"Run names can be at most 80 characters; this one has {len(clean_name)}. Pick a shorter name."
        )

    provenance = {
        "project": {"id": project.id, "name": project.name},
        "dataset_version": {"id": version.id, "name": version.name, "splits": version.splits},
        "base_model": {"ref": info.ref, "kind": info.kind, "title": info.title},
        "launch": _launch_plan(ws, info.ref, config, entries, train_rows),
    }
    if config.learns_preferences:
        provenance["objective"] = {"name": config.objective, "pairs": version.stats.get("preferences", {}),
                                   "start_from_run": config.start_from_run or None}
    now = utc_now()
    with ws.write() as conn:
        run_id = int(
            conn.execute(
                "INSERT INTO run(project_id, dataset_version_id, base_model_ref, method, config, status, name, "
                "device, message, max_steps, provenance, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (
                    project_id,
                    version.id,
                    info.ref,
                    config.method,
                    json.dumps(config.to_dict()),
                    clean_name,
                    device,
                    "Queued.",
                    config.total_steps(train_rows, len(entries)),
                    json.dumps(provenance),
                    now,
                    now,
                ),
            ).lastrowid
        )
        output_dir = ws.runs_dir / str(run_id)
        conn.execute(
            "UPDATE run SET output_dir=?, log_path=? WHERE id=?", (str(output_dir), str(output_dir / LOG_NAME), run_id)
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    return get_run(ws, run_id)


def _launch_plan(ws: Workspace, ref: str, config: TrainConfig, entries: tuple[str, ...], rows: int) -> dict[str, Any]:
    """How the run spreads over its devices (studio.train.devices.pick_strategy), decided once, at creation."""
    breakdown, free = None, None
    if len(entries) > 1 and entries[0] != "cpu" and config.method == "full":
        from studio.train.estimate import estimate

        target = devices.estimate_target(entries)
        free = target.free_memory_bytes
        with contextlib.suppress(TrainError):
            breakdown = estimate(config, model_ref=ref, models_dir=ws.models_dir, rows=rows,
                                 mean_tokens=config.max_seq_length / 2, **target.estimate_kwargs()).breakdown
    return {"devices": list(entries), "processes": len(entries),
            "strategy": devices.pick_strategy(entries, config.method, breakdown, free)}


def _check_version(ws: Workspace, project_id: int, version_id: int) -> Any:
    from studio.data.versions import get_version_by_id

    try:
        version = get_version_by_id(ws, int(version_id))
    except (DatasetVersionError, TypeError, ValueError):
        raise TrainError(
            f"There is no dataset version #{version_id} in this workspace. Freeze a dataset "
            "version in the Dataset tab (or `seed-studio dataset freeze`) and pick it."
        ) from None
    if version.project_id != project_id:
        raise TrainError(
            f"Dataset version {version.name} (#{version.id}) belongs to another project. Pick "
            "one of this project's versions."
        )
    train, validation = version.splits.get("train", 0), version.splits.get("validation", 0)
    if train < MIN_TRAIN_ROWS:
        raise TrainError(
            f"Dataset version {version.name} has {train} training rows; training needs at least "
            f"{MIN_TRAIN_ROWS}. Freeze a dataset version with more seeds or accepted synthetic "
            "rows."
        )
    if validation < MIN_VALIDATION_ROWS:
        raise TrainError(
            f"Dataset version {version.name} has no validation rows, so nobody could tell whether "
            "training helps. Freeze a dataset version with more seeds (or a larger validation "
            "share)."
        )
    return version


def _check_pairs(version: Any, config: TrainConfig) -> int:
    """The train pairs of a version a preference run needs (TrainError when there are too few)."""
    from studio.train.preference import MIN_TRAIN_PAIRS

    pairs = (version.stats.get("preferences") or {}).get("sizes", {}).get("train", 0)
    if pairs < MIN_TRAIN_PAIRS:
        have = "no preference pairs" if not version.stats.get("preferences") else f"{pairs} preference pairs"
        raise TrainError(
            f"Dataset version {version.name} has {have} to train on; {config.objective.upper()} needs at least "
            f"{MIN_TRAIN_PAIRS}. Freeze a version with 'Add preference pairs' on, after reviewing rows (kept and "
            "rejected answers to the same prompt) or voting in Compare's blind A/B test."
        )
    return int(pairs)


def _check_model(ws: Workspace, ref: str) -> Any:
    from studio.models.registry import resolve

    info = resolve(ref, ws.models_dir)  # ModelRefError carries its own plain message
    if info.role != "chat":
        raise TrainError(
            f"{info.title} is an embedding model; training needs a chat (causal language) model, "
            "such as the embedded SmolLM2."
        )
    if info.kind == "local" and not (Path(info.location) / "config.json").is_file():
        raise TrainError(
            f"{info.title} is a LoRA adapter, not a base model. Train on its base model "
            "instead (its adapter_config.json names it)."
        )
    if not info.ready and info.kind != "hub":  # a Hub model is downloaded when the worker starts
        raise TrainError(f"The base model {info.title} cannot be used yet: {info.status}. {info.detail}")
    return info


def _check_method(ws: Workspace, method: str, info: Any) -> None:
    config = _model_config(info)
    if method == "qlora":
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainError(
                "QLoRA needs the bitsandbytes package, which is not installed. Install it "
                "(pip install bitsandbytes) or choose LoRA."
            )
        model_type = str((config or {}).get("model_type", "")).lower()
        if model_type in CONV1D_MODEL_TYPES:
            raise TrainError(
                f"QLoRA cannot quantize {info.title}: its layers ({model_type}) are not the linear "
                "layers bitsandbytes handles. Choose LoRA for this model."
            )
    if method == "full":
        params = _param_count(ws, info)
        if params is not None and params > FULL_MAX_PARAMS:
            raise TrainError(
                f"Full fine-tuning is offered for models up to 1.5B parameters; {info.title} has "
                f"about {params / 1e9:.1f}B. Choose LoRA or QLoRA, which train a small adapter "
                "and need far less memory."
            )


def _model_config(info: Any) -> dict[str, Any] | None:
    if not info.location:
        return None
    path = Path(info.location) / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _param_count(ws: Workspace, info: Any) -> int | None:
    from studio.train.estimate import model_size  # reads config.json only

    try:
        return model_size(info.ref, ws.models_dir).params
    except TrainError:  # size unknown (a Hub model not downloaded yet): the worker will say more
        return None


SPACE_NO_GPU = ("Training is switched off on this Space: it has no GPU, and a shared Space's CPU would be busy "
                "for hours. Duplicate the Space and pick GPU hardware in its settings, or run the studio on your "
                "own machine (`make run`). Everything else here works: seeds, generation, review, datasets, "
                "comparing runs and publishing.")


def space_without_gpu(ws: Workspace) -> bool:
    """On a Hugging Face Space (SPACE_ID) with no GPU; SEED_STUDIO_ALLOW_CPU_TRAINING=1 lets CPU train anyway."""
    if not ws.settings.on_space or os.environ.get("SEED_STUDIO_ALLOW_CPU_TRAINING", "").strip() == "1":
        return False
    return default_device() == "cpu"


def default_device() -> str:
    """Where runs train when nobody says: see the module docstring. No torch import."""
    explicit = os.environ.get("STUDIO_TRAIN_DEVICE", "").strip()
    if explicit:
        return explicit
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return "cuda:0" if visible.strip() not in ("", "-1", "none", "NoDevFiles") else "cpu"
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return "cuda:0" if gpus.is_dir() and any(gpus.iterdir()) else "cpu"
    except OSError:
        return "cpu"


# ---------------------------------------------------------------------------------------- read runs


def get_run(ws: Workspace, run_id: int) -> Run:
    reconcile(ws)
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM run WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise TrainError(f"There is no run #{run_id} in this workspace. `seed-studio runs list` lists them.")
        return _run(conn, row)


def list_runs(ws: Workspace, project_id: int | None = None) -> list[Run]:
    """The project's runs (every run with None), newest first."""
    reconcile(ws)
    sql, args = "SELECT * FROM run", []
    if project_id is not None:
        sql, args = sql + " WHERE project_id = ?", [project_id]
    with ws.read() as conn:
        return [_run(conn, r) for r in conn.execute(sql + " ORDER BY id DESC", args).fetchall()]


def metrics(ws: Workspace, run_id: int, name: str | None = None) -> list[tuple[int, str, str, float]]:
    """Every logged point (step, split, name, value), in step order."""
    sql, args = "SELECT step, split, name, value FROM run_metric WHERE run_id = ?", [run_id]
    if name is not None:
        sql, args = sql + " AND name = ?", [*args, name]
    with ws.read() as conn:
        rows = conn.execute(sql + " ORDER BY step, split, name", args).fetchall()
    return [(int(r["step"]), r["split"], r["name"], float(r["value"])) for r in rows]


def curves(ws: Workspace, run_id: int) -> dict[str, list[tuple[int, float]]]:
    """Loss curves: {"train": [(step, loss)], "validation": [(step, loss)]}."""
    with ws.read() as conn:
        return _curves(conn, run_id)


def _curves(conn: sqlite3.Connection, run_id: int) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {"train": [], "validation": []}
    for r in conn.execute(
        "SELECT step, split, value FROM run_metric WHERE run_id = ? AND name = ? ORDER BY step", (run_id, LOSS)
    ):
        key = "validation" if r["split"] in VALIDATION_SPLITS else r["split"]
        if key in out:
            out[key].append((int(r["step"]), float(r["value"])))
    return out


def detect_overfitting(train: list[tuple[int, float]], validation: list[tuple[int, float]], patience: int) -> bool:
    """Validation loss rose `patience` evaluations in a row while the training loss fell: the model memorises
    instead of learning. The worker's alarm (callbacks.OverfitWatch) decides, replayed on the logged curves,
    so the Run's flag and the worker's message always agree."""
    from studio.train.callbacks import OverfitWatch  # light: no torch

    watch = OverfitWatch(patience)
    rises = 0
    # At one step the Trainer logs the training loss before it evaluates.
    for step, kind, value in sorted([(s, 0, v) for s, v in train] + [(s, 1, v) for s, v in validation]):
        if kind == 0:
            watch.add_train(value)
        else:
            rises = watch.add_eval(step, value)
    return rises > 0


def _run(conn: sqlite3.Connection, r: sqlite3.Row) -> Run:
    run_id = r["id"]
    config = _json(r["config"])
    cur = _curves(conn, run_id)
    tps = conn.execute(
        "SELECT value FROM run_metric WHERE run_id = ? AND name = ? ORDER BY step DESC LIMIT 1",
        (run_id, TOKENS_PER_SECOND),
    ).fetchone()
    position = None
    if r["status"] == "queued" and r["pid"] is None:
        older = conn.execute(
            "SELECT device FROM run WHERE status = 'queued' AND pid IS NULL AND id < ?", (run_id,)
        ).fetchall()
        position = 1 + sum(devices.overlap(o["device"], r["device"]) for o in older)
    validation = [v for _, v in cur["validation"]]
    try:
        patience = int(config.get("overfit_patience", TrainConfig().overfit_patience))
    except (TypeError, ValueError):
        patience = TrainConfig().overfit_patience
    return Run(
        id=run_id,
        project_id=r["project_id"],
        dataset_version_id=r["dataset_version_id"],
        base_model_ref=r["base_model_ref"],
        method=r["method"],
        config=config,
        status=r["status"],
        pid=r["pid"],
        output_dir=r["output_dir"],
        last_checkpoint=r["last_checkpoint"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        name=r["name"],
        device=r["device"],
        message=r["message"],
        log_path=r["log_path"],
        step=r["step"],
        max_steps=r["max_steps"],
        best_checkpoint=r["best_checkpoint"],
        started_at=r["started_at"],
        heartbeat_at=r["heartbeat_at"],
        finished_at=r["finished_at"],
        provenance=_json(r["provenance"]),
        queue_position=position,
        tokens_per_second=float(tps["value"]) if tps else None,
        seconds_per_step=_seconds_per_step(conn, run_id, r["started_at"]),
        train_loss=cur["train"][-1][1] if cur["train"] else None,
        validation_loss=validation[-1] if validation else None,
        best_validation_loss=min(validation) if validation else None,
        overfitting=detect_overfitting(cur["train"], cur["validation"], patience),
        curves=cur,
        rewards=_rewards(conn, run_id),
    )


def _rewards(conn: sqlite3.Connection, run_id: int) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for r in conn.execute(
        "SELECT step, split, name, value FROM run_metric WHERE run_id = ? AND name IN ('reward_accuracy', "
        "'reward_margin') ORDER BY step", (run_id,)
    ):
        out.setdefault(f"{r['name']}:{r['split']}", []).append((int(r["step"]), float(r["value"])))
    return out


def _seconds_per_step(conn: sqlite3.Connection, run_id: int, started_at: str) -> float | None:
    # The worker logs training metrics as it goes; their times since the last (re)start give the pace
    # (a resumed run starts at its checkpoint's step, so the row's step alone would overstate it).
    if not started_at:
        return None
    row = conn.execute(
        "SELECT MIN(step) AS s0, MAX(step) AS s1, MIN(created_at) AS t0, MAX(created_at) AS t1 "
        "FROM run_metric WHERE run_id = ? AND split = 'train' AND created_at >= ?",
        (run_id, started_at),
    ).fetchone()
    if row is None or row["s0"] is None or row["s1"] <= row["s0"]:
        return None
    seconds = (_time(row["t1"]) - _time(row["t0"])).total_seconds()
    return seconds / (row["s1"] - row["s0"]) if seconds > 0 else None


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def latest_checkpoint(run: Run | str | Path) -> Path | None:
    """The newest complete checkpoint (output_dir/checkpoints/checkpoint-N) of a run (or of its output
    folder), or None.

    Complete = its trainer_state.json, which the Trainer writes last, is there and parses: a kill in the
    middle of saving leaves a folder without it, and resuming from that would fail."""
    output_dir = run.output_dir if isinstance(run, Run) else str(run)
    folder = Path(output_dir) / CHECKPOINTS_DIRNAME if output_dir else None
    if folder is None or not folder.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for child in folder.iterdir():
        suffix = child.name.removeprefix(CHECKPOINT_PREFIX)
        if child.is_dir() and child.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit():
            found.append((int(suffix), child))
    for _, child in sorted(found, reverse=True):
        try:
            json.loads((child / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return child
    return None


def checkpoint_step(path: Path | None) -> int | None:
    return int(path.name.removeprefix(CHECKPOINT_PREFIX)) if path is not None else None


# ----------------------------------------------------------------------------------------- lifecycle


def start(ws: Workspace, run_id: int) -> Run:
    """Launch the run's worker if its device is free; otherwise it stays queued (see `queue_position`).
    The queue is first come, first served: an older queued run on the same device goes first."""
    run = get_run(ws, run_id)
    if run.status != "queued":
        hint = " Resume it instead." if run.resumable else ""
        raise TrainError(f"{run.title} is {run.status}; only a queued run can be started.{hint}")
    launch_next(ws, device=run.device)
    return get_run(ws, run_id)


def launch_next(ws: Workspace, device: str | None = None) -> list[Run]:
    """Start the oldest queued run of every free device (of `device` only, when given); return the runs
    launched. Safe to call from several processes at once: each launch is claimed in a write transaction."""
    _reconcile_rows(ws)
    with ws.read() as conn:
        rows = conn.execute(
            "SELECT id, device FROM run WHERE status = 'queued' AND pid IS NULL ORDER BY id"
        ).fetchall()
    # First come, first served per device: a queued run keeps its devices from newer runs, even when it
    # cannot start yet (a run on cuda:0,cuda:1 is not overtaken by one on cuda:1).
    taken: set[str] = set()
    candidates = []
    for r in rows:
        wanted = set(devices.entries_of(r["device"]))
        if wanted & taken:
            continue
        taken |= wanted
        if device is None or devices.overlap(device, r["device"]):
            candidates.append(r["id"])
    launched = [run_id for run_id in candidates if _launch(ws, run_id)]
    return [get_run(ws, run_id) for run_id in launched]


def _launch(ws: Workspace, run_id: int) -> bool:
    me = os.getpid()
    now = utc_now()
    with ws.write() as conn:
        row = conn.execute("SELECT * FROM run WHERE id = ?", (run_id,)).fetchone()
        if row is None or row["status"] != "queued" or row["pid"] is not None:
            return False
        active = conn.execute(
            "SELECT id, name, device FROM run WHERE id != ? AND (status IN ('running', 'stopping') OR "
            "(status = 'queued' AND pid IS NOT NULL)) ORDER BY id",
            (run_id,),
        ).fetchall()
        busy = next((a for a in active if devices.overlap(a["device"], row["device"])), None)
        if busy is not None:
            title = busy["name"] or f"run {busy['id']}"
            conn.execute(
                "UPDATE run SET message = ?, updated_at = ? WHERE id = ?",
                (f"Queued: waits for {title} to finish on {row['device']}.", now, run_id),
            )
            return False
        # Our own pid holds the device until the child exists (a concurrent reconcile sees a live pid).
        claimed = (
            conn.execute(
                "UPDATE run SET pid = ?, message = 'Starting the training process…', "
                "updated_at = ? WHERE id = ? AND status = 'queued' AND pid IS NULL",
                (me, now, run_id),
            ).rowcount
            == 1
        )
        output_dir, log_path, device = Path(row["output_dir"]), Path(row["log_path"]), row["device"]
    if not claimed:
        return False
    # Machine-wide: another workspace's run may hold a device (studio.train.device_locks).
    locks: list[device_locks.DeviceLock] = []
    for key in devices.lock_keys(devices.entries_of(device)):
        lock = device_locks.try_acquire(key, workspace=ws.home, run_id=run_id)
        if lock is None:
            for held in locks:
                held.close()
            other = device_locks.holder(key)
            who = other.describe() if other else "a run of another workspace"
            with ws.write() as conn:
                conn.execute(
                    "UPDATE run SET pid = NULL, message = ?, updated_at = ? WHERE id = ? AND status = 'queued' "
                    "AND pid = ?",
                    (f"Queued: waits for {who} to finish on {key}.", utc_now(), run_id, me),
                )
            return False
        locks.append(lock)
    try:
        pid = _spawn(ws, run_id, output_dir, log_path, device, locks)
        for lock in locks:
            device_locks.set_holder_pid(lock, pid)  # the queue's message names the worker, not this process
    except OSError as error:
        with ws.write() as conn:
            conn.execute(
                "UPDATE run SET status = 'failed', pid = NULL, message = ?, finished_at = ?, "
                "updated_at = ? WHERE id = ? AND pid = ?",
                (
                    f"The training process could not be started: {error}. Check the disk and the "
                    "Python environment, then resume the run.",
                    utc_now(),
                    utc_now(),
                    run_id,
                    me,
                ),
            )
        raise TrainError(f"The training process could not be started: {error}.") from None
    finally:
        for lock in locks:
            lock.close()  # the worker holds them now (or nobody, if it could not start)
    with ws.write() as conn:
        # The worker may have claimed the run already (status running, its own pid): then leave it be.
        handed_over = conn.execute(
            "UPDATE run SET pid = ?, updated_at = ? WHERE id = ? AND status = 'queued' AND pid = ?",
            (pid, utc_now(), run_id, me),
        ).rowcount
        stopped_meanwhile = not handed_over and conn.execute(
            "SELECT status FROM run WHERE id = ?", (run_id,)
        ).fetchone()["status"] == "stopped"
    if stopped_meanwhile:
        _terminate(pid, run_id)  # stopped while we launched it: the worker must not train it
    return True


def _spawn(ws: Workspace, run_id: int, output_dir: Path, log_path: Path, device: str,
           locks: list[device_locks.DeviceLock]) -> int:
    output_dir.mkdir(parents=True, exist_ok=True)
    entries = devices.entries_of(device)
    fds = tuple(lock.fd for lock in locks)
    # The worker opens this workspace and its model cache (a visitor's workspace shares the host's cache),
    # and holds the devices' machine-wide locks for as long as it lives. Only the picked GPUs are visible to
    # it, so cuda:1 alone trains on cuda:1, and rank r of several uses the r-th picked one.
    env = {**os.environ, "STUDIO_HOME": str(ws.home), "SEED_STUDIO_MODELS_DIR": str(ws.models_dir),
           "PYTHONUNBUFFERED": "1", device_locks.INHERITED_ENV: ",".join(map(str, fds)),
           **devices.child_env(entries)}
    if entries[0] == "cpu":
        # Threads spin-waiting at OpenMP barriers stall when another process takes the core: on a shared
        # 2-core machine a step took 3x longer than with passive waiting (bench/RESULTS.md, "busy machine").
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # The studio package may run from a checkout that is not installed: let `-m studio...` find it anyway.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    # Several devices: the launcher (studio.train.launch) runs the worker's ranks and keeps the locks.
    module = "studio.train.worker" if len(entries) == 1 else "studio.train.launch"
    with open(log_path, "ab") as log:
        log.write(f"\n=== {utc_now()} starting the worker for run {run_id} on {device} ===\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(run_id)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(ws.home),
            pass_fds=fds,
        )
    # Reap the child when it ends, so it does not linger as a zombie of a long-lived app process.
    threading.Thread(target=proc.wait, name=f"run-{run_id}-reaper", daemon=True).start()
    return proc.pid


def request_stop(ws: Workspace, run_id: int) -> Run:
    """A running run becomes `stopping` (its worker saves a checkpoint and ends `stopped`); a queued one
    is simply `stopped`. Asking again while it stops is harmless."""
    run = get_run(ws, run_id)
    now = utc_now()
    with ws.write() as conn:
        row = conn.execute("SELECT status, pid FROM run WHERE id = ?", (run_id,)).fetchone()
        status, launching = row["status"], row["pid"]
        if status == "running":
            conn.execute(
                "UPDATE run SET status = 'stopping', message = 'Stopping: saving a checkpoint…', "
                "updated_at = ? WHERE id = ?",
                (now, run_id),
            )
        elif status == "queued":
            conn.execute(
                "UPDATE run SET status = 'stopped', pid = NULL, message = 'Stopped before it started. "
                "Resume it to train.', finished_at = ?, updated_at = ? WHERE id = ?",
                (now, now, run_id),
            )
        elif status != "stopping":
            raise TrainError(f"{run.title} is {status}; there is nothing to stop.")
    if status == "queued" and launching is not None:
        # Its worker was launched but has not claimed the run yet. The worker may start from 'stopped' (to
        # resume), so end it: SIGTERM kills it before its claim, or makes it checkpoint and stop after.
        _terminate(launching, run_id)
    return get_run(ws, run_id)


def _terminate(pid: int, run_id: int) -> None:
    """SIGTERM the worker of `run_id` if `pid` is one (not a launcher's placeholder pid, not a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode(errors="replace").split("\0")
    except OSError:
        return
    if ("studio.train.worker" in args or "studio.train.launch" in args) and str(run_id) in args:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # The launched process leads its own session (start_new_session): the group is all its ranks.
            os.killpg(os.getpgid(pid), signal.SIGTERM)


def resume(ws: Workspace, run_id: int) -> Run:
    """A stopped, interrupted or failed run goes back in the queue and starts when its device is free; the
    worker continues from the newest complete checkpoint (or from the start when there is none)."""
    run = get_run(ws, run_id)
    if run.status == "queued":
        return start(ws, run_id)
    if not run.resumable:
        hint = " Start a new run to train more." if run.status == "done" else ""
        raise TrainError(
            f"{run.title} is {run.status}; only a stopped, interrupted or failed run can be resumed.{hint}"
        )
    step = checkpoint_step(latest_checkpoint(run))
    message = f"Queued to resume from step {step}." if step else "Queued to start again (no checkpoint yet)."
    with ws.write() as conn:
        changed = conn.execute(
            "UPDATE run SET status = 'queued', pid = NULL, message = ?, finished_at = '', "
            "updated_at = ? WHERE id = ? AND status IN ('stopped', 'interrupted', 'failed')",
            (message, utc_now(), run_id),
        ).rowcount
    if not changed:
        return resume(ws, run_id)  # its status changed meanwhile: answer for the new one
    return start(ws, run_id)


def reconcile(ws: Workspace) -> int:
    """Runs marked running or stopping whose process is gone become `interrupted` (a run that died while
    being launched becomes `failed`); the next queued run then starts. Returns how many changed."""
    changed = _reconcile_rows(ws)
    if changed:
        launch_next(ws)
    return changed


def _reconcile_rows(ws: Workspace) -> int:
    with ws.read() as conn:
        rows = conn.execute(
            "SELECT id, status, pid, output_dir FROM run WHERE status IN ('running', "
            "'stopping') OR (status = 'queued' AND pid IS NOT NULL)"
        ).fetchall()
    dead = [r for r in rows if not _alive(r["pid"])]
    if not dead:
        return 0
    changed = 0
    now = utc_now()
    with ws.write() as conn:
        for r in dead:
            if r["status"] == "queued":
                message = (
                    f"The training process ended before training began. See its log (`seed-studio runs "
                    f"log {r['id']}`), fix the cause, then resume the run."
                )
                cur = conn.execute(
                    "UPDATE run SET status = 'failed', message = ?, finished_at = ?, updated_at = ? "
                    "WHERE id = ? AND status = 'queued' AND pid = ?",
                    (message, now, now, r["id"], r["pid"]),
                )
            else:
                step = checkpoint_step(latest_checkpoint(r["output_dir"]))
                where = (
                    f"continue from the last checkpoint (step {step})"
                    if step
                    else "start again from the beginning (no checkpoint had been saved yet)"
                )
                message = f"The training process ended unexpectedly (killed or crashed). Resume to {where}."
                cur = conn.execute(
                    "UPDATE run SET status = 'interrupted', message = ?, finished_at = ?, "
                    "updated_at = ? WHERE id = ? AND status IN ('running', 'stopping') AND pid IS ?",
                    (message, now, now, r["id"], r["pid"]),
                )
            changed += cur.rowcount
    return changed


def _alive(pid: int | None) -> bool:
    if pid is not None and pid == os.getpid():
        return True  # we are launching it right now
    return pid_alive(pid)


__all__ = [
    "ACTIVE",
    "ENDED",
    "MIN_TRAIN_ROWS",
    "MIN_VALIDATION_ROWS",
    "RESUMABLE",
    "STATUSES",
    "Run",
    "checkpoint_step",
    "create_run",
    "curves",
    "default_device",
    "detect_overfitting",
    "get_run",
    "latest_checkpoint",
    "launch_next",
    "list_runs",
    "metrics",
    "reconcile",
    "request_stop",
    "resume",
    "start",
]
