"""Seed import: read a source, map it onto a format, validate every row, then commit in one transaction.

    preview = preview_file(path, max_bytes=...)      # nothing is written
    preview = preview.remap(fmt, mapping)            # the column-mapping step, when needed
    result  = commit_import(ws, project_id, preview) # all rows land, or none do
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.data.conll import describe_tags
from studio.data.formats import (
    FORMATS,
    LABEL_ID,
    Detection,
    Problem,
    SeedFormat,
    as_list,
    content_key,
    detect,
    normalise_row,
    summary_text,
)
from studio.data.readers import RawTable, ReadOptions, read_table
from studio.data.table import bulk_rows
from studio.errors import MappingError, NoUsableRowsError, SeedError
from studio.workspace.seeds import existing_keys, project_family
from studio.workspace.store import Workspace, utc_now


@dataclass
class PreparedRow:
    row: int
    record: dict[str, Any] | None
    meta: dict[str, Any]
    key: str | None
    problems: list[Problem]
    duplicate_of: str = ""
    """'' or a description: 'row 4' (earlier in this file) or 'seed #12' (already in the project)."""

    @property
    def ok(self) -> bool:
        return self.record is not None and not self.duplicate_of


@dataclass
class ImportPreview:
    table: RawTable
    detection: Detection
    format: SeedFormat | None
    mapping: dict[str, str]
    rows: list[PreparedRow] = field(default_factory=list)
    mapping_problem: str = ""
    """Why the chosen mapping cannot be used ('' when it can)."""
    notes: list[str] = field(default_factory=list)
    """How the file was read and what the rows hold (layout, tag scheme and entity types, labels)."""
    label_names: dict[int, str] | None = None
    """Names for integer label ids, given by the user (the file's own ClassLabel names need none)."""

    @property
    def source(self) -> str:
        return self.table.source

    @property
    def extra_notes(self) -> list[str]:
        """The notes that the detection message does not already say."""
        return [n for n in self.notes if n not in self.detection.message]

    @property
    def usable(self) -> list[PreparedRow]:
        return [r for r in self.rows if r.ok]

    @property
    def problems(self) -> list[Problem]:
        out = [p for r in self.rows for p in r.problems]
        out += [Problem(r.row, "", f"duplicate of {r.duplicate_of}; it will be skipped", "warning")
                for r in self.rows if r.duplicate_of]
        return sorted(out, key=lambda p: (p.row, p.severity != "error"))

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows": len(self.table.rows),
            "usable": len(self.usable),
            "with_errors": sum(1 for r in self.rows if r.record is None),
            "duplicates": sum(1 for r in self.rows if r.duplicate_of),
            "warnings": sum(1 for r in self.rows for p in r.problems if p.severity == "warning"),
        }

    def summary(self) -> str:
        c = self.counts
        if self.mapping_problem:
            return f"{self.source}: {c['rows']} rows read. {self.mapping_problem}"
        title = FORMATS[self.format].title if self.format else "?"
        return (f"{self.source}: {c['rows']} rows read as {title}; {c['usable']} ready to import, "
                f"{c['with_errors']} with problems, {c['duplicates']} duplicates.")

    def remap(self, fmt: SeedFormat | str | None, mapping: dict[str, str] | None,
              known_keys: dict[str, int] | None = None, label_names: dict[int, str] | None = None
              ) -> ImportPreview:
        return build_preview(self.table, fmt=fmt, mapping=mapping, known_keys=known_keys,
                             label_names=label_names if label_names is not None else self.label_names)


def build_preview(table: RawTable, *, fmt: SeedFormat | str | None = None, mapping: dict[str, str] | None = None,
                  known_keys: dict[str, int] | None = None, label_names: dict[int, str] | None = None
                  ) -> ImportPreview:
    """Apply a format + mapping (detected unless given) to every row; flag problems and duplicates.
    `label_names` names integer label ids (ids 0.. in order, or any ids), over the file's own names."""
    with bulk_rows():
        return _build_preview(table, fmt, mapping, known_keys, label_names)


def _build_preview(table: RawTable, fmt: SeedFormat | str | None, mapping: dict[str, str] | None,
                   known_keys: dict[str, int] | None, label_names: dict[int, str] | None) -> ImportPreview:
    detection = detect(table.columns, table.rows, table.hint)
    chosen_fmt = SeedFormat(fmt) if fmt else (detection.best.format if detection.best else None)
    if mapping is None:
        if detection.best and detection.best.format == chosen_fmt:
            mapping = dict(detection.best.mapping)
        else:
            same = next((s for s in detection.suggestions if s.format == chosen_fmt), None)
            mapping = dict(same.mapping) if same else {}
    mapping = {k: v for k, v in mapping.items() if v}
    preview = ImportPreview(table, detection, chosen_fmt, mapping, notes=list(table.notes),
                            label_names=label_names or None)
    preview.mapping_problem = _mapping_problem(table, chosen_fmt, mapping, detection) or _wrong_column(
        table, chosen_fmt, mapping)
    if preview.mapping_problem:
        return preview

    assert chosen_fmt is not None
    mapped_cols = set(mapping.values())
    seen: dict[str, int] = {}
    names: dict[str, list[str] | dict[int, str]] = {
        fld: table.label_names[col] for fld, col in mapping.items() if col in table.label_names}
    if label_names and chosen_fmt == SeedFormat.CLASSIFICATION:
        names["label"] = label_names
    for i, raw in enumerate(table.rows, start=1):
        record, problems = normalise_row(chosen_fmt, mapping, raw, i, names)
        if i in table.row_problems:  # what the reader found says it all: no follow-on complaints
            problems = [Problem(i, "", table.row_problems[i])]
            record = None
        if problems and (origin := table.origin(i)):
            problems = [dataclasses.replace(p, origin=origin) for p in problems]
        meta = {k: v if table.json_native else _jsonable(v) for k, v in raw.items()
                if k not in mapped_cols and v not in (None, "")}
        key = content_key(chosen_fmt, record) if record is not None else None
        dup = ""
        if key is not None:
            if known_keys and key in known_keys:
                dup = f"seed #{known_keys[key]} already in this project"
            elif key in seen:
                dup = f"row {seen[key]}"
            else:
                seen[key] = i
        preview.rows.append(PreparedRow(i, record, meta, key, problems, dup))
    preview.notes += _content_notes(preview, names)
    return preview


def _content_notes(preview: ImportPreview, names: dict[str, Any]) -> list[str]:
    """What the rows hold, for the preview: tag scheme and entity types; labels, or ids still unnamed."""
    records = [r.record for r in preview.rows if r.record is not None]
    if not records:
        return []
    if preview.format == SeedFormat.NER:
        if preview.table.hint is not None and preview.mapping == preview.table.hint.mapping:
            return []  # the reader has said which column holds the tags, with their scheme and types
        tags = describe_tags("tags", [r["tags"] for r in records])
        return [f"Tags: {tags.describe()}."] if tags else []
    if preview.format == SeedFormat.CLASSIFICATION:
        labels = sorted({r["label"] for r in records})
        shown = ", ".join(labels[:15]) + (", ..." if len(labels) > 15 else "")
        if "label" not in names and all(LABEL_ID.match(x.strip()) for x in labels):
            return [f"⚠️ The labels are numbers ({shown}), and the file does not name them. Type their names "
                    "under Label names (in id order: negative, positive; or 0=negative, 1=positive) so the model "
                    "learns words, not ids."]
        return [f"{len(labels)} labels: {shown}."]
    return []


def _wrong_column(table: RawTable, fmt: SeedFormat | None, mapping: dict[str, str]) -> str:
    """A mapping that names real columns but the wrong ones: tags that are not tags, labels that are texts."""
    if fmt == SeedFormat.NER and "tags" in mapping:
        col = mapping["tags"]
        values = [str(v) for r in table.rows[:200] for v in (as_list(r.get(col)) or [])]
        if values and describe_tags(col, [values]) is None:
            sample = ", ".join(f"'{v}'" for v in list(dict.fromkeys(values))[:4])
            better = [c for c in table.columns if c != col and c != mapping.get("tokens")
                      and describe_tags(c, [[str(v) for r in table.rows[:200] for v in (as_list(r.get(c)) or [])]])]
            hint = f" ({better[0]} does)" if better else ""
            return (f"The column '{col}' does not hold entity tags (it has {sample}). Pick for 'tags' the "
                    f"column with O, B-PER, I-PER, ...{hint}.")
    if fmt == SeedFormat.CLASSIFICATION and "label" in mapping:
        col = mapping["label"]
        values = [str(r.get(col) or "") for r in table.rows[:500]]
        if len(values) >= 4 and len(set(values)) == len(values) and sum(map(len, values)) / len(values) > 60:
            return (f"The column '{col}' holds a different long text in every row, not labels. Pick for 'label' "
                    "the column with the few category names (positive, negative, ...).")
    return ""


def _mapping_problem(table: RawTable, fmt: SeedFormat | None, mapping: dict[str, str],
                     detection: Detection) -> str:
    cols = ", ".join(f"'{c}'" for c in table.columns) or "none"
    if fmt is None:
        return (f"{table.source} has the columns {cols}, which do not match a seed format. Pick a format "
                "and the column for each field (for example instruction ← 'question', output ← 'answer').")
    spec = FORMATS[fmt]
    unknown = [c for c in mapping.values() if c not in table.columns]
    if unknown:
        return f"{table.source} has no column '{unknown[0]}'. Its columns are {cols}."
    missing = [f.name for f in spec.fields if f.required and f.name not in mapping]
    if missing:
        need = " and ".join(f"'{m}'" for m in missing)
        return (f"{table.source}: no column is mapped to {need}, which {spec.title} needs. Its columns are "
                f"{cols}; pick the column that holds {need}, or choose another format.")
    cols_used = list(mapping.values())
    twice = next((c for c in cols_used if cols_used.count(c) > 1), None)
    if twice:
        return f"The column '{twice}' is mapped to two fields. Map each field to its own column."
    return ""


def _jsonable(v: Any) -> Any:
    if v is None or type(v) in (str, int, float, bool):
        return v
    if hasattr(v, "tolist"):
        v = v.tolist()
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return str(v)
    return v


def preview_file(ws: Workspace, path: str | Path, *, project_id: int | None = None,
                 display_name: str | None = None, fmt: SeedFormat | str | None = None,
                 mapping: dict[str, str] | None = None, options: ReadOptions | None = None,
                 label_names: dict[int, str] | None = None) -> ImportPreview:
    """Read and validate a file for import into `project_id` (duplicates checked against it)."""
    table = read_table(path, display_name=display_name, max_bytes=ws.settings.max_upload_bytes, options=options)
    return build_preview(table, fmt=fmt, mapping=mapping, known_keys=_known_keys(ws, project_id),
                         label_names=label_names)


def _known_keys(ws: Workspace, project_id: int | None) -> dict[str, int]:
    if project_id is None:
        return {}
    with ws.read() as conn:
        return existing_keys(conn, project_id)


@dataclass(frozen=True)
class ImportResult:
    import_id: int
    imported: int
    skipped: int
    seed_ids: list[int]

    def message(self, source: str) -> str:
        skipped = f"; {self.skipped} rows skipped (problems or duplicates)" if self.skipped else ""
        return f"Imported {self.imported} seeds from {source}{skipped}."


def commit_import(ws: Workspace, project_id: int, preview: ImportPreview) -> ImportResult:
    """Write every usable row as a seed, in one transaction. Raises before writing anything if the
    preview cannot be imported."""
    if preview.mapping_problem:
        raise MappingError(preview.mapping_problem)
    assert preview.format is not None
    if not preview.usable:
        raise NoUsableRowsError(_no_usable_message(preview))
    now = utc_now()
    family = FORMATS[preview.format].family
    with ws.write() as conn:
        if conn.execute("SELECT 1 FROM project WHERE id = ?", (project_id,)).fetchone() is None:
            raise SeedError(f"Project #{project_id} no longer exists; nothing was imported. Pick a project.")
        current = project_family(conn, project_id)
        if current and current != family:
            raise MappingError(
                f"This project holds {current} seeds; {preview.source} holds {family} seeds "
                f"({FORMATS[preview.format].title}). One project trains one kind of task: create a new "
                "project for these seeds.")
        known = existing_keys(conn, project_id)  # re-read under the write lock: another tab may have imported
        rows = [r for r in preview.usable if r.key not in known]
        if not rows:
            raise NoUsableRowsError(f"Every usable row of {preview.source} is already in this project; "
                                    "nothing was imported.")
        cur = conn.execute(
            "INSERT INTO seed_import(project_id, source, format, mapping, rows_read, rows_imported, "
            "rows_skipped, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, preview.source, preview.format.value, json.dumps(preview.mapping),
             len(preview.rows), len(rows), len(preview.rows) - len(rows), now))
        import_id = cur.lastrowid
        ids = []
        for r in rows:
            c = conn.execute(
                "INSERT INTO seed(project_id, format, data, meta, content_key, source, source_row, "
                "import_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, preview.format.value, json.dumps(r.record, ensure_ascii=False),
                 json.dumps(r.meta, ensure_ascii=False, default=str), r.key, preview.source, r.row,
                 import_id, now, now))
            ids.append(int(c.lastrowid or 0))
        conn.execute("UPDATE project SET updated_at = ? WHERE id = ?", (now, project_id))
    assert import_id is not None
    return ImportResult(import_id, len(rows), len(preview.rows) - len(rows), ids)


def _no_usable_message(preview: ImportPreview) -> str:
    n = len(preview.rows)
    if n == 0:
        return (f"{preview.source} has a header but no data rows. Add your seed examples below the header "
                "and upload it again.")
    errors = [p for p in preview.problems if p.severity == "error"][:3]
    if not errors and preview.counts["duplicates"]:
        return f"All {n} rows of {preview.source} are duplicates of seeds already here; nothing to import."
    listed = "; ".join(str(p) for p in errors)
    return (f"None of the {n} rows of {preview.source} can be used ({listed}"
            f"{'; ...' if len(preview.problems) > 3 else ''}). Fix the listed problems, or map the columns "
            "differently, and upload again.")


def preview_rows(preview: ImportPreview, limit: int = 200) -> list[dict[str, Any]]:
    """Table rows for the preview: row number, status, what goes in, what comes out, problems."""
    out = []
    for r in preview.rows[:limit]:
        if r.record is not None and preview.format is not None:
            prompt, answer = summary_text(preview.format, r.record)
        else:  # what the row holds, so the person can see which one it is
            raw = preview.table.rows[r.row - 1] if r.row <= len(preview.table.rows) else {}
            held = [str(v)[:300] for col in preview.mapping.values() if (v := raw.get(col)) not in (None, "")]
            prompt, answer = " · ".join(held), ""
        status = "error" if r.record is None else ("duplicate" if r.duplicate_of else (
            "warning" if r.problems else "ok"))
        notes = "; ".join(p.message for p in r.problems)
        if r.duplicate_of:
            notes = "; ".join(x for x in (notes, f"duplicate of {r.duplicate_of}") if x)
        out.append({"row": r.row, "status": status, "prompt": prompt, "response": answer, "problems": notes})
    return out


def preview_hub(ws: Workspace, repo_id: str, *, split: str = "train", project_id: int | None = None,
                fmt: SeedFormat | str | None = None, mapping: dict[str, str] | None = None,
                endpoint: str | None = None) -> ImportPreview:
    """Like `preview_file`, for a Hugging Face Hub dataset id (needs the Hub to be reachable)."""
    from studio.data.hub_source import read_hub_dataset

    table = read_hub_dataset(repo_id, split=split, max_bytes=ws.settings.max_upload_bytes, endpoint=endpoint)
    return build_preview(table, fmt=fmt, mapping=mapping, known_keys=_known_keys(ws, project_id))
