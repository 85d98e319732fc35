"""Merge a finished run's LoRA adapter into its base model: output_dir/merged, loadable without PEFT.

    folder = merge_and_save(run, models_dir=ws.models_dir)

`run` is anything with output_dir, base_model_ref and method (runs.Run, a dict, a row). For QLoRA the base is
reloaded unquantised (bf16 on a GPU that supports it, else fp32) before merging: merging into 4-bit weights
would round the adapter's update away, and a 4-bit checkpoint is not what other tools expect.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from studio.errors import TrainError

MERGED = "merged"


def _field(run: Any, name: str) -> Any:
    return run[name] if isinstance(run, dict) else getattr(run, name)


def merge_and_save(run: Any, *, models_dir: Path | None = None, base_path: Path | None = None) -> Path:
    """Write output_dir/merged (model + tokenizer); return it. TrainError when there is no adapter to merge."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output_dir = Path(_field(run, "output_dir"))
    method = _field(run, "method")
    adapter = output_dir / "adapter"
    if method not in ("lora", "qlora"):
        raise TrainError(
            f"Only LoRA and QLoRA runs have an adapter to merge; this run used {method} and its "
            f"{adapter} folder already holds the whole model."
        )
    if not (adapter / "adapter_config.json").is_file():
        raise TrainError(f"There is no saved adapter in {adapter}. Merge once the run is done (or stopped).")
    if base_path is None:
        from studio.config import load_settings
        from studio.models.loading import local_model_path

        base_path = local_model_path(_field(run, "base_model_ref"), models_dir or load_settings().models_dir)
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    base = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    target = output_dir / MERGED
    tmp = output_dir / (MERGED + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))
    # The worker saves the tokenizer beside the adapter; an adapter brought from elsewhere may not have it.
    tokenizer_from = adapter if (adapter / "tokenizer_config.json").is_file() else base_path
    AutoTokenizer.from_pretrained(str(tokenizer_from)).save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target
