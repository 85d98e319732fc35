"""Training on several devices: the multi-process path the Train tab and `seed-studio train --devices` take.

No GPU here, so the data-parallel run uses two processes on the CPU over gloo ('cpu,cpu'), launched exactly as
a two-GPU run is (runs.start -> studio.train.launch -> torchrun -> two workers); only the backend differs.
The DeepSpeed configs cannot run on a CPU (DeepSpeed needs a GPU): they are loaded with accelerate's own reader
and the launcher command is checked.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from studio.errors import TrainError
from studio.train import devices, runs, worker
from studio.workspace import Workspace
from tests.factories import project_with_seeds
from tests.test_train_runs import wait_for
from tests.test_train_worker import crafted_version, make_run, metric_points, seed_rows, tiny_config

TWO_GPUS = [devices.Gpu(0, "0", "NVIDIA H100", 80 * 1024**3, 79 * 1024**3),
            devices.Gpu(1, "3", "NVIDIA H100", 80 * 1024**3, 12 * 1024**3)]


# --- device lists, strategies and commands (no processes) ----------------------------------------------------


@pytest.mark.parametrize(("typed", "expected"), [
    ("cpu", ("cpu",)), ("cuda", ("cuda:0",)), ("1,0", ("cuda:0", "cuda:1")), ("cuda:1", ("cuda:1",)),
    ("all", ("cuda:0", "cuda:1")), ("cpu*2", ("cpu", "cpu")), ("cpu, cpu", ("cpu", "cpu")),
])
def test_device_lists_people_type(typed: str, expected: tuple[str, ...]) -> None:
    assert devices.parse(typed, TWO_GPUS) == expected


@pytest.mark.parametrize(("typed", "message"), [
    ("cuda:2", "There is no GPU cuda:2 on this machine (visible GPUs: cuda:0, cuda:1)."),
    ("0,0", "Each GPU can be picked once"),
    ("cpu,cuda:0", "GPUs or on the CPU, not both"),
    ("gpu0", "'gpu0' is not a device. Write cpu, cuda:0"),
    ("cpu*x", "write cpu*2 for two processes"),
])
def test_device_lists_that_make_no_sense_are_refused(typed: str, message: str) -> None:
    with pytest.raises(TrainError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        devices.parse(typed, TWO_GPUS)


def test_only_the_picked_gpus_are_shown_to_the_ranks() -> None:
    # cuda:1 is the machine's GPU 3 (CUDA_VISIBLE_DEVICES=0,3 for the studio): the child sees only that one.
    assert devices.child_env(("cuda:1",), TWO_GPUS) == {"CUDA_VISIBLE_DEVICES": "3"}
    assert devices.child_env(("cuda:0", "cuda:1"), TWO_GPUS) == {"CUDA_VISIBLE_DEVICES": "0,3"}
    assert devices.child_env(("cpu", "cpu"))["CUDA_VISIBLE_DEVICES"] == ""
    assert devices.lock_keys(("cpu", "cpu")) == ["cpu"] and devices.overlap("cuda:0,cuda:1", "cuda:1")
    assert not devices.overlap("cuda:0", "cuda:1") and devices.overlap("cuda", "cuda:0")


def test_gpus_are_read_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPU and no driver here: a stand-in `nvidia-smi` on PATH prints what the real one prints for this query
    # (CSV, no header, MiB), so the parsing and CUDA_VISIBLE_DEVICES handling are what is tested.
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nprintf '0, NVIDIA H100 80GB HBM3, 81559, 80200\\n1, NVIDIA H100 80GB HBM3, 81559, "
                   "1024\\n2, NVIDIA L4, 23034, 22000\\n'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = devices.visible_gpus()
    assert [(g.key, g.physical, g.name) for g in gpus] == [
        ("cuda:0", "0", "NVIDIA H100 80GB HBM3"), ("cuda:1", "1", "NVIDIA H100 80GB HBM3"),
        ("cuda:2", "2", "NVIDIA L4")]
    assert gpus[0].memory_bytes == 81559 * 1024**2 and gpus[1].free_bytes == 1024 * 1024**2
    assert gpus[2].label() == "GPU 2 · NVIDIA L4 · 22 GB, 21.5 GB free"
    assert devices.describe(("cuda:2",)) == "GPU 2" and devices.describe(("cuda:0", "cuda:1")) == "2 GPUs (0, 1)"
    target = devices.estimate_target(("cuda:0", "cuda:1"), gpus)
    assert (target.device, target.devices, target.free_memory_bytes) == ("cuda", 2, 1024 * 1024**2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")  # torch then numbers the L4 cuda:0
    assert [(g.key, g.physical) for g in devices.visible_gpus()] == [("cuda:0", "2"), ("cuda:1", "0")]
    assert devices.parse("all") == ("cuda:0", "cuda:1")


def test_strategy_follows_the_estimate() -> None:
    gib = 1024**3
    two = ("cuda:0", "cuda:1")
    assert devices.pick_strategy(("cuda:0",), "full") == "single"
    assert devices.pick_strategy(two, "qlora", {"weights": 90 * gib}, 10 * gib) == "ddp"  # adapters: always DDP
    fits = {"weights": 2 * gib, "training_state": 8 * gib, "activations": 2 * gib}
    assert devices.pick_strategy(two, "full", fits, 20 * gib) == "ddp"
    # 14 GB free: a whole copy with its state (12 GB + margin) does not fit, the state halved (8 GB) does.
    assert devices.pick_strategy(two, "full", {**fits, "activations": 3 * gib}, 14 * gib) == "zero2"
    big = {"weights": 14 * gib, "training_state": 56 * gib, "activations": 4 * gib}
    assert devices.pick_strategy(two, "full", big, 40 * gib) == "zero3"


def test_launcher_commands_and_shipped_configs() -> None:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    ddp = devices.launch_command(7, ("cuda:0", "cuda:1"), "ddp")
    assert ddp == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                   "-m", "studio.train.worker", "7"]
    for stage in ("zero2", "zero3"):
        cmd = devices.launch_command(7, ("cuda:0", "cuda:1", "cuda:2"), stage)
        assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
        config_file = cmd[cmd.index("--config_file") + 1]
        assert cmd[cmd.index("--num_processes") + 1] == "3" and cmd[-3:] == ["-m", "studio.train.worker", "7"]
        port = int(cmd[cmd.index("--main_process_port") + 1])
        assert 1024 < port < 65536
        config = load_config_from_file(config_file)  # accelerate's own reader: the file is what it expects
        assert config.distributed_type == DistributedType.DEEPSPEED
        assert config.deepspeed_config["zero_stage"] == int(stage[-1])
    assert load_config_from_file(str(devices.ACCELERATE_DIR / "ddp.yaml")).distributed_type == (
        DistributedType.MULTI_GPU)
    nodes = devices.launch_command(7, ("cuda:0", "cuda:1"), "ddp", nnodes=2, node_rank=1, master_addr="10.0.0.5")
    assert nodes[3:13] == ["--nnodes", "2", "--node_rank", "1", "--master_addr", "10.0.0.5", "--master_port",
                           "29500", "--nproc_per_node", "2"]
    with pytest.raises(TrainError, match="Unknown way"):
        devices.launch_command(7, ("cuda:0", "cuda:1"), "fsdp")


# --- a real data-parallel run: two processes on the CPU ---------------------------------------------------


def _adapter(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
def test_two_process_run_equals_one_process_and_stops_resumes_and_survives_kill(
    ws: Workspace, tiny_chat_model: Path, shared_seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchrun + gloo, through runs.start as the Train tab starts it: stop (checkpoint) -> resume -> kill -9 of
    rank 0 -> interrupted -> resume -> done; the curve has each step once; the adapter equals a one-process run
    on the same global batch (2 ranks x 2 examples = 1 x 4)."""
    # The suite sets a passive OpenMP policy for every process it starts (conftest); the workers must get it
    # from runs._spawn itself.
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    project_id = project_with_seeds(ws, shared_seeds, name="ddp")
    version_id = crafted_version(ws, project_id, seed_rows(shared_seeds, 16), seed_rows(shared_seeds, 4, skip=16))
    steps = 120  # a stop is polled once a second: it must land mid-run, however fast a tiny-model step is
    # 16 rows, none cut (the longest has 453 tokens): 4 whole global batches a pass, on either side.
    config = tiny_config(max_steps=steps, eval_every_steps=6, save_every_steps=6, learning_rate=1e-3,
                         max_seq_length=512)

    reference_id = make_run(ws, project_id, version_id, str(tiny_chat_model), config)
    assert worker.run(ws, reference_id).status == "done"

    run = runs.create_run(ws, project_id, dataset_version_id=version_id, base_model_ref=str(tiny_chat_model),
                          config=config.replace(per_device_batch_size=2), device="cpu*2", name="two ranks")
    assert run.device == "cpu,cpu" and run.max_steps == steps
    assert run.provenance["launch"] == {"devices": ["cpu", "cpu"], "processes": 2, "strategy": "ddp"}
    runs.start(ws, run.id)

    run = wait_for(ws, run.id, lambda r: r.status == "running" and r.step >= 1, what="training")
    # The launcher's environment reached the ranks: OpenMP threads wait passively on a shared CPU.
    environ = Path(f"/proc/{run.pid}/environ").read_bytes().split(b"\0")
    assert b"OMP_WAIT_POLICY=PASSIVE" in environ and b"WORLD_SIZE=2" in environ
    runs.request_stop(ws, run.id)
    run = wait_for(ws, run.id, lambda r: r.ended, what="stopped")
    assert run.status == "stopped", run.message
    stopped_at = runs.checkpoint_step(runs.latest_checkpoint(run))
    assert stopped_at == run.step and 1 <= stopped_at < steps

    run = runs.resume(ws, run.id)
    run = wait_for(ws, run.id, lambda r: r.status == "running" and r.step >= stopped_at + 2, what="training again")
    os.kill(run.pid, signal.SIGKILL)  # rank 0 (it claimed the row): torchrun ends the other rank, then itself
    run = wait_for(ws, run.id, lambda r: r.status != "running", timeout=60, what="interrupted")
    assert run.status == "interrupted" and run.resumable, run.message
    killed_at = runs.checkpoint_step(runs.latest_checkpoint(run))
    assert killed_at is not None and killed_at >= stopped_at

    run = runs.resume(ws, run.id)  # the devices' locks were let go when the ranks died: it starts
    run = wait_for(ws, run.id, lambda r: r.ended, what="done")
    assert run.status == "done", run.message
    assert run.step == steps and run.device == "cpu,cpu"

    # Rank 0 alone wrote: each step's loss once, one final message, one adapter.
    assert [s for s, _ in metric_points(ws, run.id, "loss", "train")] == list(range(1, steps + 1))
    log = Path(run.log_path).read_text(errors="replace")
    assert log.count(f"run {run.id} done:") == 1 and log.count("ddp on 2 processes on the CPU") == 3
    assert run.tokens_per_second and run.tokens_per_second > 0

    import torch

    ours, theirs = _adapter(Path(run.output_dir)), _adapter(ws.runs_dir / str(reference_id))
    assert ours.keys() == theirs.keys() and ours
    worst = max(float((ours[k] - theirs[k]).abs().max()) for k in ours)
    scale = max(float(theirs[k].abs().max()) for k in theirs)
    assert worst <= 1e-5 * max(1.0, scale), (worst, scale)  # measured: 1.4e-7 of 0.24
    assert any(float(torch.count_nonzero(theirs[k])) for k in theirs if "lora_B" in k)  # it learned something
