"""Character-offset entities (spaCy, doccano, Label Studio, Parquet structs) -> tokens + IOB2 tags.

The text is split into words and punctuation marks (`TOKEN_RE`); each entity must start and end on token
boundaries, so the entity's tokens joined back are exactly its characters. A span that cuts a token, runs
past the text or overlaps another is reported, never moved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Words (letters, digits, underscore) and single punctuation marks or symbols: 'New York-based' gives
# New | York | - | based, so an entity 'New York' still falls on token boundaries.
TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


class SpanError(ValueError):
    """A span that cannot become tags; the message says which span and why."""


def tokenize(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in TOKEN_RE.finditer(text)]


def spans_to_tags(text: str, spans: list[Span],
                  offsets: list[tuple[int, int]] | None = None) -> tuple[list[str], list[str]]:
    """(tokens, IOB2 tags). `offsets` are the file's own tokens (spaCy's), else `tokenize(text)`. Raises
    SpanError for a span off the token boundaries, outside the text, empty, or overlapping another (one tag
    per token cannot say two things)."""
    offsets = offsets or tokenize(text)
    starts = {s: i for i, (s, _) in enumerate(offsets)}
    ends = {e: i for i, (_, e) in enumerate(offsets)}
    tags = ["O"] * len(offsets)
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        shown = repr(text[max(0, span.start):span.end][:40])
        if not (0 <= span.start < span.end <= len(text)):
            raise SpanError(f"the entity {span.label} at {span.start}-{span.end} lies outside the text "
                            f"({len(text)} characters)")
        first, last = starts.get(span.start), ends.get(span.end)
        if first is None or last is None:
            edge = "starts" if first is None else "ends"
            raise SpanError(f"the entity {span.label} {shown} at {span.start}-{span.end} {edge} inside a word, "
                            "not on a token boundary; fix its offsets in the labelling tool and export again")
        if any(t != "O" for t in tags[first:last + 1]):
            raise SpanError(f"the entity {span.label} {shown} at {span.start}-{span.end} overlaps another "
                            "entity; each token can have one tag")
        tags[first] = f"B-{span.label}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{span.label}"
    return [text[s:e] for s, e in offsets], tags


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v:
        raise SpanError(f"an entity offset is {v!r}, not a whole number")
    return int(v)


def parse_span(item: Any) -> Span:
    """One entity in any of the published spellings:
    {start, end, label} (spaCy, Parquet structs), {start_offset, end_offset, label} (doccano),
    [start, end, label] (doccano classic, spaCy's training tuples),
    {value: {start, end, labels: [...]}} (Label Studio results)."""
    if hasattr(item, "tolist"):
        item = item.tolist()
    if isinstance(item, dict) and isinstance(item.get("value"), dict):
        item = item["value"]
    if isinstance(item, dict):
        start = item.get("start", item.get("start_offset", item.get("start_char")))
        end = item.get("end", item.get("end_offset", item.get("end_char")))
        label = item.get("label", item.get("labels", item.get("type", item.get("entity"))))
        if isinstance(label, list | tuple):
            label = label[0] if len(label) == 1 else None
        if start is None or end is None or not isinstance(label, str) or not label.strip():
            raise SpanError(f"an entity {_short(item)} has no start, end and single label")
        return Span(_int(start), _int(end), label.strip())
    if isinstance(item, list | tuple) and len(item) == 3:
        return Span(_int(item[0]), _int(item[1]), str(item[2]).strip())
    raise SpanError(f"an entity {_short(item)} is not {{start, end, label}} or [start, end, label]")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
