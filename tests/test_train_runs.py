"""Training runs: refusals that write nothing, the one-run-per-device queue, stop/resume/reconcile, and
end to end with the real worker process on a tiny model (start, stop, resume, kill -9, the CLI).

The queue and reconcile tests do not train: the process side there is a real but trivial stand-in (a
`sleep` process) and the test writes the row changes the worker makes (claim -> running, end -> done), so
the lifecycle logic is checked on its own in a second. The slow tests use the real worker.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from studio.data.versions import FreezeConfig, freeze_version
from studio.errors import ModelRefError, StudioError, TrainError
from studio.train import runs
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now
from tests.conftest import ROOT, SHARED_SEEDS, snapshot
from tests.factories import project_with_seeds

CLI = Path(sys.executable).with_name("seed-studio")


# --- helpers ---------------------------------------------------------------------------------------------


def fake_model(folder: Path, **config: object) -> Path:
    """A model folder that resolves (config.json + a weights file) without real weights: enough for every
    check create_run makes, which reads config.json only."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
             "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
             "vocab_size": 1000, "tie_word_embeddings": True}
    (folder / "config.json").write_text(json.dumps(shape | config))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.fixture
def project(ws: Workspace) -> tuple[int, int]:
    """(project id, id of a frozen version of the 120 shared seeds: 84 train, 18 validation, 18 test)."""
    project_id = project_with_seeds(ws, SHARED_SEEDS)
    return project_id, freeze_version(ws, project_id, FreezeConfig()).id


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    return fake_model(tmp_path / "small-model")


class StandIn:
    """Replaces the worker launch with a real process that sleeps: a live pid for the queue, no training. Its
    command line names the worker module and the run id, like the real worker's, and it holds the device's
    machine-wide lock the way a worker does (the open lock file, inherited)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.lock = threading.Lock()

    def __call__(self, ws: Workspace, run_id: int, output_dir: Path, log_path: Path, device: str,
                 locks: list[Any]) -> int:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "studio.train.worker",
                                 str(run_id)], start_new_session=True, pass_fds=tuple(lock.fd for lock in locks))
        with self.lock:
            self.procs.append(proc)
        return proc.pid

    def end(self, index: int) -> None:
        """The index-th worker's process exits (as a worker does when its run ends): the device is free."""
        self.procs[index].kill()
        self.procs[index].wait()

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch):
    fake = StandIn()
    monkeypatch.setattr(runs, "_spawn", fake)
    yield fake
    fake.close()


def set_row(ws: Workspace, run_id: int, **values: object) -> None:
    """Write what the worker writes (claim, end) on the run row."""
    cols = ", ".join(f"{k} = ?" for k in values)
    with ws.write() as conn:
        conn.execute(f"UPDATE run SET {cols} WHERE id = ?", (*values.values(), run_id))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_checkpoint(run: runs.Run, step: int, complete: bool = True) -> Path:
    folder = Path(run.output_dir) / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def new_run(ws: Workspace, project: tuple[int, int], model: Path, **kw: object) -> runs.Run:
    return runs.create_run(ws, project[0], dataset_version_id=project[1], base_model_ref=str(model),
                           config=TrainConfig(max_steps=8), device="cpu", **kw)


# --- create_run refusals write nothing -------------------------------------------------------------------


def refused(ws: Workspace, exc: type[StudioError], match: str, **kw: object) -> str:
    before = snapshot(ws)
    with pytest.raises(exc, match=match) as info:
        runs.create_run(ws, **kw)  # type: ignore[arg-type]
    assert snapshot(ws) == before
    assert list(ws.runs_dir.iterdir()) == []
    return str(info.value)


def test_create_run_refusals_write_nothing(ws: Workspace, project: tuple[int, int], small_model: Path,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project_id, version_id = project
    ok = {"project_id": project_id, "dataset_version_id": version_id, "base_model_ref": str(small_model),
          "config": TrainConfig()}
    refused(ws, TrainError, "no dataset version #999", **ok | {"dataset_version_id": 999})

    # A version of another project.
    other = project_with_seeds(ws, SHARED_SEEDS, name="other")
    other_version = freeze_version(ws, other, FreezeConfig()).id
    refused(ws, TrainError, "belongs to another project", **ok | {"dataset_version_id": other_version})

    # Too few rows: 5 seeds leave 3 for train; 8 seeds without a validation share leave none for validation.
    lines = SHARED_SEEDS.read_text().splitlines()
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(lines[:5]) + "\n")
    tiny_project = project_with_seeds(ws, few, name="few")
    tiny_version = freeze_version(ws, tiny_project, FreezeConfig(validation_fraction=0.2, test_fraction=0.2))
    assert tiny_version.splits["train"] == 3
    msg = refused(ws, TrainError, "3 training rows", **ok | {"project_id": tiny_project,
                                                          "dataset_version_id": tiny_version.id})
    assert "Freeze a dataset version with more seeds" in msg
    few.write_text("\n".join(lines[:8]) + "\n")
    no_val_project = project_with_seeds(ws, few, name="noval")
    no_val = freeze_version(ws, no_val_project, FreezeConfig(validation_fraction=0.0))
    refused(ws, TrainError, "no validation rows", **ok | {"project_id": no_val_project,
                                                       "dataset_version_id": no_val.id})

    # Models: nonsense, a missing folder, an embedding model, a folder without weights.
    refused(ws, ModelRefError, "not a model reference", **ok | {"base_model_ref": "not a model!"})
    refused(ws, ModelRefError, "does not exist", **ok | {"base_model_ref": str(tmp_path / "nowhere")})
    refused(ws, TrainError, "embedding model", **ok | {"base_model_ref": "embedded:all-minilm-l6-v2"})
    no_weights = fake_model(tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    refused(ws, TrainError, "no weights", **ok | {"base_model_ref": str(no_weights)})

    # Full fine-tuning of a 7B-shaped model (a config.json only), QLoRA on Conv1D layers or without bitsandbytes.
    big = fake_model(tmp_path / "big", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)
    msg = refused(ws, TrainError, "up to 1.5B parameters", **ok | {"base_model_ref": str(big),
                                                                    "config": TrainConfig(method="full")})
    assert "6.7B" in msg and "LoRA" in msg
    gpt2 = fake_model(tmp_path / "gpt2", model_type="gpt2", architectures=["GPT2LMHeadModel"])
    refused(ws, TrainError, "Choose LoRA", **ok | {"base_model_ref": str(gpt2), "config": TrainConfig(method="qlora")})
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else real_find_spec(name, *a))
    refused(ws, TrainError, "bitsandbytes", **ok | {"config": TrainConfig(method="qlora")})
    monkeypatch.undo()

    # Bad settings.
    refused(ws, TrainError, "learning rate", **ok | {"config": TrainConfig(learning_rate=1.0)})
    refused(ws, TrainError, "Method must be one of", **ok | {"config": TrainConfig(method="dpo")})

    # And the same inputs, fixed, are accepted: a small model may be fully fine-tuned.
    run = runs.create_run(ws, **ok | {"config": TrainConfig(method="full")}, name="  first   run ")
    assert (run.status, run.method, run.name, run.pid) == ("queued", "full", "first run", None)
    assert run.output_dir == str(ws.runs_dir / str(run.id)) and Path(run.output_dir).is_dir()
    assert run.log_path == str(Path(run.output_dir) / "train.log")
    assert run.train_config == TrainConfig(method="full")
    assert run.provenance["dataset_version"]["splits"] == {"train": 84, "validation": 18, "test": 18}
    assert run.max_steps == TrainConfig().total_steps(84) and run.queue_position == 1


def test_default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIO_TRAIN_DEVICE", "cuda:1")
    assert runs.default_device() == "cuda:1"
    monkeypatch.delenv("STUDIO_TRAIN_DEVICE")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert runs.default_device() == "cuda:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert runs.default_device() == "cpu"


# --- the queue (stand-in processes, no training) ---------------------------------------------------------


def test_one_run_per_device_queue(ws: Workspace, project: tuple[int, int], small_model: Path,
                                  stand_in: StandIn) -> None:
    first, second, third = (new_run(ws, project, small_model, name=n) for n in ("first", "second", "third"))
    other_device = runs.create_run(ws, project[0], dataset_version_id=project[1], base_model_ref=str(small_model),
                                   config=TrainConfig(), device="cuda:0")

    first = runs.start(ws, first.id)
    assert first.launching and first.pid == stand_in.procs[0].pid and first.progress_text() == "starting…"
    set_row(ws, first.id, status="running", started_at=utc_now())  # the worker claims it

    second = runs.start(ws, second.id)
    assert (second.status, second.pid, second.queue_position) == ("queued", None, 1)
    assert second.message == "Queued: waits for first to finish on cpu."
    assert "number 1 in line" in second.progress_text()
    assert runs.get_run(ws, third.id).queue_position == 2
    assert len(stand_in.procs) == 1
    # Another device is not held up by the cpu queue.
    assert runs.start(ws, other_device.id).launching and len(stand_in.procs) == 2

    # A queued run can be stopped: it leaves the queue, and the one behind it moves up.
    stopped = runs.request_stop(ws, second.id)
    assert (stopped.status, stopped.queue_position) == ("stopped", None) and stopped.finished_at
    assert runs.get_run(ws, third.id).queue_position == 1

    # The first run ends (its process exits, freeing the device's lock); launch_next (the worker calls it at
    # exit) starts the oldest queued run: third.
    stand_in.end(0)
    set_row(ws, first.id, status="done")
    launched = runs.launch_next(ws)
    assert [r.id for r in launched] == [third.id] and launched[0].launching
    assert runs.launch_next(ws) == []  # the device is taken again

    # The stopped one comes back at the end of the line.
    resumed = runs.resume(ws, second.id)
    assert (resumed.status, resumed.queue_position) == ("queued", 1)
    assert resumed.message == "Queued: waits for third to finish on cpu."


def test_stop_while_launching_ends_the_worker(ws: Workspace, project: tuple[int, int], small_model: Path,
                                              stand_in: StandIn) -> None:
    run = runs.start(ws, new_run(ws, project, small_model).id)
    assert run.launching
    run = runs.request_stop(ws, run.id)
    assert (run.status, run.pid) == ("stopped", None)
    # The worker may start from 'stopped' (it resumes), so a launched one that has not claimed yet is ended.
    assert stand_in.procs[0].wait(timeout=10) == -signal.SIGTERM


def test_runs_on_several_devices_queue_behind_any_run_sharing_one(ws: Workspace, project: tuple[int, int],
                                                                  small_model: Path, stand_in: StandIn) -> None:
    def run_on(device: str, name: str) -> runs.Run:
        return runs.create_run(ws, project[0], dataset_version_id=project[1], base_model_ref=str(small_model),
                               config=TrainConfig(), device=device, name=name)

    pair = runs.start(ws, run_on("1,0", "pair").id)
    assert pair.device == "cuda:0,cuda:1" and pair.launching
    set_row(ws, pair.id, status="running", started_at=utc_now())
    second = runs.start(ws, run_on("cuda:1", "second").id)
    assert (second.status, second.pid, second.message) == ("queued", None,
                                                           "Queued: waits for pair to finish on cuda:1.")
    # First come, first served per device: a run on cuda:0,cuda:2 waits for pair; cuda:2 alone is not held
    # up by it, but a later cuda:1 run stays behind 'second'.
    wide = runs.start(ws, run_on("cuda:0,cuda:2", "wide").id)
    assert wide.status == "queued" and not wide.launching and wide.queue_position == 1
    third = runs.start(ws, run_on("cuda:1", "third").id)
    assert third.queue_position == 2
    stand_in.end(0)
    set_row(ws, pair.id, status="done")
    assert {r.title for r in runs.launch_next(ws)} == {"second", "wide"}
    assert runs.get_run(ws, third.id).launching is False
    # Two processes on the CPU hold the CPU once.
    cpu_pair = runs.start(ws, run_on("cpu*2", "cpu pair").id)
    assert cpu_pair.device == "cpu,cpu" and cpu_pair.launching
    assert runs.start(ws, run_on("cpu", "cpu one").id).message == "Queued: waits for cpu pair to finish on cpu."


def test_cuda_and_cuda0_are_one_queue(ws: Workspace, project: tuple[int, int], small_model: Path,
                                      stand_in: StandIn) -> None:
    # The worker records torch's 'cuda' on the row it claims; the queue calls the same GPU 'cuda:0'.
    first = runs.create_run(ws, project[0], dataset_version_id=project[1], base_model_ref=str(small_model),
                            config=TrainConfig(), device="cuda")
    assert first.device == "cuda:0"
    runs.start(ws, first.id)
    set_row(ws, first.id, status="running", device="cuda")
    second = runs.create_run(ws, project[0], dataset_version_id=project[1], base_model_ref=str(small_model),
                             config=TrainConfig(), device="cuda:0")
    second = runs.start(ws, second.id)
    assert (second.status, second.launching, second.queue_position) == ("queued", False, 1)
    assert len(stand_in.procs) == 1


def test_launch_next_claims_once_under_concurrency(ws: Workspace, project: tuple[int, int], small_model: Path,
                                                   stand_in: StandIn) -> None:
    for _ in range(3):
        new_run(ws, project, small_model)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            barrier.wait()
            runs.launch_next(Workspace.open(ws.home))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(stand_in.procs) == 1
    assert [r.launching for r in sorted(runs.list_runs(ws, project[0]), key=lambda r: r.id)] == [True, False, False]


def test_stop_and_resume_refusals(ws: Workspace, project: tuple[int, int], small_model: Path,
                                  stand_in: StandIn) -> None:
    run = runs.start(ws, new_run(ws, project, small_model).id)
    set_row(ws, run.id, status="running")
    with pytest.raises(TrainError, match="only a stopped, interrupted or failed run can be resumed"):
        runs.resume(ws, run.id)
    with pytest.raises(TrainError, match="only a queued run can be started"):
        runs.start(ws, run.id)
    assert runs.request_stop(ws, run.id).status == "stopping"
    assert runs.request_stop(ws, run.id).status == "stopping"  # asking twice is harmless
    set_row(ws, run.id, status="done")
    with pytest.raises(TrainError, match="is done; there is nothing to stop"):
        runs.request_stop(ws, run.id)
    with pytest.raises(TrainError, match="Start a new run"):
        runs.resume(ws, run.id)
    with pytest.raises(TrainError, match="no run #404"):
        runs.get_run(ws, 404)


# --- reconcile ---------------------------------------------------------------------------------------------


def test_reconcile_marks_dead_processes(ws: Workspace, project: tuple[int, int], small_model: Path,
                                        stand_in: StandIn) -> None:
    a, b, c, waiting = (new_run(ws, project, small_model) for _ in range(4))
    set_row(ws, a.id, status="running", pid=dead_pid())
    make_checkpoint(a, 2)
    make_checkpoint(a, 4)
    make_checkpoint(a, 6, complete=False)  # killed while saving: not a checkpoint to resume from
    set_row(ws, b.id, status="stopping", pid=dead_pid())
    set_row(ws, c.id, pid=dead_pid())  # launched, died before it claimed the run

    got = {r.id: r for r in runs.list_runs(ws, project[0])}
    assert got[a.id].status == "interrupted" and got[a.id].finished_at
    assert got[a.id].message == ("The training process ended unexpectedly (killed or crashed). Resume to continue "
                                 "from the last checkpoint (step 4).")
    assert got[b.id].status == "interrupted" and "no checkpoint had been saved yet" in got[b.id].message
    assert got[c.id].status == "failed" and f"seed-studio runs log {c.id}" in got[c.id].message
    # The device was freed, so the queued run was launched.
    assert got[waiting.id].launching and len(stand_in.procs) == 1
    assert runs.latest_checkpoint(got[a.id]).name == "checkpoint-4"

    # A killed child its parent has not reaped yet is a zombie: dead too.
    zombie = subprocess.Popen(["sleep", "60"])
    zombie.kill()
    time.sleep(0.2)
    set_row(ws, waiting.id, status="running", pid=zombie.pid)
    assert runs.get_run(ws, waiting.id).status == "interrupted"
    zombie.wait()

    # Interrupted runs resume into the queue (once the launched worker's process is gone too).
    stand_in.end(0)
    resumed = runs.resume(ws, a.id)
    assert resumed.launching and resumed.message == "Starting the training process…"


# --- metrics, curves, overfitting, progress ------------------------------------------------------------------


def test_metrics_curves_and_progress(ws: Workspace, project: tuple[int, int], small_model: Path) -> None:
    run = new_run(ws, project, small_model)
    started = "2030-01-01T00:00:00+00:00"
    set_row(ws, run.id, status="running", pid=os.getpid(), started_at=started, step=12, max_steps=40)
    points = []
    for step in range(2, 14, 2):
        t = f"2030-01-01T00:00:{step * 2:02d}+00:00"  # 2 s a step
        points += [(step, "train", "loss", 3.0 - step * 0.1, t), (step, "train", "tokens_per_second", 1830.4, t)]
    for step, loss in ((4, 2.0), (8, 1.8), (12, 1.9)):
        points.append((step, "validation", "loss", loss, f"2030-01-01T00:00:{step * 2:02d}+00:00"))
    points.append((1, "train", "loss", 9.9, "2029-12-31T00:00:00+00:00"))  # before the restart: not for the pace
    with ws.write() as conn:
        conn.executemany("INSERT OR REPLACE INTO run_metric(run_id, step, split, name, value, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)", [(run.id, *p) for p in points])
    run = runs.get_run(ws, run.id)
    assert run.tokens_per_second == pytest.approx(1830.4)
    assert run.seconds_per_step == pytest.approx(2.0)
    assert run.eta_seconds == pytest.approx(56.0)
    assert run.progress_text() == "step 12 / 40 · 1,830 tokens/s · about 56 s left"
    assert (run.train_loss, run.validation_loss, run.best_validation_loss) == (pytest.approx(1.8), 1.9, 1.8)
    assert runs.curves(ws, run.id)["validation"] == [(4, 2.0), (8, 1.8), (12, 1.9)]
    assert runs.curves(ws, run.id)["train"][0] == (1, 9.9)
    assert runs.metrics(ws, run.id, "tokens_per_second")[0] == (2, "train", "tokens_per_second", pytest.approx(1830.4))
    assert len(runs.metrics(ws, run.id)) == len(points)
    assert not run.overfitting  # one rise; the default alarm waits for 3 checks
    json.dumps(run.to_dict())


def test_detect_overfitting() -> None:
    train = [(s, 3.0 - 0.1 * s) for s in range(1, 21)]
    rising = [(4, 2.0), (8, 1.5), (12, 1.6), (16, 1.7), (20, 1.8)]
    assert runs.detect_overfitting(train, rising, patience=3)
    assert not runs.detect_overfitting(train, rising, patience=4)
    assert not runs.detect_overfitting(train, [(4, 2.0), (8, 1.5), (12, 1.4), (16, 1.3)], patience=2)
    flat_train = [(s, 1.0) for s in range(1, 21)]
    assert not runs.detect_overfitting(flat_train, rising, patience=3)  # train did not fall: not memorising
    assert not runs.detect_overfitting(train, [], patience=3)


# --- end to end with the real worker (slow: each worker loads torch, transformers, trl and peft) -----------


# Enough steps that a stop (polled once a second) and a kill land mid-run: a tiny-model step is fast.
E2E_CONFIG = {"max_steps": 200, "eval_every_steps": 4, "save_every_steps": 4, "per_device_batch_size": 2,
              "gradient_accumulation_steps": 1, "max_seq_length": 128, "early_stopping_patience": 0,
              "learning_rate": 1e-3}


@pytest.fixture
def e2e_project(ws: Workspace) -> tuple[int, int]:
    """The shared seeds with a small validation split (6 rows): evaluations stay cheap on a CPU."""
    project_id = project_with_seeds(ws, SHARED_SEEDS)
    version = freeze_version(ws, project_id, FreezeConfig(validation_fraction=0.05, test_fraction=0.05))
    return project_id, version.id


def wait_for(ws: Workspace, run_id: int, predicate, timeout: float = 300, what: str = "") -> runs.Run:
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = runs.get_run(ws, run_id)
        except TrainError:  # not created yet (a CLI process is still starting)
            run = None
        if run is not None and predicate(run):
            return run
        if time.monotonic() > deadline:
            if run is None:
                raise AssertionError(f"run {run_id} was never created")
            log = Path(run.log_path).read_text(errors="replace")[-3000:] if Path(run.log_path).exists() else ""
            raise AssertionError(f"run {run_id} never became {what}: {run.status} {run.message}\n{log}")
        time.sleep(0.1)


def train_steps(ws: Workspace, run_id: int) -> list[int]:
    return [step for step, split, name, _ in runs.metrics(ws, run_id, runs.LOSS) if split == "train"]


def metric_steps_since(ws: Workspace, run_id: int, since: str) -> list[int]:
    with ws.read() as conn:
        return [r["step"] for r in conn.execute("SELECT step FROM run_metric WHERE run_id = ? AND created_at >= ?",
                                                (run_id, since))]


@pytest.mark.slow
def test_worker_lifecycle_stop_kill_resume(ws: Workspace, e2e_project: tuple[int, int],
                                           tiny_chat_model: Path) -> None:
    """The real worker: start -> stop (checkpoint) -> resume -> kill -9 -> interrupted -> resume -> done."""
    config = TrainConfig().with_preset("quick").replace(**E2E_CONFIG)
    run = runs.create_run(ws, e2e_project[0], dataset_version_id=e2e_project[1],
                          base_model_ref=str(tiny_chat_model), config=config, device="cpu")
    run = runs.start(ws, run.id)
    assert run.launching or run.status == "running"

    # Stop as soon as it trains: the worker saves a checkpoint where it is and ends 'stopped'.
    run = wait_for(ws, run.id, lambda r: r.status == "running" and r.step >= 1, what="training")
    assert runs.request_stop(ws, run.id).status in ("stopping", "stopped")
    run = wait_for(ws, run.id, lambda r: r.ended, what="stopped")
    assert run.status == "stopped", run.message
    stopped_at = runs.checkpoint_step(runs.latest_checkpoint(run))
    assert stopped_at == run.step and 1 <= stopped_at < 200, (stopped_at, run.step)

    # Resume, then kill -9 the worker's process group two steps later.
    run = runs.resume(ws, run.id)
    assert run.status in ("queued", "running") and not run.finished_at
    run = wait_for(ws, run.id, lambda r: r.status == "running" and r.step >= stopped_at + 2, what="training again")
    assert min(metric_steps_since(ws, run.id, run.started_at)) > stopped_at  # continued from the checkpoint
    os.killpg(run.pid, signal.SIGKILL)
    run = wait_for(ws, run.id, lambda r: r.status != "running", timeout=30, what="interrupted")
    assert run.status == "interrupted" and run.resumable
    killed_at = runs.checkpoint_step(runs.latest_checkpoint(run))
    assert killed_at is not None and killed_at >= stopped_at
    assert run.message == ("The training process ended unexpectedly (killed or crashed). Resume to continue from "
                           f"the last checkpoint (step {killed_at}).")

    run = runs.resume(ws, run.id)
    run = wait_for(ws, run.id, lambda r: r.ended, what="done")
    assert run.status == "done", run.message
    assert run.step == run.max_steps == 200 and run.finished_at
    # Steps after the checkpoint were logged again and replaced the killed run's points: one point each.
    later = metric_steps_since(ws, run.id, run.started_at)
    assert later and min(later) > killed_at
    steps = train_steps(ws, run.id)
    assert steps == list(range(1, 201)), steps
    assert [s for s, _ in run.curves["validation"]] == list(range(4, 201, 4))
    assert (Path(run.output_dir) / "adapter" / "adapter_config.json").is_file()
    assert run.tokens_per_second and run.train_loss is not None


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(home, *args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "STUDIO_TRAIN_DEVICE": "cpu"})


def cli_command(home: Path, *args: str) -> list[str]:
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "studio.cli"]
    return [*cmd, *args, "--home", str(home)]


def _ctrl_c_as_in_a_terminal() -> None:
    """A shell without job control starts background commands (`make test &`) with SIGINT ignored, and children
    inherit that: Ctrl-C would then never reach the CLI. Give the child the default, as a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_cli_train_queue_and_runs(ws: Workspace, e2e_project: tuple[int, int], tiny_chat_model: Path) -> None:
    """Two foreground `seed-studio train` on one device: the second waits in the queue; Ctrl-C on the first
    stops it (with a checkpoint); its worker's exit starts the second (launch_next), followed to 'done'."""
    from studio.workspace.projects import use_project

    use_project(ws, str(e2e_project[0]))
    home = ws.home
    env = {**os.environ, "STUDIO_TRAIN_DEVICE": "cpu"}
    common = ("train", "--dataset", "v1", "--base", str(tiny_chat_model), "--method", "lora", "--eval-every", "2",
              "--max-length", "64", "--json")
    # It must still be training when Ctrl-C comes, however long the second CLI takes to start on a loaded machine:
    # far more steps than it gets to run, and no early stopping (on the tiny data the validation loss soon stops
    # improving, and the run then ended 'done' before the Ctrl-C).
    first = subprocess.Popen(cli_command(home, *common, "--max-steps", "5000", "--early-stopping", "0", "--name",
                                         "first"), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    second = None
    try:
        wait_for(ws, 1, lambda r: r.status == "running" and r.step >= 1, what="training")
        second = subprocess.Popen(cli_command(home, *common, "--max-steps", "4", "--name", "second"), cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        queued = wait_for(ws, 2, lambda r: r.status == "queued", what="queued")
        assert queued.queue_position == 1
        first.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        stopped = json.loads(out)
        assert stopped["status"] == "stopped" and stopped["name"] == "first", stopped
        assert "Estimate: About" in err and "Stopping run #1: saving a checkpoint" in err
        out, err = second.communicate(timeout=300)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert second.returncode == 0, err
    result = json.loads(out)
    assert (result["id"], result["status"], result["step"], result["name"]) == (2, "done", 4, "second")
    assert result["config"]["max_steps"] == 4 and result["config"]["eval_every_steps"] == 2
    assert "Run #2 queued" in err and "number 1 in line" in err and "step 4 / 4" in err

    listed = json.loads(cli(home, "runs", "list", "--json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(2, "done"), (1, "stopped")]
    assert listed[0]["started_at"] >= listed[1]["finished_at"]  # one run per device at a time
    shown = cli(home, "runs", "show", str(result["id"]), "--json")
    assert shown.returncode == 0 and [s for s, _ in json.loads(shown.stdout)["curves"]["validation"]] == [2, 4]
    assert "validation loss:" in cli(home, "runs", "show", str(result["id"])).stdout
    assert f"worker for run {result['id']}" in cli(home, "runs", "log", str(result["id"])).stdout
    text = cli(home, "runs", "list").stdout
    assert f"#{result['id']}" in text and "second" in text and "done" in text

    # Bad inputs: exit 2 with a plain message; nothing is written.
    before = snapshot(ws)
    for args, message in ((("train", "--dataset", "v9"), "no dataset version 'v9'"),
                          (("train", "--dataset", "v1", "--method", "dpo"), "Method must be one of"),
                          (("train", "--dataset", "v1", "--learning-rate", "5"), "learning rate"),
                          (("train", "--dataset", "v1", "--base", "nowhere/at/all"), "does not exist"),
                          (("train", "--dataset", "v1", "--preset", "fast"), "no preset called"),
                          (("runs", "stop", "99"), "no run #99"),
                          (("runs", "resume", str(result["id"])), "Start a new run")):
        proc = cli(home, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.startswith("Error: ") and message in proc.stderr, (args, proc.stderr)
    assert snapshot(ws) == before
