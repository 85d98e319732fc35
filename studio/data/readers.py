"""Read an uploaded seed file into rows, or say plainly why it cannot be read.

Supported: CSV (delimiter sniffed among , ; tab |), TSV, JSON (a list of objects, or an object holding
one), JSONL / NDJSON, Parquet. Every failure is an `InputFileError` naming the file, the line or row,
and what to do about it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import InputFileError

MAX_NESTING = 64
"""Deepest JSON nesting a seed row may have. Seeds are flat records or a list of messages (depth 3-4); a
file nested deeper is a mistake or an attack, and Python's own recursion limit (about 1000) must never be
what stops it: that would surface as a RecursionError instead of a message."""

SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet")
_SUPPORTED_TEXT = "CSV, TSV, JSON, JSONL or Parquet"

# Signatures of files people upload by mistake, so the message can say what the file really is.
_MAGIC: list[tuple[bytes, str]] = [
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or Word .docx file is one)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"SQLite format 3", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls or .doc)"),
    (b"PAR1", "a Parquet file"),
    (b"\x7fELF", "a program (ELF executable)"),
]


@dataclass
class RawTable:
    """Rows as read, before any format is applied. `rows` keep every column of the source."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    row_problems: dict[int, str] = field(default_factory=dict)
    """1-based row -> structural problem found while reading (CSV rows with too many values)."""
    label_names: dict[str, list[str]] = field(default_factory=dict)
    """column -> class names, when the source declares them (Hub datasets with ClassLabel)."""


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def safe_display_name(name: str) -> str:
    """The last component of an upload's name, without control characters.

    Why: the name a browser or client sends is chosen by whoever uploads (`../../etc/passwd.csv`,
    `C:\\x\\seeds.csv`, a name with a newline). It is only ever shown and stored as text (messages, the
    seed's `source`, import rows), never used as a path; keeping just its base name means no later use can
    turn it into one, and no message or log line can be forged with an embedded line break.
    """
    cleaned = "".join(ch for ch in str(name) if ch.isprintable())
    base = cleaned.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()
    if base in ("", ".", ".."):
        return "upload"
    if len(base) > 200:  # keep the extension: it says how the file is read
        suffix = Path(base).suffix[:20]
        base = base[: 200 - len(suffix)] + suffix
    return base


def read_table(path: str | Path, *, display_name: str | None = None, max_bytes: int) -> RawTable:
    """Read one seed file. `display_name` is what the user calls it (the upload's original name)."""
    path = Path(path)
    name = safe_display_name(display_name or path.name)
    ext = Path(name).suffix.lower() or path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputFileError(
            f"{name}: files ending in '{ext or '(no extension)'}' are not supported. Upload a "
            f"{_SUPPORTED_TEXT} file (for Excel: File → Save As → CSV UTF-8).")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputFileError(f"{name} could not be opened ({exc.strerror}). Upload it again.") from exc
    if size == 0:
        raise InputFileError(f"{name} is empty (0 bytes). Upload the file that holds your seed rows.")
    if size > max_bytes:
        raise InputFileError(
            f"{name} is {human_size(size)}, over the {human_size(max_bytes)} upload limit. Split it into "
            "smaller files, drop columns you do not need, or raise SEED_STUDIO_MAX_UPLOAD_MB.")
    data = path.read_bytes()

    if ext == ".parquet":
        return _read_parquet(data, name)
    text = _decode_text(data, name)
    if not text.strip():
        raise InputFileError(f"{name} contains only blank space, no rows. Upload the file that holds your "
                             "seed rows.")
    if ext == ".csv":
        return _read_delimited(text, name, delimiter=None)
    if ext == ".tsv":
        return _read_delimited(text, name, delimiter="\t")
    if ext in (".jsonl", ".ndjson"):
        return _read_jsonl(text, name)
    return _read_json(text, name)


def _decode_text(data: bytes, name: str) -> str:
    head = data[:16]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputFileError(f"{name} is saved as UTF-16 text. Save it as UTF-8 instead (Excel: Save As → "
                             "CSV UTF-8; most editors: Save with Encoding → UTF-8) and upload it again.")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            hint = " Rename it to .parquet and upload it again." if magic == b"PAR1" else (
                f" Export your seeds as {_SUPPORTED_TEXT} and upload that file.")
            raise InputFileError(f"{name} is not a text file: it looks like {what}.{hint}")
    if b"\x00" in data[:8192]:
        raise InputFileError(f"{name} is a binary file, not text. Export your seeds as {_SUPPORTED_TEXT} "
                             "and upload that file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = data[exc.start : exc.start + 1].hex()
        raise InputFileError(
            f"{name} is not UTF-8 text: line {line} has the byte 0x{byte}, which UTF-8 cannot read (the "
            "file was probably saved as Latin-1 or Windows-1252). Save it as UTF-8 (Excel: Save As → "
            "CSV UTF-8) and upload it again.") from None


def _read_delimited(text: str, name: str, delimiter: str | None) -> RawTable:
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    # Seed outputs can be long (code, essays): allow a field as large as the file itself.
    csv.field_size_limit(max(len(text) + 1, 131072))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise InputFileError(f"{name} has no header row. The first line must name the columns, "
                             "for example: instruction,input,output") from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise InputFileError(f"{name}: the first line is blank. The first line must name the columns, "
                             "for example: instruction,input,output")
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        raise InputFileError(f"{name}: column {blank[0]} of the header row has no name. Give every column "
                             "a name in the first line, or delete the empty column.")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputFileError(f"{name}: the header names the column '{dupes[0]}' more than once. Give "
                             "each column a unique name.")
    rows: list[dict[str, Any]] = []
    row_problems: dict[int, str] = {}
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank line
            row_no = len(rows) + 1
            if len(values) != len(header):
                row_problems[row_no] = (
                    f"has {len(values)} values but the header names {len(header)} columns (an unquoted "
                    f"'{delimiter if delimiter != chr(9) else 'tab'}' inside a cell? put the cell in "
                    "double quotes)")
            rows.append({h: (values[i] if i < len(values) else None) for i, h in enumerate(header)})
    except csv.Error as exc:
        raise InputFileError(f"{name}: line {reader.line_num} cannot be read as CSV ({exc}). Check the "
                             "quotes on that line and upload again.") from exc
    return RawTable(name, header, rows, row_problems)


def _read_jsonl(text: str, name: str) -> RawTable:
    rows: list[dict[str, Any]] = []
    lines = text.split("\n")
    last_content = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except RecursionError:
            raise InputFileError(_too_deep_message(name, f"line {i + 1}")) from None
        except json.JSONDecodeError as exc:
            cut = i == last_content and not text.rstrip(" \t").endswith("\n")
            why = "looks cut off (the file may not have finished saving or downloading)" if cut else (
                f"is not valid JSON ({exc.msg} at column {exc.colno})")
            raise InputFileError(f"{name}: line {i + 1} {why}. Fix or delete that line and upload again; "
                                 "each line must be one complete JSON object.") from None
        if not isinstance(obj, dict):
            raise InputFileError(f"{name}: line {i + 1} is a JSON {type(obj).__name__}, not an object. Each "
                                 'line must be one object, like {"instruction": "...", "output": "..."}.')
        if nesting_depth(obj) > MAX_NESTING:
            raise InputFileError(_too_deep_message(name, f"line {i + 1}"))
        rows.append(obj)
    return RawTable(name, _columns(rows), rows)


def _read_json(text: str, name: str) -> RawTable:
    try:
        obj = json.loads(text)
    except RecursionError:
        raise InputFileError(_too_deep_message(name, "the file")) from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # one object per line: JSONL saved as .json
            return _read_jsonl(text, name)
        raise InputFileError(f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
                             "Fix the file (or export it again) and upload it again.") from None
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list)]
        preferred = [k for k in ("data", "rows", "examples", "train", "seeds") if k in lists]
        # {"data": [...]} and similar wrappers hold the rows; any other object is one row.
        obj = obj[(preferred or lists)[0]] if preferred or len(lists) == 1 else [obj]
    if not isinstance(obj, list):
        raise InputFileError(f"{name} holds a single JSON {type(obj).__name__}. It must hold a list of "
                             'objects, like [{"instruction": "...", "output": "..."}, ...].')
    deep = next((i for i, r in enumerate(obj) if nesting_depth(r) > MAX_NESTING), None)
    if deep is not None:
        raise InputFileError(_too_deep_message(name, f"item {deep + 1}"))
    bad = next((i for i, r in enumerate(obj) if not isinstance(r, dict)), None)
    if bad is not None:
        raise InputFileError(f"{name}: item {bad + 1} of the list is a JSON {type(obj[bad]).__name__}, not "
                             'an object. Each item must be an object like {"instruction": "...", ...}.')
    return RawTable(name, _columns(obj), obj)


def _read_parquet(data: bytes, name: str) -> RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not data.startswith(b"PAR1"):
        raise InputFileError(f"{name} is not a Parquet file (it does not start with the Parquet signature). "
                             f"Upload the file in the format its name says: {_SUPPORTED_TEXT}.")
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputFileError(f"{name} is a damaged or incomplete Parquet file ({exc}). Export it again and "
                             "upload the new file.") from None
    rows = table.to_pylist()
    return RawTable(name, list(table.column_names), rows)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(str(k), None)
    return list(seen)


def nesting_depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (a scalar is 0), without recursion: the check itself
    must not be what a hostile file breaks."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend((x, depth) for x in v)
    return deepest


def _too_deep_message(name: str, where: str) -> str:
    return (f"{name}: {where} nests lists or objects more than {MAX_NESTING} levels deep, which no seed "
            "format needs. Each row must be a flat object (a conversation is a list of {role, content} "
            "messages); export the seeds again and upload that file.")
