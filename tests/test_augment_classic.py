"""Classic nlpaug augmentation on the real human-written seeds: what changes, what must not, and determinism."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studio.augment.classic import AUGMENTERS, augment_record, available_augmenters
from studio.errors import GenerationError
from tests.conftest import SHARED_SEEDS

AVAILABLE = [a.name for a in available_augmenters() if a.available]
TOKEN_SAFE = [n for n in AVAILABLE if AUGMENTERS[n].keeps_tokens]
WORD_LEVEL = [n for n in AUGMENTERS if not AUGMENTERS[n].keeps_tokens]

NER = {"tokens": ["Ada", "Lovelace", "worked", "with", "Charles", "Babbage", "in", "London", "on", "the",
                  "analytical", "engine"],
       "tags": ["B-PER", "I-PER", "O", "O", "B-PER", "I-PER", "O", "B-LOC", "O", "O", "O", "O"]}


def _alpaca(row: dict) -> dict:
    return {k: row[k] for k in ("instruction", "input", "output")}


@pytest.fixture(scope="module")
def seeds() -> list[dict]:
    rows = [json.loads(line) for line in SHARED_SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [_alpaca(r) for r in rows]


@pytest.fixture(scope="module")
def short_seeds(seeds: list[dict]) -> list[dict]:
    """Seeds with an instruction of several words and no input: every edit must land in the instruction."""
    picked = [s for s in seeds if not s["input"].strip() and len(s["instruction"].split()) >= 8][:8]
    assert len(picked) == 8
    return picked


def test_the_expected_augmenters_run_offline_here() -> None:
    # nlpaug ships the keyboard, OCR and spelling data in its wheel; the rest need no data at all.
    assert {"keyboard", "ocr", "random_char", "spelling", "random_word_swap", "random_word_delete",
            "split"} <= set(AVAILABLE)
    for info in available_augmenters():
        assert info.title and info.help
        assert info.available == (info.reason == "")


@pytest.mark.parametrize("name", AVAILABLE)
def test_each_augmenter_changes_the_instruction_and_never_the_output(name: str, short_seeds: list[dict]) -> None:
    made = 0
    for i, seed in enumerate(short_seeds):
        copies = augment_record("alpaca", seed, name, rng_seed=i, n=2)
        assert len(copies) <= 2
        for c in copies:
            assert set(c) == set(seed)
            assert c["output"] == seed["output"]
            assert c["input"] == seed["input"]
            assert c["instruction"] != seed["instruction"]
        assert len({json.dumps(c, sort_keys=True) for c in copies}) == len(copies)
        made += len(copies)
    # Spelling only touches words in its misspelling list, so it may skip a seed; the others never do.
    assert made >= (8 if name == "spelling" else 16)


@pytest.mark.parametrize("name", AVAILABLE)
def test_deterministic_for_a_seed_and_different_across_seeds(name: str, short_seeds: list[dict]) -> None:
    first = [augment_record("alpaca", s, name, rng_seed=11, n=2) for s in short_seeds]
    again = [augment_record("alpaca", s, name, rng_seed=11, n=2) for s in short_seeds]
    other = [augment_record("alpaca", s, name, rng_seed=12, n=2) for s in short_seeds]
    assert first == again
    assert first != other


def test_global_random_state_is_left_alone(short_seeds: list[dict]) -> None:
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), float(np.random.random()))
    random.seed(123)
    np.random.seed(123)
    augment_record("alpaca", short_seeds[0], "keyboard", rng_seed=5, n=3)
    assert (random.random(), float(np.random.random())) == expected


def test_input_may_change_and_keeps_its_lines(seeds: list[dict]) -> None:
    seed = next(s for s in seeds if s["input"].count("\n") >= 2)
    changed_input = False
    for i in range(6):
        for c in augment_record("alpaca", seed, "keyboard", rng_seed=i, n=2, strength=0.3):
            assert c["output"] == seed["output"]
            assert c["input"].count("\n") == seed["input"].count("\n")
            changed_input |= c["input"] != seed["input"]
    assert changed_input


def test_other_formats_perturb_only_the_user_side() -> None:
    msgs = {"messages": [{"role": "system", "content": "You are a patient support agent for a bank."},
                         {"role": "user", "content": "How can I reset the password of my online banking account?"},
                         {"role": "assistant", "content": "Open the login page and choose Forgot password."}]}
    for c in augment_record("messages", msgs, "random_char", rng_seed=1, n=3):
        assert c["messages"][0] == msgs["messages"][0]
        assert c["messages"][2] == msgs["messages"][2]
        assert c["messages"][1]["role"] == "user"
        assert c["messages"][1]["content"] != msgs["messages"][1]["content"]

    clf = {"text": "The delivery arrived three days late and the box was damaged", "label": "negative"}
    copies = augment_record("classification", clf, "random_word_delete", rng_seed=2, n=3)
    assert len(copies) == 3
    assert all(c["label"] == "negative" and c["text"] != clf["text"] for c in copies)

    pc = {"prompt": "Summarise the meeting notes in three bullet points", "completion": "- One\n- Two\n- Three"}
    for c in augment_record("prompt_completion", pc, "split", rng_seed=3, n=2):
        assert c["completion"] == pc["completion"] and c["prompt"] != pc["prompt"]


@pytest.mark.parametrize("name", TOKEN_SAFE)
def test_ner_perturbs_only_outside_tokens_and_keeps_alignment(name: str) -> None:
    copies = [c for i in range(4) for c in augment_record("ner", NER, name, rng_seed=i, n=2, strength=0.3)]
    assert copies
    for c in copies:
        assert c["tags"] == NER["tags"]
        assert len(c["tokens"]) == len(NER["tokens"])
        for old, new, tag in zip(NER["tokens"], c["tokens"], NER["tags"], strict=True):
            assert new.strip() and not any(ch.isspace() for ch in new)
            if tag != "O":
                assert new == old
        assert c["tokens"] != NER["tokens"]


@pytest.mark.parametrize("name", WORD_LEVEL)
def test_ner_refuses_augmenters_that_change_token_counts(name: str) -> None:
    with pytest.raises(GenerationError) as err:
        augment_record("ner", NER, name, rng_seed=0)
    # An unavailable augmenter reports why it is unavailable; the others point to the NER-safe ones.
    if name in AVAILABLE:
        assert "entity swapping" in str(err.value) and "keyboard" in str(err.value)


def test_unknown_augmenter_lists_the_valid_names(short_seeds: list[dict]) -> None:
    with pytest.raises(GenerationError) as err:
        augment_record("alpaca", short_seeds[0], "thesaurus", rng_seed=0)
    message = str(err.value)
    assert "thesaurus" in message
    assert all(name in message for name in AUGMENTERS)


def test_wordnet_without_its_data_says_why_and_what_to_do(short_seeds: list[dict]) -> None:
    info = next(a for a in available_augmenters() if a.name == "wordnet_synonym")
    if info.available:
        pytest.skip("NLTK's WordNet data is installed here")
    assert "wordnet" in info.reason.lower()
    assert "nltk.downloader wordnet" in info.reason
    assert "another augmenter" in info.reason
    with pytest.raises(GenerationError, match="WordNet"):
        augment_record("alpaca", short_seeds[0], "wordnet_synonym", rng_seed=0)


@pytest.mark.parametrize(("kwargs", "needle"), [({"n": 0}, "copies"), ({"strength": 0}, "Strength"),
                                                 ({"strength": 1.5}, "Strength")])
def test_bad_counts_and_strengths_are_refused(kwargs: dict, needle: str, short_seeds: list[dict]) -> None:
    with pytest.raises(GenerationError, match=needle):
        augment_record("alpaca", short_seeds[0], "ocr", rng_seed=0, **kwargs)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(GenerationError, match="format"):
        augment_record("csv", {"a": "b"}, "ocr", rng_seed=0)


def test_nothing_to_perturb_gives_no_copies() -> None:
    assert augment_record("prompt_completion", {"prompt": "", "completion": "x"}, "ocr", rng_seed=0, n=2) == []
    # Too short for the split augmenter (it needs 4+ letters): the seed comes back unchanged, so no copies.
    assert augment_record("classification", {"text": "ok", "label": "pos"}, "split", rng_seed=0) == []


def test_importing_the_module_does_not_import_nlpaug() -> None:
    code = ("import sys, studio.augment.classic as c; c.available_augmenters(); "
            "print('nlpaug' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]


def test_spelling_picks_do_not_depend_on_the_hash_seed() -> None:
    # nlpaug keeps each word's misspellings in set order, which changes with PYTHONHASHSEED; sorted, a seed
    # means the same misspelling in every process.
    from studio.augment.classic import _build

    model = _build("spelling", 0.1).model.dict
    assert model and all(values == sorted(values) for values in model.values())
