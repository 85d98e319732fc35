"""The training worker: one run, in its own OS process, from a queued run row to an adapter on disk.

    python -m studio.train.worker RUN_ID [--foreground]      # what runs.start launches (STUDIO_HOME set)
    outcome = run(ws, run_id)                                  # the same, in-process (tests)

Statuses it writes: 'running' when it claims the row (pid, device, started_at); then 'done' (finished, or ended
by early stopping with the best checkpoint restored), 'stopped' (run.status was set to 'stopping', or SIGTERM:
a checkpoint is saved first) or 'failed' (message says why; the traceback goes to stdout/stderr, which runs.py
sends to the run's log file). A kill -9 leaves 'running' with a dead pid; runs.reconcile marks it 'interrupted'.

Files, under run.output_dir: checkpoints/checkpoint-<step> (resumable: a new worker resumes from the newest
complete one), adapter/ (the PEFT adapter, or the whole model for method 'full', with the tokenizer),
merged/ (with merge_after), run.json (config, dataset version, base model, token statistics, best/final metrics,
library versions). run.provenance holds the provenance part of run.json.

How the model is trained (see `build_trainer`, which bench/train_throughput.py also uses):
- TRL's SFTTrainer on a pre-tokenised dataset (studio/train/data.py) whose labels are -100 outside assistant
  turns: loss on assistant tokens only, for any chat template (TRL's assistant_only_loss needs
  {% generation %} markers that SmolLM2's template lacks). Only the positions whose next token is learned go
  through the output layer: TRL's fused LM head does that on Triton GPUs; on CPU (where TRL's fallback scores
  every position) `_trainer_class` asks the model for those logits only (logits_to_keep) and takes plain
  cross-entropy. See bench/train_throughput.py and bench/RESULTS.md (3.35x a padded Trainer + PEFT on CPU).
- Padding-free batches by default: a batch's examples are concatenated into one row with position_ids restarting
  at 0 for each example and no attention mask. transformers turns such position_ids into a block-diagonal mask
  for sdpa/eager attention (and cu_seq_lens for flash-attention), so examples do not see each other: a test checks
  that the loss equals the examples' losses taken alone. No compute goes to padding, and a step still holds
  per_device_batch_size examples. With packing on: TRL's "bfd" packing into max_seq_length rows (also
  padding-free; then a batch counts packed rows).
- qlora: 4-bit NF4 base (double quantisation) via bitsandbytes, compute bf16 on CUDA / fp32 on CPU; lora: base
  in bf16 on CUDA, fp32 on CPU; full: fp32 weights (bf16 autocast on CUDA). Gradient checkpointing on CUDA only
  (memory is the limit there; on CPU it only costs time). Attention: flash-attention 2 when installed (bf16 LoRA
  and QLoRA on CUDA), else sdpa. Liger's layer kernels on CUDA when liger-kernel is installed (`liger_kernels`).
- Evaluation every eval_every_steps on the validation split; checkpoints every checkpoint_steps; with
  early_stopping_patience > 0, EarlyStoppingCallback on eval_loss and load_best_model_at_end.

Several devices: runs._spawn starts studio.train.launch, which runs this worker once per device under torchrun
(DDP; gloo on the CPU, NCCL on GPUs) or `accelerate launch --config_file studio/train/accelerate/zero{2,3}.yaml`.
Every rank trains; rank 0 alone claims the row and writes metrics, status and files; a stop (database or SIGTERM
on any rank) is agreed across ranks each step. The loss is scaled as Trainer scales it across ranks, so a step on
N processes equals one process on the same global batch (tests/test_distributed.py checks the adapters).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from studio.errors import StudioError, TrainError
from studio.train import data as train_data
from studio.train.callbacks import StudioCallback
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now

CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
RUN_JSON = "run.json"
CLAIMABLE = ("queued", "stopped", "interrupted", "failed")
"""Statuses a worker may start from (runs.py normally hands over 'queued')."""
SAVE_TOTAL_LIMIT = 2
"""Checkpoints kept (the best one is kept on top of these when early stopping is on)."""
LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "seed-studio")

_stop_event = threading.Event()
"""Set by SIGTERM: the callback turns it into 'save a checkpoint and stop'."""


# --- the trainer -----------------------------------------------------------------------------------------


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _bf16_ok(device: str) -> bool:
    import torch

    return device == "cuda" and torch.cuda.is_bf16_supported()


def liger_kernels(device: str) -> bool:
    """Liger's Triton layer kernels (RMSNorm, RoPE, SwiGLU) where they can run: a CUDA device with liger-kernel
    and Triton installed. TRL applies them and keeps its own fused LM head (it refuses Liger's fused
    cross-entropy, which would replace it); transformers skips model types Liger does not know, with a warning."""
    import importlib.util

    return (device == "cuda" and importlib.util.find_spec("liger_kernel") is not None
            and importlib.util.find_spec("triton") is not None)


def load_model(model_dir: Path, method: str, device: str) -> tuple[Any, Any]:
    """(model, tokenizer) ready for `method` on `device` (see the module doc for dtypes)."""
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    half = torch.bfloat16 if _bf16_ok(device) else (torch.float16 if device == "cuda" else torch.float32)
    kwargs: dict[str, Any] = {}
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=half
        )
        kwargs["dtype"] = half
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0") or 0) if device == "cuda" else "cpu"}
    elif method == "lora":
        kwargs["dtype"] = half
    else:  # full: fp32 master weights; mixed precision comes from autocast on CUDA
        kwargs["dtype"] = torch.float32
    attention = "sdpa"
    if device == "cuda" and half == torch.bfloat16 and method != "full" and importlib.util.find_spec("flash_attn"):
        attention = "flash_attention_2"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation=attention, **kwargs)
    model.config.use_cache = False
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        if device == "cpu":
            # bitsandbytes repacks 4-bit weights in place for a faster CPU kernel the first time a layer runs in
            # eval mode (AVX512-bf16 CPUs). The repacked form breaks layers narrower than a quantisation block
            # and is a different layout from the one training and checkpoints use; keep the standard one.
            for module in model.modules():
                if hasattr(module, "support_avx512bf16_for_cpu"):
                    module.support_avx512bf16_for_cpu = False
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=device == "cuda")
    return model, tokenizer


def lora_config(config: TrainConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules_value,
        bias="none",
        task_type="CAUSAL_LM",
    )


def schedule_args(
    config: TrainConfig, checkpoints_dir: Path, device: str, *, has_eval: bool, foreground: bool = False
) -> dict[str, Any]:
    """The TrainingArguments every studio trainer shares (SFT, DPO, ORPO): batches, schedule, checks, checkpoints,
    precision, device."""
    early = has_eval and config.early_stopping_patience > 0
    scheduler = config.lr_scheduler
    if scheduler == "constant" and config.warmup_ratio > 0:
        scheduler = "constant_with_warmup"
    bf16 = _bf16_ok(device)
    return dict(
        output_dir=str(checkpoints_dir),
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps
        lr_scheduler_type=scheduler,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=config.eval_every_steps if has_eval else None,
        save_strategy="steps",
        save_steps=config.checkpoint_steps,
        save_total_limit=SAVE_TOTAL_LIMIT,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        bf16=bf16,
        fp16=device == "cuda" and not bf16 and config.method != "qlora",
        gradient_checkpointing=device == "cuda",
        use_cpu=device == "cpu",
        report_to=[],
        disable_tqdm=not foreground,
        dataloader_pin_memory=device == "cuda",
        save_only_model=False,
    )


def sft_args(
    config: TrainConfig, checkpoints_dir: Path, device: str, *, has_eval: bool, foreground: bool = False
) -> Any:
    """The SFTConfig for a run (every TrainConfig setting lands here)."""
    from trl import SFTConfig

    return SFTConfig(
        **schedule_args(config, checkpoints_dir, device, has_eval=has_eval, foreground=foreground),
        # Padding-free (flattened batch, position_ids restart per example) unless packing, which implies it.
        packing=config.packing,
        packing_strategy="bfd",
        padding_free=not config.packing,
        max_length=config.max_seq_length if config.packing else None,  # data.py truncated already
        use_liger_kernel=liger_kernels(device),
    )


@dataclass
class TrainSetup:
    trainer: Any
    tokenizer: Any
    device: str
    batching: str
    """'padding-free' or 'packing (bfd)'."""
    kernels: str
    """The attention implementation, and Liger's kernels when they are on: "sdpa attention", "flash_attention_2
    attention, Liger kernels"."""
    train_stats: train_data.TokenStats
    eval_rows: int


def build_trainer(
    model_dir: Path,
    config: TrainConfig,
    train_convs: list,
    eval_convs: list,
    output_dir: Path,
    *,
    device: str | None = None,
    callbacks: list[Any] | None = None,
    foreground: bool = False,
) -> TrainSetup:
    """An SFTTrainer for `config` on these conversations (checkpoints in output_dir/checkpoints)."""
    import torch
    from transformers import EarlyStoppingCallback

    device = device or pick_device()
    model, tokenizer = load_model(model_dir, config.method, device)
    train_ds = train_data.tokenize_conversations(tokenizer, train_convs, max_length=config.max_seq_length)
    eval_ds = (
        train_data.tokenize_conversations(tokenizer, eval_convs, max_length=config.max_seq_length)
        if eval_convs
        else None
    )
    stats = train_data.token_stats(tokenizer, train_convs, max_length=config.max_seq_length)
    if eval_ds is not None and len(eval_ds) == 0:
        eval_ds = None
    all_callbacks = list(callbacks or [])
    if eval_ds is not None and config.early_stopping_patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = _trainer_class(device)(
        model=model,
        args=sft_args(
            config, Path(output_dir) / CHECKPOINTS, device, has_eval=eval_ds is not None, foreground=foreground
        ),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora_config(config) if config.uses_lora else None,
        callbacks=all_callbacks,
    )
    if config.method == "qlora" and device == "cpu":
        # TRL casts QLoRA adapters to bf16 (the paper's GPU recipe); on CPU the compute dtype is fp32, and bf16
        # adapters there would be slower and round every update.
        for param in trainer.model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    return TrainSetup(
        trainer,
        tokenizer,
        device,
        "packing (bfd)" if config.packing else "padding-free",
        ", ".join([f"{getattr(model.config, '_attn_implementation', None) or 'eager'} attention"]
                  + (["Liger kernels"] if trainer.args.use_liger_kernel else [])),
        stats,
        len(eval_ds) if eval_ds is not None else 0,
    )


def _trainer_class(device: str) -> Any:
    """SFTTrainer, with a cheaper loss where TRL's fused LM head has no Triton kernel (CPU).

    TRL's fused head scores only the trained positions on Triton devices; elsewhere it scores every position with
    a tiled torch loop (and entropy on top), which on CPU costs more than the whole model for a small one. Here
    the model's own `logits_to_keep` (a boolean mask of the positions whose next token is learned) projects only
    those positions; the loss is the same sum of assistant-token cross-entropies over the same count.
    """
    from transformers.utils import is_triton_available
    from trl import SFTTrainer

    if device in ("cuda", "xpu") and is_triton_available():
        return SFTTrainer

    class StudioSFTTrainer(SFTTrainer):
        _masked_logits_ok = True

        def compute_loss(
            self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
        ) -> Any:
            if return_outputs or not self._masked_logits_ok or "labels" not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            import torch
            import torch.nn.functional as F

            mode = "train" if self.model.training else "eval"
            labels = inputs["labels"]
            keep = torch.zeros_like(labels, dtype=torch.bool)
            keep[:, :-1] = labels[:, 1:] != -100
            targets = labels[:, 1:][labels[:, 1:] != -100]
            forward = {k: v for k, v in inputs.items() if k != "labels"}
            logits = model(**forward, use_cache=False, logits_to_keep=keep).logits
            logits = logits.reshape(-1, logits.shape[-1])
            if logits.shape[0] != targets.numel():  # this model ignores a mask in logits_to_keep
                type(self)._masked_logits_ok = False
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            count = targets.numel() if num_items_in_batch is None else num_items_in_batch
            loss = F.cross_entropy(logits.float(), targets, reduction="sum") / torch.as_tensor(count).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # As Trainer.compute_loss: the count is every rank's, and DDP averages the ranks' gradients, so
                # scale back up by the ranks; the step then equals one process on the same global batch.
                loss = loss * self.accelerator.num_processes
            with torch.no_grad():  # the metrics TRL logs, minus entropy
                correct = int((logits.argmax(-1) == targets).sum()) if targets.numel() else 0
                self._metrics[mode]["mean_token_accuracy"].append(correct / max(1, targets.numel()))
                if mode == "train":
                    mask = inputs.get("attention_mask")
                    ids = inputs["input_ids"]
                    fed = mask.sum() if mask is not None else torch.tensor(ids.numel(), device=ids.device)
                    # Every rank's tokens (as TRL counts them), so tokens/s is the run's, not rank 0's.
                    self._total_train_tokens += int(self.accelerator.gather_for_metrics(fed.reshape(1)).sum())
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

    return StudioSFTTrainer


def newest_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The newest complete checkpoint (trainer_state.json is the last file written); half-written ones go."""
    if not checkpoints_dir.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for entry in checkpoints_dir.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", entry.name)
        if not m or not entry.is_dir():
            continue
        if (entry / "trainer_state.json").is_file():
            found.append((int(m.group(1)), entry))
        elif process_rank() == 0:  # one rank tidies; the others only read
            shutil.rmtree(entry, ignore_errors=True)  # killed while saving: useless, and confuses rotation
    return max(found)[1] if found else None


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    run_id: int
    status: str
    message: str
    step: int = 0
    max_steps: int = 0
    early_stopped: bool = False
    best_checkpoint: str = ""
    best_metric: float | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    model: Any = None
    """The trained model (only with keep_model=True: tests compare it with the saved adapter)."""


@dataclass(frozen=True)
class _Claim:
    run_id: int
    project_id: int
    dataset_version_id: int
    base_model_ref: str
    method: str
    config: dict[str, Any]
    output_dir: Path


def _pid_alive(pid: int | None) -> bool:
    """Whether another live process has this pid (a zombie, killed but not yet reaped, counts as dead)."""
    from studio.processes import pid_alive

    return pid != os.getpid() and pid_alive(pid)


def process_rank() -> int:
    """This process's rank under `accelerate launch` / torchrun (0 when training on one device)."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    """How many ranks train this run (1 on one device)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def claim(ws: Workspace, run_id: int, device: str, *, write: bool = True) -> _Claim:
    """Mark the run 'running' for this process; TrainError when it is not ours to run.

    write=False (ranks other than 0 of a multi-GPU run): only read the row; rank 0 owns it.
    """
    now = utc_now()
    with ws.write() if write else ws.read() as conn:
        row = conn.execute("SELECT * FROM run WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise TrainError(f"There is no run #{run_id} in this workspace. The Train tab lists the runs.")
        status = row["status"]
        orphaned = status == "running" and not _pid_alive(row["pid"])  # killed (-9, crash): train on
        if write and status not in CLAIMABLE and not orphaned:
            why = {
                "running": " (another worker is running it)",
                "stopping": " (a stop was asked; resume it once it shows stopped or interrupted)",
            }.get(status, "")
            raise TrainError(f"Run #{run_id} is {status}, so it cannot be started again{why}.")
        if row["dataset_version_id"] is None:
            raise TrainError(f"Run #{run_id} has no dataset version to train on. Create a new run with a version.")
        output_dir = Path(row["output_dir"]) if row["output_dir"] else ws.runs_dir / str(run_id)
        if write:
            conn.execute(
                # The device column keeps the queue's names (cuda:1, cuda:0,cuda:1) when the launcher set them.
                "UPDATE run SET status = 'running', pid = ?, device = COALESCE(NULLIF(device, ''), ?), "
                "started_at = ?, heartbeat_at = ?, finished_at = '', message = ?, output_dir = ?, updated_at = ? "
                "WHERE id = ?",
                (os.getpid(), device, now, now, "Loading the model and the data.", str(output_dir), now, run_id),
            )
    return _Claim(
        run_id,
        row["project_id"],
        int(row["dataset_version_id"]),
        row["base_model_ref"],
        row["method"],
        json.loads(row["config"] or "{}"),
        output_dir,
    )


def _finish(ws: Workspace, run_id: int, status: str, message: str, **columns: Any) -> None:
    now = utc_now()
    sets = "".join(f", {name} = ?" for name in columns)
    with ws.write() as conn:
        conn.execute(
            f"UPDATE run SET status = ?, message = ?, finished_at = ?, heartbeat_at = ?, updated_at = ?"
            f"{sets} WHERE id = ?",
            (status, message, now, now, now, *columns.values(), run_id),
        )


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["python"] = platform.python_version()
    return versions


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def oom_message(config: TrainConfig | None, device: str) -> str:
    where = "GPU" if device == "cuda" else "computer"
    tips = []
    if config is not None:
        if config.per_device_batch_size > 1:
            tips.append(
                f"a smaller batch size (now {config.per_device_batch_size}; halve it and double gradient "
                "accumulation to keep the same examples per step)"
            )
        tips.append(f"a shorter maximum length (now {config.max_seq_length} tokens)")
        if config.method != "qlora":
            tips.append(f"QLoRA instead of {config.method} (it needs the least memory)")
    else:
        tips = ["a smaller batch size", "a shorter maximum length", "QLoRA"]
    return (
        f"Training ran out of memory on the {where}. Resume the run after changing the settings, or start a new "
        f"run with " + "; or ".join(tips) + ". A smaller base model also helps."
    )


def run(ws: Workspace, run_id: int, *, foreground: bool = False, keep_model: bool = False) -> RunOutcome:
    """Train run `run_id` to the end (done / stopped / failed); never raises for training errors."""
    from studio.models.loading import local_model_path

    device = pick_device()
    is_main = process_rank() == 0  # under accelerate launch, rank 0 alone writes the run row and its files
    claimed = claim(ws, run_id, device, write=is_main)
    previous_handler = _install_sigterm_handler()
    output_dir = claimed.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    config: TrainConfig | None = None
    record: dict[str, Any] = {
        "run_id": run_id,
        "method": claimed.method,
        "base_model_ref": claimed.base_model_ref,
        "dataset_version_id": claimed.dataset_version_id,
        "device": device,
    }
    print(
        f"[{utc_now()}] run {run_id}: {claimed.method} of {claimed.base_model_ref} on {device}, "
        f"dataset version #{claimed.dataset_version_id}, pid {os.getpid()}",
        flush=True,
    )
    try:
        config = TrainConfig.from_dict(claimed.config).check()
        if config.method != claimed.method:
            config = config.replace(method=claimed.method)
        record["config"] = config.to_dict()
        model_dir = local_model_path(claimed.base_model_ref, ws.models_dir)
        callback = StudioCallback(
            ws, run_id, overfit_patience=config.overfit_patience, device=device, stop_event=_stop_event, writes=is_main
        )
        if config.learns_preferences:
            from studio.train import preference

            train_pairs, eval_pairs = preference.load_pairs(ws, claimed.dataset_version_id)
            setup = preference.build_preference_trainer(
                model_dir,
                config,
                train_pairs,
                eval_pairs,
                output_dir,
                device=device,
                callbacks=[callback],
                foreground=foreground,
                start_adapter=preference.parent_adapter(ws, claimed.project_id, config, claimed.base_model_ref),
            )
        else:
            train_convs, eval_convs = train_data.load_splits(ws, claimed.dataset_version_id)
            setup = build_trainer(
                model_dir,
                config,
                train_convs,
                eval_convs,
                output_dir,
                device=device,
                callbacks=[callback],
                foreground=foreground,
            )
        record.update(_provenance(ws, claimed, model_dir, setup))
        if is_main:
            with ws.write() as conn:
                conn.execute(
                    "UPDATE run SET provenance = ?, updated_at = ? WHERE id = ?",
                    (json.dumps(_public_provenance(record)), utc_now(), run_id),
                )
        print(
            f"train: {setup.train_stats.summary()} Validation: {setup.eval_rows} examples. Batching: {setup.batching}. "
            f"Kernels: {setup.kernels}.",
            flush=True,
        )
        resume_from = newest_checkpoint(output_dir / CHECKPOINTS)
        if resume_from is not None:
            print(f"resuming from {resume_from}", flush=True)
            record["resumed_from"] = str(resume_from)
        if is_main and (_stop_event.is_set() or _status(ws, run_id) == "stopping"):
            return _stopped_before_start(ws, run_id, resume_from)
        trainer = setup.trainer
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        return _wrap_up(ws, run_id, config, setup, callback, record, output_dir, keep_model, is_main)
    except BaseException as exc:  # every failure must land in the run row
        traceback.print_exc()
        sys.stderr.flush()
        if _out_of_memory(exc):
            message = oom_message(config, device)
        elif isinstance(exc, StudioError):
            message = str(exc)
        elif isinstance(exc, KeyboardInterrupt):
            message = "Training was interrupted (Ctrl+C). Resume the run to continue from its last checkpoint."
        else:
            message = (
                f"Training failed: {type(exc).__name__}: {exc}. The full error is in the run's log "
                f"({output_dir / 'train.log'})."
            )
        if is_main:
            last = newest_checkpoint(output_dir / CHECKPOINTS)
            _finish(ws, run_id, "failed", message, last_checkpoint=str(last) if last else "")
            record.update(status="failed", message=message, finished_at=utc_now())
            _write_run_json(output_dir, record)
        if isinstance(exc, KeyboardInterrupt):
            raise
        return RunOutcome(run_id, "failed", message)
    finally:
        _stop_event.clear()
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)


def _wrap_up(
    ws: Workspace,
    run_id: int,
    config: TrainConfig,
    setup: TrainSetup,
    callback: StudioCallback,
    record: dict[str, Any],
    output_dir: Path,
    keep_model: bool,
    is_main: bool = True,
) -> RunOutcome:
    """After trainer.train(): save the adapter, the final evaluation, run.json, and the final status."""
    trainer, state = setup.trainer, setup.trainer.state
    step, max_steps = int(state.global_step), int(state.max_steps)
    stopped = callback.stop_requested and step < max_steps  # a stop at the last step changes nothing
    early = not stopped and step < max_steps and setup.eval_rows > 0 and config.early_stopping_patience > 0
    final: dict[str, float] = {}
    train_losses = [h["loss"] for h in state.log_history if "loss" in h]
    if train_losses:
        final["train_loss"] = float(train_losses[-1])
    if setup.eval_rows:
        callback.recording = False  # the final evaluation must not overwrite a point of the curve
        evaluation = trainer.evaluate()
        final["eval_loss"] = float(evaluation["eval_loss"])
        if "eval_rewards/accuracies" in evaluation:  # preference runs: held-out pairs ranked right
            final["eval_reward_accuracy"] = float(evaluation["eval_rewards/accuracies"])
            final["eval_reward_margin"] = float(evaluation["eval_rewards/margins"])
    adapter_dir = output_dir / ADAPTER
    if config.learns_preferences:
        from studio.train.preference import drop_reference_adapter

        drop_reference_adapter(trainer.model)  # after the last evaluation, which still needed it
    trainer.save_model(str(adapter_dir))  # rank 0 writes (Trainer.should_save); every rank takes part
    if is_main:
        setup.tokenizer.save_pretrained(str(adapter_dir))
    best_checkpoint = state.best_model_checkpoint or ""
    best_metric = float(state.best_metric) if state.best_metric is not None else None
    best_step = _step_of(best_checkpoint)
    last = newest_checkpoint(output_dir / CHECKPOINTS)

    if stopped:
        status = "stopped"
        message = (
            f"Stopped at step {step} of {max_steps}; a checkpoint was saved. Resume the run to continue from there."
        )
    elif early:
        status = "done"
        message = (
            f"Early stopping ended training at step {step} of {max_steps}: the validation loss had not "
            f"improved for {config.early_stopping_patience} checks. The best checkpoint (step {best_step}, "
            f"validation loss {best_metric:.3f}) was restored and saved."
        )
    else:
        status = "done"
        message = f"Finished all {step} steps."
        if best_metric is not None and config.early_stopping_patience > 0:
            message += f" Best validation loss {best_metric:.3f} at step {best_step}; that model was kept."
        elif "eval_loss" in final:
            message += f" Final validation loss {final['eval_loss']:.3f}."
    if "eval_reward_accuracy" in final:
        message += (f" On {setup.eval_rows} held-out pairs it prefers the chosen answer "
                    f"{final['eval_reward_accuracy']:.0%} of the time.")
    if callback.watch.fired_at:
        message += (
            f" The overfitting alarm went off at step {callback.watch.fired_at[0]} (validation loss rose "
            "while training loss fell)."
        )

    merged = ""
    if is_main and status == "done" and config.merge_after and config.uses_lora:
        from studio.train.merge import merge_and_save

        print("merging the adapter into the base model", flush=True)
        merged = str(
            merge_and_save(
                {"output_dir": str(output_dir), "base_model_ref": record["base_model_ref"], "method": config.method},
                models_dir=ws.models_dir,
            )
        )
    record.update(
        status=status,
        message=message,
        step=step,
        max_steps=max_steps,
        early_stopped=early,
        stopped=stopped,
        best_checkpoint=best_checkpoint,
        best_metric=best_metric,
        best_step=best_step,
        final_metrics=final,
        overfitting_alarm_steps=callback.watch.fired_at,
        adapter=str(adapter_dir),
        merged=merged,
        last_checkpoint=str(last) if last else "",
        finished_at=utc_now(),
    )
    if not is_main:
        return RunOutcome(run_id, status, message, step, max_steps, early)
    _write_run_json(output_dir, record)
    _finish(
        ws,
        run_id,
        status,
        message,
        step=step,
        max_steps=max_steps,
        best_checkpoint=best_checkpoint,
        last_checkpoint=str(last) if last else "",
    )
    print(f"[{utc_now()}] run {run_id} {status}: {message}", flush=True)
    return RunOutcome(
        run_id,
        status,
        message,
        step,
        max_steps,
        early,
        best_checkpoint,
        best_metric,
        final,
        trainer.model if keep_model else None,
    )


def _stopped_before_start(ws: Workspace, run_id: int, resume_from: Path | None) -> RunOutcome:
    message = "Stopped before training started. Resume the run to start it."
    _finish(ws, run_id, "stopped", message, last_checkpoint=str(resume_from) if resume_from else "")
    return RunOutcome(run_id, "stopped", message)


def _status(ws: Workspace, run_id: int) -> str:
    with ws.read() as conn:
        row = conn.execute("SELECT status FROM run WHERE id = ?", (run_id,)).fetchone()
    return row["status"] if row else ""


def _step_of(checkpoint: str) -> int | None:
    m = re.search(r"checkpoint-(\d+)$", checkpoint or "")
    return int(m.group(1)) if m else None


def _provenance(ws: Workspace, claimed: _Claim, model_dir: Path, setup: TrainSetup) -> dict[str, Any]:
    from studio.data.versions import get_version_by_id

    version = get_version_by_id(ws, claimed.dataset_version_id)
    return {
        "project_id": claimed.project_id,
        "dataset_version": {"id": version.id, "name": version.name, "sizes": version.splits},
        "base_model_path": str(model_dir),
        "batching": setup.batching,
        "kernels": setup.kernels,
        "loss": "assistant tokens only",
        "token_stats": setup.train_stats.to_dict(),
        "validation_rows": setup.eval_rows,
        "libraries": library_versions(),
        "platform": platform.platform(),
    }


def _public_provenance(record: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "run_id",
        "project_id",
        "method",
        "base_model_ref",
        "dataset_version",
        "device",
        "config",
        "batching",
        "kernels",
        "loss",
        "token_stats",
        "libraries",
        "platform",
    )
    return {k: record[k] for k in keys if k in record}


def _write_run_json(output_dir: Path, record: dict[str, Any]) -> None:
    record = {**record, "provenance": _public_provenance(record)}
    tmp = output_dir / (RUN_JSON + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    tmp.replace(output_dir / RUN_JSON)


def _install_sigterm_handler() -> Any:
    """SIGTERM -> stop after this step with a checkpoint; returns the handler it replaced (None: not installed)."""
    if threading.current_thread() is not threading.main_thread():
        return None  # signals can only be handled on the main thread; the DB stop flag still works

    def on_sigterm(signum: int, frame: Any) -> None:
        print("SIGTERM: saving a checkpoint and stopping after this step", flush=True)
        _stop_event.set()

    return signal.signal(signal.SIGTERM, on_sigterm)


# --- command line ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m studio.train.worker", description="Train one queued run of the workspace in STUDIO_HOME."
    )
    parser.add_argument("run_id", type=int)
    parser.add_argument(
        "--foreground",
        action="store_true",
        help="attached to a terminal: show progress bars (otherwise plain log lines)",
    )
    args = parser.parse_args(argv)
    if not args.foreground:
        os.environ.setdefault("TQDM_DISABLE", "1")
    ws = Workspace.open()
    try:
        outcome = run(ws, args.run_id, foreground=args.foreground)
    except TrainError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 2
    finally:
        # Let go of the device (studio.train.device_locks) first, or the next run would wait for this process.
        from studio.train.device_locks import release_inherited

        release_inherited()
        if world_size() == 1:  # several ranks: studio.train.launch holds the devices and starts the next run
            _launch_next(ws)
    return 0 if outcome.status in ("done", "stopped") else 1


def _launch_next(ws: Workspace) -> None:
    try:
        from studio.train import runs
    except ImportError:
        return
    launch_next = getattr(runs, "launch_next", None)
    if launch_next is None:
        return
    try:
        launch_next(ws)
    except Exception:  # the queue is retried on the next poll; this run's result stands
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
