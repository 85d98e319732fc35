"""Preference training (DPO, ORPO) through the real worker, on pairs built from real review verdicts.

The pairs: for each of 24 topics, a batch holds two answers; a reviewer keeps the friendly one and rejects the
curt refusal (through the review API), and freezing builds the pairs and holds out a quarter of the prompts. What
a model can learn from them carries over to held-out prompts, so the held-out reward accuracy measures learning.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from studio.data.preferences import PreferenceConfig
from studio.data.versions import FreezeConfig, freeze_version, version_rows
from studio.errors import TrainError
from studio.review.verdicts import record_verdict
from studio.train import worker
from studio.train.preference import continuable_runs, parent_adapter
from studio.train.runs import create_run
from studio.train.settings import TrainConfig
from studio.workspace import Workspace
from tests.factories import add_batch, project_with_seeds
from tests.test_train_worker import metric_points, run_row, tiny_config, wait_for

TOPICS = ["tea", "rain", "maps", "bread", "chess", "rivers", "bees", "clocks", "snow", "kites", "owls", "salt",
          "trains", "ferns", "honey", "glass", "moths", "paper", "wool", "tides", "coral", "cedar", "lamps", "wheat"]


def preference_version(ws: Workspace, seeds: Path, topics: list[str] = TOPICS) -> tuple[int, int]:
    """(project id, version id) with one pair per topic, a quarter of the prompts held out."""
    pid = project_with_seeds(ws, seeds, name="preferences")
    reviewed_pairs(ws, pid, topics)
    version = freeze_version(ws, pid, FreezeConfig(
        name="pairs", include_reviewed_accepts=False, preferences=PreferenceConfig(validation_fraction=0.25)))
    assert version.stats["preferences"]["sizes"] == {"train": 18, "validation": 6}
    return pid, version.id


def reviewed_pairs(ws: Workspace, pid: int, topics: list[str] = TOPICS) -> None:
    """A response-pairs batch with a friendly and a curt answer per topic, reviewed: friendly kept, curt rejected.
    The rows derive from a train seed (of the split every version of the project makes with rng seed 0)."""
    first = freeze_version(ws, pid, FreezeConfig(name="seeds"))
    train_seed = next(r.source_id for r in version_rows(ws, first.id, "train") if r.origin == "seed")
    rows = []
    for t in topics:
        q = f"Tell me about {t}."
        rows += [{"instruction": q, "input": "", "output": f"Happy to help! {t.capitalize()} is a lovely topic, "
                                                          "and here is a friendly note about it."},
                 {"instruction": q, "input": "", "output": f"No. Stop asking me about {t}."}]
    batch = add_batch(ws, pid, rows, strategy="response-pairs", seed_ids=[[train_seed]] * len(rows))
    with ws.read() as conn:
        ids = [r["id"] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=? ORDER BY id", (batch,))]
    for kept, rejected in zip(ids[::2], ids[1::2], strict=True):
        record_verdict(ws, kept, verdict="accept", reviewer="ann")
        record_verdict(ws, rejected, verdict="reject", reviewer="ann", reason_tags=["wrong tone"])


def preference_config(**changes: Any) -> TrainConfig:
    return tiny_config(**{"objective": "dpo", "max_steps": 12, "eval_every_steps": 4, "learning_rate": 5e-3,
                          **changes})


def queued(ws: Workspace, pid: int, vid: int, model: Path, config: TrainConfig) -> int:
    return create_run(ws, pid, dataset_version_id=vid, base_model_ref=str(model), config=config, device="cpu").id


def test_dpo_on_the_tiny_model_learns_to_prefer_the_kept_answers_on_held_out_pairs(
        ws: Workspace, tiny_chat_model: Path, shared_seeds: Path) -> None:
    pid, vid = preference_version(ws, shared_seeds)
    run_id = queued(ws, pid, vid, tiny_chat_model, preference_config())
    assert run_row(ws, run_id)["max_steps"] == 12  # counted from the pairs, not the SFT rows
    outcome = worker.run(ws, run_id)
    assert outcome.status == "done", outcome.message
    accuracy = metric_points(ws, run_id, "reward_accuracy", "validation")
    margin = metric_points(ws, run_id, "reward_margin", "validation")
    assert [s for s, _ in accuracy] == [4, 8, 12]
    assert margin[-1][1] > margin[0][1] > 0  # the held-out gap between kept and rejected answers widens
    assert accuracy[-1][1] >= 0.8 and outcome.final_metrics["eval_reward_accuracy"] >= 0.8
    assert metric_points(ws, run_id, "reward_chosen", "train") and metric_points(ws, run_id, "loss", "validation")
    assert "held-out pairs it prefers the chosen answer" in outcome.message
    adapter = Path(run_row(ws, run_id)["output_dir"]) / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and not (adapter / "ref").exists()
    provenance = json.loads(run_row(ws, run_id)["provenance"])
    assert provenance["method"] == "lora" and provenance["config"]["objective"] == "dpo"


def test_dpo_continues_a_finished_sft_run_with_that_run_as_the_reference(
        ws: Workspace, tiny_chat_model: Path, shared_seeds: Path) -> None:
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    pid, vid = preference_version(ws, shared_seeds)
    sft = queued(ws, pid, vid, tiny_chat_model, tiny_config(max_steps=4))
    assert continuable_runs(ws, pid, str(tiny_chat_model)) == []  # queued, not finished: nothing to go on from
    assert worker.run(ws, sft).status == "done"
    # What the Train tab offers under 'Start from': the finished run, only for the base model it trained.
    assert [r.id for r in continuable_runs(ws, pid, str(tiny_chat_model))] == [sft]
    assert continuable_runs(ws, pid, "another/base-model") == []
    with pytest.raises(TrainError, match="an adapter only fits the model it was trained on"):
        parent_adapter(ws, pid, preference_config(start_from_run=sft), "another/base-model")
    with pytest.raises(TrainError, match="preference pairs"):  # continuing is for preference runs
        queued(ws, pid, vid, tiny_chat_model, tiny_config(start_from_run=sft))
    dpo = queued(ws, pid, vid, tiny_chat_model, preference_config(start_from_run=sft, max_steps=4))
    outcome = worker.run(ws, dpo)
    assert outcome.status == "done", outcome.message
    # At step 1 the policy is the SFT adapter and so is the reference: every implicit reward is exactly 0. (Against
    # the bare base model, the SFT adapter's own change would show as a reward.)
    first = dict(metric_points(ws, dpo, "reward_chosen", "train"))[1]
    assert abs(first) < 1e-6
    parent = load_file(str(Path(run_row(ws, sft)["output_dir"]) / "adapter" / "adapter_model.safetensors"))
    child_dir = Path(run_row(ws, dpo)["output_dir"]) / "adapter"
    child = load_file(str(child_dir / "adapter_model.safetensors"))
    assert parent.keys() == child.keys() and not (child_dir / "ref").exists()
    assert any(not (parent[k] == child[k]).all() for k in parent)  # trained further
    base = AutoModelForCausalLM.from_pretrained(str(tiny_chat_model))
    PeftModel.from_pretrained(base, str(child_dir))  # one adapter on the same base model


def test_orpo_on_the_tiny_model_runs_and_records_its_rewards(ws: Workspace, tiny_chat_model: Path,
                                                             shared_seeds: Path) -> None:
    pid, vid = preference_version(ws, shared_seeds)
    run_id = queued(ws, pid, vid, tiny_chat_model, preference_config(objective="orpo", max_steps=8))
    outcome = worker.run(ws, run_id)
    assert outcome.status == "done", outcome.message
    assert len(metric_points(ws, run_id, "reward_accuracy", "validation")) == 2
    assert metric_points(ws, run_id, "reward_margin", "train")


def test_a_stopped_dpo_run_resumes_from_its_checkpoint(ws: Workspace, tiny_chat_model: Path,
                                                       shared_seeds: Path) -> None:
    pid, vid = preference_version(ws, shared_seeds)
    run_id = queued(ws, pid, vid, tiny_chat_model, preference_config(max_steps=40, save_every_steps=2,
                                                                      learning_rate=1e-3))

    def stop_when_started() -> None:
        wait_for(lambda: run_row(ws, run_id)["step"] >= 3, 120, "training to reach step 3")
        with ws.write() as conn:  # what runs.request_stop does, from its own connection
            conn.execute("UPDATE run SET status = 'stopping' WHERE id = ?", (run_id,))

    stopper = threading.Thread(target=stop_when_started)
    stopper.start()
    first = worker.run(ws, run_id)
    stopper.join()
    row = run_row(ws, run_id)
    assert first.status == row["status"] == "stopped", row["message"]
    checkpoint = Path(row["last_checkpoint"])
    assert checkpoint.name == f"checkpoint-{row['step']}" and 3 <= row["step"] < 40
    second = worker.run(ws, run_id)
    row = run_row(ws, run_id)
    assert second.status == row["status"] == "done", row["message"]
    assert json.loads((Path(row["output_dir"]) / "run.json").read_text())["resumed_from"] == str(checkpoint)
    assert [s for s, _ in metric_points(ws, run_id, "reward_accuracy", "train")] == list(range(1, 41))


def test_the_estimate_counts_the_pairs_the_run_will_train(ws: Workspace, tiny_chat_model: Path,
                                                          shared_seeds: Path) -> None:
    from studio.train.estimate import estimate
    from studio.train.workload import version_workload

    pid, vid = preference_version(ws, shared_seeds)
    config = preference_config(max_steps=0, num_epochs=2)
    work = version_workload(ws, vid, config)
    assert (work.rows, work.validation_rows) == (18, 6)
    # Per sequence: the prompt with one answer ("Tell me about tea." and a friendly or curt line), about 4
    # characters a token plus the template's markers: the mean lies between the curt and the friendly length.
    assert 15 < work.mean_tokens < 35 and work.max_tokens >= work.mean_tokens
    examples = version_workload(ws, vid, config.replace(objective="sft"))
    assert examples.rows == len(version_rows(ws, vid, "train")) != work.rows
    est = estimate(config, model_ref=str(tiny_chat_model), **work.estimate_kwargs())
    run = create_run(ws, pid, dataset_version_id=vid, base_model_ref=str(tiny_chat_model), config=config,
                     device="cpu")
    assert est.total_steps == run.max_steps == config.total_steps(18)  # the steps the worker will take
    assert est.time_breakdown["reference"] > 0  # DPO's reference pass, once


def test_dpo_from_the_command_line(ws: Workspace, tiny_chat_model: Path, shared_seeds: Path) -> None:
    from studio.train.presets import PRESETS
    from studio.train.settings import PREFERENCE_LR_FACTOR
    from tests.test_train_runs import cli

    preference_version(ws, shared_seeds)
    done = cli(ws.home, "train", "--project", "preferences", "--dataset", "pairs", "--base", str(tiny_chat_model),
               "--objective", "dpo", "--preset", "quick", "--max-steps", "2", "--eval-every", "2", "--max-length",
               "64", "--name", "cli dpo", "--json")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert (run["status"], run["step"], run["name"]) == ("done", 2, "cli dpo")
    # The preset's learning rate for preferences, as the Train tab gives it: the objective is known before the preset.
    quick = PRESETS["quick"].overrides["learning_rate"]
    assert run["config"]["objective"] == "dpo" and run["config"]["learning_rate"] == quick * PREFERENCE_LR_FACTOR
    assert "Estimate: About" in done.stderr and "held-out pairs it prefers the chosen answer" in run["message"]


def test_a_preference_run_needs_pairs_and_a_fitting_run_to_start_from(ws: Workspace, tiny_chat_model: Path,
                                                                      shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds, name="no pairs")
    plain = freeze_version(ws, pid, FreezeConfig(name="v1"))
    with pytest.raises(TrainError, match=r"has no preference pairs.*'Add preference pairs'"):
        queued(ws, pid, plain.id, tiny_chat_model, preference_config())
    with pytest.raises(TrainError, match="no run #999"):
        preference_run_from(ws, tiny_chat_model, shared_seeds, 999)
    with pytest.raises(TrainError, match="must be LoRA or QLoRA"):
        TrainConfig(objective="dpo", method="full", start_from_run=3).check()


def preference_run_from(ws: Workspace, model: Path, seeds: Path, parent: int) -> int:
    pid, vid = preference_version(ws, seeds)
    return queued(ws, pid, vid, model, preference_config(start_from_run=parent))


def test_dpo_on_the_embedded_smollm2_raises_held_out_reward_accuracy(
        ws: Workspace, converted_chat_model: Path, shared_seeds: Path) -> None:
    pid, vid = preference_version(ws, shared_seeds)
    config = preference_config(max_steps=8, learning_rate=5e-4, lora_r=8, lora_alpha=16, eval_every_steps=4)
    run_id = queued(ws, pid, vid, converted_chat_model, config)
    outcome = worker.run(ws, run_id)
    assert outcome.status == "done", outcome.message
    margin = metric_points(ws, run_id, "reward_margin", "validation")
    accuracy = metric_points(ws, run_id, "reward_accuracy", "validation")
    assert margin[-1][1] > margin[0][1] > 0
    assert accuracy[-1][1] >= 0.8, accuracy
