"""Column files of token-level tags (NER): CoNLL-2003, WNUT-style token/tag TSV, GermEval-style TSV.

One token per line, its fields split by tabs (or runs of spaces), a blank line between sentences. Lines
starting with '#' are comments (GermEval puts the source URL there) and `-DOCSTART-` lines mark documents.
Every sentence becomes one row whose columns ("column 1", "column 2", ...) hold a list of values, one per
token, so the ordinary mapping step picks the token and tag columns. The tag column is chosen by its values
(`tag_columns`): IOB1, IOB2, BIOES/BILOU or IO, preferring named-entity types over syntactic chunk tags.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

COLUMN_PREFIX = "column "
_PREFIXED = re.compile(r"^([BIESLU])[-_](\S+)$")
# Chunk types of CoNLL-2000/2003's third column: tags of the same shape as entities, but not entities.
_CHUNK_TYPES = {"NP", "VP", "PP", "ADJP", "ADVP", "SBAR", "PRT", "CONJP", "INTJ", "LST", "UCP"}


def column_name(i: int) -> str:
    """The name of the i-th (0-based) column of a file without a header: 'column 1', 'column 2', ..."""
    return f"{COLUMN_PREFIX}{i + 1}"


@dataclass(frozen=True)
class TagColumn:
    """What one column's values say about it, when they are token tags."""

    column: str
    scheme: str
    """'IOB1', 'IOB2', 'BIOES', 'BILOU' or 'IO'."""
    types: tuple[str, ...]
    entities: int
    chunks: bool
    """True when every type is a syntactic chunk (NP, VP, ...): tags of the right shape, not entities."""

    def describe(self) -> str:
        kinds = "chunk types" if self.chunks else "entity types"
        shown = ", ".join(self.types[:12]) + (", ..." if len(self.types) > 12 else "")
        return f"{self.scheme}; {kinds} {shown or '(none: every tag is O)'}"


def tag_scheme(sequences: list[list[str]]) -> str:
    """The tagging scheme of whole sentences of tags."""
    prefixes = Counter()
    iob1 = False
    parsed: dict[str, re.Match[str] | None] = {}  # a few distinct tags, matched once each
    for tags in sequences:
        prev_type = None
        for tag in tags:
            m = parsed[tag] if tag in parsed else parsed.setdefault(tag, _PREFIXED.match(tag))
            if m is None:  # O, or a bare type (IO without prefixes)
                prev_type = None if tag == "O" else tag
                if tag != "O":
                    prefixes["bare"] += 1
                continue
            prefix, kind = m.groups()
            prefixes[prefix] += 1
            if prefix == "I" and prev_type != kind:
                iob1 = True  # an entity that starts with I-: IOB1 (or IO)
            prev_type = kind
    if prefixes["L"] or prefixes["U"]:
        return "BILOU"
    if prefixes["E"] or prefixes["S"]:
        return "BIOES"
    if prefixes["B"]:
        return "IOB1" if iob1 else "IOB2"
    return "IO"


def _is_tag(value: str) -> bool:
    return value == "O" or _PREFIXED.match(value) is not None


def describe_tags(column: str, sequences: list[list[str]]) -> TagColumn | None:
    """A TagColumn when nearly every value is a tag (O, B-X, I-X, ...; or bare types with many O).
    Works on the distinct values and their counts: a token column has thousands, a tag column a few."""
    counts = Counter(v for seq in sequences for v in seq)
    total = sum(counts.values())
    if not total:
        return None
    prefixed = {v: m for v in counts if (m := _PREFIXED.match(v)) is not None}
    tagged = counts["O"] + sum(counts[v] for v in prefixed)
    outside = counts["O"]
    types = sorted({m.group(2) for m in prefixed.values()} | {v for v in counts if v != "O" and v not in prefixed})
    if tagged >= 0.98 * total and (outside or prefixed):
        scheme = tag_scheme(sequences)
        types = sorted({m.group(2) for m in prefixed.values()})
    elif outside >= 0.3 * total and len(types) <= 30 and all(" " not in t for t in types):
        scheme = "IO"  # bare types (PER, LOC) beside O: IO without prefixes
    else:
        return None
    entities = sum(n for v, n in counts.items()
                   if v != "O" and not (v in prefixed and prefixed[v].group(1) in "IEL"))
    chunks = bool(types) and set(types) <= _CHUNK_TYPES
    return TagColumn(column, scheme, tuple(types), entities, chunks)


def rank_tag_columns(found: list[TagColumn]) -> list[TagColumn]:
    """Best tag column first: entity types before chunk tags, then the column with most entities (a nested
    second column has fewer), then the leftmost."""
    order = {c.column: i for i, c in enumerate(found)}
    return sorted(found, key=lambda c: (c.chunks, -c.entities, order[c.column]))


def is_index_column(values: list[str]) -> bool:
    return bool(values) and all(v.isdigit() for v in values)


@dataclass
class ColumnFile:
    """A parsed column file: one entry per sentence, with where it starts and what is wrong with it."""

    columns: list[str]
    sentences: list[list[list[str]]]
    """sentence -> column -> values (one per token)."""
    lines: list[int]
    """1-based line of each sentence's first token."""
    problems: dict[int, str]
    """0-based sentence index -> what is wrong with it."""
    documents: int
    comments: int


_DOCSTART = "-DOCSTART-"


def _split(line: str, tabbed: bool) -> list[str]:
    return line.split("\t") if tabbed else line.split()


def sniff_columns(text: str) -> bool:
    """Whether `text` looks like a token-per-line column file: mostly 2+ short fields per line, blank lines
    between groups, and a column of tags."""
    lines = [ln.rstrip("\r") for ln in text[:65536].split("\n")[:400]]
    data = [ln for ln in lines if ln.strip() and not ln.startswith("#") and not ln.startswith(_DOCSTART)]
    if len(data) < 2:
        return False
    tabbed = sum("\t" in ln for ln in data) >= len(data) / 2
    counts = Counter(len(_split(ln, tabbed)) for ln in data)
    width, n = counts.most_common(1)[0]
    if width < 2 or n < 0.9 * len(data):
        return False
    rows = [_split(ln, tabbed) for ln in data if len(_split(ln, tabbed)) == width]
    if sum(len(" ".join(r)) for r in rows) / len(rows) > 120:  # sentences per line: a table, not tokens
        return False
    columns = [[r[i] for r in rows] for i in range(width)]
    return any(describe_tags(str(i), [col]) is not None for i, col in enumerate(columns))


def parse_column_file(text: str) -> ColumnFile:
    """Sentences of a column file. A line whose field count differs from the file's is a problem of its
    sentence (the sentence is kept, marked, so the preview can list it by line)."""
    raw_lines = text.split("\n")
    probe = [ln.rstrip("\r") for ln in raw_lines[:2000]]
    probe = [ln for ln in probe if ln.strip() and not ln.startswith(("#", _DOCSTART))]
    tabbed = sum("\t" in ln for ln in probe) >= max(1, len(probe)) / 2
    width = Counter(len(_split(ln, tabbed)) for ln in probe).most_common(1)[0][0] if probe else 2

    sentences: list[list[list[str]]] = []
    lines: list[int] = []
    problems: dict[int, str] = {}
    current: list[list[str]] = []
    start = 0
    documents = comments = 0

    def close() -> None:
        nonlocal current
        if current:
            sentences.append([[tok[i] for tok in current] for i in range(width)])
            lines.append(start)
        current = []

    for i, line in enumerate(raw_lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            close()
            continue
        fields = [f.strip() for f in _split(line, tabbed)]
        if fields[0] == _DOCSTART:
            close()
            documents += 1
            continue
        if line.startswith("#") and (len(fields) != width or not _is_tag(fields[-1])):
            # A comment: GermEval's '#<TAB>source<TAB>[date]' (often with a trailing TAB, so as many fields as
            # a token line: its last field is no tag). '#<TAB>O' is a hashtag token (WNUT) and stays data.
            close()
            comments += 1
            continue
        if not current:
            start = i
        if len(fields) != width:
            idx = len(sentences)
            problems.setdefault(idx, f"line {i} has {len(fields)} fields, the file's lines have {width} "
                                     f"(a missing {'tab' if tabbed else 'space'} or an extra one?)")
            fields = (fields + [""] * width)[:width]
        current.append(fields)
    close()
    return ColumnFile([column_name(i) for i in range(width)], sentences, lines, problems, documents, comments)
