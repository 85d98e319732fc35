"""Prompt echoes: generated text that repeats the wording of the prompt the teacher was given.

A small teacher often copies its instructions into its answer ("Answer with a JSON array of 5 strings",
"Request: ...", "Here are 3 examples:") instead of doing the task; such a row teaches the student to
talk about prompts. Two sources of phrases, matched case-insensitively on word boundaries:

- the shipped strategy templates (`studio/augment/prompts/*.jinja`), and the prompt version the batch was
  written with when a person edited it (`phrases_with`): every run of WINDOW consecutive words of their
  literal text (what every rendering of the template contains verbatim, Jinja tags and comments removed),
  within one sentence;
- ECHO_PATTERNS, curated: short markers of the same templates ("JSON array", "Request:", "Example 1:",
  "the request below") and the meta-talk a teacher adds around them ("Here are 3 rewrites",
  "here is a possible response").

A phrase that the row's own seed(s) contain is not an echo (the seed's text is in the prompt: a row may
keep it), so `find_echo` takes the seeds' text to exempt. No phrase matches any of the 120 human-written
Self-Instruct seeds (tests/test_fidelity.py), some of which mention JSON or examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

WINDOW = 5
"""Words per template phrase: long enough that ordinary text does not contain one by chance."""

_COUNT = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten)"
_NUM = r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|a few|several|some)"
_REWORDINGS = r"(?:versions?|rewrites?|rewordings?|rephrasings?|paraphrases?|phrasings?|variations?|variants?)"

ECHO_PATTERNS: tuple[str, ...] = (
    # markers of the templates themselves
    r"\bjson (?:array|object|list)s?\b",  # "Answer with a JSON array of 5 strings" (not "import json")
    r"\brequest:",  # "Request: {{ seed.instruction }}"
    r"^\s*instruction:",  # "Instruction: {{ seed.instruction }}" (refinement)
    r"\breference answer\b",  # response expansion's "Reference answer (for the facts, not the style)"
    r"\bexample \d+:",  # few-shot's "Example 1:"
    r"\bthe (?:request|instruction|examples?) (?:below|above)\b",
    r"\bstyle names?\b",
    r"\brewrite the (?:request|instruction)\b",
    r"\bin " + _NUM + r" different ways\b",
    r"\bdifferent ways to (?:say|ask|phrase|word|write) "
    r"(?:this|it|that|the (?:same )?(?:request|instruction|question))\b",
    r"\bsame logic,? tone,? and structure\b",
    r"\bwith the keys\b",
    # meta-talk about the generation
    r"\bhere (?:is|are) (?:" + _NUM + r" |an? |the |my )?(?:new |more |different |other |possible |alternative "
    r"|rewritten )*" + _REWORDINGS + r"\b",
    r"\bhere (?:is|are) (?:an? |the |some |" + _NUM + r" )?(?:possible|suggested|sample|alternative) "
    r"(?:responses?|answers?)\b",
    # "Here are 3 examples:" / "...examples that will help you" (not "Here are three examples of dishes: ...",
    # nor "here are some examples", which answers to "give me some examples" say)
    r"\bhere (?:is|are) " + _COUNT + r" (?:new |more |different |other )?examples?"
    r"(?=\s*:?\s*$|\s*[.!]|\s+(?:that|which|to help|for you|you can use|based on|in the same|with the same|"
    r"following)\b)",
    r"\b(?:rewritten|refined) (?:request|instruction)\b",
)

_ECHO_RE = re.compile("|".join(f"(?:{p})" for p in ECHO_PATTERNS).replace(" ", r"\s+"),  # any spacing
                      re.IGNORECASE | re.MULTILINE)
_TRIGGER = re.compile(r"json|request|instruction|reference|example|style|rewrite|different|logic|keys|here|below|above")
"""Every ECHO_PATTERNS entry contains one of these words: text without any skips the big regex (most rows)."""
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_JINJA = re.compile(r"\{#.*?#\}|\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_SENTENCE = re.compile(r"[.!?:;()\n]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def template_phrases(sources: Iterable[str]) -> frozenset[tuple[str, ...]]:
    """Every WINDOW-word run of the templates' literal text, within one sentence, lowercased."""
    out: set[tuple[str, ...]] = set()
    for source in sources:
        for literal in _JINJA.split(source):  # a tag ends a literal: its value differs per prompt
            for sentence in _SENTENCE.split(literal.lower()):
                words = _WORD.findall(sentence)
                out.update(tuple(words[i:i + WINDOW]) for i in range(len(words) - WINDOW + 1))
    return frozenset(out)


def template_names() -> list[str]:
    """The shipped strategy templates, studio/augment/prompts/<name>.jinja: the phrases are read from all."""
    from importlib import resources

    folder = resources.files("studio.augment").joinpath("prompts")
    return sorted(f.name.removesuffix(".jinja") for f in folder.iterdir() if f.name.endswith(".jinja"))


@lru_cache(maxsize=1)
def default_phrases() -> frozenset[tuple[str, ...]]:
    """The phrases of the shipped templates (read once per process)."""
    from studio.augment.templates import default_template

    return template_phrases(default_template(name) for name in template_names())


@lru_cache(maxsize=32)
def phrases_with(template: str) -> frozenset[tuple[str, ...]]:
    """The shipped templates' phrases and those of `template` (a batch's own prompt version, maybe edited)."""
    return default_phrases() | template_phrases([template]) if template else default_phrases()


@lru_cache(maxsize=8)
def _first_words(phrases: frozenset[tuple[str, ...]]) -> frozenset[str]:
    return frozenset(p[0] for p in phrases)


def _windows(text: str, phrases: frozenset[tuple[str, ...]]) -> list[tuple[int, tuple[str, ...], str]]:
    """(position, words, as written) of every WINDOW-word run of `text` that is one of `phrases`."""
    lowered = text.lower()
    same = len(lowered) == len(text)  # else (rare letters like "İ") positions shift: show the words
    words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(lowered)]
    firsts = _first_words(phrases)
    out = []
    for i in range(len(words) - WINDOW + 1):
        if words[i][0] in firsts and (run := tuple(w for w, _, _ in words[i:i + WINDOW])) in phrases:
            out.append((words[i][1], run, text[words[i][1]:words[i + WINDOW - 1][2]] if same else " ".join(run)))
    return out


def find_echo(text: str, *, exempt: Iterable[str] = (),
              phrases: frozenset[tuple[str, ...]] | None = None) -> str | None:
    """The first phrase of the prompts that `text` repeats (as written in `text`), or None.

    A phrase that one of the `exempt` texts (the row's seeds) also contains does not count.
    """
    text = text.translate(_APOSTROPHES)
    phrases = default_phrases() if phrases is None else phrases
    exempt_text = "\n".join(exempt).translate(_APOSTROPHES)
    found: list[tuple[int, str]] = []
    hits = _windows(text, phrases)
    if hits:
        seeds_have = {run for _, run, _ in _windows(exempt_text, phrases)}
        found += [(at, " ".join(shown.split())) for at, run, shown in hits if run not in seeds_have][:1]
    for m in _ECHO_RE.finditer(text) if _TRIGGER.search(text.lower()) else ():
        phrase = m.group()
        if not re.search(r"(?<!\w)" + _loose(phrase) + r"(?!\w)", exempt_text, re.IGNORECASE):
            found.append((m.start(), " ".join(phrase.split())))
            break
    return min(found, key=lambda f: (f[0], -len(f[1])))[1] if found else None  # earliest, then longest


def _loose(phrase: str) -> str:
    """`phrase` as a pattern that allows any spacing and punctuation between its words."""
    words = _WORD.findall(phrase.lower())
    tail = r"\s*:" if phrase.rstrip().endswith(":") else ""
    return r"\W+".join(map(re.escape, words)) + tail
