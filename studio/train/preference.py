"""Learning from preference pairs: TRL's DPOTrainer (DPO) and ORPOTrainer (ORPO) on a version's frozen pairs.

The worker (studio.train.worker) calls `build_preference_trainer` instead of the SFT trainer when a run's
objective is dpo or orpo; everything around it (claim, callback, stop/resume, checkpoints, adapter, run.json) is
the same. The pairs are TRL's conversational preference rows (studio.data.preferences): TRL applies the chat
template, and the loss covers the answers only.

- DPO with LoRA needs no second model: the reference is the same network with the adapter switched off (a new
  adapter), or a frozen copy of the starting adapter named "ref" (TRL makes it when the run continues an earlier
  run's adapter, `start_from_run`). The copy is dropped before the adapter is saved.
- The studio's DPO computes the reference log-probabilities once, before training (`precompute_ref_log_probs`):
  TRL's default runs the reference forward again in every step of every epoch. bench/preference.py measures it.
- ORPO has no reference: it adds an odds-ratio term to the chosen answers' loss. It lives in trl.experimental.
- Metrics: TRL logs rewards/chosen, rewards/rejected, rewards/margins and rewards/accuracies (and eval_ ones);
  the callback stores them as reward_* curves beside the loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studio.errors import TrainError
from studio.train.settings import TrainConfig

MIN_TRAIN_PAIRS = 4
"""Fewer pairs than a batch or two teach nothing measurable."""


def load_pairs(ws: Any, version_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train pairs, held-out pairs) of a version, as TRL reads them (prompt / chosen / rejected)."""
    from studio.data.preferences import preference_pairs

    keep = ("prompt", "chosen", "rejected")
    train = [{k: p[k] for k in keep} for p in preference_pairs(ws, version_id, "train")]
    held = [{k: p[k] for k in keep} for p in preference_pairs(ws, version_id, "validation")]
    return train, held


def preference_args(config: TrainConfig, checkpoints_dir: Path, device: str, *, has_eval: bool,
                    foreground: bool = False, precompute_ref: bool = True) -> Any:
    """The DPOConfig / ORPOConfig of a run: the same schedule, checkpoints and checks as an SFT run."""
    from studio.train.worker import schedule_args

    common = schedule_args(config, checkpoints_dir, device, has_eval=has_eval, foreground=foreground)
    common.update(max_length=config.max_seq_length, beta=config.preference_beta)
    if config.objective == "orpo":
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig(**common)
    from trl import DPOConfig

    return DPOConfig(**common, precompute_ref_log_probs=precompute_ref)


def _continue_problem(parent: Any, project_id: int, base_model_ref: str) -> str | None:
    """Why run `parent` cannot be continued by a preference run on `base_model_ref` (None: it can)."""
    if parent.project_id != project_id:
        return f"Run #{parent.id} belongs to another project; start from one of this project's runs."
    if parent.status != "done":
        return f"Run #{parent.id} is {parent.status}; only a finished run can be continued."
    if parent.method not in ("lora", "qlora"):
        return (f"Run #{parent.id} is a full fine-tune, not an adapter; start a preference run from its saved model "
                "as a base model instead, or from a LoRA run.")
    if parent.base_model_ref != base_model_ref:
        return (f"Run #{parent.id} trained {parent.base_model_ref}, not {base_model_ref}; an adapter only fits the "
                "model it was trained on. Pick that base model, or another run.")
    folder = Path(parent.output_dir or "") / "adapter"
    if not parent.output_dir or not (folder / "adapter_config.json").is_file():
        return f"Run #{parent.id} has no saved adapter in {folder}; it cannot be continued."
    return None


def continuable_runs(ws: Any, project_id: int, base_model_ref: str) -> list[Any]:
    """The project's runs a preference run on `base_model_ref` can continue (newest first): finished LoRA or
    QLoRA runs of that base whose adapter is saved. The Train tab offers these for 'Start from run'."""
    from studio.train.runs import list_runs

    return [r for r in list_runs(ws, project_id) if _continue_problem(r, project_id, base_model_ref) is None]


def parent_adapter(ws: Any, project_id: int, config: TrainConfig, base_model_ref: str) -> Path | None:
    """The adapter folder of run `start_from_run` (checked: this project's, finished, LoRA, same base)."""
    if not config.start_from_run:
        return None
    from studio.train.runs import get_run

    try:
        parent = get_run(ws, int(config.start_from_run))
    except TrainError:
        raise TrainError(f"There is no run #{config.start_from_run} to start from. Pick a finished run of this "
                         "project, or 0 for the base model.") from None
    problem = _continue_problem(parent, project_id, base_model_ref)
    if problem:
        raise TrainError(problem)
    return Path(parent.output_dir) / "adapter"


def build_preference_trainer(model_dir: Path, config: TrainConfig, train_pairs: list[dict[str, Any]],
                             eval_pairs: list[dict[str, Any]], output_dir: Path, *, device: str | None = None,
                             callbacks: list[Any] | None = None, foreground: bool = False,
                             start_adapter: Path | None = None, precompute_ref: bool = True) -> Any:
    """A TrainSetup (studio.train.worker) whose trainer learns from the pairs."""
    from datasets import Dataset
    from transformers import EarlyStoppingCallback

    from studio.train import data as train_data
    from studio.train.worker import CHECKPOINTS, TrainSetup, load_model, lora_config, pick_device

    if len(train_pairs) < MIN_TRAIN_PAIRS:
        raise TrainError(f"The dataset version has {len(train_pairs)} preference pairs to train on; learning from "
                         f"preferences needs at least {MIN_TRAIN_PAIRS}. Review more rows (or vote in Compare) and "
                         "freeze a version with preference pairs.")
    device = device or pick_device()
    model, tokenizer = load_model(model_dir, config.method, device)
    peft_config = lora_config(config) if config.uses_lora else None
    if start_adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(start_adapter), is_trainable=True)
        peft_config = None  # the run goes on training the earlier run's adapter
    has_eval = bool(eval_pairs)
    all_callbacks = list(callbacks or [])
    if has_eval and config.early_stopping_patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    args = preference_args(config, Path(output_dir) / CHECKPOINTS, device, has_eval=has_eval, foreground=foreground,
                           precompute_ref=precompute_ref)
    if config.objective == "orpo":
        from trl.experimental.orpo import ORPOTrainer as Trainer
    else:
        from trl import DPOTrainer as Trainer
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(train_pairs),
                      eval_dataset=Dataset.from_list(eval_pairs) if has_eval else None, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=all_callbacks)
    if config.method == "qlora" and device == "cpu":
        import torch

        for param in trainer.model.parameters():  # as the SFT trainer: fp32 adapters on CPU
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    conversations = [p["prompt"] + p["chosen"] for p in train_pairs]
    stats = train_data.token_stats(tokenizer, conversations, max_length=config.max_seq_length)
    name = "DPO" if config.objective == "dpo" else "ORPO"
    return TrainSetup(trainer, tokenizer, device, f"{name} pairs (chosen and rejected padded together)",
                      f"{getattr(model.config, '_attn_implementation', None) or 'eager'} attention", stats,
                      len(eval_pairs))


def drop_reference_adapter(model: Any) -> None:
    """Remove TRL's frozen "ref" copy of a continued adapter, so only the trained adapter is saved."""
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict) and "ref" in peft_config:
        model.delete_adapter("ref")
        model.set_adapter("default")
