"""A frozen version as files (Parquet, JSON Lines or CSV, one per split, plus README.md) or as a DatasetDict.

Styles: "messages" (a `messages` column of {role, content}) or "prompt_completion" (`prompt`, `completion`),
made by studio.data.chat; every row also carries `origin`, `source_id` and `format` for provenance.
Empty splits get no file and no entry in the DatasetDict (an empty table has no schema to save).

CSV is for people who open the data in a spreadsheet, so it is neutralised against formula injection: a seed
or generated cell such as `=cmd|' /C calc'!A0` would run when Excel or LibreOffice opens the file. Every text
cell starting with = + - @ tab or carriage return gets a leading apostrophe (OWASP's advice); the workspace,
Parquet and JSONL keep the text exactly as written. List cells (`messages`) are written as JSON text.

The default folder is <workspace>/exports/<project-slug>/<version-slug>-<style>-<format>; `out_dir` replaces
<workspace>/exports/<project-slug>, so a chosen folder is never emptied, only given a new subfolder. Files are
written into a hidden temporary folder beside it, which is renamed into place only when everything is there:
a failure leaves no half-written export, and an earlier export of the same version stays until replaced.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.data.card import FILE_EXTENSIONS, data_file_name, dataset_card
from studio.data.chat import to_messages, to_prompt_completion
from studio.data.versions import SPLITS, DatasetVersion, get_version_by_id, version_rows
from studio.errors import DatasetVersionError
from studio.workspace.store import Workspace

if TYPE_CHECKING:
    from datasets import DatasetDict

FILE_FORMATS = tuple(FILE_EXTENSIONS)
STYLES = ("messages", "prompt_completion")


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    files: dict[str, Path]
    """split -> data file (empty splits have none)."""
    card_path: Path
    rows: dict[str, int]
    """split -> rows written."""


def slug(text: str, fallback: str = "dataset") -> str:
    """A folder-safe name: lower case letters, digits, dots and dashes."""
    s = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")
    return s[:80] or fallback


def _check(file_format: str | None = None, style: str | None = None) -> None:
    if file_format is not None and file_format not in FILE_FORMATS:
        raise DatasetVersionError(f"'{file_format}' is not an export format; use "
                                  f"{', '.join(FILE_FORMATS[:-1])} or {FILE_FORMATS[-1]}.")
    if style is not None and style not in STYLES:
        raise DatasetVersionError(f"'{style}' is not an export style; use {' or '.join(STYLES)}.")


def version_records(ws: Workspace, version_id: int, style: str = "messages") -> dict[str, list[dict[str, Any]]]:
    """split -> rows as exported (chat columns + origin, source_id, format); every split, even empty ones."""
    _check(style=style)
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    for row in version_rows(ws, version_id):
        if style == "messages":
            record: dict[str, Any] = {"messages": to_messages(row.format, row.data)}
        else:
            record = dict(to_prompt_completion(row.format, row.data))
        record.update(origin=row.origin, source_id=row.source_id, format=str(row.format))
        out[row.split].append(record)
    return out


def preference_records(ws: Workspace, version_id: int) -> dict[str, list[dict[str, Any]]]:
    """split -> the version's preference pairs as TRL reads them (prompt / chosen / rejected as chat messages),
    with source and provenance (a JSON string: its keys differ by source, a column must keep one type)."""
    from studio.data.preferences import PAIR_SPLITS, preference_pairs

    out: dict[str, list[dict[str, Any]]] = {s: [] for s in PAIR_SPLITS}
    for pair in preference_pairs(ws, version_id):
        out[pair["split"]].append({"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"],
                                   "source": pair["source"],
                                   "provenance": json.dumps(pair["provenance"], ensure_ascii=False)})
    return out


def preferences_dataset_dict(ws: Workspace, version_id: int) -> DatasetDict | None:
    """The version's preference pairs as a DatasetDict (the Hub's "preferences" config); None without pairs."""
    from datasets import Dataset, DatasetDict

    records = preference_records(ws, version_id)
    if not any(records.values()):
        return None
    return DatasetDict({s: Dataset.from_list(rows) for s, rows in records.items() if rows})


def to_dataset_dict(ws: Workspace, version_id: int, style: str = "messages") -> DatasetDict:
    """The version as a datasets.DatasetDict (splits with rows only), ready for push_to_hub."""
    from datasets import Dataset, DatasetDict

    records = version_records(ws, version_id, style)
    return DatasetDict({s: Dataset.from_list(rows) for s, rows in records.items() if rows})


def export_folder(ws: Workspace, version: DatasetVersion, style: str, file_format: str,
                  out_dir: str | Path | None = None) -> Path:
    with ws.read() as conn:
        row = conn.execute("SELECT name FROM project WHERE id = ?", (version.project_id,)).fetchone()
    project = slug(row["name"] if row else "", f"project-{version.project_id}")
    parent = Path(out_dir).expanduser() if out_dir is not None else ws.exports_dir / project
    return parent / f"{slug(version.name, f'version-{version.id}')}-{style}-{file_format}"


def export_version(ws: Workspace, version_id: int, *, file_format: str = "parquet", style: str = "messages",
                   out_dir: str | Path | None = None) -> ExportResult:
    """Write one data file per non-empty split and README.md (the dataset card), all or nothing."""
    _check(file_format, style)
    version = get_version_by_id(ws, version_id)
    folder = export_folder(ws, version, style, file_format, out_dir)
    records = version_records(ws, version_id, style)
    pairs = preference_records(ws, version_id)
    card = dataset_card(ws, version_id, file_format=file_format, style=style)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetVersionError(f"The export folder {folder.parent} cannot be created ({exc.strerror}). Pick "
                                  "another folder.") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        _write(tmp, records, card, file_format)
        _write_pairs(tmp, pairs, file_format)
        _move_into_place(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = {s: folder / data_file_name(s, file_format) for s in SPLITS if records[s]}
    files.update({f"preferences-{s}": folder / data_file_name(f"preferences-{s}", file_format)
                  for s, rows in pairs.items() if rows})
    return ExportResult(folder, files, folder / "README.md", {s: len(records[s]) for s in SPLITS})


def _write(tmp: Path, records: dict[str, list[dict[str, Any]]], card: str, file_format: str) -> None:
    from datasets import Dataset

    for split, rows in records.items():
        if not rows:
            continue
        path = str(tmp / data_file_name(split, file_format))
        if file_format == "parquet":
            Dataset.from_list(rows).to_parquet(path)
        elif file_format == "csv":
            _write_csv(path, rows)
        else:
            Dataset.from_list(rows).to_json(path, lines=True, force_ascii=False)
    (tmp / "README.md").write_text(card, encoding="utf-8")


def _write_pairs(tmp: Path, pairs: dict[str, list[dict[str, Any]]], file_format: str) -> None:
    from datasets import Dataset

    for split, rows in pairs.items():
        if not rows:
            continue
        path = str(tmp / data_file_name(f"preferences-{split}", file_format))
        if file_format == "parquet":
            Dataset.from_list(rows).to_parquet(path)
        elif file_format == "csv":  # a spreadsheet cell holds text: the message lists go in as JSON
            _write_csv(path, [{k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                               for k, v in row.items()} for row in rows])
        else:
            Dataset.from_list(rows).to_json(path, lines=True, force_ascii=False)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (or hide one behind a control character)."""


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet shows as text: `'` before a text starting with a formula character; lists and
    dicts as JSON text. Why: CSV exports are opened in Excel, where `=HYPERLINK(...)` or `=cmd|...` in a
    generated row would run; the apostrophe is the spreadsheet's own "this is text" mark."""
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([csv_safe(r.get(c, "")) for c in columns])


def _move_into_place(tmp: Path, folder: Path) -> None:
    """Rename the finished folder into place; an earlier export there is replaced only after that worked."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.old")
        folder.rename(old)
    try:
        tmp.rename(folder)
    except BaseException:
        if old is not None:
            old.rename(folder)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
