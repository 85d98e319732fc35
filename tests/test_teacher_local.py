"""LocalTeacher on real models: the tiny random Llama for batching and plumbing, SmolLM2 for real text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studio.errors import ModelRefError, TeacherError
from studio.teachers.base import GenerationParams, Teacher
from studio.teachers.local import LocalTeacher

GREEDY = GenerationParams(max_new_tokens=12, temperature=0)

# Very different prompt lengths, so a batch holds rows with many pad tokens next to rows with none.
CONVERSATIONS = [
    [{"role": "user", "content": "Hi."}],
    [{"role": "user", "content": "Write a long story about a lighthouse keeper. " * 20}],
    [{"role": "system", "content": "You answer in French."}, {"role": "user", "content": "What is a cat?"}],
    [{"role": "user", "content": "Sum these: " + ", ".join(str(i) for i in range(60))}],
    [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another one, please."},
    ],
    [{"role": "user", "content": "?"}],
]


@pytest.fixture(scope="module")
def lively_model(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_chat_model with its layer weights redrawn large (std 0.5).

    At the default initialisation (std 0.02) the two layers barely touch the residual stream, so with
    tied embeddings greedy decoding just repeats the prompt's last token ("\n" after the chat template)
    whatever came before: every output is empty and batched-vs-single equality would prove nothing.
    With large weights attention matters and each prompt gets its own gibberish continuation.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_chat_model), dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if weight.dim() == 2 and "embed" not in name:
                weight.normal_(0.0, 0.5, generator=generator)
    folder = tmp_path_factory.mktemp("lively-tiny-chat")
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(tiny_chat_model)).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_teacher(lively_model: Path, models_dir: Path) -> LocalTeacher:
    return LocalTeacher(str(lively_model), models_dir, batch_size=4)


def test_is_a_teacher(tiny_teacher: LocalTeacher) -> None:
    assert isinstance(tiny_teacher, Teacher)


def test_batched_greedy_equals_one_at_a_time(tiny_teacher: LocalTeacher, lively_model: Path,
                                             models_dir: Path) -> None:
    # batch_size 4 over 6 conversations: one full chunk with heavy left padding, one chunk of two.
    batched = tiny_teacher.generate(CONVERSATIONS, GREEDY)
    single = LocalTeacher(str(lively_model), models_dir, batch_size=1)
    one_by_one = [single.generate([conversation], GREEDY)[0] for conversation in CONVERSATIONS]
    assert len(batched) == len(CONVERSATIONS)
    assert batched == one_by_one  # exact: padding is masked out and positions start at each real token
    assert len(set(batched)) == len(batched), "each prompt should get its own (gibberish) continuation"


def test_order_is_preserved(tiny_teacher: LocalTeacher) -> None:
    forward = tiny_teacher.generate(CONVERSATIONS, GREEDY)
    backward = tiny_teacher.generate(CONVERSATIONS[::-1], GREEDY)
    assert backward == forward[::-1]
    # Repeated inputs in one call map to their own positions.
    doubled = tiny_teacher.generate(CONVERSATIONS + CONVERSATIONS[:2], GREEDY)
    assert doubled == forward + forward[:2]


def test_empty_input_gives_empty_output(tiny_teacher: LocalTeacher) -> None:
    assert tiny_teacher.generate([], GREEDY) == []


def test_sampling_is_reproducible_with_a_seed(tiny_teacher: LocalTeacher) -> None:
    params = GenerationParams(max_new_tokens=10, temperature=1.0, top_p=0.95, seed=1234)
    first = tiny_teacher.generate(CONVERSATIONS, params)
    second = tiny_teacher.generate(CONVERSATIONS, params)
    assert first == second
    other = tiny_teacher.generate(CONVERSATIONS, GenerationParams(max_new_tokens=10, temperature=1.0, seed=99))
    assert other != first


def test_seed_leaves_global_rng_alone(tiny_teacher: LocalTeacher) -> None:
    import torch

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    tiny_teacher.generate(CONVERSATIONS[:2], GenerationParams(max_new_tokens=4, temperature=1.0, seed=5))
    assert torch.equal(torch.rand(3), expected)


def test_over_long_prompt_is_cut_from_the_left(tiny_teacher: LocalTeacher) -> None:
    # The tiny model's context is 2048 positions; this prompt is several times longer.
    huge = [{"role": "user", "content": "word " * 6000}]
    texts = tiny_teacher.generate([huge, CONVERSATIONS[0]], GREEDY)
    assert len(texts) == 2


def test_max_new_tokens_beyond_context_is_a_teacher_error(tiny_teacher: LocalTeacher) -> None:
    with pytest.raises(TeacherError, match="Max new tokens"):
        tiny_teacher.generate(CONVERSATIONS[:1], GenerationParams(max_new_tokens=5000, temperature=0))


def test_describe_has_no_secrets(tiny_teacher: LocalTeacher, lively_model: Path) -> None:
    tiny_teacher.generate(CONVERSATIONS[:1], GREEDY)  # loaded: the device is now the real one
    info = tiny_teacher.describe()
    assert info == {"kind": "local", "model": str(lively_model), "device": "cpu", "batch_size": 4}
    assert not any(re.search("key|token|secret|password|auth", name, re.I) for name in info)


def test_bad_ref_raises_model_ref_error(models_dir: Path, tmp_path: Path) -> None:
    teacher = LocalTeacher(str(tmp_path / "no-such-model"), models_dir)
    with pytest.raises(ModelRefError):
        teacher.generate(CONVERSATIONS[:1], GREEDY)


def test_batch_size_must_be_positive(models_dir: Path) -> None:
    with pytest.raises(TeacherError, match="batch size"):
        LocalTeacher("embedded:smollm2-135m-instruct", models_dir, batch_size=0)


@pytest.mark.slow
def test_embedded_smollm2_answers_in_english(converted_chat_model: Path, models_dir: Path) -> None:
    teacher = LocalTeacher("embedded:smollm2-135m-instruct", models_dir)
    question = [{"role": "user", "content": "List three colours."}]
    [answer] = teacher.generate([question], GenerationParams(max_new_tokens=32, temperature=0))
    assert answer
    words = re.findall(r"[A-Za-z]+", answer)
    assert len(words) >= 3, answer
    colours = {"red", "blue", "green", "yellow", "orange", "purple", "black", "white", "pink", "brown"}
    assert colours & {word.lower() for word in words}, answer
