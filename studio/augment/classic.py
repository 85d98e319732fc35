"""Classic, offline perturbations of seeds with nlpaug: typos, OCR errors, swapped, dropped or split words.

Only the user's side of a seed is perturbed, so the model learns to cope with messy input while its
answers stay clean (perturbing the answer would teach it to write typos):

- alpaca:            instruction and input (output untouched)
- prompt_completion: prompt
- messages:          user turns (system and assistant turns untouched)
- classification:    text (label untouched)
- ner:               tokens tagged O, one token at a time, with augmenters that keep one token one token
                     (character-level ones and spelling); entity tokens and all tags are untouched.

Text is split on whitespace and perturbed line by line, so punctuation stays attached to its word,
contractions stay whole and line breaks and indentation survive (nlpaug's own tokenizer would turn
"don't" into "don ' t" and flatten newlines).

Determinism: nlpaug draws from the global `random` and `numpy.random` generators. Each call seeds both
from `rng_seed` under a lock and restores their previous state afterwards, so a seed gives the same
copies every time and the rest of the process does not see its random streams reset.

nlpaug (and torch, which it imports) is only imported on first use: importing this module is cheap.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from studio.errors import GenerationError

Level = Literal["char", "word"]

WORDNET_INSTALL = ("python -m nltk.downloader wordnet omw-1.4 averaged_perceptron_tagger_eng")


@dataclass(frozen=True)
class AugmenterSpec:
    name: str
    title: str
    help: str
    level: Level
    keeps_tokens: bool
    """True when one word always becomes one word: safe on NER tokens without breaking tag alignment."""


@dataclass(frozen=True)
class AugmenterInfo:
    name: str
    title: str
    help: str
    available: bool
    reason: str
    """Why it cannot be used here and what to do; empty when available."""
    level: Level = "char"
    keeps_tokens: bool = True


AUGMENTERS: dict[str, AugmenterSpec] = {
    spec.name: spec
    for spec in (
        AugmenterSpec("keyboard", "Keyboard typos",
                      "Replaces letters with neighbours on a QWERTY keyboard, like fast typing.", "char", True),
        AugmenterSpec("ocr", "OCR errors",
                      "Swaps look-alike characters (0/O, 1/l, 5/S), like text scanned from paper.", "char", True),
        AugmenterSpec("random_char", "Random character edits",
                      "Inserts, replaces, swaps or drops letters inside words at random.", "char", True),
        AugmenterSpec("spelling", "Common misspellings",
                      "Replaces words with real-world misspellings from nlpaug's English list.", "word", True),
        AugmenterSpec("random_word_swap", "Swapped words",
                      "Swaps neighbouring words, like a hurried or non-native writer.", "word", False),
        AugmenterSpec("random_word_delete", "Dropped words",
                      "Drops words at random, like a terse or hurried message.", "word", False),
        AugmenterSpec("split", "Split words",
                      "Splits words in two at a random point (\"wea ther\").", "word", False),
        AugmenterSpec("wordnet_synonym", "WordNet synonyms",
                      "Replaces words with English synonyms from WordNet.", "word", False),
    )
}

# random_char picks one of these per line, so its copies mix the kinds of slips people make.
_RANDOM_CHAR_ACTIONS = ("insert", "substitute", "swap", "delete")

# Global random state is process-wide: one augmentation at a time, so seeding stays reproducible.
_LOCK = threading.Lock()

# Attempts per wanted copy before giving up on copies that came out identical to the seed.
_ATTEMPTS_PER_COPY = 4


# ----------------------------------------------------------------------------------------------
# Availability (checked without importing nlpaug: listing augmenters must stay cheap)


def _nlpaug_dir() -> Path | None:
    spec = importlib.util.find_spec("nlpaug")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


_RESOURCES = {
    "keyboard": ("res", "char", "keyboard", "en.json"),
    "ocr": ("res", "char", "ocr", "en.json"),
    "spelling": ("res", "word", "spelling", "spelling_en.txt"),
}


@cache
def _wordnet_problem() -> str:
    """Empty when WordNet synonyms can run offline here, else the reason. Never downloads anything."""
    how = (f"Install them with `pip install nltk` and `{WORDNET_INSTALL}` on a machine with internet, "
           "or pick another augmenter.")
    if importlib.util.find_spec("nltk") is None:
        return f"WordNet synonyms need the nltk package and its 'wordnet' data, which are not installed here. {how}"
    try:
        import nltk
        from nltk.corpus import wordnet

        # Probe with the calls nlpaug makes; on LookupError nlpaug itself would try nltk.download().
        wordnet.synsets("testing")
    except LookupError:
        return ("WordNet synonyms need the NLTK 'wordnet' data, which is not installed here. Install it with "
                f"`{WORDNET_INSTALL}` on a machine with internet, or pick another augmenter.")
    try:
        nltk.pos_tag(["testing"])
    except LookupError:
        return ("WordNet synonyms need NLTK's part-of-speech tagger data ('averaged_perceptron_tagger_eng'), "
                f"which is not installed here. Install it with `{WORDNET_INSTALL}` on a machine with internet, "
                "or pick another augmenter.")
    return ""


def _problem(name: str) -> str:
    root = _nlpaug_dir()
    if root is None:
        return "Classic augmentation needs the nlpaug package, which is not installed here: `pip install nlpaug`."
    if name in _RESOURCES and not root.joinpath(*_RESOURCES[name]).is_file():
        return (f"'{AUGMENTERS[name].title}' needs nlpaug's data file {'/'.join(_RESOURCES[name])}, which is "
                "missing from this install; reinstall nlpaug or pick another augmenter.")
    if name == "wordnet_synonym":
        return _wordnet_problem()
    return ""


def available_augmenters() -> list[AugmenterInfo]:
    """Every augmenter, with whether it runs here and, if not, why."""
    return [augmenter_info(name) for name in AUGMENTERS]


def augmenter_info(name: str) -> AugmenterInfo:
    """One augmenter, checked alone: only WordNet's check is slow (it imports nltk, over a second)."""
    spec = AUGMENTERS[name]
    reason = _problem(name)
    return AugmenterInfo(spec.name, spec.title, spec.help, not reason, reason, spec.level, spec.keeps_tokens)


def _require(name: str) -> AugmenterSpec:
    spec = AUGMENTERS.get(name)
    if spec is None:
        raise GenerationError(f"Unknown augmenter '{name}'. Choose one of: {', '.join(AUGMENTERS)}.")
    reason = _problem(name)
    if reason:
        raise GenerationError(reason)
    return spec


# ----------------------------------------------------------------------------------------------
# Building nlpaug augmenters


def _split_words(text: str) -> list[str]:
    return text.split()


def _join_words(tokens: list[str]) -> str:
    return " ".join(tokens)


@cache
def _build(name: str, strength: float, action: str = "") -> Any:
    """One nlpaug augmenter. Cached: the keyboard, OCR and spelling ones read data files when built."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch / transformers import chatter from nlpaug's package init
        import nlpaug.augmenter.char as nac
        import nlpaug.augmenter.word as naw

    words = {"tokenizer": _split_words, "reverse_tokenizer": _join_words}
    # Strength is the share of words touched; for character augmenters also the share of letters in a
    # touched word. No upper caps: at strength 1 every word may change.
    char = {"aug_word_p": strength, "aug_char_p": strength, "aug_word_max": None, "aug_char_max": None,
            "aug_char_min": 1, **words}
    word = {"aug_p": strength, "aug_max": None, **words}
    if name == "keyboard":
        # Letters only: a digit or symbol slipping in reads as a different word, not a typo.
        return nac.KeyboardAug(include_special_char=False, include_numeric=False, **char)
    if name == "ocr":
        return nac.OcrAug(**char)
    if name == "random_char":
        return nac.RandomCharAug(action=action, include_numeric=False, spec_char="", **char)
    if name == "random_word_swap":
        return naw.RandomWordAug(action="swap", **word)
    if name == "random_word_delete":
        return naw.RandomWordAug(action="delete", **word)
    if name == "split":
        return naw.SplitAug(**word)
    if name == "spelling":
        # include_reverse=False: map correct words to misspellings only, never a misspelling back to a word.
        aug = naw.SpellingAug(include_reverse=False, **word)
        # nlpaug stores each word's candidates as list(set(...)): their order, and so the pick for a given
        # seed, would change with PYTHONHASHSEED. Sorted, a seed gives the same misspelling in every process.
        aug.model.dict = {k: sorted(v) for k, v in aug.model.dict.items()}
        return aug
    if name == "wordnet_synonym":
        return naw.SynonymAug(aug_src="wordnet", **word)
    raise AssertionError(name)


def _perturb(name: str, strength: float, text: str, rng: random.Random) -> str:
    """One perturbed version of a single line (or token); the text itself when nlpaug changes nothing."""
    action = rng.choice(_RANDOM_CHAR_ACTIONS) if name == "random_char" else ""
    aug = _build(name, strength, action)
    try:
        out = aug.augment(text, n=1)
    except (ValueError, IndexError):
        # nlpaug trips over some degenerate inputs (e.g. nothing long enough to split): leave the line as is.
        return text
    result = out[0] if isinstance(out, list) and out else out
    return result if isinstance(result, str) and result.strip() else text


# ----------------------------------------------------------------------------------------------
# Records


# Where a record's user-side text lives: a path of keys/indexes into the record.
FieldPath = tuple[str | int, ...]


def _text_paths(fmt: str, record: dict[str, Any]) -> list[FieldPath]:
    if fmt == "alpaca":
        return [("instruction",), ("input",)]
    if fmt == "prompt_completion":
        return [("prompt",)]
    if fmt == "classification":
        return [("text",)]
    if fmt == "messages":
        msgs = record.get("messages") or []
        return [("messages", i, "content") for i, m in enumerate(msgs)
                if isinstance(m, dict) and m.get("role") == "user"]
    raise AssertionError(fmt)


def _get(record: Any, path: FieldPath) -> Any:
    for key in path:
        record = record[key]
    return record


def _set(record: Any, path: FieldPath, value: Any) -> None:
    for key in path[:-1]:
        record = record[key]
    record[path[-1]] = value


def _pick(candidates: list[Any], weights: list[float], strength: float, rng: random.Random) -> list[Any]:
    """Choose what to perturb: each candidate with probability strength * weight (capped at 1), at least one.

    nlpaug rounds the number of edits up, so every line handed to it gets at least one edit; choosing lines
    this way keeps the expected number of edits near strength x words even for many short lines.
    """
    chosen = [c for c, w in zip(candidates, weights, strict=True) if rng.random() < min(1.0, strength * w)]
    if not chosen and candidates:
        chosen = rng.choices(candidates, weights=weights, k=1)
    return chosen


def _text_copy(fmt: str, record: dict[str, Any], name: str, strength: float, rng: random.Random) -> dict[str, Any]:
    lines: list[tuple[FieldPath, int]] = []
    weights: list[float] = []
    for path in _text_paths(fmt, record):
        try:
            text = _get(record, path)
        except (KeyError, IndexError, TypeError):
            continue
        if not isinstance(text, str):
            continue
        for i, line in enumerate(text.split("\n")):
            if line.strip():
                lines.append((path, i))
                weights.append(float(len(line.split())))
    out = copy.deepcopy(record)
    for path, i in _pick(lines, weights, strength, rng):
        parts = _get(out, path).split("\n")
        line = parts[i]
        core = line.strip()
        start = line.index(core)  # keep the line's own indentation and trailing spaces
        parts[i] = line[:start] + _perturb(name, strength, core, rng) + line[start + len(core):]
        _set(out, path, "\n".join(parts))
    return out


def _ner_copy(record: dict[str, Any], name: str, strength: float, rng: random.Random) -> dict[str, Any]:
    tokens = list(record.get("tokens") or [])
    tags = list(record.get("tags") or [])
    # Outside-entity words only: a typo inside an entity would teach the model misspelled names.
    candidates = [i for i, (tok, tag) in enumerate(zip(tokens, tags, strict=False))
                  if str(tag).upper() == "O" and isinstance(tok, str) and len(tok) >= 2
                  and any(ch.isalpha() for ch in tok)]
    for i in _pick(candidates, [1.0] * len(candidates), strength, rng):
        new = _perturb(name, strength, tokens[i], rng)
        # Alignment holds only if one token stays one token.
        if new and not any(ch.isspace() for ch in new):
            tokens[i] = new
    return {**copy.deepcopy(record), "tokens": tokens}


def _key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def augment_record(fmt: str, record: dict[str, Any], augmenter: str, *, rng_seed: int, n: int = 1,
                   strength: float = 0.1) -> list[dict[str, Any]]:
    """Up to `n` perturbed copies of `record`, same format, none identical to it or to each other.

    Fewer than `n` (possibly none) come back when the augmenter finds too little to change, e.g. spelling
    on text with no word from its misspelling list. The same arguments always give the same copies.
    """
    fmt = str(fmt)
    if fmt not in ("alpaca", "prompt_completion", "messages", "classification", "ner"):
        raise GenerationError(f"Unknown seed format '{fmt}'. Expected one of: alpaca, prompt_completion, "
                              "messages, classification, ner.")
    spec = _require(augmenter)
    if fmt == "ner" and not spec.keeps_tokens:
        usable = ", ".join(s.name for s in AUGMENTERS.values() if s.keeps_tokens)
        raise GenerationError(f"'{spec.title}' would change the number of tokens and break the tag alignment of "
                              f"NER seeds. For NER seeds pick one of: {usable}, or use entity swapping.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise GenerationError(f"The number of copies must be a whole number of at least 1 (got {n!r}).")
    if isinstance(strength, bool) or not isinstance(strength, int | float) or not 0 < strength <= 1:
        raise GenerationError(f"Strength must be above 0 and at most 1 (got {strength!r}).")

    make: Callable[[random.Random], dict[str, Any]]
    if fmt == "ner":
        def make(rng: random.Random) -> dict[str, Any]:
            return _ner_copy(record, augmenter, strength, rng)
    else:
        def make(rng: random.Random) -> dict[str, Any]:
            return _text_copy(fmt, record, augmenter, strength, rng)

    _build_quietly(augmenter, strength)
    seen = {_key(record)}
    copies: list[dict[str, Any]] = []
    import numpy as np

    with _LOCK:
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            random.seed(rng_seed)
            np.random.seed(rng_seed % 2**32)
            rng = random.Random(rng_seed)  # our own choices (lines, actions), apart from nlpaug's draws
            for _ in range(n * _ATTEMPTS_PER_COPY):
                candidate = make(rng)
                key = _key(candidate)
                if key not in seen:
                    seen.add(key)
                    copies.append(candidate)
                    if len(copies) == n:
                        break
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
    return copies


def _build_quietly(name: str, strength: float) -> None:
    """Build (and cache) the augmenters before seeding: construction must not consume seeded draws."""
    for action in _RANDOM_CHAR_ACTIONS if name == "random_char" else ("",):
        _build(name, strength, action)
