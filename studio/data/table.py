"""RawTable: the rows of a source as read, before a seed format is applied; ReadOptions: the reader's choices."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal


@contextmanager
def bulk_rows() -> Iterator[None]:
    """Pause the cyclic garbage collector while rows are built in bulk.

    Why: reading a 50 MB CoNLL file makes millions of small lists; each batch of new containers triggers a
    collection that walks all the older ones, about 5 s of a 17 s preview measured here. The rows hold no
    reference cycles, so nothing waits for the collector; reference counting still frees everything. The
    pause is process-wide (other sessions' threads too) and lasts the seconds a read takes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class ReadOptions:
    """What a person may change about how a file is read (the preview offers each where it applies)."""

    sheet: str | None = None
    """Spreadsheet sheet to read; None: the first one."""
    header: bool | None = None
    """Whether the first row of a CSV/TSV/sheet names the columns; None: decided from the row itself."""
    chat_paths: Literal["best", "all"] = "best"
    """Chat trees (OpenAssistant): the best-ranked path of each tree, or every path."""


@dataclass(frozen=True)
class MappingHint:
    """A format and mapping the reader knows better than column names can say (a CoNLL file's tag column
    chosen by its values). `confident` False opens the mapping step with it filled in."""

    format: str
    mapping: dict[str, str]
    confident: bool
    message: str


@dataclass
class RawTable:
    """Rows as read, before any format is applied. `rows` keep every column of the source."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    row_problems: dict[int, str] = field(default_factory=dict)
    """1-based row -> structural problem found while reading (CSV rows with too many values)."""
    label_names: dict[str, list[str]] = field(default_factory=dict)
    """column -> class names, when the source declares them (ClassLabel metadata of Parquet/Arrow/Hub)."""
    layout: str = ""
    """The published layout the rows were recognised as ('' for a plain table)."""
    notes: list[str] = field(default_factory=list)
    """What the preview should say about how the file was read (tag scheme, sheet, header, paths)."""
    origins: list[str] | None = None
    """Where each row starts in the file ('line 17', 'item 3, instance 2'), for problem lists."""
    hint: MappingHint | None = None
    sheets: list[str] = field(default_factory=list)
    """Every sheet of a spreadsheet (the picker shows when there are several)."""
    sheet: str = ""
    has_header: bool | None = None
    """For CSV/TSV/sheets: whether the first row was read as column names; None where that means nothing."""
    chat_tree: bool = False
    """True when rows are paths through chat trees (the preview offers best path / all paths)."""
    json_native: bool = False
    """True when every value is already a JSON type (text readers): no value needs converting for `meta`."""
    options: ReadOptions = field(default_factory=ReadOptions)

    def origin(self, row: int) -> str:
        """Where 1-based `row` came from in the file ('' when unknown)."""
        if self.origins and 0 < row <= len(self.origins):
            return self.origins[row - 1]
        return ""

    def derived(self, rows: list[dict[str, Any]], *, layout: str, notes: list[str], origins: list[str],
                row_problems: dict[int, str], chat_tree: bool = False) -> RawTable:
        """A reshaped copy of this table (same source, sheet and options): rows of a recognised layout."""
        columns: dict[str, None] = {}
        for r in rows:
            columns.update(dict.fromkeys(r))
        return replace(self, columns=list(columns), rows=rows, row_problems=row_problems, layout=layout,
                       notes=[*self.notes, *notes], origins=origins, chat_tree=chat_tree)
