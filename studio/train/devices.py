"""Where a run trains: the devices this machine has, a run's device list, and the command that launches it.

A run's `device` column lists one entry per training process:

    'cpu' or 'cuda:1'          one process, as always (the worker itself)
    'cuda:0,cuda:1'            two GPUs, data parallel: one process per GPU
    'cpu,cpu'                  two processes on the CPU, data parallel over gloo (how the multi-GPU path is
                               tested without a GPU; on a many-core machine it can also pay)

Several entries launch `python -m studio.train.launch RUN_ID` (see studio/train/launch.py), which holds the
devices' machine-wide locks and runs the worker under torchrun (DDP) or `accelerate launch` with a shipped
DeepSpeed config (ZeRO-2/ZeRO-3, full fine-tuning that does not fit one GPU: `pick_strategy`). Every rank trains;
rank 0 alone writes the run row, metrics, checkpoints and the adapter (studio/train/worker.py).

GPUs are read with `nvidia-smi` (no torch import: the Train tab shows them as the page loads), honouring
CUDA_VISIBLE_DEVICES; 'cuda:N' is the N-th visible GPU, as torch numbers them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import TrainError

ACCELERATE_DIR = Path(__file__).resolve().parent / "accelerate"
STRATEGIES = ("single", "ddp", "zero2", "zero3")
"""How a run spreads over its devices: one process; data parallel (DDP, every rank a full copy); DeepSpeed
ZeRO-2 (optimizer state and gradients sharded); ZeRO-3 (weights sharded too)."""


@dataclass(frozen=True)
class Gpu:
    index: int
    """As torch numbers it (after CUDA_VISIBLE_DEVICES)."""
    physical: str
    """What CUDA_VISIBLE_DEVICES must say to show this GPU to a child process."""
    name: str
    memory_bytes: int
    free_bytes: int

    @property
    def key(self) -> str:
        return f"cuda:{self.index}"

    def label(self) -> str:
        gib = 1024**3
        # "GPU 0" as people say it (nvidia-smi's word); the key cuda:0 stays the value behind the label.
        return (f"GPU {self.index} · {self.name} · {self.memory_bytes / gib:.0f} GB, "
                f"{self.free_bytes / gib:.1f} GB free")


def visible_gpus() -> list[Gpu]:
    """The GPUs a training process here would see (nvidia-smi; [] without a driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    rows: dict[str, tuple[str, int, int]] = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            try:
                rows[parts[0]] = (parts[1], int(float(parts[2])) * 1024**2, int(float(parts[3])) * 1024**2)
            except ValueError:
                continue
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    order = list(rows) if visible is None else [v.strip() for v in visible.split(",") if v.strip() in rows]
    return [Gpu(i, physical, *rows[physical]) for i, physical in enumerate(order)]


def parse(text: str | None, gpus: list[Gpu] | None = None) -> tuple[str, ...]:
    """A device list from what a person typed: 'cpu', 'cuda:0', 'cuda' (= cuda:0), '0,1' (GPU numbers),
    'cuda:0,cuda:1', 'all' (every visible GPU, else the CPU), 'cpu,cpu' or 'cpu*2' (processes on the CPU).
    Empty: the default device (runs.default_device). TrainError, saying what to type, for anything else."""
    from studio.train.runs import default_device

    raw = (text or "").strip().lower().replace(" ", "")
    if not raw:
        return (default_device(),)
    if raw == "all":
        found = visible_gpus() if gpus is None else gpus
        return tuple(g.key for g in found) or ("cpu",)
    entries: list[str] = []
    for part in raw.split(","):
        if not part:
            continue
        name, _, times = part.partition("*")
        if times and not (times.isdigit() and 1 <= int(times) <= 64):
            raise TrainError(f"'{part}' is not a device count: write cpu*2 for two processes on the CPU.")
        if name.isdigit():
            name = f"cuda:{name}"
        elif name == "cuda":
            name = "cuda:0"
        if name != "cpu" and not (name.startswith("cuda:") and name[5:].isdigit()):
            raise TrainError(
                f"'{part}' is not a device. Write cpu, cuda:0, 0,1 (GPU numbers), cuda:0,cuda:1 or all."
            )
        entries.extend([name] * (int(times) if times else 1))
    if not entries:
        return (default_device(),)
    kinds = {e.split(":")[0] for e in entries}
    if len(kinds) > 1:
        raise TrainError("A run trains on GPUs or on the CPU, not both: pick GPUs only, or cpu.")
    gpu_entries = [e for e in entries if e != "cpu"]
    if len(set(gpu_entries)) != len(gpu_entries):
        raise TrainError("Each GPU can be picked once: one training process per GPU.")
    if gpu_entries and gpus is not None:
        known = {g.key for g in gpus}
        missing = [e for e in gpu_entries if e not in known]
        if missing:
            seen = ", ".join(sorted(known)) or "none"
            raise TrainError(f"There is no GPU {', '.join(missing)} on this machine (visible GPUs: {seen}).")
    return tuple(sorted(entries, key=lambda e: (e == "cpu", int(e[5:]) if e != "cpu" else 0)))


def text(entries: tuple[str, ...] | list[str]) -> str:
    """What the run's device column holds: 'cuda:0,cuda:1'."""
    return ",".join(entries)


def entries_of(device: str | None) -> tuple[str, ...]:
    """The run column back into entries ('cuda' is cuda:0: a worker of an older version wrote it so)."""
    out = []
    for part in (device or "cpu").split(","):
        part = part.strip().lower()
        if part:
            out.append("cuda:0" if part == "cuda" else part)
    return tuple(out) or ("cpu",)


def lock_keys(entries: tuple[str, ...]) -> list[str]:
    """The machine-wide locks a run takes: each GPU once; the CPU once, however many processes it runs."""
    return sorted(set(entries))


def overlap(a: str | None, b: str | None) -> bool:
    """Whether two runs' device columns share a device (then they queue one after the other)."""
    return bool(set(entries_of(a)) & set(entries_of(b)))


def describe(entries: tuple[str, ...]) -> str:
    if len(entries) == 1:
        return "the CPU" if entries[0] == "cpu" else f"GPU {entries[0].removeprefix('cuda:')}"
    if entries[0] == "cpu":
        return f"{len(entries)} processes on the CPU"
    return f"{len(entries)} GPUs ({', '.join(e.removeprefix('cuda:') for e in entries)})"


# --- several devices: how to spread the run, and the command ------------------------------------------


def pick_strategy(entries: tuple[str, ...], method: str, breakdown: dict[str, int] | None = None,
                  free_bytes: int | None = None) -> str:
    """'single' for one device. Several: LoRA and QLoRA always DDP (the adapter and its optimizer state are
    small; each GPU holds the base model). Full fine-tuning: DDP when a whole copy with its training state fits
    the smallest GPU's free memory, else ZeRO-2 (state sharded), else ZeRO-3 (weights sharded too). The
    breakdown is the estimate's memory parts per device (studio.train.estimate)."""
    if len(entries) == 1:
        return "single"
    if method != "full" or entries[0] == "cpu" or not breakdown or not free_bytes:
        return "ddp"
    n = len(entries)
    rest = sum(v for k, v in breakdown.items() if k not in ("weights", "training_state"))
    weights, state = breakdown.get("weights", 0), breakdown.get("training_state", 0)
    budget = free_bytes * 0.9
    if weights + state + rest <= budget:
        return "ddp"
    if weights + state / n + rest <= budget:
        return "zero2"
    return "zero3"


def free_port() -> int:
    """A TCP port nobody listens on now (for accelerate's rendezvous; torchrun --standalone finds its own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_command(run_id: int, entries: tuple[str, ...], strategy: str, *, nnodes: int = 1, node_rank: int = 0,
                   master_addr: str = "", master_port: int | None = None) -> list[str]:
    """The command that trains `run_id` on several devices of this machine (nnodes > 1: the same worker on
    every node, started by hand on each with its node rank and the first node's address)."""
    n = len(entries)
    worker = ["-m", "studio.train.worker", str(run_id)]
    if strategy == "ddp":
        rendezvous = (["--standalone"] if nnodes == 1 else
                      ["--nnodes", str(nnodes), "--node_rank", str(node_rank), "--master_addr", master_addr,
                       "--master_port", str(master_port or 29500)])
        return [sys.executable, "-m", "torch.distributed.run", *rendezvous, "--nproc_per_node", str(n), *worker]
    if strategy in ("zero2", "zero3"):
        port = master_port or free_port()
        nodes = ([] if nnodes == 1 else
                 ["--num_machines", str(nnodes), "--machine_rank", str(node_rank), "--main_process_ip", master_addr])
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ACCELERATE_DIR / f"{strategy}.yaml"), "--num_processes", str(n * nnodes), *nodes,
                "--main_process_port", str(port), *worker]
    raise TrainError(f"Unknown way to spread a run: {strategy!r} (one of {', '.join(STRATEGIES[1:])}).")


def child_env(entries: tuple[str, ...], gpus: list[Gpu] | None = None) -> dict[str, str]:
    """Environment for the training processes: only the picked GPUs visible (so rank r uses cuda:r), or none
    on the CPU."""
    if entries[0] == "cpu":
        return {"CUDA_VISIBLE_DEVICES": "", "STUDIO_TRAIN_DEVICE": "cpu"}
    known = {g.key: g.physical for g in (visible_gpus() if gpus is None else gpus)}
    physical = [known.get(e, e[5:]) for e in entries]
    return {"CUDA_VISIBLE_DEVICES": ",".join(physical)}


@dataclass(frozen=True)
class Target:
    """What the estimate needs to know of the picked devices (studio.train.estimate.estimate's arguments)."""

    device: str
    """'cuda' or 'cpu'."""
    devices: int
    """GPUs, or processes on the CPU (cpu*2)."""
    free_memory_bytes: int | None
    """The smallest free memory among the picked GPUs; None on the CPU (the estimate reads /proc/meminfo)."""
    device_name: str = ""

    def estimate_kwargs(self) -> dict[str, Any]:
        """The arguments of studio.train.estimate.estimate that say where the run trains."""
        return {"device": self.device, "devices": self.devices, "free_memory_bytes": self.free_memory_bytes,
                "detect_free_memory": self.device == "cpu", "device_name": self.device_name}


def estimate_target(entries: tuple[str, ...], gpus: list[Gpu] | None = None) -> Target:
    """The estimate's view of a device list: the real GPUs' free memory and name where nvidia-smi tells them."""
    if entries[0] == "cpu":
        return Target("cpu", len(entries), None)  # processes share the CPU's RAM and cores (the estimate knows)
    found = {g.key: g for g in (visible_gpus() if gpus is None else gpus)}
    picked = [found[e] for e in entries if e in found]
    free = min((g.free_bytes for g in picked), default=None)
    return Target("cuda", len(entries), free, picked[0].name if picked else "")


def cpu_label() -> str:
    """The CPU as the Train tab offers it: cores and free memory, read without torch."""
    from studio.train.estimate import format_bytes, free_memory

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return f"This computer's processor (CPU) · {cores} cores, {format_bytes(free_memory('cpu'))} of memory free"
