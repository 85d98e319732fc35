"""stream_together: base and fine-tuned answers grow at once from one batched call on one base model."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.errors import TrainError
from studio.evaluation.sidebyside import BASE, SideBySide
from studio.evaluation.together import generate_together, stream_together
from tests.test_sidebyside import _make_adapter

PROMPTS = ["Write a short greeting.", "Name three colours.", "Tell me about the sea in one line."]
TOKENS = 16


@pytest.fixture(scope="module")
def two_adapters(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> SideBySide:
    first = _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("adapter-a"))
    second = tmp_path_factory.mktemp("adapter-b")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)  # a different random adapter, so the two fine-tuned columns differ too
    model = AutoModelForCausalLM.from_pretrained(str(tiny_chat_model), dtype=torch.float32)
    get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
                                     task_type="CAUSAL_LM")).save_pretrained(str(second))
    return SideBySide(tiny_chat_model, {1: first, 2: second})


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_rows_equal_each_side_alone(two_adapters: SideBySide, prompt: str) -> None:
    together = generate_together(two_adapters, prompt, [BASE, 1, 2], max_new_tokens=TOKENS)
    alone = {side: two_adapters.generate(prompt, which=side, max_new_tokens=TOKENS) for side in (BASE, 1, 2)}
    assert together == alone
    assert len(set(together.values())) == 3  # three different models, three different answers


def _check_growth(model: SideBySide, prompt: str, sides: list, tokens: int) -> None:
    events = list(stream_together(model, prompt, sides, max_new_tokens=tokens))
    assert events[0] == dict.fromkeys(sides, "")
    # "At once": events before the last already carry text from every column.
    assert any(all(e[s] for s in sides) for e in events[:-1])
    lengths = [tuple(len(e[s]) for s in sides) for e in events[:-1]]
    assert lengths == sorted(lengths)  # columns only grow
    assert events[-1] == {s: model.generate(prompt, which=s, max_new_tokens=tokens) for s in sides}


def test_columns_grow_together(two_adapters: SideBySide) -> None:
    # The random tiny base model ends its answers at once, so the two adapters' columns show the growth here;
    # the next test does it with the base model's column on the embedded SmolLM2.
    _check_growth(two_adapters, PROMPTS[0], [1, 2], TOKENS)


@pytest.mark.slow
def test_smollm2_base_and_tuned_stream_at_once(converted_chat_model: Path, tmp_path: Path) -> None:
    adapter = _make_adapter(converted_chat_model, tmp_path / "adapter")
    model = SideBySide(converted_chat_model, {1: adapter})
    _check_growth(model, "What is the capital of France?", [BASE, 1], 24)


def test_sampling_is_reproducible_per_seed(two_adapters: SideBySide) -> None:
    settings = {"max_new_tokens": TOKENS, "temperature": 0.9, "top_p": 0.95}
    a = generate_together(two_adapters, PROMPTS[1], [BASE, 1], seed=5, **settings)
    b = generate_together(two_adapters, PROMPTS[1], [BASE, 1], seed=5, **settings)
    c = generate_together(two_adapters, PROMPTS[1], [BASE, 1], seed=6, **settings)
    assert a == b and a != c


def test_base_alone_and_bad_sides(tiny_chat_model: Path, two_adapters: SideBySide) -> None:
    plain = SideBySide(tiny_chat_model)
    assert generate_together(plain, PROMPTS[0], [BASE], max_new_tokens=TOKENS) == {
        BASE: two_adapters.generate(PROMPTS[0], which=BASE, max_new_tokens=TOKENS)}
    with pytest.raises(TrainError, match="not loaded"):
        list(stream_together(two_adapters, PROMPTS[0], [BASE, 9], max_new_tokens=TOKENS))
    with pytest.raises(TrainError, match="at least 1"):
        list(stream_together(two_adapters, PROMPTS[0], [BASE, 1], max_new_tokens=0))
