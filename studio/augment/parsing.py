"""Read what a teacher LLM sent back, whatever shape it came in, and say how that went.

Teachers range from 135M-parameter models that ramble and repeat themselves to GPT-class models that
wrap their JSON in ```json fences. Whatever the prompt asked for, replies come back as JSON, JSON cut
off by max tokens, numbered or bulleted lists, labelled prose, all with chatter around them ("Sure!
Here are 5 variations:", "I hope this helps!").

Each function reads one reply and returns `Parsed`: the values it could use plus a status, "ok",
"partial" (something was skipped, or JSON that was cut off was salvaged) or "failed", and, unless
the status is "ok", a reason in plain words for the audit trail. None of them raises, on any text:
one bad reply must cost one row, not a whole generation run.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec

Status = Literal["ok", "partial", "failed"]


@dataclass(frozen=True)
class Parsed:
    items: list[Any]
    """Strings (`parse_text_list`, `parse_single_text`) or dicts (`parse_pairs`, `parse_styled_answers`)."""
    status: Status
    error: str = ""
    """Why it failed or what was skipped, in plain words; empty when the status is "ok"."""


__all__ = ["Parsed", "Status", "parse_pairs", "parse_single_text", "parse_styled_answers", "parse_text_list"]

# Replies longer than this are read only up to here: no useful teacher reply is this long, and the
# JSON salvage below may re-read text a few times, which must stay fast on runaway output.
MAX_CHARS = 200_000
MIN_ITEM_CHARS = 3
_MAX_DEPTH = 32  # JSON nesting followed when salvaging; real replies nest 2-3 levels
_MAX_JSON_MISSES = 50  # brackets in prose ("[1]", "{name}") tried before giving up on finding JSON


# ----------------------------------------------------------------------------------------------------
# Patterns. They are anchored, and no two neighbouring parts can match the same characters (so
# "\s*(?:\*\*\s*)?" rather than "\s*(?:\*\*)?\s*"): a regex that can split a run of spaces two ways
# backtracks quadratically when it fails, and a hostile reply has runs of 100,000 spaces.

# Chat-template tokens. Small models run past their end-of-turn token and invent the next turn, so
# only the text before the first one counts.
_END_TOKEN = re.compile(r"<\|(?:im_end|eot_id|eom_id|end|endoftext|end_of_text)\|>|</s>|<end_of_turn>", re.I)
_ROLE_HEADER = re.compile(
    r"<\|(?:im_start|start_header_id)\|>\s*(?:assistant|user|system|model)?\s*(?:<\|end_header_id\|>)?"
    r"|<start_of_turn>\s*(?:model|user)?", re.I)
_SPECIAL_TOKEN = re.compile(r"<\|[\w-]{1,40}\|>|</?s>")

_FENCE_LINE = re.compile(r"^\s*(?:```|~~~)")
_FENCED_BLOCK = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.S | re.M)
_SEPARATOR = re.compile(r"^\s*(?:[-*_=]\s*){3,}$")  # --- *** ___ ===
_HEADING = re.compile(r"^\s*#{1,6}\s")
_OPENER = re.compile(r"[\[{]")
_JSON_START = re.compile(r"[\[{]\s*[\"\[{]")  # ["…  {"…  [{  — a reply meant as JSON

# "Sure! Here are five ways to ask:" and friends, before the answer.
_PREAMBLE = re.compile(
    r"^\W*(?:sure|certainly|of course|absolutely|okay|ok|great|alright|no problem|here(?:'s|’s|\s+is|\s+are)"
    r"|below\s+(?:is|are)|the following\s+(?:is|are)|i(?:'d|’d|\s+would)\s+be\s+(?:happy|glad)|happy to"
    r"|glad to|as requested)\b", re.I)
# "A clearer version of the instruction:" — an intro even without the words above.
_REWRITE_INTRO = re.compile(
    r"\b(?:clearer|improved|refined|rewritten|revised|better|polished|more specific)\s+"
    r"(?:version|instruction|prompt|request|wording)\b", re.I)
# "I hope this helps!", "Each variation keeps…", "Note: …", after the answer.
_OUTRO = re.compile(
    r"^\W*(?:i\s+hope|hope\s+(?:this|these|that)|let\s+me\s+know|feel\s+free|if\s+you\s+(?:need|want|'d|’d)"
    r"|would\s+you\s+like|do\s+you\s+want|these\s+(?:variations|versions|alternatives|options|rephrasings"
    r"|paraphrases|examples|questions|answers|rewrites|are\s+(?:all|some|a\s+few))|each\s+(?:of\s+these|variation|version|option|one)"
    r"|all\s+of\s+(?:these|the\s+above)|notes?\s*:|explanation\s*:|changes(?:\s+made)?\s*:|key\s+changes"
    r"|this\s+(?:version|revision|rewrite|rephrasing|instruction|revised)|the\s+(?:revised|rewritten|refined"
    r"|improved)\s+(?:version|instruction)|i(?:'ve|’ve)?\s+(?:made|changed|added|removed|kept|rephrased|rewrote)"
    r"|why\s+this\s+works)", re.I)

# List markers: "1." "1)" "1:" "a." "(1)" "[1]" "#1", optionally bold, then bullets "-" "*" "•".
_MARKER = re.compile(
    r"^(?:\*\*|__)?(?:\d{1,3}[.):]|[a-zA-Z][.)]|\(\d{1,3}\)|\[\d{1,3}\]|#\d{1,3}[.:)]?)(?:\*\*|__)?(?:\s+|$)"
    r"|^[-*•+‣◦▪·–—]\s+")
# "Variation 1:", "**Option 2** -", "Paraphrase #3."
_ITEM_LABEL = re.compile(
    r"^(?:(?:\*\*|__)\s*)?(?:variation|version|option|alternative|paraphrase|rephrasing|rewrite|rewording"
    r"|reformulation|phrasing|sentence|question|answer|response|example|item|prompt|instruction|query|output"
    r"|text)\s*(?:#\s*)?\d{1,3}\s*(?:(?:\*\*|__)\s*)?(?:[:.)\-–—]|$)\s*(?:(?:\*\*|__)\s*)?", re.I)
# "**More formal:** Could you…" — a short bold label in front of the item.
_BOLD_LEAD = re.compile(r"^(?:\*\*|__)[^*_\n]{1,40}?(?::\s*(?:\*\*|__)|(?:\*\*|__)\s*:)\s*")
_BOLD = re.compile(r"\*\*(.+?)\*\*")  # only **: __ is too common in code (__init__)
# Notes a model hangs under an item: "(more formal)", "Explanation: …", "Tone: polite".
_ITEM_NOTE = re.compile(r"^(?:\(.*\)|\[.*\]|(?:explanation|note|reason|why|tone|style|change)s?\s*:.*)$", re.I)

# "Refined instruction:" in parse_single_text; the last one wins ("Original: … / Rewritten: …").
_REWRITE_LABEL = re.compile(
    r"^[^\w\n]*(?:refined|rewritten|revised|improved|clearer|better|new|updated|final|rephrased|paraphrased|edited"
    r"|polished|more\s+specific)(?:[ \t]+(?:version|instruction|prompt|question|text|request))?"
    r"[ \t]*(?:(?:\*\*|__)[ \t]*)?:[ \t]*(?:(?:\*\*|__)[ \t]*)?", re.I | re.M)
_INLINE_INTRO = re.compile(
    r"^[^:\n]{0,120}?\b(?:version|instruction|rewrite|rewritten|refined|clearer|improved|revised|rephrased)\b"
    r"[^:\n]{0,60}:[ \t]*(?:(?:\*\*|__)[ \t]*)?(?=\S)", re.I)
_PLAIN_LABEL = re.compile(
    r"^\W*(?:instruction|prompt|question|text|answer|output|response|rewrite|version|request)"
    r"[ \t]*(?:(?:\*\*|__)[ \t]*)?:[ \t]*(?:(?:\*\*|__)[ \t]*)?", re.I)

# Field names a teacher may use instead of the ones asked for. A field takes its own name first, then
# the first free name of its group (so {"question", "answer"} fills instruction/output, and
# {"instruction", "input", "output"} fills prompt/completion).
_FIELD_GROUPS: tuple[tuple[str, ...], ...] = (
    ("instruction", "prompt", "question", "query", "request", "task", "user", "human", "q"),
    ("output", "completion", "answer", "response", "reply", "assistant", "gpt", "a", "target"),
    ("input", "context", "input_text"),
    ("text", "sentence", "content", "review", "document", "message", "input"),
    ("label", "category", "class", "sentiment", "tag", "intent", "topic"),
)
_SOURCE_GROUP = _FIELD_GROUPS[0]
_EMPTY_VALUE = re.compile(r"^\W*(?:(?:none|n/?a|null|nil|empty|no\s+input|noinput)\W*)?$", re.I)  # "N/A", "-"
# "Example 3:", "### Pair 2", "**Sample 4**", "3." between labelled examples.
_RECORD_HEADER = re.compile(
    r"^\W*(?:(?:new\s+)?(?:example|pair|sample|item|record|entry)\s*(?:#\s*)?\d{1,3}|\d{1,3}[.)])\W*$", re.I)

# Keys a one-text JSON reply ({"instruction": "…"}) or a JSON list element may keep its text under.
_TEXT_KEYS = ("instruction", "refined_instruction", "rewritten_instruction", "improved_instruction",
              "revised_instruction", "text", "rewritten", "rewrite", "refined", "revised", "improved",
              "paraphrase", "rephrased", "rephrasing", "variation", "version", "question", "prompt", "query",
              "sentence", "output", "answer", "response", "result", "content")
_STYLE_KEYS = ("style", "tone", "name", "label", "type", "persona")
_ANSWER_KEYS = ("answer", "response", "text", "output", "content", "reply", "completion")
_STYLE_SUFFIXES = ("", "style", "tone", "version", "answer", "response", "reply")

_QUOTES = {'"': '"', "“": "”", "„": "“", "«": "»", "「": "」", "'": "'", "‘": "’", "`": "`"}


# ----------------------------------------------------------------------------------------------------
# Plumbing shared by the four parsers.

P = ParamSpec("P")


def _never_raise(fn: Callable[P, Parsed]) -> Callable[P, Parsed]:
    """Turn non-text input and parser bugs into a failed Parsed: one bad reply costs one row."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Parsed:
        text = args[0] if args else kwargs.get("text")
        if not isinstance(text, str):
            return Parsed([], "failed", f"expected the reply as text, got {type(text).__name__}")
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # a bug here must not stop generation; the tests assert it never happens
            return Parsed([], "failed", f"internal parser error ({type(exc).__name__}: {exc}) on {_excerpt(text)}")

    return wrapper


def _excerpt(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "…")


def _failed(reason: str, raw: str) -> Parsed:
    return Parsed([], "failed", f"{reason}: {_excerpt(raw)}" if raw.strip() else reason)


def _nothing_found(reason: str, text: str, raw: str) -> Parsed:
    """Failed, saying so when the reply was JSON that broke before its first complete item."""
    if (m := _JSON_START.search(text)) and not _decode(text, m.start())[2]:
        reason = "the reply looks like JSON but was cut off or broken before its first complete item"
    return _failed(reason, raw)


def _result(items: list[Any], notes: list[str]) -> Parsed:
    return Parsed(items, "partial" if notes else "ok", "; ".join(notes))


def _prepare(text: str) -> tuple[str, list[str]]:
    """The reply without reasoning, chat-template tokens and invented next turns."""
    notes = []
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        notes.append(f"the reply was longer than {MAX_CHARS:,} characters; only the start was read")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").replace("\x00", "")
    # Reasoning models (DeepSeek-R1, Qwen3) think first; the answer follows the last </think>. A <think>
    # that never closes means max tokens ran out while thinking: there is no answer.
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    text = text.split("<think>", 1)[0]
    text = _ROLE_HEADER.sub("", text)
    text = next((piece for piece in _END_TOKEN.split(text) if piece.strip()), "")
    return _SPECIAL_TOKEN.sub("", text), notes


def _unquote(text: str) -> str:
    """'"How do I…?"' -> 'How do I…?'; '"How do I…?" (more formal)' -> 'How do I…?'."""
    text = text.strip()
    if len(text) < 2 or text[0] not in _QUOTES:
        return text
    close = _QUOTES[text[0]]
    inner = text[1:-1]
    # Apostrophes inside words ("What's") are no quote marks.
    bare = re.sub(r"(?<=\w)['’](?=\w)", "", inner) if close in "'’" else inner
    if text.endswith(close) and text[0] not in bare and close not in bare:
        return inner.strip()
    # '"Answer "Yes" or "No"."': straight double quotes inside, balanced, so the outer pair wraps it all.
    if text[0] == close == '"' and text.endswith('"') and inner.count('"') % 2 == 0 and "\n" not in inner:
        return inner.strip()
    # A quoted item followed by the model's comment on it.
    m = re.match(rf"{re.escape(text[0])}([^{re.escape(close)}\n]+){re.escape(close)}\s*(?:[-–—:(\[]|\n)", text)
    return m.group(1).strip() if m else text


def _squash(text: str) -> str:
    """Compare names loosely: 'Step-by-step', 'step_by_step' and 'STEP BY STEP' are one name."""
    return re.sub(r"[\W_]+", "", text.casefold())


def _norm_key(key: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(key).casefold()).strip("_")


def _dedupe_key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _as_text(value: Any) -> str:
    """A JSON value as field text: labels may come as numbers, steps as a list of strings."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(v.strip() for v in value).strip()
    try:
        return json.dumps(value, ensure_ascii=False)
    except (ValueError, RecursionError):  # nested deeper than Python recurses: no usable text anyway
        return ""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ----------------------------------------------------------------------------------------------------
# JSON, including JSON cut off by max tokens.

# strict=False: models put raw newlines and tabs inside JSON strings.
_DECODER = json.JSONDecoder(strict=False)


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\n\r":
        i += 1
    return i


def _decode(s: str, i: int, depth: int = 0) -> tuple[Any, int, bool]:
    """The JSON value at s[i] as (value, end, complete).

    A value that is cut off (or breaks) partway returns what came before the break: an array keeps its
    complete elements, an object its complete keys plus a half-read array or object value (the list of
    rows a wrapper like {"examples": [...]} held when the reply was cut). A trailing comma is forgiven.
    """
    try:
        value, end = _DECODER.raw_decode(s, i)
        return value, end, True
    except (ValueError, RecursionError):
        pass
    if depth >= _MAX_DEPTH or i >= len(s) or s[i] not in "[{":
        return None, i, False
    closer = "]" if s[i] == "[" else "}"
    container: list[Any] | dict[str, Any] = [] if closer == "]" else {}
    j = i + 1
    while True:
        j = _skip_ws(s, j)
        if j < len(s) and s[j] == closer:
            return container, j + 1, True
        key = ""
        if isinstance(container, dict):
            try:
                key, j = _DECODER.raw_decode(s, j)
            except (ValueError, RecursionError):
                return container, j, False
            j = _skip_ws(s, j)
            if not isinstance(key, str) or j >= len(s) or s[j] != ":":
                return container, j, False
            j = _skip_ws(s, j + 1)
        value, j, complete = _decode(s, j, depth + 1)
        if not complete:
            if isinstance(container, dict) and isinstance(value, list | dict) and value:
                container[key] = value
            return container, j, False
        if isinstance(container, dict):
            container[key] = value
        else:
            container.append(value)
        j = _skip_ws(s, j)
        if j < len(s) and s[j] == ",":
            j += 1
        elif j < len(s) and s[j] == closer:
            return container, j + 1, True
        else:
            return container, j, False


@dataclass(frozen=True)
class _Json:
    value: list[Any] | dict[str, Any]
    complete: bool
    start: int
    end: int


def _json_values(text: str) -> list[_Json]:
    """Every top-level JSON array or object in the text, in order (JSON lines give one per line)."""
    found: list[_Json] = []
    misses = 0
    i = 0
    while misses < _MAX_JSON_MISSES:
        m = _OPENER.search(text, i)
        if not m:
            break
        value, end, complete = _decode(text, m.start())
        if not value:
            misses += 1
            i = m.start() + 1
            continue
        found.append(_Json(value, complete, m.start(), end if complete else len(text)))
        if not complete:
            break  # everything after a break is inside the broken value
        i = end
    return found


# ----------------------------------------------------------------------------------------------------
# parse_text_list


@_never_raise
def parse_text_list(text: str, *, expected: int | None = None) -> Parsed:
    """N alternatives (phrasings, answers) as strings.

    Reads a JSON array of strings, a JSON object holding one (under any key), a numbered list (1. / 1) /
    (1)), a bulleted list (- * •), 'Variation 1: …' labels, or lines / paragraphs with nothing else.
    Strips quotes, labels, markdown bold and chatter around the list; drops duplicates (ignoring case and
    whitespace) and items shorter than 3 characters. With `expected`, keeps the first `expected` items
    and calls fewer than that partial.
    """
    raw = text
    text, notes = _prepare(text)
    if not text.strip():
        return _failed("the reply was empty" if not raw.strip() else "the reply held no answer", raw)
    expected = expected if expected is not None and expected > 0 else None

    found = _text_items_from_json(text)
    if found is None:
        found = _text_items_from_prose(text, expected)
    pieces, more_notes, reason = found
    notes += more_notes
    if reason:
        return _nothing_found(reason, text, raw)

    items: list[str] = []
    seen: set[str] = set()
    duplicates = short = 0
    for piece in pieces:
        item = _clean_item(piece)
        if len(item) < MIN_ITEM_CHARS:
            short += 1
        elif _dedupe_key(item) in seen:
            duplicates += 1
        else:
            seen.add(_dedupe_key(item))
            items.append(item)
    if duplicates:
        notes.append(f"dropped {_plural(duplicates, 'duplicate')}")
    if short:
        notes.append(f"dropped {_plural(short, 'empty or too-short item')}")
    if not items:
        return _failed("; ".join([*notes, "no usable item was left"]), raw)
    if expected is not None and len(items) < expected:
        notes.append(f"expected {expected} items, got {len(items)}")
    return _result(items[:expected] if expected else items, notes)


def _text_items_from_json(text: str) -> tuple[list[str], list[str], str] | None:
    """Items from a JSON array (or object holding one) that makes up most of the reply, else None."""
    size = len(text.strip())
    for found in _json_values(text):
        # A bracket inside a prose list ("1. Sort ["b", "a"]") is not the answer: the JSON must be most of it.
        if (found.end - found.start) * 2 < size:
            continue
        values = _list_in(found.value)
        if values is None:
            continue
        items, skipped = [], 0
        for value in values:
            item = _text_of(value)
            if item is None:
                skipped += 1
            else:
                items.append(item)
        notes = []
        if not found.complete:
            notes.append(f"the JSON was cut off; kept the {_plural(len(values), 'complete item')} before the cut")
        if skipped:
            notes.append(f"skipped {_plural(skipped, 'JSON value')} that held no text")
        return items, notes, ("" if items else "the JSON held no text items")
    return None


def _list_in(value: Any, depth: int = 0) -> list[Any] | None:
    """The list a JSON reply holds: itself, the first list inside an object, or an object's text values."""
    if isinstance(value, list):
        return value
    if not isinstance(value, dict) or depth > 2:
        return None
    for inner in value.values():
        if isinstance(inner, list | dict) and (found := _list_in(inner, depth + 1)) is not None:
            return found
    strings = [v for v in value.values() if isinstance(v, str)]
    return strings if len(strings) >= 2 and len(strings) == len(value) else None  # {"1": "…", "2": "…"}


def _text_of(value: Any) -> str | None:
    """The text of one JSON list element: a string, or an object's text field."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return None
    strings = {_norm_key(k): v for k, v in value.items() if isinstance(v, str)}
    if len(strings) == 1 and len(value) == 1:
        return next(iter(strings.values()))
    return next((strings[k] for k in _TEXT_KEYS if k in strings), None)


def _text_items_from_prose(text: str, expected: int | None) -> tuple[list[str], list[str], str]:
    lines = [line.rstrip().expandtabs(4) for line in text.split("\n") if not _FENCE_LINE.match(line)]
    # Each part keeps its line's indentation: an indented bullet is a note under an item.
    lines = [line[: len(line) - len(line.lstrip())] + part
             for line in lines for part in _split_inline_numbering(line.strip())]
    marked = _marked_items(lines)
    if marked is not None:
        return marked
    return _unmarked_items([line.strip() for line in lines], expected)


def _split_inline_numbering(line: str) -> list[str]:
    """'1. foo 2. bar 3. baz' on one line (tiny models do this) -> three lines, if numbered 1, 2, 3…"""
    if not re.match(r"1[.)]\s", line):
        return [line]
    parts = re.split(r"(?<=\S)\s+(?=\d{1,2}[.)]\s)", line)  # (?<=\S): one try per run of spaces
    numbers = [int(m.group()) if (m := re.match(r"\d+", part)) else 0 for part in parts]
    return parts if len(parts) > 1 and numbers == list(range(1, len(parts) + 1)) else [line]


def _marked_items(lines: list[str]) -> tuple[list[str], list[str], str] | None:
    """Items of a numbered / bulleted / 'Variation 1:' list, or None when no line is marked."""
    items: list[list[str]] = []
    current: list[str] | None = None
    stray = 0  # lines outside the list that are not recognisable chatter
    item_indent = 0
    for raw_line in lines:
        line = raw_line.strip()
        indent = len(raw_line) - len(line)
        if not line or _SEPARATOR.match(line):
            if current:  # a blank line ends an item; after a bare label ("Variation 1:") the text may follow
                current = None
            continue
        start = _MARKER.match(line) or _ITEM_LABEL.match(line)
        if start and current is not None and indent > item_indent + 1:
            continue  # "1. Where is my order?\n   - more direct": a sub-bullet comments on the item
        if start:
            item_indent = indent
            rest = line[start.end():].strip()
            current = [rest] if rest else []
            items.append(current)
        elif current is not None and not _OUTRO.match(line) and not _HEADING.match(line):
            if not _ITEM_NOTE.match(line):
                current.append(line)
        else:
            current = None
            if not (_PREAMBLE.match(line) or _OUTRO.match(line) or _HEADING.match(line) or line.endswith(":")):
                stray += 1
    if not items:
        return None
    notes = [f"skipped {_plural(stray, 'line')} outside the list"] if stray else []
    return ["\n".join(item) for item in items], notes, ""


def _unmarked_items(lines: list[str], expected: int | None) -> tuple[list[str], list[str], str]:
    """Items separated by blank lines, or one per line, once the chatter around them is gone."""
    start, end = 0, len(lines)
    while start < end and (not lines[start] or _PREAMBLE.match(lines[start]) or _HEADING.match(lines[start])
                           or (lines[start].endswith(":") and len(lines[start]) < 150)):
        start += 1
    had_intro = any(lines[:start])
    while end > start and (not lines[end - 1] or _OUTRO.match(lines[end - 1]) or _SEPARATOR.match(lines[end - 1])):
        end -= 1
    lines = lines[start:end]
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line and not _SEPARATOR.match(line):
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    paragraphs = [p for p in paragraphs if p]
    if len(paragraphs) >= 2:
        return ["\n".join(p) for p in paragraphs], [], ""
    if paragraphs and len(paragraphs[0]) >= 2:
        return paragraphs[0], [], ""
    if paragraphs and (expected == 1 or had_intro):
        return paragraphs[0], [], ""
    if paragraphs:
        return [], [], "no list found (a single line, with no JSON, numbering, bullets or separate lines)"
    return [], [], "the reply held no items, only chatter or code fences"


def _clean_item(text: str) -> str:
    lines = text.strip().split("\n")
    first = lines[0].strip()
    for pattern in (_MARKER, _ITEM_LABEL, _BOLD_LEAD):  # "1. **Variation 1:** …" has all three
        if m := pattern.match(first):
            first = first[m.end():].strip()
    lines = [first, *lines[1:]] if first else lines[1:]
    text = "\n".join(line.strip() for line in lines).strip()
    return _unquote(_BOLD.sub(r"\1", text))


# ----------------------------------------------------------------------------------------------------
# parse_single_text


@_never_raise
def parse_single_text(text: str, *, min_words: int = 3) -> Parsed:
    """One rewritten text (e.g. a refined instruction).

    Strips the intro ('Here is a clearer version:'), a code fence around the answer, surrounding quotes,
    labels ('Refined instruction:'; after 'Original: … Rewritten: …' the rewrite) and trailing notes.
    A JSON reply like {"instruction": "…"} or ["…"] gives its text. Failed when nothing is left, or
    fewer than `min_words` words: a rewrite that short is a fragment or noise ("asdf qwer").
    """
    raw = text
    text, notes = _prepare(text)
    text = _unwrap_fence(text)
    lines = text.strip().split("\n")
    start = 0
    while start < len(lines) and (not lines[start].strip() or _is_intro(lines[start])):
        start += 1
    lines = lines[start:]
    # "Sure! Here's a clearer version: Write…" — the text may follow the intro on the same line.
    if lines and _PREAMBLE.match(lines[0]) and (m := _INLINE_INTRO.match(lines[0])):
        lines[0] = lines[0][m.end():]
    text = "\n".join(lines).strip()
    if not text:
        return _failed("the reply was empty" if not raw.strip() else "the reply held no text", raw)

    if re.match(r"[\[{]\s*[\"\[{]", text):  # it looks like JSON: it must be read as JSON
        value, _end, complete = _decode(text, 0)
        picked = _single_from_json(value)
        if picked is None:
            if complete:
                return _failed("the JSON reply held no text field", raw)
            return _failed("the JSON reply was cut off before its text ended", raw)
        item, more = picked
        notes += more
        if not complete:
            notes.append("the JSON was cut off after the text")
        return _single_result(item, notes, raw, min_words)

    # "Original: … / Refined: …": the rewrite follows the last such label.
    labels = list(_REWRITE_LABEL.finditer(text))
    if labels:
        text = text[labels[-1].end():]
    elif m := _PLAIN_LABEL.match(text):
        text = text[m.end():]
    paragraphs = re.split(r"\n\s*\n", text.strip())
    # Notes and explanations after the text ("This version specifies…"): drop them and all after.
    cut = next((i for i, p in enumerate(paragraphs) if i and _OUTRO.match(p)), len(paragraphs))
    lines = "\n\n".join(paragraphs[:cut]).split("\n")
    while len(lines) > 1 and _OUTRO.match(lines[-1]):
        lines.pop()
    text = "\n".join(lines).strip()
    # A numbered "1. …" with no other list item: small models copy the numbering of their prompt.
    if (m := _MARKER.match(text)) and not any(_MARKER.match(line.strip()) for line in lines[1:]):
        text = text[m.end():]
    if text.startswith("**") and text.endswith("**"):
        text = text[2:-2]
    return _single_result(_unquote(text), notes, raw, min_words)


def _is_intro(line: str) -> bool:
    # "Here is a customer email. Write a reply…" is an instruction, not chatter: a "Here is" line only
    # counts as an intro when it is short or ends with a colon.
    line = line.strip()
    ends_with_colon = line.rstrip("*_ ").endswith(":")
    return bool(ends_with_colon and _REWRITE_INTRO.search(line)) or bool(
        _PREAMBLE.match(line) and (ends_with_colon or len(line.split()) <= 6))


def _single_result(item: str, notes: list[str], raw: str, min_words: int) -> Parsed:
    item = item.strip()
    if not item:
        return _failed("no text was left once labels, quotes and chatter were removed", raw)
    words = len(re.findall(r"\w+", item))
    if words < min_words:
        return _failed(f"the text is too short to be a rewrite ({_plural(words, 'word')})", raw)
    return _result([item], notes)


def _unwrap_fence(text: str) -> str:
    """The inside of a code fence when everything outside it is chatter; else the text as it is."""
    m = _FENCED_BLOCK.search(text)
    if m is None:
        return "\n".join(line for line in text.split("\n") if not re.fullmatch(r"\s*(?:```|~~~)\w*\s*", line))
    outside = (text[: m.start()] + "\n" + text[m.end():]).split("\n")
    if all(_is_chatter(line) for line in outside):
        return m.group(2)
    return text


def _is_chatter(line: str) -> bool:
    line = line.strip()
    return (not line or _is_intro(line)
            or bool(_OUTRO.match(line) or _FENCE_LINE.match(line) or _REWRITE_LABEL.match(line)))


def _single_from_json(value: Any, depth: int = 0) -> tuple[str, list[str]] | None:
    if depth > 2:
        return None
    if isinstance(value, str) and value.strip():
        return value.strip(), []
    if isinstance(value, list):
        texts = [t for v in value if (t := _text_of(v)) and t.strip()]
        if not texts:
            return None
        return texts[0].strip(), ([f"the reply held {len(texts)} texts; took the first"] if len(texts) > 1 else [])
    if isinstance(value, dict):
        text = _text_of(value)
        if text is None:  # {"refined_prompt": "…"}: any key that names an instruction or a rewrite
            text = next((v for k, v in value.items() if isinstance(v, str)
                         and re.search(r"instruction|prompt|rewrit|refin|revis|improv", str(k), re.I)), None)
        if text and text.strip():
            return text.strip(), []
        inner = next((v for v in value.values() if isinstance(v, list | dict)), None)
        return _single_from_json(inner, depth + 1) if inner is not None else None
    return None


# ----------------------------------------------------------------------------------------------------
# parse_pairs


@_never_raise
def parse_pairs(text: str, *, fields: tuple[str, ...] = ("instruction", "input", "output"),
                optional: tuple[str, ...] = ("input",)) -> Parsed:
    """New examples as dicts with exactly `fields` (alpaca by default; also ("prompt", "completion"),
    ("user", "assistant"), ("text", "label")).

    Reads a JSON array of objects, JSON lines, a single object, an object wrapping the array, JSON cut
    off partway (the complete objects are kept: partial), objects with synonym keys (question/answer,
    prompt/response, …), and labelled prose ('Instruction: …\\nInput: …\\nOutput: …', '### Instruction …
    ### Response …', 'Q: … A: …') repeated. `optional` fields may be missing (→ ""); an example lacking
    any other field is skipped, and the error says how many and why. Exact duplicates are dropped.
    """
    raw = text
    text, notes = _prepare(text)
    fields = tuple(dict.fromkeys(f for f in fields if f)) or ("instruction", "input", "output")
    if not text.strip():
        return _failed("the reply was empty" if not raw.strip() else "the reply held no answer", raw)

    candidates, json_notes = _pair_candidates_from_json(text, fields)
    rows, more = _pairs_result(candidates, json_notes, fields, optional)
    if not rows:  # not JSON, or JSON with nothing usable: try labelled prose
        prose_rows, prose_notes = _pairs_result(_pair_candidates_from_prose(text, fields), [], fields, optional)
        if prose_rows or not candidates:
            rows, more = prose_rows, prose_notes
    notes += more
    if not rows:
        if more:
            return _failed("; ".join(more), raw)
        names = ", ".join(fields)
        return _nothing_found(f"no examples found (no JSON objects with the keys {names}, no lines labelled "
                              "with them)", text, raw)
    return _result(rows, notes)


def _pairs_result(candidates: list[dict[str, Any]], notes: list[str], fields: tuple[str, ...],
                  optional: tuple[str, ...]) -> tuple[list[dict[str, str]], list[str]]:
    rows: list[dict[str, str]] = []
    reasons: Counter[str] = Counter()
    seen: set[tuple[str, ...]] = set()
    duplicates = 0
    for candidate in candidates:
        row, reason = _to_row(candidate, fields, optional)
        if row is None:
            reasons[reason] += 1
            continue
        key = tuple(_dedupe_key(row[f]) for f in fields)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        rows.append(row)
    notes = list(notes)
    if reasons:
        why = ", ".join(f"{n} {reason}" for reason, n in reasons.most_common())
        notes.append(f"skipped {reasons.total()} of {len(candidates)} examples ({why})")
    if duplicates:
        notes.append(f"dropped {_plural(duplicates, 'duplicate example')}")
    return rows, notes


def _synonyms(field: str) -> tuple[str, ...]:
    """The names (normalised) a teacher may give `field`: its own first, then its group's."""
    own = _norm_key(field)
    group = next((g for g in _FIELD_GROUPS if own in g), ())
    return (own, *(name for name in group if name != own))


def _to_row(candidate: Any, fields: tuple[str, ...],
            optional: tuple[str, ...]) -> tuple[dict[str, str] | None, str]:
    if not isinstance(candidate, dict):
        return None, f"not an object ({type(candidate).__name__})"
    values = {}
    for key, value in candidate.items():
        values.setdefault(_norm_key(key), value)
    used: set[str] = set()
    row: dict[str, str] = {}
    # A field's own name beats a synonym: with fields (text, label), "text" must not be taken as input.
    keys: dict[str, str] = {f: _norm_key(f) for f in fields if _norm_key(f) in values}
    used.update(keys.values())
    for field in fields:
        if field not in keys:
            key = next((k for k in _synonyms(field) if k in values and k not in used), None)
            if key is not None:
                keys[field] = key
                used.add(key)
    for field in fields:
        key = keys.get(field)
        value = _as_text(values[key]) if key is not None else ""
        if field in optional and _EMPTY_VALUE.fullmatch(value):
            value = ""
        if not value and field not in optional:
            return None, f"missing {field}" if key is None else f"empty {field}"
        row[field] = value
    # Asked for (prompt, completion) but got alpaca: the input belongs with the request.
    source = next((f for f in fields if f in _SOURCE_GROUP), None)
    extra = next((values[k] for k in ("input", "context") if k in values and k not in used), None)
    if source and extra is not None and not _EMPTY_VALUE.fullmatch(_as_text(extra)):
        row[source] = f"{row[source]}\n\n{_as_text(extra)}"
    return row, ""


def _looks_like_row(value: dict[str, Any], fields: tuple[str, ...]) -> bool:
    names = {name for f in fields for name in _synonyms(f)}
    return any(_norm_key(k) in names for k in value)


def _pair_candidates_from_json(text: str, fields: tuple[str, ...]) -> tuple[list[Any], list[str]]:
    candidates: list[Any] = []
    notes: list[str] = []
    for found in _json_values(text):
        value = found.value
        if isinstance(value, dict) and _looks_like_row(value, fields):
            if found.complete:
                candidates.append(value)
            else:
                notes.append("the last example was cut off and skipped")
            continue
        if isinstance(value, dict):  # a wrapper: {"examples": [...]} or {"1": {...}, "2": {...}}
            inner = next((v for v in value.values() if isinstance(v, list)), None)
            value = inner if inner is not None else [v for v in value.values() if isinstance(v, dict)]
        if not any(isinstance(v, dict) for v in value):
            continue  # "[1]" or "[see below]" in prose: no examples here
        candidates.extend(value)
        if not found.complete:
            notes.append(f"the JSON was cut off; kept the {_plural(len(value), 'complete example')} before the cut")
    return candidates, notes


def _label_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """A line starting with one of `names` as a label: 'Output: …', '**Q:** …', '### Response', '1. Input:'."""
    alternation = "|".join(re.escape(n).replace("_", "[ _]") for n in sorted(set(names), key=len, reverse=True))
    return re.compile(
        r"^(?:#{1,6}\s*)?(?:(?:\d{1,3}[.)]|[-*•])\s+)?(?:(?:\*\*|__)\s*)?(?P<name>" + alternation + r")"
        r"(?:\s*(?:#\s*)?\d{1,3})?\s*(?:(?:\*\*|__)\s*)?(?P<sep>[:：]|[–—](?=\s))?\s*(?:(?:\*\*|__)\s*)?"
        r"(?P<rest>.*)$", re.I)


def _pair_candidates_from_prose(text: str, fields: tuple[str, ...]) -> list[dict[str, str]]:
    names: dict[str, str] = {_norm_key(f): f for f in fields}
    for field in fields:
        for name in _synonyms(field):
            names.setdefault(name, field)
    label = _label_pattern(names)
    records: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    value: list[str] | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        m = label.match(stripped)
        # A label needs a colon, or must stand alone on its line ("### Response"); else it is prose
        # that merely starts with the word ("Answer the question…", "A cat…").
        if m and (m.group("sep") or not m.group("rest")):
            field = names[_norm_key(m.group("name"))]
            if field in current:  # the field again: the next example has begun
                records.append(current)
                current = {}
            value = current[field] = [m.group("rest")] if m.group("rest") else []
        elif _RECORD_HEADER.match(stripped) or _SEPARATOR.match(stripped):
            if current:
                records.append(current)
            current, value = {}, None
        elif value is not None:
            if _OUTRO.match(stripped) and (not value or not value[-1].strip()):
                value = None  # "I hope these help!" after a blank line ends the example
            else:
                value.append(line.rstrip())
    if current:
        records.append(current)
    return [{field: _clean_block(lines) for field, lines in record.items()} for record in records]


def _clean_block(lines: list[str]) -> str:
    """A multi-line value: no blank edges, no stray closing fence of a fenced reply, no quotes."""
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    fences = [i for i, line in enumerate(lines) if _FENCE_LINE.match(line)]
    if len(fences) % 2 and fences[-1] == len(lines) - 1:
        lines.pop()
    text = "\n".join(lines).strip()
    return _unquote(text)


# ----------------------------------------------------------------------------------------------------
# parse_styled_answers


@_never_raise
def parse_styled_answers(text: str, styles: list[str]) -> Parsed:
    """Several answers to one prompt, one per named style, as [{"style": s, "answer": a}].

    Reads a JSON object {style: answer}, a JSON array of {"style", "answer"} objects, or prose sections
    headed by the style names ('Formal:', '**Casual**', '### Empathetic', '1. Concise tone:'). Names
    match loosely ('step_by_step' is 'Step-by-step'). Items follow the order of `styles`; styles the
    reply lacks are left out and make it partial.
    """
    raw = text
    text, notes = _prepare(text)
    styles = list(dict.fromkeys(s for s in (styles or []) if isinstance(s, str) and _squash(s)))
    if not styles:
        return Parsed([], "failed", "no style names were given")
    if not text.strip():
        return _failed("the reply was empty" if not raw.strip() else "the reply held no answer", raw)

    answers, more = _styled_from_json(text, styles)
    if not answers:
        answers, more = _styled_from_prose(text, styles), []
    notes += more
    items = [{"style": s, "answer": answers[s]} for s in styles if answers.get(s)]
    if not items:
        return _nothing_found(f"no answer under any of the styles {', '.join(styles)}", text, raw)
    missing = [s for s in styles if not answers.get(s)]
    if missing:
        notes.append(f"no answer for {', '.join(missing)}")
    return _result(items, notes)


def _match_style(name: Any, styles: list[str]) -> str | None:
    key = _squash(str(name))
    for style in styles:
        if key in {_squash(style) + suffix for suffix in _STYLE_SUFFIXES}:
            return style
    return None


def _styled_from_json(text: str, styles: list[str]) -> tuple[dict[str, str], list[str]]:
    answers: dict[str, str] = {}
    notes: list[str] = []
    unnamed: list[str] = []

    def add(style: str | None, value: Any) -> None:
        if isinstance(value, dict):  # {"formal": {"answer": "…"}}
            value = _first(value, _ANSWER_KEYS)
        answer = _as_text(value) if value is not None else ""
        if style and answer and style not in answers:
            answers[style] = _unquote(answer)

    def walk(value: Any, depth: int) -> None:
        if depth > 2:
            return
        if isinstance(value, dict):
            matched = [(s, v) for k, v in value.items() if (s := _match_style(k, styles))]
            if matched:
                for style, v in matched:
                    add(style, v)
            elif (style := _match_style(_first(value, _STYLE_KEYS) or "", styles)) is not None:
                add(style, _first(value, _ANSWER_KEYS))  # {"style": "formal", "answer": "…"}
            else:
                for v in value.values():  # a wrapper: {"answers": {...}} / {"answers": [...]}
                    if isinstance(v, list | dict):
                        walk(v, depth + 1)
        elif isinstance(value, list):
            for v in value:
                if isinstance(v, str):
                    unnamed.append(v)
                else:
                    walk(v, depth + 1)

    for found in _json_values(text):
        walk(found.value, 0)
        if not found.complete:
            notes.append("the JSON was cut off; kept the answers before the cut")
    if not answers and unnamed and len(unnamed) == len(styles):
        # A bare list of answers, one per style: the prompt listed the styles in this order.
        answers = {s: _unquote(a) for s, a in zip(styles, unnamed, strict=True) if a.strip()}
        notes.append("the answers came without style names; matched them to the styles by order")
    return answers, notes


def _first(value: dict[str, Any], keys: tuple[str, ...]) -> Any:
    normalized = {_norm_key(k): v for k, v in value.items()}
    return next((normalized[k] for k in keys if k in normalized), None)


def _styled_from_prose(text: str, styles: list[str]) -> dict[str, str]:
    def name_pattern(style: str) -> str:
        words = [w for w in re.split(r"[\W_]+", style) if w]
        return r"[\s_\-]*".join(re.escape(w) for w in words)

    alternation = "|".join(name_pattern(s) for s in sorted(styles, key=len, reverse=True))
    header = re.compile(
        r"^(?:#{1,6}\s*)?(?:(?:\d{1,3}[.)]|[-*•])\s+)?(?:(?:\*\*|__|\*)\s*)?(?:[\[(]\s*)?"
        r"(?:(?:style|tone)(?:\s*\d{1,3})?\s*(?:[:\-–—]\s*)?)?(?P<name>" + alternation + r")"
        r"(?:\s+(?:style|tone|version|answer|response|reply))?\s*(?:[\])]\s*)?(?:(?:\*\*|__|\*)\s*)?"
        r"(?P<sep>[:：]|[-–—](?=\s))?\s*(?:(?:\*\*|__|\*)\s*)?(?P<rest>.*)$", re.I)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        m = header.match(line.strip())
        # A header needs a colon or dash, or stands alone: "Casual wear is fine" is not a header.
        if m and (m.group("sep") or not m.group("rest")):
            style = _match_style(m.group("name"), styles)
            if style is not None and style not in sections:
                current = sections[style] = [m.group("rest")] if m.group("rest") else []
                continue
            if style is not None:  # the style again: keep the first answer
                current = None
                continue
        if current is None:
            continue
        if (_OUTRO.match(line.strip()) and (not current or not current[-1].strip())) or _SEPARATOR.match(line):
            current = None  # "I hope these help!" after a blank line, or a --- rule, ends the section
            continue
        current.append(line.rstrip())
    return {style: _clean_block(lines) for style, lines in sections.items()}
