"""Rough memory and time estimates for a training run, before anything heavy is loaded.

Everything here reads small JSON files and does arithmetic: no torch, no weights (torch is imported
only inside `free_memory("cuda")`). The numbers are meant to answer "will this fit, and is it minutes
or hours?", not to be exact; docs/TRAINING.md explains the model in words.

Memory (peak, per device):
* weights: QLoRA keeps the transformer's linear layers in 4 bits (NF4 with double quantisation, about
  0.52 bytes a parameter) and embeddings/norms in the compute type; LoRA keeps all weights in the
  compute type (bfloat16 on a GPU, float32 on a CPU); full fine-tuning keeps float32 weights.
* training state: every trained parameter needs its float32 weight, gradient and two Adam moments,
  16 bytes. For LoRA that is only the adapter; for full fine-tuning it is the whole model.
* activations: with gradient checkpointing (the worker turns it on for CUDA), each layer keeps only its input
  and that input's gradient (2 × batch × seq × hidden values a layer) while one layer at a time is
  recomputed in full (≈ 15 × hidden + 6 × intermediate values a token, LoRA's inputs included); the
  logits (batch × seq × vocabulary, float32, ~8 copies for the loss and its gradient) are counted
  apart because small models with big vocabularies spend most of their activation memory there.
  Both get 25% allocator slack. Without checkpointing (the worker's choice on a CPU: faster, at the
  cost of memory) every layer keeps all its activations.
* overhead: the CUDA context and allocator slack on a GPU; the Python/torch/transformers process on
  a CPU.

Time: the usual FLOPs rule. Training costs 6 × parameters × tokens for full fine-tuning (forward 2,
backward 4) and about 4 × parameters × tokens for LoRA (the backward pass still flows through the
frozen weights, but their weight gradients are skipped); gradient checkpointing adds one more forward
(2 ×). Evaluation costs 2 × parameters × tokens. That is divided by an assumed sustained speed for
the device (`CPU_FLOPS_PER_CORE`, `GPU_FLOPS_BY_NAME`), lowered for small models on a GPU (small
matrices use a GPU poorly) and for QLoRA (de-quantising costs time), plus a fixed start-up time.
Attention's own FLOPs (∝ sequence length²) are left out: they are small at the lengths used here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from studio.errors import TrainError
from studio.train.settings import ALL_LINEAR, TrainConfig

Device = Literal["cpu", "cuda"]

GB = 1024**3

# Bytes per parameter.
NF4_BYTES = 0.5 + 0.016  # 4-bit values + double-quantised block constants (~0.127 bit/param)
TRAINED_PARAM_BYTES = 16  # float32 weight + gradient + Adam first and second moments
FULL_WEIGHT_BYTES = 4  # full fine-tuning keeps float32 master weights (mixed precision on a GPU)

# Activation values stored per token. All of one layer's activations (attention, gated MLP and the
# LoRA inputs) come to about 15 × hidden + 6 × intermediate values; with gradient checkpointing only
# each layer's input and its gradient are kept (2 × hidden a layer) plus one layer recomputed in full.
LAYER_VALUES_PER_HIDDEN = 15
LAYER_VALUES_PER_INTERMEDIATE = 6
CHECKPOINT_VALUES_PER_HIDDEN = 2
LOGIT_COPIES = 8  # vocabulary-sized float32 rows a token: TRL's fused LM-head tiles, log-softmax state, gradients
ACTIVATION_SLACK = 1.25  # allocator fragmentation on the per-token parts
# Calibrated on the worker's path (TRL's fused LM head, PEFT LoRA r=16 all-linear with dropout, float32, train
# mode) with SmolLM2-135M on a CPU, batch × 256 tokens. Peak RSS measured / this model:
#   no checkpointing, batch 1 / 4 / 8:  2.35 / 5.9 / 10.5 GB  vs  2.5 / 6.1 / 10.8 GB
#   gradient checkpointing, batch 1 / 8: 1.75 / 5.8 GB        vs  1.9 / 5.9 GB
PREFERENCE_TOKEN_MEMORY = 0.8
"""DPO/ORPO's per-token memory against SFT's, measured on the same path (TRL's DPOTrainer, reference log-probs
precomputed, LoRA r=16, SmolLM2-135M float32 on a CPU; pairs × 2 sequences × tokens; bench/preference_memory.py).
Peak RSS measured / this model: 4 × 2 × 268: 8.1 / 8.7 GB; 8 × 2 × 268: 14.8 / 16.1 GB; 4 × 2 × 512: 13.9 / 15.5
GB. Without this factor the model said 1.25 to 1.4 times the measured peak."""

CUDA_OVERHEAD_BYTES = int(0.8 * GB)  # CUDA context, cuBLAS workspace, allocator slack
CPU_OVERHEAD_BYTES = int(0.7 * GB)  # the Python process with torch, transformers, trl, peft, datasets
FIT_MARGIN = 0.90  # use at most 90% of what is free

# Sustained training speed, FLOP/s. Rough: CPUs reach ~20 GFLOP/s a core in float32 training; GPUs
# are listed by name (bfloat16, roughly 35-40% of their dense peak), unknown ones get GPU_FLOPS.
CPU_FLOPS_PER_CORE = 20e9
GPU_FLOPS = 60e12
GPU_FLOPS_BY_NAME: tuple[tuple[str, float], ...] = (
    ("h200", 350e12),
    ("h100", 350e12),
    ("a100", 110e12),
    ("l40", 70e12),
    ("4090", 60e12),
    ("a10", 45e12),
    ("l4", 40e12),
    ("3090", 30e12),
    ("v100", 30e12),
    ("t4", 15e12),
)
SMALL_MODEL_PARAMS = 2e9  # below this a GPU runs proportionally slower (small matrices)
MIN_GPU_UTILISATION = 0.08
QLORA_SLOWDOWN = {"cpu": 2.0, "cuda": 1.4}
STARTUP_SECONDS = {"cpu": 20.0, "cuda": 40.0}
LONGEST_TO_MEAN = 2.0  # longest example in a batch vs the mean, when the longest is unknown


# --- model size ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSize:
    """The shape of a causal language model, as read from its config.json."""

    params: int
    hidden_size: int
    num_layers: int
    intermediate_size: int
    vocab_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool
    gated_mlp: bool = True
    source: str = ""
    """Where the numbers came from: a config.json path, "known shape of ...", or "guessed from ..."."""

    @property
    def embedding_params(self) -> int:
        """Parameters outside the transformer layers (embeddings, output head, final norm)."""
        head = 0 if self.tied_embeddings else self.vocab_size * self.hidden_size
        return self.vocab_size * self.hidden_size + head + self.hidden_size

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer in one transformer block, by its usual (Llama) name."""
        h, q, kv, i = (
            self.hidden_size,
            self.num_heads * self.head_dim,
            self.num_kv_heads * self.head_dim,
            self.intermediate_size,
        )
        shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h)}
        if self.gated_mlp:
            shapes.update({"gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)})
        else:
            shapes.update({"up_proj": (h, i), "down_proj": (i, h)})
        return shapes

    def lora_params(self, r: int, target_modules: list[str] | str) -> int:
        """Adapter parameters: r × (in + out) for each adapted linear layer in every block.
        Names the estimate does not know count as 'all-linear' (an upper bound)."""
        shapes = self.linear_shapes()
        if target_modules == ALL_LINEAR or isinstance(target_modules, str):
            chosen = list(shapes)
        else:
            chosen = [name for name in shapes if any(_module_matches(name, t) for t in target_modules)]
            if not chosen:
                chosen = list(shapes)
        return self.num_layers * sum(r * (shapes[n][0] + shapes[n][1]) for n in chosen)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _module_matches(name: str, target: str) -> bool:
    target = target.strip()
    aliases = {"c_attn": ("q_proj", "k_proj", "v_proj"), "query_key_value": ("q_proj", "k_proj", "v_proj")}
    if target in aliases:
        return name in aliases[target]
    return name == target or name.endswith("." + target) or target.endswith(name)


NON_GATED_TYPES = {"gpt2", "gpt_neox", "gptj", "gpt_bigcode", "opt", "bloom", "falcon", "phi", "codegen", "mpt"}


def model_size_from_config(config: dict[str, Any], source: str = "") -> ModelSize:
    """Shape and parameter count from a transformers config.json dict (Llama-style blocks; GPT-2 style
    names understood). Raises TrainError when the config lacks the sizes."""
    if isinstance(config.get("text_config"), dict):  # multimodal wrappers keep the language model here
        config = {**config["text_config"], "model_type": config["text_config"].get("model_type", "")}

    def pick(*keys: str, default: int | None = None) -> int | None:
        for key in keys:
            value = config.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return int(value)
        return default

    hidden = pick("hidden_size", "n_embd", "d_model", "dim")
    layers = pick("num_hidden_layers", "n_layer", "num_layers", "n_layers")
    vocab = pick("vocab_size")
    if not hidden or not layers or not vocab:
        raise TrainError(
            f"Cannot tell the size of the model from {source or 'its config.json'}: it has no "
            "hidden_size, num_hidden_layers or vocab_size. The memory estimate needs them."
        )
    model_type = str(config.get("model_type") or "").lower()
    gated = model_type not in NON_GATED_TYPES
    heads = pick("num_attention_heads", "n_head", "num_heads", default=max(1, hidden // 64)) or 1
    kv_heads = pick("num_key_value_heads", "num_kv_heads", default=heads) or heads
    head_dim = pick("head_dim", default=hidden // heads) or hidden // heads
    intermediate = pick("intermediate_size", "n_inner", "ffn_dim", default=(8 * hidden // 3) if gated else 4 * hidden)
    tied = bool(config.get("tie_word_embeddings", model_type in NON_GATED_TYPES))
    size = ModelSize(
        params=0,
        hidden_size=hidden,
        num_layers=layers,
        intermediate_size=intermediate or 4 * hidden,
        vocab_size=vocab,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        tied_embeddings=tied,
        gated_mlp=gated,
        source=source,
    )
    per_layer = sum(a * b for a, b in size.linear_shapes().values()) + 2 * hidden  # linears + two norms
    if config.get("attention_bias"):
        per_layer += heads * head_dim + 2 * kv_heads * head_dim
    return replace(size, params=layers * per_layer + size.embedding_params)


def model_size_from_params(params: int) -> ModelSize:
    """A plausible Llama-like shape for a bare parameter count (when no config is at hand)."""
    if params <= 0:
        raise TrainError(f"The model's parameter count must be positive; got {params}.")
    layers = 24 if params < 2e9 else 32
    hidden = max(64, 64 * round(math.sqrt(params / (12 * layers)) / 64))
    return ModelSize(
        params=int(params),
        hidden_size=hidden,
        num_layers=layers,
        intermediate_size=8 * hidden // 3,
        vocab_size=32000,
        num_heads=max(1, hidden // 64),
        num_kv_heads=max(1, hidden // 64),
        head_dim=64,
        tied_embeddings=False,
        source=f"guessed from {params:,} parameters",
    )


# Shapes of the embedded model and its family, for when no config.json is on disk yet (the embedded
# GGUF not converted, a Hub id not downloaded).
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "embedded:smollm2-135m-instruct": {
        "model_type": "llama",
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "intermediate_size": 1536,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    },
    "huggingfacetb/smollm2-360m-instruct": {
        "model_type": "llama",
        "hidden_size": 960,
        "num_hidden_layers": 32,
        "intermediate_size": 2560,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
        "head_dim": 64,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    },
    "huggingfacetb/smollm2-1.7b-instruct": {
        "model_type": "llama",
        "hidden_size": 2048,
        "num_hidden_layers": 24,
        "intermediate_size": 8192,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "head_dim": 64,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    },
}
KNOWN_CONFIGS["huggingfacetb/smollm2-135m-instruct"] = KNOWN_CONFIGS["embedded:smollm2-135m-instruct"]
for _name in ("135m", "360m", "1.7b"):  # base models share the instruct models' shapes
    KNOWN_CONFIGS[f"huggingfacetb/smollm2-{_name}"] = KNOWN_CONFIGS[f"huggingfacetb/smollm2-{_name}-instruct"]


def model_size(ref: str, models_dir: Path) -> ModelSize:
    """Size of the model `ref` names, from its config.json only (no weights, no torch, no network).
    Adapters are measured by their base model. Falls back to known shapes (the embedded SmolLM2 before
    its first conversion); raises ModelRefError for a bad ref and TrainError when the size is unknown."""
    from studio.models import registry  # light (no torch); imported here to keep this module's deps small

    info = registry.resolve(ref, Path(models_dir))
    if info.role != "chat":
        raise TrainError(f"{info.title} is an embedding model; choose a chat model to fine-tune.")
    folder = Path(info.location) if info.location else None
    if folder is not None and folder.is_dir():
        base = registry.adapter_base(folder)
        if base and not (folder / "config.json").is_file():
            return model_size(base, models_dir)
        config_path = folder / "config.json"
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TrainError(f"Cannot read {config_path}: {exc}. Check the model folder.") from exc
            if isinstance(config, dict):
                return model_size_from_config(config, source=str(config_path))
    known = KNOWN_CONFIGS.get(info.ref.lower())
    if known is not None:
        return model_size_from_config(known, source=f"known shape of {info.ref}")
    raise TrainError(
        f"The size of {info.ref} is not known yet: its config.json is not on this machine "
        f"({info.status}). Download or convert the model first, then the estimate can be made."
    )


# --- free memory ---------------------------------------------------------------------------------------


def free_memory(device: Device = "cpu") -> int | None:
    """Bytes free for training now: MemAvailable from /proc/meminfo (CPU), or the free memory of GPU 0
    from torch.cuda.mem_get_info (CUDA; torch imported only here). None when it cannot be told."""
    if device == "cuda":
        try:
            import torch

            if not torch.cuda.is_available():
                return None
            free, _total = torch.cuda.mem_get_info()
            return int(free)
        except Exception:  # no torch, no driver: unknown rather than an error
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def device_flops(device: Device, device_name: str = "", cpu_cores: int | None = None) -> float:
    """Assumed sustained training speed in FLOP/s for a device class (see the module docstring)."""
    if device == "cuda":
        lowered = device_name.lower()
        for key, flops in GPU_FLOPS_BY_NAME:  # ordered so "a100" is tried before "a10", "l40" before "l4"
            if key in lowered:
                return flops
        return GPU_FLOPS
    cores = cpu_cores or _cpu_cores()
    return CPU_FLOPS_PER_CORE * max(1, cores)


def _cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --- the estimate --------------------------------------------------------------------------------------


@dataclass
class Estimate:
    """Peak memory per device and wall time of one run, with whether it fits and what to change if not."""

    memory_bytes: int
    time_seconds: float
    fits: bool
    advice: list[str]
    breakdown: dict[str, int]
    """Memory parts in bytes: weights, training_state, activations, logits, overhead."""
    device: str = "cpu"
    devices: int = 1
    free_memory_bytes: int | None = None
    params: int = 0
    trainable_params: int = 0
    total_steps: int = 0
    total_tokens: int = 0
    flops: float = 0.0
    model_source: str = ""
    gradient_checkpointing: bool = True
    time_breakdown: dict[str, float] = field(default_factory=dict)
    """Seconds: startup, training, evaluation, and for DPO reference (its log-probabilities, once)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One plain sentence, e.g. "About 1.2 GB of RAM and 3 minutes on this CPU." """
        where = "GPU memory" if self.device == "cuda" else "RAM"
        per = " per GPU" if self.device == "cuda" and self.devices > 1 else ""
        if self.device == "cuda":
            on = f"on {self.devices} GPUs" if self.devices > 1 else "on this GPU"
        else:
            on = f"on this CPU ({self.devices} processes)" if self.devices > 1 else "on this CPU"
        text = f"About {format_bytes(self.memory_bytes)} of {where}{per} and {format_duration(self.time_seconds)} {on}."
        if not self.fits and self.free_memory_bytes is not None:
            text += f" Only {format_bytes(self.free_memory_bytes)} is free, so it will probably not fit."
        return text


def estimate(
    config: TrainConfig,
    *,
    params_count: int | None = None,
    model_ref: str | None = None,
    models_dir: Path | None = None,
    model: ModelSize | None = None,
    rows: int,
    mean_tokens: float,
    max_tokens: int | None = None,
    validation_rows: int = 0,
    device: Device = "cpu",
    devices: int = 1,
    free_memory_bytes: int | None = None,
    detect_free_memory: bool = False,
    gradient_checkpointing: bool | None = None,
    device_name: str = "",
    flops_per_second: float | None = None,
) -> Estimate:
    """Estimate peak memory (per device) and time for training `config` on `rows` training rows of
    `mean_tokens` tokens on average (`max_tokens`: the longest, when known). For a preference run (DPO, ORPO)
    `rows` counts pairs and the token counts are per sequence: each pair trains two (studio.train.workload).

    The model is given as `model` (a ModelSize), `model_ref` (+ `models_dir`, read with `model_size`),
    or a bare `params_count`. `free_memory_bytes` decides `fits`; when it is None and
    `detect_free_memory` is true it is read with `free_memory(device)`; when still unknown, `fits` is
    True. `gradient_checkpointing` None means what the worker does: on for CUDA, off on a CPU.
    `flops_per_second` overrides the assumed device speed (e.g. from a measured benchmark)."""
    if device not in ("cpu", "cuda"):
        raise TrainError(f"Device must be 'cpu' or 'cuda'; got {device!r}.")
    size = _resolve_size(model, model_ref, models_dir, params_count)
    devices = max(1, int(devices))
    if gradient_checkpointing is None:
        gradient_checkpointing = device == "cuda"
    if free_memory_bytes is None and detect_free_memory:
        free_memory_bytes = free_memory(device)

    seq = _memory_seq_len(config, mean_tokens, max_tokens)
    parts = _run_memory_parts(config, size, device, seq, gradient_checkpointing, devices)
    memory = sum(parts.values())
    fits = free_memory_bytes is None or memory <= free_memory_bytes * FIT_MARGIN

    steps = config.total_steps(rows, devices)
    tokens_per_row = _compute_tokens_per_row(config, mean_tokens)
    rows_seen = steps * config.effective_batch_size_for(devices) if config.max_steps > 0 else rows * config.num_epochs
    total_tokens = int(rows_seen * tokens_per_row)
    # Forward 2 + backward 4 (full) or 2 (LoRA: no weight gradients), + 2 to recompute under checkpointing.
    train_factor = (6 if config.method == "full" else 4) + (2 if gradient_checkpointing else 0)
    train_flops = train_factor * size.params * total_tokens
    evaluations = steps // max(1, config.eval_every_steps) + 1  # plus the final evaluation
    eval_flops = 2 * size.params * validation_rows * tokens_per_row * evaluations
    # DPO's reference log-probabilities: one forward over every pair before training (precomputed; ORPO has none).
    reference_flops = 2 * size.params * (rows + validation_rows) * tokens_per_row if config.objective == "dpo" else 0
    # GPUs add their speed; processes on one CPU share its cores (they split the batch, not the work).
    speed = (flops_per_second or _device_speed(device, device_name, size.params)) * (devices if device == "cuda" else 1)
    slowdown = QLORA_SLOWDOWN[device] if config.method == "qlora" else 1.0
    times = {
        "startup": STARTUP_SECONDS[device],
        "training": train_flops / speed * slowdown,
        "evaluation": eval_flops / speed * slowdown,
    }
    if reference_flops:
        times["reference"] = reference_flops / speed * slowdown

    trainable = size.lora_params(config.lora_r, config.target_modules_value) if config.uses_lora else size.params
    result = Estimate(
        memory_bytes=memory,
        time_seconds=round(sum(times.values()), 1),
        fits=fits,
        advice=[],
        breakdown=parts,
        device=device,
        devices=devices,
        free_memory_bytes=free_memory_bytes,
        params=size.params,
        trainable_params=trainable,
        total_steps=steps,
        total_tokens=total_tokens,
        flops=float(train_flops + eval_flops + reference_flops),
        model_source=size.source,
        gradient_checkpointing=gradient_checkpointing,
        time_breakdown={k: round(v, 1) for k, v in times.items()},
    )
    result.advice = _advice(config, size, result, mean_tokens, max_tokens)
    return result


def _resolve_size(
    model: ModelSize | None, model_ref: str | None, models_dir: Path | None, params_count: int | None
) -> ModelSize:
    if model is not None:
        return model
    if model_ref:
        if models_dir is None:
            from studio.config import load_settings

            models_dir = load_settings().models_dir
        return model_size(model_ref, models_dir)
    if params_count:
        return model_size_from_params(params_count)
    raise TrainError("The estimate needs the model: give model_ref, model or params_count.")


def _memory_seq_len(config: TrainConfig, mean_tokens: float, max_tokens: int | None) -> int:
    """Sequence length that sets the peak: full length when packing, else the longest example."""
    if config.packing:
        return config.max_seq_length
    longest = max_tokens if max_tokens else math.ceil(max(1.0, mean_tokens) * LONGEST_TO_MEAN)
    return max(1, min(config.max_seq_length, int(longest)))


def _sequences_per_row(config: TrainConfig) -> int:
    """A preference pair trains its chosen and its rejected sequence together (one batch of both)."""
    return 2 if config.learns_preferences else 1


def _compute_tokens_per_row(config: TrainConfig, mean_tokens: float) -> float:
    # The worker trains packed or padding-free, so no compute goes to pad tokens.
    return min(float(config.max_seq_length), max(1.0, float(mean_tokens))) * _sequences_per_row(config)


def _memory_parts(
    config: TrainConfig, size: ModelSize, device: Device, seq: int, checkpointing: bool = True
) -> dict[str, int]:
    compute_bytes = 2 if device == "cuda" else 4  # bfloat16 on a GPU, float32 on a CPU
    linear_params = size.params - size.embedding_params
    if config.method == "qlora":
        weights = linear_params * NF4_BYTES + size.embedding_params * compute_bytes
        state = size.lora_params(config.lora_r, config.target_modules_value) * TRAINED_PARAM_BYTES
    elif config.method == "lora":
        weights = size.params * compute_bytes
        state = size.lora_params(config.lora_r, config.target_modules_value) * TRAINED_PARAM_BYTES
    else:
        weights = size.params * FULL_WEIGHT_BYTES
        state = size.params * (TRAINED_PARAM_BYTES - FULL_WEIGHT_BYTES)
    tokens = config.per_device_batch_size * _sequences_per_row(config) * seq
    layer_values = LAYER_VALUES_PER_HIDDEN * size.hidden_size + LAYER_VALUES_PER_INTERMEDIATE * size.intermediate_size
    if checkpointing:
        values = CHECKPOINT_VALUES_PER_HIDDEN * size.hidden_size * size.num_layers + layer_values
    else:
        values = layer_values * size.num_layers
    per_token = ACTIVATION_SLACK * (PREFERENCE_TOKEN_MEMORY if config.learns_preferences else 1.0)
    activations = tokens * values * compute_bytes * per_token
    logits = tokens * size.vocab_size * 4 * LOGIT_COPIES * per_token
    overhead = CUDA_OVERHEAD_BYTES if device == "cuda" else CPU_OVERHEAD_BYTES
    return {
        "weights": int(weights),
        "training_state": int(state),
        "activations": int(activations),
        "logits": int(logits),
        "overhead": int(overhead),
    }


def _device_speed(device: Device, device_name: str, params: int) -> float:
    flops = device_flops(device, device_name)
    if device == "cuda":
        flops *= max(MIN_GPU_UTILISATION, min(1.0, params / SMALL_MODEL_PARAMS))
    return flops


def _run_memory_parts(config: TrainConfig, size: ModelSize, device: Device, seq: int, checkpointing: bool,
                      devices: int) -> dict[str, int]:
    """Memory parts of the run: one GPU's share, or, for processes on one CPU, all of them (each process holds its
    own model, state and activations in the same RAM)."""
    parts = _memory_parts(config, size, device, seq, checkpointing)
    if device == "cpu" and devices > 1:
        parts = {name: value * devices for name, value in parts.items()}
    return parts


def _advice(
    config: TrainConfig, size: ModelSize, result: Estimate, mean_tokens: float, max_tokens: int | None
) -> list[str]:
    """Concrete changes, each with the memory it would need, when the run does not fit; a speed hint
    when it fits but takes long on a CPU."""
    advice: list[str] = []
    device: Device = "cuda" if result.device == "cuda" else "cpu"
    free = result.free_memory_bytes
    checkpointing = result.gradient_checkpointing

    def needs(changed: TrainConfig) -> int:
        seq = _memory_seq_len(changed, mean_tokens, max_tokens)
        return sum(_run_memory_parts(changed, size, device, seq, checkpointing, result.devices).values())

    def would_fit(need: int) -> str:
        return " — that fits" if free is not None and need <= free * FIT_MARGIN else ""

    if result.fits:
        if device == "cpu" and result.time_seconds > 3600:
            advice.append(
                f"This would take about {format_duration(result.time_seconds)} on the CPU. The Quick preset, a "
                "shorter maximum length or a machine with a GPU is much faster."
            )
        checks = result.time_breakdown.get("evaluation", 0.0)
        if result.time_seconds > 600 and checks > 0.3 * result.time_breakdown.get("training", 0.0):
            every = config.eval_every_steps * 2
            advice.append(
                f"Checking the validation rows takes about {format_duration(checks)} of that; checking every "
                f"{every} steps instead of {config.eval_every_steps} saves about {format_duration(checks / 2)}."
            )
        return advice

    if config.method != "qlora":
        need = needs(config.replace(method="qlora"))
        if need < result.memory_bytes:
            missing = "" if importlib.util.find_spec("bitsandbytes") else " (install bitsandbytes first)"
            advice.append(
                f"Use QLoRA{missing}: the model is kept in 4 bits, about {format_bytes(need)} in all{would_fit(need)}."
            )
    if config.method == "full":
        need = needs(config.replace(method="lora"))
        advice.append(f"Use LoRA instead of full fine-tuning: about {format_bytes(need)}{would_fit(need)}.")
    if config.per_device_batch_size > 1:
        half = config.per_device_batch_size // 2
        accum = config.gradient_accumulation_steps * config.per_device_batch_size // half
        need = needs(config.replace(per_device_batch_size=half, gradient_accumulation_steps=accum))
        advice.append(
            f"Halve the batch size to {half} and raise gradient accumulation to {accum}: the model still "
            f"learns from {config.effective_batch_size} examples a step, about {format_bytes(need)}{would_fit(need)}."
        )
    seq = _memory_seq_len(config, mean_tokens, max_tokens)
    if seq > 256:
        shorter = max(256, 2 ** int(math.log2(seq - 1)))  # the power of two below the current length
        need = needs(config.replace(max_seq_length=shorter))
        cut = (
            f" (longer examples get cut; yours average about {int(mean_tokens)} tokens)"
            if mean_tokens and mean_tokens > shorter * 0.75
            else ""
        )
        advice.append(f"Cut the maximum length to {shorter} tokens{cut}: about {format_bytes(need)}{would_fit(need)}.")
    if config.packing:
        need = needs(config.replace(packing=False))
        advice.append(f"Turn packing off: about {format_bytes(need)}{would_fit(need)}.")
    if device == "cuda" and result.devices > 1 and config.method == "full":
        advice.append(
            "Install DeepSpeed (pip install deepspeed): with several GPUs ticked, the studio then spreads full "
            "fine-tuning that does not fit one GPU over all of them (ZeRO-2, or ZeRO-3 for the weights too)."
        )
    if device == "cpu" and result.devices > 1:
        need = result.memory_bytes // result.devices
        advice.append(f"Train in one process (device cpu): it uses the same cores, about {format_bytes(need)}"
                      f"{would_fit(need)}.")
    if device == "cpu":
        advice.append("Close other programs to free memory, or train on a machine with more memory or a GPU.")
    return advice


# --- formatting ---------------------------------------------------------------------------------------


def format_bytes(value: float | None) -> str:
    """1288490188 -> "1.2 GB"; 5_000_000 -> "5 MB" (binary units, named the way people say them)."""
    if value is None:
        return "unknown"
    if value >= GB:
        return f"{value / GB:.1f} GB"
    if value >= 1024**2:
        return f"{value / 1024**2:.0f} MB"
    return f"{max(0, value) / 1024:.0f} KB"


def format_duration(seconds: float) -> str:
    """Rounded the way a person says it: "under a minute", "3 minutes", "1.5 hours", "2 days"."""
    if seconds < 60:
        return "under a minute"
    minutes = seconds / 60
    if minutes < 90:
        count = round(minutes)
        return f"{count} minute{'s' if count != 1 else ''}"
    hours = minutes / 60
    if hours < 36:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.1f} days"
