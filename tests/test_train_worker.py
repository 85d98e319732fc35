"""The training worker, for real: tiny and embedded models trained on CPU, real SQLite, real subprocesses.

Run rows are written with SQL here (as runs.create_run would write them) so these tests do not depend on
runs.py. Most runs use tests' tiny_chat_model (a random 2-layer Llama with SmolLM2's tokenizer and chat
template): it trains in seconds. The embedded SmolLM2 run is marked slow.
"""

from __future__ import annotations

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
from studio.errors import TrainError
from studio.train import worker
from studio.train.callbacks import OVERFIT_MESSAGE, OverfitWatch
from studio.train.data import IGNORE_INDEX, token_stats, tokenize_conversation
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now
from studio.workspace.projects import create_project
from tests.factories import project_with_seeds

ROOT = Path(__file__).resolve().parents[1]
OVERFIT_PREFIX = OVERFIT_MESSAGE.split("{n}")[0]


# --- helpers ---------------------------------------------------------------------------------------------


def seeds_version(ws: Workspace, seeds: Path) -> tuple[int, int]:
    """(project id, dataset version id) frozen from the shared human-written seeds."""
    project_id = project_with_seeds(ws, seeds, name="train")
    return project_id, freeze_version(ws, project_id, FreezeConfig()).id


def crafted_version(
    ws: Workspace, project_id: int, train: list[dict[str, str]], validation: list[dict[str, str]], name: str = "crafted"
) -> int:
    """A dataset version holding exactly these alpaca rows (written as freeze_version writes its rows)."""
    with ws.write() as conn:
        version_id = int(
            conn.execute(
                "INSERT INTO dataset_version(project_id, name, family, splits, config, stats, created_at) "
                "VALUES (?, ?, 'instruction', ?, '{}', '{}', ?)",
                (
                    project_id,
                    name,
                    json.dumps({"train": len(train), "validation": len(validation), "test": 0}),
                    utc_now(),
                ),
            ).lastrowid
            or 0
        )
        for split, rows in (("train", train), ("validation", validation)):
            for i, row in enumerate(rows):
                conn.execute(
                    "INSERT INTO dataset_row(version_id, split, position, origin, source_id, format, data) "
                    "VALUES (?, ?, ?, 'seed', ?, 'alpaca', ?)",
                    (version_id, split, i, i + 1, json.dumps({"input": "", **row})),
                )
    return version_id


def make_run(ws: Workspace, project_id: int, version_id: int, model_ref: str, config: TrainConfig) -> int:
    """A queued run row shaped like runs.create_run's."""
    now = utc_now()
    with ws.write() as conn:
        run_id = int(
            conn.execute(
                "INSERT INTO run(project_id, dataset_version_id, base_model_ref, method, config, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
                (project_id, version_id, model_ref, config.method, json.dumps(config.check().to_dict()), now, now),
            ).lastrowid
            or 0
        )
        out = ws.runs_dir / str(run_id)
        conn.execute(
            "UPDATE run SET output_dir = ?, log_path = ? WHERE id = ?", (str(out), str(out / "train.log"), run_id)
        )
    return run_id


def run_row(ws: Workspace, run_id: int) -> dict[str, Any]:
    with ws.read() as conn:
        return dict(conn.execute("SELECT * FROM run WHERE id = ?", (run_id,)).fetchone())


def metric_points(ws: Workspace, run_id: int, name: str, split: str) -> list[tuple[int, float]]:
    with ws.read() as conn:
        return [
            (r["step"], r["value"])
            for r in conn.execute(
                "SELECT step, value FROM run_metric WHERE run_id = ? AND name = ? AND split = ? ORDER BY step",
                (run_id, name, split),
            )
        ]


def tiny_config(**changes: Any) -> TrainConfig:
    base = dict(
        method="lora",
        max_steps=8,
        learning_rate=5e-3,
        per_device_batch_size=4,
        gradient_accumulation_steps=1,
        max_seq_length=128,
        eval_every_steps=4,
        early_stopping_patience=0,
        warmup_ratio=0.0,
        lora_dropout=0.0,
    )
    return TrainConfig(**{**base, **changes})


def seed_rows(seeds: Path, n: int, skip: int = 0) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in seeds.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [
        {"instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in rows[skip : skip + n]
    ]


def mean_assistant_loss(model: Any, tokenizer: Any, rows: list[dict[str, str]]) -> float:
    """Mean cross-entropy over the assistant tokens of these rows (what training minimises)."""
    import torch

    from studio.data.chat import to_messages

    losses = []
    model.eval()
    with torch.no_grad():
        for row in rows:
            tok = tokenize_conversation(tokenizer, to_messages("alpaca", row), max_length=128)
            if all(label == IGNORE_INDEX for label in tok["labels"]):
                continue  # cut before the answer: not trained on (and a 0/0 loss)
            ids = torch.tensor([tok["input_ids"]])
            losses.append(float(model(input_ids=ids, labels=torch.tensor([tok["labels"]]), use_cache=False).loss))
    return sum(losses) / len(losses)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_worker_process(ws: Workspace, run_id: int) -> subprocess.Popen:
    """`python -m studio.train.worker RUN_ID` as runs.start launches it (own session, output to the log)."""
    log = ws.runs_dir / str(run_id) / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "STUDIO_HOME": str(ws.home)}
    with open(log, "a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "studio.train.worker", str(run_id)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


# --- (c) assistant-only loss: masks and padding-free batches ---------------------------------------------


def test_prompt_tokens_are_masked_and_assistant_tokens_are_learned(tiny_chat_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_chat_model))
    messages = [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    tok = tokenize_conversation(tokenizer, messages)
    ids, labels = tok["input_ids"], tok["labels"]
    assert ids == tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    learned = [i for i, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(learned) == "Hello! How can I help?<|im_end|>4<|im_end|>"
    masked = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label == IGNORE_INDEX])
    for prompt_part in ("Hi there", "What is 2+2?", "You are a helpful AI assistant", "<|im_start|>assistant"):
        assert prompt_part in masked
    assert all(label in (IGNORE_INDEX, i) for i, label in zip(ids, labels, strict=True))
    # The default system prompt and the user turn come first: the first learned token is the answer's first.
    first = next(k for k, label in enumerate(labels) if label != IGNORE_INDEX)
    assert tokenizer.decode(ids[first : first + 2]) == "Hello!"

    cut = tokenize_conversation(tokenizer, messages, max_length=first + 3)
    assert len(cut["input_ids"]) == first + 3 and cut["labels"][:first] == labels[:first]
    stats = token_stats(tokenizer, [messages], max_length=first + 3)
    assert stats.max_tokens == len(ids) and stats.truncated_rows == 1 and stats.trained_tokens == 3


def test_trainer_keeps_the_masks_and_padding_free_batches_do_not_mix_examples(
    tiny_chat_model: Path, shared_seeds: Path, tmp_path: Path
) -> None:
    import torch

    from studio.data.chat import to_messages

    convs = [to_messages("alpaca", row) for row in seed_rows(shared_seeds, 6)]
    setup = worker.build_trainer(tiny_chat_model, tiny_config(), convs, [], tmp_path, device="cpu")
    trainer = setup.trainer
    assert setup.batching == "padding-free"
    expected = [tokenize_conversation(setup.tokenizer, c, max_length=128) for c in convs]
    cut_before_answer = [e for e in expected if all(label == IGNORE_INDEX for label in e["labels"])]
    assert len(cut_before_answer) == 1  # one seed's prompt is longer than 128 tokens: it teaches nothing
    expected = [e for e in expected if e not in cut_before_answer]
    assert [r["labels"] for r in trainer.train_dataset] == [e["labels"] for e in expected]

    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    assert "attention_mask" not in batch  # one flattened row: no padding at all
    lengths = [len(e["input_ids"]) for e in expected[:3]]
    assert batch["input_ids"].shape == (1, sum(lengths))
    assert (batch["position_ids"][0] == 0).nonzero().flatten().tolist() == [0, lengths[0], lengths[0] + lengths[1]]

    model = trainer.model.eval()
    with torch.no_grad():
        flat = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        start, loss_sum, count = 0, 0.0, 0
        for e in expected[:3]:
            alone = model(input_ids=torch.tensor([e["input_ids"]]), use_cache=False).logits[0]
            assert torch.allclose(flat[start : start + len(e["input_ids"])], alone, atol=1e-5)
            start += len(e["input_ids"])
            targets = torch.tensor(e["labels"][1:])
            loss_sum += float(torch.nn.functional.cross_entropy(alone[:-1], targets, reduction="sum"))
            count += int((targets != IGNORE_INDEX).sum())
        # The trainer's loss on the flattened batch is the mean over the examples' assistant tokens, as if alone.
        assert float(trainer.compute_loss(model, dict(batch))) == pytest.approx(loss_sum / count, rel=1e-5)


# --- (a) QLoRA of the tiny model, end to end -------------------------------------------------------------


def test_qlora_run_learns_and_its_adapter_loads_back(ws: Workspace, tiny_chat_model: Path, shared_seeds: Path) -> None:
    import torch
    from peft import PeftModel

    project_id = create_project(ws, "qlora").id
    train_rows = seed_rows(shared_seeds, 8)
    version_id = crafted_version(ws, project_id, train_rows, seed_rows(shared_seeds, 2, skip=8))
    config = tiny_config(method="qlora", max_steps=12, learning_rate=1e-2, eval_every_steps=6, lora_r=16, lora_alpha=32)
    run_id = make_run(ws, project_id, version_id, str(tiny_chat_model), config)

    outcome = worker.run(ws, run_id, keep_model=True)

    row = run_row(ws, run_id)
    assert outcome.status == "done" and row["status"] == "done", row["message"]
    assert row["step"] == row["max_steps"] == 12 and row["pid"] == os.getpid() and row["device"] == "cpu"
    assert row["finished_at"] and row["started_at"] and row["heartbeat_at"]
    out = Path(row["output_dir"])
    adapter = out / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer_config.json").is_file()
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "done" and record["dataset_version_id"] == version_id
    assert record["config"]["method"] == "qlora" and record["libraries"]["bitsandbytes"] != "not installed"
    provenance = json.loads(row["provenance"])
    assert provenance["dataset_version"]["id"] == version_id and provenance["base_model_ref"] == str(tiny_chat_model)
    assert provenance["loss"] == "assistant tokens only" and provenance["libraries"]["trl"]
    assert provenance["kernels"] == "sdpa attention"  # no Liger on a CPU

    names = {(r[0], r[1]) for r in _all_metrics(ws, run_id)}
    for name in ("loss", "learning_rate", "tokens_per_second", "memory_bytes", "epoch"):
        assert ("train", name) in names
    assert [s for s, _ in metric_points(ws, run_id, "loss", "validation")] == [6, 12]
    assert all(v > 0 for _, v in metric_points(ws, run_id, "tokens_per_second", "train"))

    # It learned: the trained model's loss on its train rows is below the untouched 4-bit base's.
    base, tokenizer = worker.load_model(tiny_chat_model, "qlora", "cpu")
    trained = outcome.model.eval()
    before = mean_assistant_loss(base, tokenizer, train_rows)
    after = mean_assistant_loss(trained, tokenizer, train_rows)
    assert after < before - 0.02, (before, after)

    # The saved adapter on a freshly loaded base gives the in-training model's logits.
    reloaded = PeftModel.from_pretrained(base, str(adapter)).eval()
    ids = torch.tensor(
        [
            tokenize_conversation(
                tokenizer, [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}]
            )["input_ids"]
        ]
    )
    with torch.no_grad():
        expected = trained(input_ids=ids, use_cache=False).logits
        got = reloaded(input_ids=ids, use_cache=False).logits
    assert torch.allclose(expected, got, atol=1e-5), (expected - got).abs().max()
    with pytest.raises(TrainError, match="is done, so it cannot be started again"):
        worker.claim(ws, run_id, "cpu")


def _all_metrics(ws: Workspace, run_id: int) -> list[tuple[str, str, int, float]]:
    with ws.read() as conn:
        return [
            (r["split"], r["name"], r["step"], r["value"])
            for r in conn.execute("SELECT * FROM run_metric WHERE run_id = ?", (run_id,))
        ]


def test_lora_merge_after_writes_a_plain_model(ws: Workspace, tiny_chat_model: Path, shared_seeds: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    project_id = create_project(ws, "merge").id
    version_id = crafted_version(ws, project_id, seed_rows(shared_seeds, 4), [])
    run_id = make_run(
        ws, project_id, version_id, str(tiny_chat_model), tiny_config(max_steps=3, merge_after=True, learning_rate=1e-2)
    )
    outcome = worker.run(ws, run_id)
    assert outcome.status == "done", outcome.message
    out = Path(run_row(ws, run_id)["output_dir"])
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged")).eval()
    assert not (out / "merged" / "adapter_config.json").exists()
    with_adapter = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tiny_chat_model)), str(out / "adapter")
    ).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, with_adapter(input_ids=ids).logits, atol=1e-5)
    assert json.loads((out / "run.json").read_text())["merged"] == str(out / "merged")
    # No validation rows: no evaluation, no early stopping, still done.
    assert metric_points(ws, run_id, "loss", "validation") == []


# --- (b) LoRA of the embedded SmolLM2 --------------------------------------------------------------------


@pytest.mark.slow
def test_lora_of_embedded_smollm2(ws: Workspace, converted_chat_model: Path, shared_seeds: Path) -> None:
    project_id = create_project(ws, "smollm2").id
    version_id = crafted_version(ws, project_id, seed_rows(shared_seeds, 6, skip=10), seed_rows(shared_seeds, 2))
    config = tiny_config(
        max_steps=3, per_device_batch_size=2, eval_every_steps=3, learning_rate=2e-4, max_seq_length=64
    )
    run_id = make_run(ws, project_id, version_id, str(converted_chat_model), config)
    outcome = worker.run(ws, run_id)
    row = run_row(ws, run_id)
    assert outcome.status == "done" and row["step"] == 3, row["message"]
    adapter = Path(row["output_dir"]) / "adapter"
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "LORA" and adapter_config["r"] == config.lora_r
    assert len(metric_points(ws, run_id, "loss", "train")) == 3
    [(step, val_loss)] = metric_points(ws, run_id, "loss", "validation")
    assert step == 3 and 0 < val_loss < 5  # a real instruct model: far below the ~10.8 of random guessing


# --- (d) stop from another connection, then resume -------------------------------------------------------


def test_stop_mid_run_saves_a_checkpoint_and_resume_finishes(
    ws: Workspace, tiny_chat_model: Path, shared_seeds: Path
) -> None:
    project_id, version_id = seeds_version(ws, shared_seeds)
    # 200 steps: a stop polled once a second must land mid-run, however fast a tiny-model step is.
    config = tiny_config(max_steps=200, eval_every_steps=4, save_every_steps=4)
    run_id = make_run(ws, project_id, version_id, str(tiny_chat_model), config)

    def stop_when_started() -> None:
        wait_for(lambda: run_row(ws, run_id)["step"] >= 3, 60, "training to reach step 3")
        with ws.write() as conn:  # what runs.request_stop does, from its own connection
            conn.execute("UPDATE run SET status = 'stopping' WHERE id = ?", (run_id,))

    stopper = threading.Thread(target=stop_when_started)
    stopper.start()
    first = worker.run(ws, run_id)
    stopper.join()
    row = run_row(ws, run_id)
    assert first.status == row["status"] == "stopped", row["message"]
    stop_step = row["step"]
    assert 3 <= stop_step < 200
    checkpoint = Path(row["last_checkpoint"])
    assert checkpoint.name == f"checkpoint-{stop_step}" and (checkpoint / "trainer_state.json").is_file()
    assert "Resume" in row["message"]

    second = worker.run(ws, run_id)
    row = run_row(ws, run_id)
    assert second.status == row["status"] == "done", row["message"]
    assert row["step"] == row["max_steps"] == 200
    record = json.loads((Path(row["output_dir"]) / "run.json").read_text())
    assert record["resumed_from"] == str(checkpoint)
    steps = [s for s, _ in metric_points(ws, run_id, "loss", "train")]
    assert steps == list(range(1, 201))  # every step once: the resumed run continued, it did not restart


# --- (e) kill -9 of a real worker process ----------------------------------------------------------------


@pytest.mark.slow
def test_killed_worker_leaves_a_checkpoint_that_a_rerun_resumes(
    ws: Workspace, tiny_chat_model: Path, shared_seeds: Path
) -> None:
    project_id, version_id = seeds_version(ws, shared_seeds)
    config = tiny_config(max_steps=200, eval_every_steps=4, save_every_steps=4)  # long enough to be killed mid-run
    run_id = make_run(ws, project_id, version_id, str(tiny_chat_model), config)
    proc = start_worker_process(ws, run_id)
    try:
        wait_for(
            lambda: run_row(ws, run_id)["last_checkpoint"] != "" or proc.poll() is not None, 120, "the first checkpoint"
        )
        assert proc.poll() is None, (ws.runs_dir / str(run_id) / "train.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    row = run_row(ws, run_id)
    assert row["status"] == "running" and row["pid"] == proc.pid  # runs.reconcile turns this 'interrupted'
    assert not worker._pid_alive(row["pid"])
    checkpoint = worker.newest_checkpoint(Path(row["output_dir"]) / "checkpoints")
    assert checkpoint is not None and row["step"] < 200

    outcome = worker.run(ws, run_id)
    row = run_row(ws, run_id)
    assert outcome.status == "done" and row["step"] == 200, row["message"]
    record = json.loads((Path(row["output_dir"]) / "run.json").read_text())
    assert record["resumed_from"] == str(checkpoint)


@pytest.mark.slow
def test_sigterm_stops_a_worker_process_with_a_checkpoint(
    ws: Workspace, tiny_chat_model: Path, shared_seeds: Path
) -> None:
    project_id, version_id = seeds_version(ws, shared_seeds)
    run_id = make_run(ws, project_id, version_id, str(tiny_chat_model), tiny_config(max_steps=200))
    proc = start_worker_process(ws, run_id)
    try:
        wait_for(lambda: run_row(ws, run_id)["step"] >= 2 or proc.poll() is not None, 120, "step 2")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    row = run_row(ws, run_id)
    log = Path(row["log_path"]).read_text()
    assert row["status"] == "stopped", log
    assert "SIGTERM" in log and Path(row["last_checkpoint"]).is_dir() and row["step"] < 200


# --- (f, g) early stopping and the overfitting alarm on a crafted overfitting case -----------------------


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory: pytest.TempPathFactory, tiny_chat_model: Path) -> dict[str, Any]:
    """Full fine-tuning at a high rate on nonsense answers, validated on unrelated real answers: the
    validation loss falls while the model learns the chat format, then rises as it memorises."""
    from studio.config import load_settings

    ws = Workspace(load_settings(tmp_path_factory.mktemp("overfit") / "home"))
    project_id = create_project(ws, "overfit").id
    train = [
        {"instruction": f"Say the secret word number {i}.", "output": f"zebra quantum pickle {i} marmalade"}
        for i in range(8)
    ]
    validation = [
        {
            "instruction": "What is the boiling point of water?",
            "output": "Water boils at 100 degrees Celsius at sea level.",
        },
        {"instruction": "Name a primary colour.", "output": "Red is a primary colour."},
        {"instruction": "How many legs does a spider have?", "output": "A spider has eight legs."},
    ]
    version_id = crafted_version(ws, project_id, train, validation)
    config = tiny_config(
        method="full",
        max_steps=40,
        learning_rate=1e-2,
        eval_every_steps=2,
        early_stopping_patience=2,
        overfit_patience=1,
        lr_scheduler="constant",
    )
    run_id = make_run(ws, project_id, version_id, str(tiny_chat_model), config)
    messages: list[str] = []
    done = threading.Event()

    def watch_messages() -> None:  # what the Train tab sees while polling
        while not done.is_set():
            message = run_row(ws, run_id)["message"]
            if not messages or messages[-1] != message:
                messages.append(message)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch_messages)
    watcher.start()
    try:
        outcome = worker.run(ws, run_id)
    finally:
        done.set()
        watcher.join()
    return {"ws": ws, "run_id": run_id, "outcome": outcome, "messages": messages}


def test_early_stopping_ends_early_and_restores_the_best_checkpoint(overfit_run: dict[str, Any]) -> None:
    ws, run_id, outcome = overfit_run["ws"], overfit_run["run_id"], overfit_run["outcome"]
    row = run_row(ws, run_id)
    assert outcome.status == row["status"] == "done", row["message"]
    assert outcome.early_stopped and row["step"] < row["max_steps"] == 40
    assert "Early stopping ended training" in row["message"]
    validation = metric_points(ws, run_id, "loss", "validation")
    best_step, best = min(validation, key=lambda p: p[1])
    assert best_step < row["step"] and validation[-1][1] > best  # it rose after the best point
    assert row["best_checkpoint"].endswith(f"checkpoint-{best_step}") and Path(row["best_checkpoint"]).is_dir()
    record = json.loads((Path(row["output_dir"]) / "run.json").read_text())
    assert record["early_stopped"] and record["best_step"] == best_step
    assert record["final_metrics"]["eval_loss"] == pytest.approx(best, abs=1e-4)  # the best model was restored
    assert record["best_metric"] == pytest.approx(best, abs=1e-6)
    # The saved model is the best one: the last validation point is worse than what was saved.
    assert record["final_metrics"]["eval_loss"] < validation[-1][1]


def test_overfitting_alarm_appears_while_training(overfit_run: dict[str, Any]) -> None:
    ws, run_id = overfit_run["ws"], overfit_run["run_id"]
    alarms = [m for m in overfit_run["messages"] if m.startswith(OVERFIT_PREFIX)]
    assert alarms, overfit_run["messages"]
    assert alarms[0] == OVERFIT_MESSAGE.format(n=1)
    assert "overfitting alarm went off" in run_row(ws, run_id)["message"]
    assert overfit_run["outcome"].status == "done"


def test_overfit_watch_needs_rising_validation_and_falling_training_loss() -> None:
    watch = OverfitWatch(patience=2)
    for step, (train, val) in enumerate([(3.0, 2.0), (2.5, 1.8), (2.0, 1.9), (1.5, 2.0)], start=1):
        watch.add_train(train)
        rises = watch.add_eval(step, val)
    assert rises == 2 and watch.fired_at == [4]
    watch.add_train(1.4)
    assert watch.add_eval(5, 1.7) == 0  # validation fell again: the alarm clears

    flat = OverfitWatch(patience=1)
    for step, (train, val) in enumerate([(2.0, 1.0), (2.1, 1.2)], start=1):  # both rose: not memorising
        flat.add_train(train)
        assert flat.add_eval(step, val) == 0


# --- errors ----------------------------------------------------------------------------------------------


def test_a_missing_model_fails_the_run_with_a_plain_message(ws: Workspace, shared_seeds: Path, tmp_path: Path) -> None:
    project_id, version_id = seeds_version(ws, shared_seeds)
    run_id = make_run(ws, project_id, version_id, str(tmp_path / "no-such-model"), tiny_config())
    outcome = worker.run(ws, run_id)
    row = run_row(ws, run_id)
    assert outcome.status == row["status"] == "failed"
    assert "no-such-model" in row["message"] and row["finished_at"]
    assert json.loads((Path(row["output_dir"]) / "run.json").read_text())["status"] == "failed"
    with pytest.raises(TrainError, match="no run #10000"):
        worker.claim(ws, 10_000, "cpu")


def test_out_of_memory_errors_get_advice() -> None:
    assert worker._out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert worker._out_of_memory(MemoryError())
    assert not worker._out_of_memory(RuntimeError("shape mismatch"))
    message = worker.oom_message(TrainConfig(per_device_batch_size=8, max_seq_length=2048, method="lora"), "cuda")
    assert "GPU" in message and "batch size (now 8" in message and "2048 tokens" in message and "QLoRA" in message


def test_a_stop_asked_while_loading_ends_stopped_before_training(
    ws: Workspace, tiny_chat_model: Path, shared_seeds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_id, version_id = seeds_version(ws, shared_seeds)
    run_id = make_run(ws, project_id, version_id, str(tiny_chat_model), tiny_config())
    real_build = worker.build_trainer

    def build_then_stop(*args: Any, **kwargs: Any) -> Any:
        setup = real_build(*args, **kwargs)
        assert run_row(ws, run_id)["status"] == "running"  # claimed before loading
        with ws.write() as conn:  # the user pressed Stop while the model was loading
            conn.execute("UPDATE run SET status = 'stopping' WHERE id = ?", (run_id,))
        return setup

    monkeypatch.setattr(worker, "build_trainer", build_then_stop)
    outcome = worker.run(ws, run_id)
    row = run_row(ws, run_id)
    assert outcome.status == row["status"] == "stopped" and row["step"] == 0
    assert "before training started" in row["message"]
    with ws.write() as conn:  # a stop pending on a run whose worker is gone is not taken over
        conn.execute("UPDATE run SET status = 'stopping', pid = 999999999 WHERE id = ?", (run_id,))
    with pytest.raises(TrainError, match="a stop was asked"):
        worker.claim(ws, run_id, "cpu")


def test_liger_kernels_only_on_cuda_with_liger_and_triton(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # liger-kernel needs Triton and a GPU, neither of which exists here: empty stand-in packages on sys.path
    # make find_spec see them, which is all the choice reads.
    assert not worker.liger_kernels("cpu")
    for name in ("liger_kernel", "triton"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert worker.liger_kernels("cuda")
    assert not worker.liger_kernels("cpu")
    (tmp_path / "triton" / "__init__.py").unlink()
    (tmp_path / "triton").rmdir()
    import importlib

    importlib.invalidate_caches()
    assert not worker.liger_kernels("cuda")
