"""Can a runtime load this adapter as it is? vLLM's and llama.cpp's rules, checked before export and push.

    s = servability(adapter_config_dict)
    s.vllm_ok, s.vllm_problems, s.vllm_flags      # ['--max-lora-rank', '32'] when the rank needs it
    s.llama_cpp_problems

vLLM (0.11+, `--enable-lora`): ranks up to 512 from a fixed set (the server's --max-lora-rank defaults to 16, so
a larger rank needs the flag), no DoRA, no bias training, no modules_to_save except a classification head.
llama.cpp's LoRA reader: one rank and alpha for all matrices, no DoRA, no trained extra modules or biases.
The studio trains plain LoRA (no DoRA, no extra modules), so its own runs pass; adapters brought from elsewhere,
or a future setting, are caught here with a plain message instead of failing inside the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""vLLM's accepted --max-lora-rank values (vllm/config/lora.py)."""
VLLM_DEFAULT_MAX_RANK = 16
_HEADS = {"classifier", "score"}


def _extra_modules(config: dict[str, Any], allowed: set[str]) -> list[str]:
    return [m for m in (config.get("modules_to_save") or []) if str(m) not in allowed]


def vllm_max_lora_rank(rank: int) -> int | None:
    """The --max-lora-rank vLLM needs for `rank` (None: above every value it accepts)."""
    return next((r for r in VLLM_LORA_RANKS if r >= rank), None)


def vllm_problems(config: dict[str, Any]) -> list[str]:
    out = []
    if config.get("use_dora"):
        out.append("it is a DoRA adapter, which vLLM does not serve.")
    rank = int(config.get("r") or 0)
    if vllm_max_lora_rank(rank) is None:
        out.append(f"its rank is {rank}, above the largest vLLM accepts ({VLLM_LORA_RANKS[-1]}).")
    extra = _extra_modules(config, _HEADS)
    if extra:
        out.append(f"it also trains whole modules ({', '.join(map(str, extra))}: modules_to_save), which vLLM "
                   "does not load.")
    if str(config.get("bias") or "none") != "none":
        out.append(f"it trains biases (bias='{config.get('bias')}'), which vLLM does not load.")
    return out


def llama_cpp_problems(config: dict[str, Any]) -> list[str]:
    out = []
    if config.get("use_dora"):
        out.append("it is a DoRA adapter, which llama.cpp cannot apply.")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        out.append("its layers use different ranks or alphas (rank_pattern / alpha_pattern), and a GGUF LoRA "
                   "holds one alpha.")
    extra = _extra_modules(config, set())
    if extra:
        out.append(f"it also trains whole modules ({', '.join(map(str, extra))}), which a GGUF LoRA cannot hold.")
    if str(config.get("bias") or "none") != "none":
        out.append(f"it trains biases (bias='{config.get('bias')}'), which a GGUF LoRA cannot hold.")
    return out


@dataclass(frozen=True)
class Servability:
    rank: int
    vllm_problems: list[str] = field(default_factory=list)
    llama_cpp_problems: list[str] = field(default_factory=list)
    vllm_flags: list[str] = field(default_factory=list)

    @property
    def vllm_ok(self) -> bool:
        return not self.vllm_problems

    def summary(self) -> str:
        """One plain paragraph for the Publish tab, the CLI and the push result."""
        parts = []
        if self.vllm_ok:
            extra = f" (start the server with {' '.join(self.vllm_flags)})" if self.vllm_flags else ""
            parts.append(f"vLLM can serve this adapter{extra}.")
        else:
            parts.append("vLLM cannot serve this adapter: " + " ".join(self.vllm_problems)
                         + " Serve the merged model instead.")
        if self.llama_cpp_problems:
            parts.append("llama.cpp and Ollama cannot apply it as a LoRA: " + " ".join(self.llama_cpp_problems)
                         + " Export the merged model as GGUF instead.")
        return " ".join(parts)


def servability(config: dict[str, Any]) -> Servability:
    rank = int(config.get("r") or 0)
    flags: list[str] = []
    needed = vllm_max_lora_rank(rank)
    if needed is not None and needed > VLLM_DEFAULT_MAX_RANK:
        flags = ["--max-lora-rank", str(needed)]
    return Servability(rank, vllm_problems(config), llama_cpp_problems(config), flags)
