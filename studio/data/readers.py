"""Read an uploaded seed file into rows, or say plainly why it cannot be read.

Supported: CSV (delimiter found from the header and the rows among , ; tab |; a first row of data instead
of names is noticed), TSV, Excel .xlsx (any sheet), JSON (a list of objects, an object holding one, spaCy's
[text, {entities}] pairs), JSONL / NDJSON, Parquet and Arrow (ClassLabel names from their metadata), and
token-per-line column files for NER (.conll/.txt/.iob/.bio, and .tsv files shaped that way). Published
layouts that nest their rows are then flattened by `studio.data.layouts.reshape`. Every failure is an
`InputFileError` naming the file, the line or row, and what to do about it.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Any

from studio.data import conll
from studio.data.table import MappingHint, RawTable, ReadOptions, bulk_rows
from studio.errors import InputFileError

__all__ = ["SUPPORTED_EXTENSIONS", "RawTable", "ReadOptions", "read_table", "safe_display_name"]

MAX_NESTING = 64
"""Deepest JSON nesting a seed row may have. Seeds are flat records or a list of messages (depth 3-4); a
file nested deeper is a mistake or an attack, and Python's own recursion limit (about 1000) must never be
what stops it: that would surface as a RecursionError instead of a message."""

COLUMN_FILE_EXTENSIONS = (".conll", ".txt", ".iob", ".bio")
SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet", ".arrow", ".xlsx",
                        *COLUMN_FILE_EXTENSIONS)
_SUPPORTED_TEXT = "CSV, TSV, Excel .xlsx, JSON, JSONL, Parquet or CoNLL"

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


def read_table(path: str | Path, *, display_name: str | None = None, max_bytes: int,
               options: ReadOptions | None = None) -> RawTable:
    """Read one seed file. `display_name` is what the user calls it (the upload's original name)."""
    from studio.data.layouts import reshape  # layouts build on RawTable; read first, then flatten

    options = options or ReadOptions()
    with bulk_rows():
        table = _read(Path(path), safe_display_name(display_name or Path(path).name), max_bytes, options)
        table.options = options
        return reshape(table, options)


def _read(path: Path, name: str, max_bytes: int, options: ReadOptions) -> RawTable:
    ext = Path(name).suffix.lower() or path.suffix.lower()
    if ext == ".xls":
        raise InputFileError(f"{name} is an old Excel workbook (.xls). Open it in Excel or LibreOffice and "
                             "save it as .xlsx (or as CSV UTF-8), then upload that file.")
    if ext not in SUPPORTED_EXTENSIONS:
        raise InputFileError(
            f"{name}: files ending in '{ext or '(no extension)'}' are not supported. Upload a "
            f"{_SUPPORTED_TEXT} file (for other spreadsheets: File → Save As → CSV UTF-8).")
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
    if ext == ".arrow":
        return _read_arrow(data, name)
    if ext == ".xlsx":
        return _read_xlsx(data, name, options)
    text = _decode_text(data, name)
    if not text.strip():
        raise InputFileError(f"{name} contains only blank space, no rows. Upload the file that holds your "
                             "seed rows.")
    if ext in COLUMN_FILE_EXTENSIONS:
        if not conll.sniff_columns(text):
            raise InputFileError(
                f"{name} is not a CoNLL-style column file: {ext} files are read as one token per line with its "
                "tag (for example 'Paris B-LOC'), a blank line between sentences, and no line here has a column "
                f"of tags (O, B-PER, I-PER, ...). For other seeds upload a {_SUPPORTED_TEXT} file.")
        return _read_column_file(text, name)
    if ext == ".csv":
        return _read_delimited(text, name, None, options)
    if ext == ".tsv":
        if conll.sniff_columns(text) and not _has_named_header(text):
            return _read_column_file(text, name)
        return _read_delimited(text, name, "\t", options)
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
            hint = {b"PAR1": " Rename it to .parquet and upload it again.",
                    b"PK\x03\x04": " If it is an Excel workbook, give it its .xlsx name and upload it again; "
                                     f"otherwise export your seeds as {_SUPPORTED_TEXT}."}.get(
                magic, f" Export your seeds as {_SUPPORTED_TEXT} and upload that file.")
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


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header and the rows after it into the same number of cells.

    Why not csv.Sniffer: it guesses from character frequencies, so a ';' file whose header holds only
    `instruction;output` and whose long quoted cells are full of commas comes out as ','.
    """
    sample = text[:65536]
    cut = len(text) > len(sample)
    best, best_score = ",", (-1.0, 0)
    for d in (",", ";", "\t", "|"):
        try:
            records = list(itertools.islice(csv.reader(io.StringIO(sample, newline=""), delimiter=d), 60))
        except csv.Error:
            continue
        if cut and len(records) > 1:
            records = records[:-1]  # the sample may end inside a record
        records = [r for r in records if any(c.strip() for c in r)]
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        consistent = sum(len(r) == width for r in records) / len(records)
        score = (consistent, width)
        if score > best_score:
            best, best_score = d, score
    return best


_NUMBER = re.compile(r"^[-+]?\d+([.,]\d+)?$")


def _looks_like_value(cell: str) -> bool:
    """A cell that reads as data rather than a column name: a number, a sentence, several lines."""
    cell = cell.strip()
    return bool(_NUMBER.match(cell)) or len(cell) > 40 or len(cell.split()) >= 6 or "\n" in cell


def _known_column(cell: str) -> bool:
    from studio.data.formats import is_known_column

    return is_known_column(cell)


def _first_row_is_header(first: list[str]) -> bool:
    if any(_known_column(c) for c in first):
        return True
    return not any(_looks_like_value(c) for c in first)


def _has_named_header(text: str) -> bool:
    first = text.split("\n", 1)[0].rstrip("\r").split("\t")
    return len(first) > 1 and any(_known_column(c) for c in first)


def _read_delimited(text: str, name: str, delimiter: str | None, options: ReadOptions) -> RawTable:
    if delimiter is None:
        delimiter = _sniff_delimiter(text)
    # Seed outputs can be long (code, essays): allow a field as large as the file itself.
    csv.field_size_limit(max(len(text) + 1, 131072))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    try:
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                break
            records.append((start, values))
    except csv.Error as exc:
        raise InputFileError(f"{name}: line {reader.line_num} cannot be read as CSV ({exc}). Check the "
                             "quotes on that line and upload again.") from exc
    sep = delimiter if delimiter != "\t" else "tab"
    return _table_from_records(records, name, options, sep=sep, unit="line")


def _table_from_records(records: list[tuple[int, list[str]]], name: str, options: ReadOptions, *, sep: str,
                        unit: str) -> RawTable:
    """Rows of cells (CSV lines, spreadsheet rows) -> RawTable: header or not, blank rows skipped, rows with
    the wrong number of cells marked."""
    records = [(n, v) for n, v in records if any(str(c).strip() for c in v)] if records else []
    if not records:
        raise InputFileError(f"{name} has no header row. The first line must name the columns, "
                             "for example: instruction,input,output")
    first = [str(h).strip() for h in records[0][1]]
    header = options.header if options.header is not None else _first_row_is_header(first)
    notes: list[str] = []
    if header:
        columns = first
        body = records[1:]
        if not any(columns):
            raise InputFileError(f"{name}: the first {unit} is blank. The first {unit} must name the columns, "
                                 "for example: instruction,input,output")
        blank = [i + 1 for i, h in enumerate(columns) if not h]
        if blank:
            raise InputFileError(f"{name}: column {blank[0]} of the header row has no name. Give every column "
                                 "a name in the first line, or delete the empty column.")
        dupes = sorted({h for h in columns if columns.count(h) > 1})
        if dupes:
            raise InputFileError(f"{name}: the header names the column '{dupes[0]}' more than once. Give "
                                 "each column a unique name.")
    else:
        width = max(len(v) for _, v in records)
        columns = [conll.column_name(i) for i in range(width)]
        body = records
        if options.header is None:
            notes.append("The first row holds data, not column names, so the columns are offered by number "
                         "(column 1, column 2, ...). If it does name the columns, tick 'First row names the "
                         "columns'.")
    rows: list[dict[str, Any]] = []
    origins: list[str] = []
    row_problems: dict[int, str] = {}
    for start, values in body:
        row_no = len(rows) + 1
        if len(values) != len(columns) and header:
            row_problems[row_no] = (
                f"has {len(values)} values but the header names {len(columns)} columns (an unquoted "
                f"'{sep}' inside a cell? put the cell in double quotes)")
        rows.append({h: (values[i] if i < len(values) else None) for i, h in enumerate(columns)})
        origins.append(f"{unit} {start}")
    return RawTable(name, columns, rows, row_problems, notes=notes, origins=origins, has_header=header,
                    json_native=True)


def _read_column_file(text: str, name: str) -> RawTable:
    parsed = conll.parse_column_file(text)
    if not parsed.sentences:
        raise InputFileError(f"{name} has no sentences: every line is blank, a comment or -DOCSTART-. Upload "
                             "the file with the tokens and their tags.")
    rows = [dict(zip(parsed.columns, sentence, strict=True)) for sentence in parsed.sentences]
    origins = [f"line {n}" for n in parsed.lines]
    problems = {i + 1: why for i, why in parsed.problems.items()}
    clean = [r for i, r in enumerate(rows) if i not in parsed.problems] or rows  # padded broken lines say nothing
    # Columns are ranked on a sample (ten thousand sentences say which column holds entities); the chosen one
    # is then described in full, so its entity types are all listed.
    sample = clean[:10_000]
    found = [t for col in parsed.columns
             if (t := conll.describe_tags(col, [r[col] for r in sample])) is not None]
    ranked = conll.rank_tag_columns(found)
    if ranked and len(clean) > len(sample):
        ranked[0] = conll.describe_tags(ranked[0].column, [r[ranked[0].column] for r in clean]) or ranked[0]
    tag_cols = {t.column for t in found}
    token_col = next((c for c in parsed.columns if c not in tag_cols
                      and not conll.is_index_column([v for r in clean[:200] for v in r[c]])), None)
    extra = [f"{parsed.documents} document{'s' if parsed.documents != 1 else ''}" if parsed.documents else "",
             f"{parsed.comments} comment lines skipped" if parsed.comments else ""]
    notes = [f"Column file (CoNLL style): {len(rows)} sentences, {len(parsed.columns)} columns per token"
             + "".join(f"; {e}" for e in extra if e) + "."]
    hint = None
    if ranked and token_col is not None:
        best = ranked[0]
        others = ranked[1:]
        tie = bool(others) and not others[0].chunks and others[0].entities == best.entities
        msg = f"Tags from {best.column} ({best.describe()}), tokens from {token_col}."
        notes.append(msg)
        for t in others:
            notes.append(f"{t.column.capitalize()} also holds tags ({t.describe()}): pick it for 'tags' in the "
                         "column mapping to use it instead.")
        hint = MappingHint("ner", {"tokens": token_col, "tags": best.column}, confident=not tie,
                           message=("Best guess: " if tie else "Recognised: ") + msg)
    return RawTable(name, parsed.columns, rows, problems, layout="CoNLL-style token columns", notes=notes,
                    origins=origins, hint=hint, json_native=True)


def _read_xlsx(data: bytes, name: str, options: ReadOptions) -> RawTable:
    import zipfile

    from openpyxl import load_workbook

    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputFileError(f"{name} is password-protected or an old-style workbook saved with an .xlsx name. "
                             "Remove the password (or save it again as .xlsx) in Excel and upload that file.")
    if not data.startswith(b"PK\x03\x04"):
        raise InputFileError(f"{name} is not an Excel workbook (an .xlsx file is a ZIP archive and this one is "
                             "not). Save it from Excel as .xlsx or CSV UTF-8 and upload that file.")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputFileError(f"{name} is a damaged or incomplete Excel workbook ({exc}). Save it again from "
                             "Excel (or export it as CSV UTF-8) and upload the new file.") from None
    try:
        sheets = list(book.sheetnames)
        if options.sheet is not None and options.sheet not in sheets:
            raise InputFileError(f"{name} has no sheet called '{options.sheet}'. Its sheets are "
                                 f"{', '.join(repr(x) for x in sheets)}.")
        # By default the first sheet whose first row names seed columns (a 'Notes' or cover sheet often comes
        # first), else the first sheet.
        chosen = options.sheet or next((x for x in sheets if any(
            _known_column(_cell_text(c)) for row in book[x].iter_rows(max_row=1, values_only=True) for c in row)),
            sheets[0])
        records = [(i, [_cell_text(c) for c in row])
                   for i, row in enumerate(book[chosen].iter_rows(values_only=True), start=1)]
    finally:
        book.close()
    # Sheets often carry formatted but empty columns on the right: drop columns empty in every row.
    width = max((max((i + 1 for i, c in enumerate(v) if c.strip()), default=0) for _, v in records), default=0)
    records = [(n, v[:width]) for n, v in records]
    if not any(any(c.strip() for c in v) for _, v in records):
        others = [x for x in sheets if x != chosen]
        hint = f" Pick another sheet ({', '.join(repr(x) for x in others)})." if others else ""
        raise InputFileError(f"{name}: the sheet '{chosen}' is empty.{hint or ' Upload the workbook with your seeds.'}")
    table = _table_from_records(records, name, options, sep="cell", unit="row")
    table.sheets, table.sheet = sheets, chosen
    if len(sheets) > 1:
        table.notes.insert(0, f"Sheet '{chosen}' of {len(sheets)} ({', '.join(sheets)}): pick another sheet "
                              "to read that one instead.")
    return table


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _read_jsonl(text: str, name: str) -> RawTable:
    rows: list[dict[str, Any]] = []
    origins: list[str] = []
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
        origins.append(f"line {i + 1}")
    return RawTable(name, _columns(rows), rows, origins=origins, json_native=True)


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
    if obj and all(_is_spacy_pair(r) for r in obj):
        # spaCy's training data: [["text", {"entities": [[start, end, label], ...]}], ...]
        obj = [{"text": r[0], **r[1]} for r in obj]
    bad = next((i for i, r in enumerate(obj) if not isinstance(r, dict)), None)
    if bad is not None:
        raise InputFileError(f"{name}: item {bad + 1} of the list is a JSON {type(obj[bad]).__name__}, not "
                             'an object. Each item must be an object like {"instruction": "...", ...}.')
    return RawTable(name, _columns(obj), obj, origins=[f"item {i + 1}" for i in range(len(obj))], json_native=True)


def _is_spacy_pair(item: Any) -> bool:
    return (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], dict)
            and "entities" in item[1])


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
    return _from_arrow(table, name)


def _read_arrow(data: bytes, name: str) -> RawTable:
    """Arrow IPC: the stream format `datasets` writes (data-00000-of-00001.arrow), or the file format."""
    import pyarrow as pa

    try:
        try:
            table = pa.ipc.open_stream(pa.BufferReader(data)).read_all()
        except pa.ArrowInvalid:
            table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputFileError(f"{name} is not a readable Arrow file ({exc}). Export the data as Parquet or JSONL "
                             "and upload that file.") from None
    return _from_arrow(table, name)


def _from_arrow(table: Any, name: str) -> RawTable:
    rows = table.to_pylist()
    labels = schema_label_names(table.schema.metadata)
    return RawTable(name, list(table.column_names), rows, label_names=labels,
                    origins=[f"row {i + 1}" for i in range(len(rows))])


def schema_label_names(metadata: dict[bytes, bytes] | None) -> dict[str, list[str]]:
    """Class names that `datasets` stores in a Parquet/Arrow schema's metadata (ClassLabel columns, also as
    the items of a list column such as ner_tags). Best effort: odd metadata only means labels stay ids."""
    try:
        features = json.loads((metadata or {})[b"huggingface"])["info"]["features"]
        items = list(features.items())
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}
    found = {str(col): _class_names(feature) for col, feature in items}
    return {col: names for col, names in found.items() if names}


def _class_names(feature: Any) -> list[str] | None:
    """Names of a ClassLabel feature, also inside a Sequence / List (token tags such as ner_tags)."""
    if isinstance(feature, list) and len(feature) == 1:  # the old spelling of a list feature: [ClassLabel]
        return _class_names(feature[0])
    if not isinstance(feature, dict):
        return None
    if feature.get("_type") == "ClassLabel":
        names = feature.get("names")
        return [str(n) for n in names] if isinstance(names, list) and names else None
    if feature.get("_type") in ("Sequence", "List", "LargeList"):
        return _class_names(feature.get("feature"))
    return None


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
