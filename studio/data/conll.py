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
    if len(sequences) > 2000:  # a token column shows itself in a sample: count everything only for tags
        head = describe_tags(column, sequences[:2000])
        if head is None:
            return None
    counts = Counter(v for seq in sequences for v in seq)
    total = sum(counts.values())
    if not total:
        return None
    prefixed = {v: m for v in counts if (m := _PREFIXED.match(v)) is not None}
    tagged = counts["O"] + sum(counts[v] for v in prefixed)
    outside = counts["O"]
    types = sorted({m.group(2) for m in prefixed.values()} | {v for v in counts if v != "O" and v not in prefixed})
    if tagged >= 0.98 * total and (outside or prefixed):
        scheme = tag_scheme(sequences[:20_000])  # the scheme shows in any few thousand sentences
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
    if width < 2 or n < 0.75 * len(data):
        return False
    rows = [_split(ln, tabbed) for ln in data if len(_split(ln, tabbed)) == width]
    if sum(len(" ".join(r)) for r in rows) / len(rows) > 120:  # sentences per line: a table, not tokens
        return False
    columns = [[r[i] for r in rows] for i in range(width)]
    return any(describe_tags(str(i), [col]) is not None for i, col in enumerate(columns))


_BLANK_RUN = re.compile(r"\n(?:[ \t]*\n)+")


def parse_column_file(text: str) -> ColumnFile:
    """Sentences of a column file. A line whose field count differs from the file's is a problem of its
    sentence (the sentence is kept, marked, so the preview can list it by line).

    The file is cut into blocks at blank lines. A block of plain token lines (no comment, no -DOCSTART-,
    every line exactly `width` fields, as a regular expression over the whole block checks) is split in one
    call and its columns sliced out: a 50 MB file is millions of lines, and a Python step per line was most
    of its preview. Any other block goes line by line."""
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    probe = [ln for ln in text[:200_000].split("\n")[:2000]
             if ln.strip() and not ln.startswith(("#", _DOCSTART))]
    tabbed = sum("\t" in ln for ln in probe) >= max(1, len(probe)) / 2
    width = Counter(len(_split(ln, tabbed)) for ln in probe).most_common(1)[0][0] if probe else 2
    if tabbed:
        field, sep = r"[^\t\n]*", r"\t"
    else:
        field, sep = r"\S+", " "
    one_line = f"{field}(?:{sep}{field}){{{width - 1}}}"
    plain_block = re.compile(f"{one_line}(?:\n{one_line})*")

    out = ColumnFile([column_name(i) for i in range(width)], [], [], {}, 0, 0)
    line_no, pos = 1, 0
    for m in [*_BLANK_RUN.finditer(text), None]:
        end = m.start() if m else len(text)
        block = text[pos:end]
        first = line_no
        if m:
            line_no += block.count("\n") + m.group().count("\n")
            pos = m.end()
        if block.startswith("\n"):  # the file starts with blank lines
            stripped = block.lstrip("\n")
            first += len(block) - len(stripped)
            block = stripped
        block = block.rstrip("\n")
        if not block or block.isspace():
            continue
        if not _plain_block(block, tabbed, plain_block, width, out, first):
            _parse_lines(block, first, tabbed, width, out)
    return out


def _plain_block(block: str, tabbed: bool, pattern: re.Pattern[str], width: int, out: ColumnFile,
                 first: int) -> bool:
    if block[0] == "#" or "\n#" in block or _DOCSTART in block or not pattern.fullmatch(block):
        return False
    if tabbed:
        if any(c in block for c in (" \t", "\t ", " \n", "\n ")) or block[0] == " " or block[-1] == " ":
            return False  # spaces around a field: the line-by-line path strips them
        fields = block.replace("\n", "\t").split("\t")
    else:
        fields = block.replace("\n", " ").split(" ")  # the pattern allowed single spaces only
    out.sentences.append([fields[i::width] for i in range(width)])
    out.lines.append(first)
    return True


def _parse_lines(block: str, first: int, tabbed: bool, width: int, out: ColumnFile) -> None:
    """One block, line by line: comments, -DOCSTART-, and lines with the wrong number of fields."""
    current: list[list[str]] = []
    start = first

    def close() -> None:
        nonlocal current
        if current:
            out.sentences.append([list(col) for col in zip(*current, strict=True)])
            out.lines.append(start)
        current = []

    for i, line in enumerate(block.split("\n"), start=first):
        if not line or line.isspace():
            close()
            continue
        # str.split() already drops the spaces around fields; tab-separated fields may carry some.
        fields = [f.strip() for f in line.split("\t")] if tabbed else line.split()
        if fields[0] == _DOCSTART:
            close()
            out.documents += 1
            continue
        if line.startswith("#") and (len(fields) != width or not _is_tag(fields[-1])):
            # A comment: GermEval's '#<TAB>source<TAB>[date]' (often with a trailing TAB, so as many fields as
            # a token line: its last field is no tag). '#<TAB>O' is a hashtag token (WNUT) and stays data.
            close()
            out.comments += 1
            continue
        if not current:
            start = i
        if len(fields) != width:
            out.problems.setdefault(len(out.sentences), (
                f"line {i} has {len(fields)} fields, the file's lines have {width} "
                f"(a missing {'tab' if tabbed else 'space'} or an extra one?)"))
            fields = (fields + [""] * width)[:width]
        current.append(fields)
    close()
