"""SideBySide: one base model with run adapters attached; base vs fine-tuned with identical decoding."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest

from studio.errors import TrainError
from studio.evaluation.sidebyside import SideBySide
from studio.workspace import Workspace, utc_now

PROMPT = "Write a short greeting."
TOKENS = 12


def _make_adapter(base: Path, folder: Path) -> Path:
    """A real LoRA adapter with random (non-zero) weights, so it changes outputs without any training."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                        task_type="CAUSAL_LM")
    get_peft_model(model, config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def adapter(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("adapter"))


@pytest.fixture(scope="module")
def sbs(tiny_chat_model: Path, adapter: Path) -> SideBySide:
    return SideBySide(tiny_chat_model, {1: adapter})


@pytest.fixture(scope="module")
def plain(tiny_chat_model: Path) -> SideBySide:
    return SideBySide(tiny_chat_model)  # the base model alone, no PEFT at all


def test_disabled_adapter_equals_plain_base(sbs: SideBySide, plain: SideBySide) -> None:
    # The random tiny model's greedy reply is only whitespace, so sampling (same seed) is compared too.
    for temperature in (0.0, 0.8):
        alone = plain.generate(PROMPT, which="base", max_new_tokens=TOKENS, temperature=temperature, seed=7)
        with_adapter = sbs.generate(PROMPT, which="base", max_new_tokens=TOKENS, temperature=temperature, seed=7)
        assert with_adapter == alone
    assert alone  # the sampled reply has text
    # Switching the adapter on and off again leaves the base untouched.
    sbs.generate(PROMPT, which=1, max_new_tokens=TOKENS)
    assert sbs.generate(PROMPT, which="base", max_new_tokens=TOKENS, temperature=0.8, seed=7) == alone


def test_adapter_side_differs_from_base(sbs: SideBySide) -> None:
    for temperature in (0.0, 0.8):
        base = sbs.generate(PROMPT, which="base", max_new_tokens=TOKENS, temperature=temperature, seed=2)
        tuned = sbs.generate(PROMPT, which=1, max_new_tokens=TOKENS, temperature=temperature, seed=2)
        assert tuned != base


def test_same_seed_sampling_reproduces(sbs: SideBySide) -> None:
    for side in ("base", 1):
        first = sbs.generate(PROMPT, which=side, max_new_tokens=TOKENS, temperature=0.8, top_p=0.95, seed=3)
        second = sbs.generate(PROMPT, which=side, max_new_tokens=TOKENS, temperature=0.8, top_p=0.95, seed=3)
        assert first == second
    other = {sbs.generate(PROMPT, which="base", max_new_tokens=TOKENS, temperature=0.8, seed=s) for s in range(4)}
    assert len(other) > 1  # sampling really samples: the seed matters


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_stream_grows_and_ends_with_generate(sbs: SideBySide, temperature: float) -> None:
    events = list(sbs.stream(PROMPT, ["base", 1], max_new_tokens=TOKENS, temperature=temperature, seed=5))
    texts: dict[object, list[str]] = {}
    for side, text in events:
        texts.setdefault(side, []).append(text)
    assert list(texts) == ["base", 1]
    for side, seen in texts.items():
        assert len(seen) > 2  # partial texts, not one final blob
        if temperature:
            assert len(set(seen)) > 2 and seen[-1]
        assert all(len(a) <= len(b) for a, b in itertools.pairwise(seen))
        expected = sbs.generate(PROMPT, which=side, max_new_tokens=TOKENS, temperature=temperature, seed=5)
        assert seen[-1] == expected


def test_memory_is_one_model(sbs: SideBySide, plain: SideBySide) -> None:
    base_bytes = sum(p.numel() * p.element_size() for p in plain.model.parameters())
    assert base_bytes <= plain.memory_bytes() < 1.1 * base_bytes
    assert base_bytes < sbs.memory_bytes() < 1.1 * base_bytes  # far below two models (2x)


def test_mismatched_adapter_is_refused(tiny_chat_model: Path, adapter: Path, tmp_path: Path) -> None:
    other = shutil.copytree(adapter, tmp_path / "other")
    config_path = other / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "some-other-model")
    config_path.write_text(json.dumps(config))
    with pytest.raises(TrainError, match=r"trained on .*some-other-model.*not on"):
        SideBySide(tiny_chat_model, {2: other})
    with pytest.raises(TrainError, match="no saved adapter"):
        SideBySide(tiny_chat_model, {3: tmp_path / "missing"})


def _insert_run(ws: Workspace, base_ref: str, output_dir: Path, method: str = "lora") -> int:
    from studio.workspace.projects import create_project

    project = create_project(ws, f"p{output_dir.name}")
    now = utc_now()
    with ws.write() as conn:
        return int(conn.execute(
            "INSERT INTO run(project_id, base_model_ref, method, status, output_dir, created_at, updated_at) "
            "VALUES (?, ?, ?, 'done', ?, ?, ?)",
            (project.id, base_ref, method, str(output_dir), now, now),
        ).lastrowid)


def test_load_from_runs(ws: Workspace, tiny_chat_model: Path, adapter: Path, sbs: SideBySide,
                        tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(adapter, run_dir / "adapter")
    run_id = _insert_run(ws, str(tiny_chat_model), run_dir)
    loaded = SideBySide.load(ws, str(tiny_chat_model), [run_id])
    assert loaded.run_ids == [run_id]
    assert loaded.generate(PROMPT, which=run_id, max_new_tokens=TOKENS) == sbs.generate(
        PROMPT, which=1, max_new_tokens=TOKENS)

    # A run trained on another base model is refused before anything loads.
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tiny_chat_model, elsewhere)
    with pytest.raises(TrainError, match="was trained on"):
        SideBySide.load(ws, str(elsewhere), [run_id])
    full = _insert_run(ws, str(tiny_chat_model), tmp_path / "full", method="full")
    with pytest.raises(TrainError, match="no adapter"):
        SideBySide.load(ws, str(tiny_chat_model), [full])
    with pytest.raises(TrainError, match="1 or 2 runs"):
        SideBySide.load(ws, str(tiny_chat_model), [])
    with pytest.raises(TrainError, match="not loaded"):
        loaded.generate(PROMPT, which=999)
