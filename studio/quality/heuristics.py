"""Rule-based checks on one generated row: the Self-Instruct / Alpaca heuristics and refusal phrases.

Plain Python (no heavy imports): these run on every row of every batch, and the rules must stay easy to
read, because each failure names the rule that fired.

The rules look at a chat row as (instruction, input, output):
- alpaca:            instruction, input, output fields;
- prompt_completion: the prompt is the instruction (no separate input), the completion the output;
- messages:          the last user message is the instruction, the last assistant message the output.
Classification and NER rows have no instruction/output pair, so the heuristics do not apply to them
(`chat_parts` returns None); the refusal check applies to every format.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from studio.data.formats import SeedFormat

# Self-Instruct (Wang et al. 2023, generate_instances / filtering): tasks a text-only model cannot do.
BLACKLIST: tuple[str, ...] = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
                              "map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart",
                              "diagram")
_BLACKLIST_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in BLACKLIST) + r")\b", re.IGNORECASE)

# Words a finished answer does not end on: a generation cut off by the token limit often does.
DANGLING_WORDS: frozenset[str] = frozenset({"and", "or", "but", "nor", "because", "although", "though",
                                            "whereas", "while", "unless", "the", "a", "an"})
# A last line of at least this many words that ends on a bare word reads as a sentence stopped midway.
MID_SENTENCE_MIN_WORDS = 12

HEURISTIC_RULES: dict[str, str] = {
    "length": "The instruction has fewer or more words than allowed (Self-Instruct keeps 3-150 words).",
    "blacklist": "The instruction asks for something a text model cannot do: " + ", ".join(BLACKLIST) + ".",
    "empty_output": "The output is empty.",
    "input_equals_output": "The output only repeats the input (or the prompt).",
    "trailing_colon": "The instruction ends with a colon but nothing follows it (no input).",
    "starts_with_punctuation": "The instruction starts with punctuation: usually a fragment of a list.",
    "non_english_start": "The instruction starts with a character outside ASCII: usually junk from the teacher.",
    "cut_off": "The output looks cut off: an unclosed code block or bracket, a last word like 'and' or a "
               "trailing comma, or a long last sentence ending on a lower-case word without punctuation.",
}

REFUSAL_PATTERNS: tuple[str, ...] = (
    r"\bas an ai(?: language model| assistant| model| chatbot)?\b",
    r"\bas a (?:large )?language model\b",
    r"\bi(?:'m| am) (?:just |only )?an ai\b",
    r"\bi(?:'m| am) (?:sorry|afraid),? but i (?:can't|cannot|can not|won't|am unable|'m unable|am not able)",
    r"\bi apologi[sz]e,? but\b",
    r"\bi (?:cannot|can't|can not|won't|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:assist|help(?! but)|comply|fulfil|fulfill|provide|complete|generate|create|answer that|do that)",
    r"\bi must (?:decline|refuse)\b",
    r"\bit(?: is|'s) not appropriate for me\b",
    r"\bi (?:don't|do not) have (?:personal )?(?:opinions|feelings|emotions|beliefs|preferences|experiences)\b",
    r"\bi (?:don't|do not) have (?:access to|the ability to) (?:real-time|the internet|browse|current)",
    r"\bmy (?:knowledge|training) (?:cutoff|cut-off)\b",
    r"\bas of my (?:last|latest) (?:update|training|knowledge)",
)
# One alternation: a single scan of the text finds the earliest phrase of any pattern.
_REFUSAL_RE = re.compile("|".join(f"(?:{p})" for p in REFUSAL_PATTERNS), re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True)
class ChatParts:
    instruction: str
    input: str
    output: str


def chat_parts(fmt: SeedFormat, data: dict[str, Any]) -> ChatParts | None:
    """(instruction, input, output) of a chat row; None for classification and NER rows."""
    if fmt == SeedFormat.ALPACA:
        return ChatParts(data.get("instruction", ""), data.get("input", "") or "", data.get("output", ""))
    if fmt == SeedFormat.PROMPT_COMPLETION:
        return ChatParts(data.get("prompt", ""), "", data.get("completion", ""))
    if fmt == SeedFormat.MESSAGES:
        msgs = data.get("messages") or []
        user = next((m["content"] for m in reversed(msgs) if m.get("role") == "user"), "")
        answer = msgs[-1]["content"] if msgs and msgs[-1].get("role") == "assistant" else ""
        return ChatParts(user, "", answer)
    return None


def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def cut_off_problem(output: str) -> str | None:
    """Why the output looks cut off, or None."""
    text = output.rstrip()
    if text.count("```") % 2:
        return "an unclosed code block (```)"
    for open_, close in ("()", "[]", "{}"):
        if text.count(open_) > text.count(close):
            return f"an unclosed '{open_}'"
    if not text or "```" in text:
        return None  # code: the word rules below are about prose
    last_line = text.splitlines()[-1].strip()
    words = re.findall(r"[^\W\d_]+|\d+", last_line)
    if text[-1] == "," or (words and text[-1].isalpha() and words[-1].lower() in DANGLING_WORDS):
        tail = words[-1] if text[-1].isalpha() else text[-1]
        return f"it ends on '{tail}'"
    # A lower-case last word: a list item or a name ("... 10. Kubb") is not a sentence stopped midway.
    if len(last_line.split()) >= MID_SENTENCE_MIN_WORDS and text[-1].isalpha() and words[-1].islower():
        return "its last sentence stops without an end"
    return None


def heuristic_problems(parts: ChatParts, *, min_words: int, max_words: int) -> list[str]:
    """Every rule the row breaks, as 'rule: what was found' (empty when it passes)."""
    problems: list[str] = []
    instruction, given, output = parts.instruction.strip(), parts.input.strip(), parts.output.strip()
    n_words = len(instruction.split())
    if not min_words <= n_words <= max_words:
        problems.append(f"length: the instruction has {n_words} word{'s' * (n_words != 1)} "
                        f"(allowed {min_words}-{max_words})")
    hit = _BLACKLIST_RE.search(instruction)
    if hit:
        problems.append(f"blacklist: the instruction mentions '{hit.group(1).lower()}', which a text model "
                        "cannot see or make")
    if not output:
        problems.append("empty_output: the output is empty")
    elif _squash(output) == _squash(given or instruction):
        problems.append("input_equals_output: the output repeats the " + ("input" if given else "instruction"))
    if instruction.endswith(":") and not given:
        problems.append("trailing_colon: the instruction ends with ':' and nothing follows it")
    if instruction and instruction[0] in string.punctuation:
        problems.append(f"starts_with_punctuation: the instruction starts with '{instruction[0]}'")
    elif instruction and not instruction[0].isascii():
        problems.append(f"non_english_start: the instruction starts with '{instruction[0]}'")
    if output:
        cut = cut_off_problem(output)
        if cut:
            problems.append(f"cut_off: the output looks cut off ({cut})")
    return problems


def find_refusal(text: str) -> str | None:
    """The earliest refusal / AI-ism phrase in `text` (as written), or None."""
    m = _REFUSAL_RE.search(text.translate(_APOSTROPHES))  # same length: positions map back to `text`
    return text[m.start():m.end()] if m else None
