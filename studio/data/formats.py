"""Seed formats: their canonical fields, how file columns map onto them, and per-row validation.

Five formats are recognised. Each row of an upload becomes one canonical record of one format:

- alpaca:            {"instruction", "input", "output"}
- prompt_completion: {"prompt", "completion"}
- messages:          {"messages": [{"role", "content"}, ...]}
- classification:    {"text", "label"}
- ner:               {"tokens": [...], "tags": [...]}
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class SeedFormat(StrEnum):
    ALPACA = "alpaca"
    PROMPT_COMPLETION = "prompt_completion"
    MESSAGES = "messages"
    CLASSIFICATION = "classification"
    NER = "ner"


FieldKind = Literal["text", "optional_text", "messages", "tokens", "tags", "label"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: FieldKind
    aliases: tuple[str, ...]
    help: str
    conventional: tuple[str, ...] = ()
    """Other names that are a standard for this field (ner_tags, conversations): no need to confirm."""

    @property
    def exact_names(self) -> tuple[str, ...]:
        return (self.name, *self.conventional)

    @property
    def required(self) -> bool:
        return self.kind != "optional_text"


@dataclass(frozen=True)
class FormatSpec:
    format: SeedFormat
    title: str
    description: str
    fields: tuple[FieldSpec, ...]
    family: str
    """Formats of one family can live in one project: they all become chat examples for training."""

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)


FORMATS: dict[SeedFormat, FormatSpec] = {
    spec.format: spec
    for spec in (
        FormatSpec(
            SeedFormat.ALPACA,
            "Instruction / input / output (Alpaca)",
            "A task instruction, optional input the task works on, and the ideal output.",
            (
                # Dolly's instruction / context / response, and question / context / answer (SQuAD-style
                # reading comprehension, text-to-SQL with its CREATE TABLE context), are this format.
                FieldSpec("instruction", "text", ("instruction", "instructions", "question", "task", "prompt"),
                          "What the user asks for.", ("question",)),
                FieldSpec("input", "optional_text", ("input", "context", "inputs"),
                          "Optional material the instruction works on.", ("context",)),
                FieldSpec("output", "text", ("output", "response", "answer", "outputs", "target"),
                          "The ideal answer.", ("response", "answer")),
            ),
            family="chat",
        ),
        FormatSpec(
            SeedFormat.PROMPT_COMPLETION,
            "Prompt / completion",
            "A prompt and the completion the model should write.",
            (
                # question/answer (QA sets) and question/query (text-to-SQL) are prompts and completions.
                FieldSpec("prompt", "text", ("prompt", "question", "query", "source"), "What the model is given.",
                          ("question",)),
                FieldSpec("completion", "text", ("completion", "response", "answer", "query", "generation"),
                          "What the model should write.", ("response", "answer", "query")),
            ),
            family="chat",
        ),
        FormatSpec(
            SeedFormat.MESSAGES,
            "Chat messages",
            "A conversation: a list of {role, content} messages ending with the assistant's reply.",
            (
                FieldSpec("messages", "messages", ("messages", "conversations", "conversation", "chat",
                                                   "dialog", "dialogue"),
                          "List of {role: system|user|assistant, content: text}.", ("conversations",)),
            ),
            family="chat",
        ),
        FormatSpec(
            SeedFormat.CLASSIFICATION,
            "Text + label (classification)",
            "A text and the label it should get.",
            (
                FieldSpec("text", "text", ("text", "sentence", "document", "content", "review", "utterance",
                                           "tweet"),
                          "The text to classify.", ("sentence", "review", "content", "tweet")),
                FieldSpec("label", "label", ("label", "labels", "category", "class", "intent", "sentiment",
                                             "coarse_label", "fine_label"),
                          "The correct label.", ("sentiment", "class", "intent")),
            ),
            family="classification",
        ),
        FormatSpec(
            SeedFormat.NER,
            "Tokens + tags (NER)",
            "A tokenised sentence and one BIO tag per token (B-PER, I-PER, O, ...).",
            (
                FieldSpec("tokens", "tokens", ("tokens", "words"), "List of tokens."),
                FieldSpec("tags", "tags", ("tags", "ner_tags", "ner_labels", "labels", "bio_tags"),
                          "One tag per token.", ("ner_tags",)),
            ),
            family="ner",
        ),
    )
}


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row. `row` is 1-based, counting data rows (not the header)."""

    row: int
    column: str
    message: str
    severity: Severity = "error"
    origin: str = ""
    """Where the row starts in the file ('line 17', 'item 3'), when the reader knows."""

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" ({self.origin})" if self.origin else "") + (
            f", column '{self.column}'" if self.column else "")
        return f"{where}: {self.message}"


# ----------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class Suggestion:
    format: SeedFormat
    mapping: dict[str, str]
    """canonical field -> source column"""
    exact: int
    """how many fields matched a column named exactly like the field (or its conventional name)"""

    @property
    def complete(self) -> bool:
        spec = FORMATS[self.format]
        return all(f.name in self.mapping for f in spec.fields if f.required)


@dataclass(frozen=True)
class Detection:
    suggestions: list[Suggestion]
    """Complete mappings, best first."""
    needs_mapping: bool
    """True when a person should confirm or choose the mapping before import."""
    message: str

    @property
    def best(self) -> Suggestion | None:
        return self.suggestions[0] if self.suggestions else None


def _norm_column(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


@functools.cache
def _known_column_names() -> frozenset[str]:
    return frozenset(a for spec in FORMATS.values() for f in spec.fields for a in (*f.aliases, *f.exact_names))


def is_known_column(name: str) -> bool:
    """Whether some format recognises this column name: a first row holding one is a header."""
    return _norm_column(name) in _known_column_names()


_NUMPY_GAP = re.compile(r"}\s+{")


def parse_list_cell(text: str) -> list[Any] | None:
    """A list held in a text cell: JSON, or the Python literal pandas writes (`[{'role': 'user', ...}]`, and
    `[{...}\n {...}]` without commas for a numpy array of dicts). None when it is not one. literal_eval
    evaluates literals only, never code."""
    stripped = text.strip()
    if not stripped.startswith("["):
        return None
    try:
        parsed = json.loads(stripped)
    except (ValueError, RecursionError):
        parsed = None
        for candidate in (stripped, _NUMPY_GAP.sub("}, {", stripped)):
            try:
                parsed = ast.literal_eval(candidate)
                break
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
    if isinstance(parsed, tuple):
        parsed = list(parsed)
    return parsed if isinstance(parsed, list) else None


def _value_shape(values: list[Any]) -> str:
    """'list_of_dicts', 'list', 'json_list_of_dicts', 'json_list', 'scalar' or 'empty'."""
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, str) and v.strip().startswith("["):
            v = parse_list_cell(v)  # a cell of 5,000 '[' must read as text, not crash
            if v is None:
                return "scalar"
            prefix = "json_"
        else:
            prefix = ""
        if isinstance(v, list | tuple):
            return prefix + ("list_of_dicts" if v and all(isinstance(x, dict) for x in v) else "list")
        return "scalar"
    return "empty"


def _kind_fits(kind: FieldKind, shape: str) -> bool:
    if kind == "messages":
        return shape.endswith("list_of_dicts") or shape == "empty"
    if kind in ("tokens", "tags"):
        return shape in ("list", "json_list", "empty")
    return shape in ("scalar", "empty")


def detect(columns: list[str], sample_rows: list[dict[str, Any]], hint: Any = None) -> Detection:
    """Suggest format + column mapping from column names and the shape of their values. `hint` (a reader's
    MappingHint: format, mapping, confident, message) comes first when the reader knows better, as for a
    CoNLL file's tag column chosen by its values. Columns whose names say nothing get a guess from their
    values (a column of few short values is a label, the longest text is the text)."""
    if hint is not None:
        first = Suggestion(SeedFormat(hint.format), dict(hint.mapping), len(hint.mapping) if hint.confident else 0)
        return Detection([first], not hint.confident, hint.message)
    shapes = {c: _value_shape([r.get(c) for r in sample_rows[:50]]) for c in columns}
    by_norm: dict[str, str] = {}
    for c in columns:
        by_norm.setdefault(_norm_column(c), c)

    suggestions: list[Suggestion] = []
    for spec in FORMATS.values():
        mapping: dict[str, str] = {}
        exact = 0
        used: set[str] = set()
        for f in spec.fields:
            for alias in f.aliases:
                col = by_norm.get(alias)
                if col is None or col in used or not _kind_fits(f.kind, shapes[col]):
                    continue
                mapping[f.name] = col
                used.add(col)
                exact += int(alias in f.exact_names)
                break
        s = Suggestion(spec.format, mapping, exact)
        if s.complete:
            suggestions.append(s)

    def rank(s: Suggestion) -> tuple[int, int, int, int]:
        # Names that all fit first; then the format that uses more of the file's columns (question + context
        # + answer is Alpaca, question + answer alone is prompt/completion); then the format that has no
        # field left empty.
        spec = FORMATS[s.format]
        all_exact = int(s.exact == len(s.mapping))
        return (all_exact, len(s.mapping), s.exact, len(s.mapping) - len(spec.fields))

    suggestions.sort(key=rank, reverse=True)
    cols = ", ".join(columns) or "(none)"
    if not suggestions:
        guess = _guess_from_values(columns, sample_rows, shapes)
        if guess is not None:
            described = ", ".join(f"'{col}' → {fld}" for fld, col in guess.mapping.items())
            return Detection([guess], True, f"Best guess from the values: {FORMATS[guess.format].title} "
                                            f"({described}). Check the column mapping, then import.")
        return Detection([], True, f"The columns ({cols}) do not match a known seed format. Pick the format "
                                   "and say which column holds each field.")
    best = suggestions[0]
    best_all_exact = rank(best)[0] == 1
    rivals = [s for s in suggestions[1:] if rank(s) == rank(best)]
    title = FORMATS[best.format].title
    described = ", ".join(f"'{col}' → {fld}" for fld, col in best.mapping.items())
    if best_all_exact and not rivals:
        return Detection(suggestions, False, f"Recognised as {title}: {described}.")
    if rivals:
        others = ", ".join(FORMATS[s.format].title for s in rivals)
        msg = (f"These columns fit more than one format ({title}; {others}). Check the format and "
               "the column mapping, then import.")
    else:
        msg = f"Best guess: {title} ({described}). Check the column mapping, then import."
    return Detection(suggestions, True, msg)


def _scalars(rows: list[dict[str, Any]], column: str) -> list[str]:
    out = []
    for r in rows[:500]:
        v = r.get(column)
        if not _is_missing(v) and not isinstance(v, list | tuple | dict):
            out.append(str(v).strip())
    return out


def _guess_from_values(columns: list[str], rows: list[dict[str, Any]], shapes: dict[str, str]
                       ) -> Suggestion | None:
    """A mapping from what the columns hold, for names that say nothing (column 1, column 2, ... of a file
    without a header; 'col_a'). Conversations, then tokens + tags, then text + label, then two texts."""
    from studio.data import conll

    chat = [c for c in columns if shapes[c].endswith("list_of_dicts")]
    if chat:
        return Suggestion(SeedFormat.MESSAGES, {"messages": chat[0]}, 0)
    lists = [c for c in columns if shapes[c] in ("list", "json_list")]
    if len(lists) >= 2:
        seqs = {c: [[str(x) for x in (as_list(r.get(c)) or [])] for r in rows[:200]] for c in lists}
        tags = conll.rank_tag_columns([t for c in lists if (t := conll.describe_tags(c, seqs[c]))])
        tokens = [c for c in lists if c not in {t.column for t in tags}
                  and not conll.is_index_column([v for seq in seqs[c] for v in seq])]
        if tags and tokens:
            return Suggestion(SeedFormat.NER, {"tokens": tokens[0], "tags": tags[0].column}, 0)
    texts = [c for c in columns if shapes[c] == "scalar"]
    values = {c: _scalars(rows, c) for c in texts}
    n = max((len(v) for v in values.values()), default=0)

    def avg_len(c: str) -> float:
        return sum(len(v) for v in values[c]) / max(1, len(values[c]))

    def small_ids(c: str) -> bool:
        return all(len(v) <= 3 and LABEL_ID.match(v) for v in values[c])

    labels = [c for c in texts if values[c] and (small_ids(c) or (
        avg_len(c) <= 30 and len(set(values[c])) <= max(2, min(50, n // 2))))]
    long_texts = sorted((c for c in texts if c not in labels and values[c]), key=avg_len, reverse=True)
    if labels and long_texts:
        label = min(labels, key=lambda c: len(set(values[c])))
        return Suggestion(SeedFormat.CLASSIFICATION, {"text": long_texts[0], "label": label}, 0)
    ordered = [c for c in texts if c in long_texts]
    if len(ordered) >= 2:
        return Suggestion(SeedFormat.PROMPT_COMPLETION, {"prompt": ordered[0], "completion": ordered[1]}, 0)
    return None


def parse_label_names(text: str) -> dict[int, str]:
    """'neg, pos' (ids 0, 1, ... in order) or '1=World, 2=Sports' -> {id: name}. Raises MappingError."""
    from studio.errors import MappingError

    items = [x.strip() for x in re.split(r"[,\n]", text or "") if x.strip()]
    if not items:
        return {}
    if all("=" in x for x in items):
        out: dict[int, str] = {}
        for x in items:
            key, _, name = x.partition("=")
            if not key.strip().lstrip("-").isdigit() or not name.strip():
                raise MappingError(f"Label names: '{x}' is not id=name (for example 0=negative, 1=positive).")
            out[int(key)] = name.strip()
        return out
    if any("=" in x for x in items):
        raise MappingError("Label names: write either names in id order (negative, positive) or id=name pairs "
                           "(0=negative, 1=positive), not both.")
    return dict(enumerate(items))


def parse_mapping_args(items: list[str]) -> dict[str, str]:
    """CLI `--map col=field` items -> {field: col}."""
    mapping: dict[str, str] = {}
    for item in items:
        col, sep, fld = item.partition("=")
        if not sep or not col.strip() or not fld.strip():
            from studio.errors import MappingError

            raise MappingError(f"--map '{item}' is not of the form column=field (for example "
                               "--map question=instruction).")
        mapping[fld.strip()] = col.strip()
    return mapping


# ----------------------------------------------------------------------------------------------
# Normalisation and validation of one row


_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant",
                 "user": "user", "assistant": "assistant", "system": "system"}
_TAG_RE = re.compile(r"^(O|[BIESLU]-\S+)$")
LABEL_ID = re.compile(r"^-?\d+$")
"""A label written as an integer id (names come from the file or the person)."""


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _as_text(v: Any) -> str | None:
    if _is_missing(v):
        return ""
    if isinstance(v, str):
        return v.replace("\r\n", "\n")
    if isinstance(v, bool | int | float):
        return str(v)
    return None


def as_list(v: Any) -> list[Any] | None:
    """A list value as a list: a list or tuple, a numpy array (Parquet readers), or a list held in a text cell;
    None for anything else."""
    if isinstance(v, list | tuple):
        return list(v)
    if hasattr(v, "tolist"):  # numpy arrays from Parquet readers
        return list(v.tolist())
    if isinstance(v, str):
        return parse_list_cell(v)
    return None


def normalise_row(
    fmt: SeedFormat, mapping: dict[str, str], row: dict[str, Any], row_no: int,
    label_names: dict[str, list[str] | dict[int, str]] | None = None,
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Turn one source row into a canonical record, or report why it cannot be one."""
    spec = FORMATS[fmt]
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for f in spec.fields:
        col = mapping.get(f.name)
        raw = row.get(col) if col else None
        where = col or f.name
        if f.kind in ("text", "optional_text", "label"):
            text = _as_text(raw)
            if text is None:
                problems.append(Problem(row_no, where, f"expected text, found {type(raw).__name__}"))
                continue
            if f.kind == "label" and label_names and f.name in label_names and LABEL_ID.match(text.strip()):
                names = label_names[f.name]
                found = names.get(int(text)) if isinstance(names, dict) else (
                    names[int(text)] if 0 <= int(text) < len(names) else None)
                if found is None:
                    known = names.items() if isinstance(names, dict) else enumerate(names)
                    listed = ", ".join(f"{k} = {v}" for k, v in list(known)[:8])
                    problems.append(Problem(row_no, where, f"label id {text.strip()} has no name (the names are "
                                                            f"{listed}); add its name or fix the id"))
                    continue
                text = found
            if f.required and not text.strip():
                problems.append(Problem(row_no, where, f"{f.name} is empty"))
            if fmt == SeedFormat.CLASSIFICATION:
                text = text.strip()  # 'pos ' and 'pos' are one label; SST-2's sentences end in a space
            values[f.name] = text
        elif f.kind == "messages":
            msgs, msg_problems = _normalise_messages(raw, row_no, where)
            problems += msg_problems
            values[f.name] = msgs
        else:  # tokens / tags
            items = as_list(raw)
            if items is None or not items:
                what = "missing" if _is_missing(raw) or items == [] else "not a list"
                problems.append(Problem(row_no, where, f"{f.name} is {what}; expected a list like "
                                                        '["Ada", "lives", "in", "Paris"]'))
                continue
            if f.kind == "tags" and label_names and f.name in label_names:
                names = label_names[f.name]
                items = [names[t] if isinstance(t, int) and 0 <= t < len(names) else t for t in items]
            values[f.name] = list(map(str, items))
    if fmt == SeedFormat.NER and "tokens" in values and "tags" in values:
        problems += _check_ner(values["tokens"], values["tags"], row_no, mapping)
    if any(p.severity == "error" for p in problems):
        return None, problems
    return values, problems


def _normalise_messages(raw: Any, row_no: int, where: str) -> tuple[list[dict[str, str]], list[Problem]]:
    items = as_list(raw)
    if not items:
        return [], [Problem(row_no, where, "messages is missing or not a list of {role, content} objects")]
    msgs: list[dict[str, str]] = []
    for i, m in enumerate(items, start=1):
        if not isinstance(m, dict):
            return [], [Problem(row_no, where, f"message {i} is not an object with role and content")]
        role = _ROLE_ALIASES.get(str(m.get("role", m.get("from", ""))).strip().lower())
        content = m.get("content", m.get("value"))
        if role is None:
            return [], [Problem(row_no, where, f"message {i} has role '{m.get('role', m.get('from'))}'; "
                                                "use system, user or assistant")]
        if not isinstance(content, str) or not content.strip():
            return [], [Problem(row_no, where, f"message {i} ({role}) has no text content")]
        msgs.append({"role": role, "content": content.replace("\r\n", "\n")})
    problems = []
    if not any(m["role"] == "user" for m in msgs):
        problems.append(Problem(row_no, where, "the conversation has no user message"))
    if msgs[-1]["role"] != "assistant":
        problems.append(Problem(row_no, where, "the conversation must end with the assistant's reply "
                                               "(that is what the model learns to write)"))
    return msgs, problems


def _check_ner(tokens: list[str], tags: list[str], row_no: int, mapping: dict[str, str]) -> list[Problem]:
    col = mapping.get("tags", "tags")
    if len(tokens) != len(tags):
        return [Problem(row_no, col, f"{len(tokens)} tokens but {len(tags)} tags; every token needs "
                                     "exactly one tag")]
    bad = [t for t in dict.fromkeys(tags) if not _TAG_RE.match(t)]
    if bad:
        return [Problem(row_no, col, f"tag '{bad[0]}' is not a BIO tag (O, B-TYPE, I-TYPE)",
                        severity="warning")]
    return []


_SPACE = re.compile(r"\s")
_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True)  # json.dumps' own settings, built once


def content_key(fmt: SeedFormat, record: dict[str, Any]) -> str:
    """Same key for records that differ only in case and whitespace: how duplicates are found."""
    def norm(v: Any) -> Any:
        if isinstance(v, str):
            return " ".join(v.lower().split())
        if isinstance(v, list):
            try:  # tokens and tags: lists of strings, normalised without a call per item
                joined = "\x00".join(v).lower()
            except TypeError:  # not all strings
                return [norm(x) for x in v]
            if not _SPACE.search(joined) and joined.count("\x00") == len(v) - 1:
                return joined.split("\x00") if v else []  # no whitespace anywhere: one lower() for all
            return [" ".join(x.lower().split()) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in sorted(v.items())}
        return v

    family = FORMATS[fmt].family
    payload = _KEY_ENCODER.encode([family, norm(to_chat_key(fmt, record))])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def to_chat_key(fmt: SeedFormat, record: dict[str, Any]) -> Any:
    """A format-independent view, so an Alpaca row and the same prompt/completion row are duplicates."""
    if fmt == SeedFormat.ALPACA:
        prompt = record["instruction"] + ("\n\n" + record["input"] if record.get("input", "").strip() else "")
        return [prompt, record["output"]]
    if fmt == SeedFormat.PROMPT_COMPLETION:
        return [record["prompt"], record["completion"]]
    if fmt == SeedFormat.MESSAGES:
        msgs = record["messages"]
        if len(msgs) == 2 and msgs[0]["role"] == "user":
            return [msgs[0]["content"], msgs[1]["content"]]
        return msgs
    return record


def summary_text(fmt: SeedFormat, record: dict[str, Any]) -> tuple[str, str]:
    """(what goes in, what should come out): one readable pair for tables, whatever the format."""
    if fmt == SeedFormat.ALPACA:
        prompt = record["instruction"]
        if record.get("input", "").strip():
            prompt += "\n\n" + record["input"]
        return prompt, record["output"]
    if fmt == SeedFormat.PROMPT_COMPLETION:
        return record["prompt"], record["completion"]
    if fmt == SeedFormat.MESSAGES:
        msgs = record["messages"]
        last_user = next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")
        return last_user, msgs[-1]["content"]
    if fmt == SeedFormat.CLASSIFICATION:
        return record["text"], record["label"]
    tagged = " ".join(f"{tok}/{tag}" if tag != "O" else tok
                      for tok, tag in zip(record["tokens"], record["tags"], strict=False))
    return " ".join(record["tokens"]), tagged


@dataclass
class FieldValues:
    """Editable text for each field of a record (lists as JSON), for forms and the CLI."""

    format: SeedFormat
    values: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, fmt: SeedFormat, record: dict[str, Any]) -> FieldValues:
        out = {}
        for f in FORMATS[fmt].fields:
            v = record.get(f.name, "")
            out[f.name] = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        return cls(fmt, out)
