"""A PEFT LoRA adapter written as a GGUF LoRA file (`llama-server --lora`, Ollama's `ADAPTER` line).

    write_adapter_gguf(adapter_dir, base_dir, out_path, name="run 3")

The layout of llama.cpp's convert_lora_to_gguf.py: general.type "adapter", adapter.type "lora",
adapter.lora.alpha, and per adapted matrix `<gguf name>.lora_a` (rank x in) and `.lora_b` (out x rank), float32
as PEFT saved them. Like the base weights, the B matrices of q_proj and k_proj are permuted into GGML's rotary
layout (A multiplies the input, so it keeps its order). llama.cpp scales by alpha / rank, so an rsLoRA adapter
(alpha / sqrt(rank)) is written with alpha * sqrt(rank): the same update.

What llama.cpp cannot apply is refused before anything is written (servability.llama_cpp_problems): DoRA,
per-module ranks or alphas, extra trained modules (modules_to_save), adapted embeddings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from studio.errors import ExportError
from studio.export.gguf_model import Progress, gguf_name, permute_qk, qk_heads, read_shape


def adapter_config(adapter_dir: Path) -> dict[str, Any]:
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} cannot be read ({exc}). Export a run whose adapter was saved (done, or "
                          "stopped after a checkpoint).") from None


def lora_alpha(config: dict[str, Any]) -> float:
    """The alpha llama.cpp needs for the same scale PEFT applies."""
    alpha, rank = float(config.get("lora_alpha") or config.get("r") or 8), int(config.get("r") or 8)
    return alpha * math.sqrt(rank) if config.get("use_rslora") else alpha


def adapter_tensor_bytes(adapter_dir: Path) -> int:
    """The float32 size of the adapter's LoRA matrices (what the GGUF holds, plus a small header)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(_weights(adapter_dir)), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            n = 1
            for d in handle.get_slice(key).get_shape():
                n *= d
            total += 4 * n
    return total


def _weights(adapter_dir: Path) -> Path:
    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        raise ExportError(f"{path} is missing, so there is no adapter to write as GGUF. Export a run that "
                          "finished (or stopped after saving).")
    return path


def _pairs(adapter_dir: Path, n_layers: int) -> list[tuple[str, str, str]]:
    """(module path, GGUF weight name, safetensors key prefix) of every adapted matrix, in file order."""
    from safetensors import safe_open

    out: list[tuple[str, str, str]] = []
    with safe_open(str(_weights(adapter_dir)), framework="pt") as handle:
        keys = list(handle.keys())
    for key in keys:
        if not key.endswith(".lora_A.weight"):
            if key.endswith(".lora_B.weight"):
                continue
            raise ExportError(f"The adapter holds {key}, which is not a LoRA matrix (trained embeddings or extra "
                              "modules). llama.cpp cannot apply it: export the merged model as GGUF instead.")
        prefix = key[: -len(".lora_A.weight")]
        module = prefix.removeprefix("base_model.model.")
        name = gguf_name(module + ".weight", n_layers)
        if name is None:
            continue
        if prefix + ".lora_B.weight" not in keys:
            raise ExportError(f"The adapter file has {key} without its B matrix; it is damaged. Train the run "
                              "again or export another one.")
        out.append((module, name, prefix))
    if not out:
        raise ExportError(f"{_weights(adapter_dir)} holds no LoRA matrices, so there is nothing to export.")
    return out


def write_adapter_gguf(adapter_dir: Path, base_dir: Path, out_path: Path, *, name: str = "",
                       progress: Progress | None = None) -> int:
    """Write the adapter as a GGUF LoRA at `out_path` (the caller renames it); returns the number of tensors."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    from studio.export.servability import llama_cpp_problems

    config = adapter_config(adapter_dir)
    problems = llama_cpp_problems(config)
    if problems:
        raise ExportError("This adapter cannot be written as a GGUF LoRA: " + " ".join(problems)
                          + " Export the merged model as GGUF instead.")
    shape = read_shape(base_dir)  # the permutation needs the base's head counts
    pairs = _pairs(adapter_dir, shape.n_layers)
    writer = gguf.GGUFWriter(str(out_path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, lora_alpha(config))
    writer.add_name(name or Path(adapter_dir).name)
    with safe_open(str(_weights(adapter_dir)), framework="pt") as handle:
        for i, (module, gname, prefix) in enumerate(pairs):
            a = handle.get_tensor(prefix + ".lora_A.weight").float().numpy()
            b = handle.get_tensor(prefix + ".lora_B.weight").float().numpy()
            heads = qk_heads(module, shape)
            if heads is not None:
                b = permute_qk(b, heads)
            writer.add_tensor(gname + ".lora_a", np.ascontiguousarray(a, dtype=np.float32))
            writer.add_tensor(gname + ".lora_b", np.ascontiguousarray(b, dtype=np.float32))
            if progress:
                progress((i + 1) / len(pairs) * 0.8, f"Reading the adapter: matrix {i + 1} of {len(pairs)}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if progress:
        progress(1.0, "Adapter GGUF written")
    return 2 * len(pairs)
