"""Seed formats: their canonical fields, how file columns map onto them, and per-row validation.

Five formats are recognised. Each row of an upload becomes one canonical record of one format:

- alpaca:            {"instruction", "input", "output"}
- prompt_completion: {"prompt", "completion"}
- messages:          {"messages": [{"role", "content"}, ...]}
- classification:    {"text", "label"}
- ner:               {"tokens": [...], "tags": [...]}
"""

from __future__ import annotations

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
                FieldSpec("instruction", "text", ("instruction", "instructions", "question", "query",
                                                  "task", "prompt"), "What the user asks for."),
                FieldSpec("input", "optional_text", ("input", "context", "inputs"),
                          "Optional material the instruction works on."),
                FieldSpec("output", "text", ("output", "response", "answer", "outputs", "target"),
                          "The ideal answer."),
            ),
            family="chat",
        ),
        FormatSpec(
            SeedFormat.PROMPT_COMPLETION,
            "Prompt / completion",
            "A prompt and the completion the model should write.",
            (
                FieldSpec("prompt", "text", ("prompt", "source"), "What the model is given."),
                FieldSpec("completion", "text", ("completion", "response", "generation"),
                          "What the model should write."),
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
                FieldSpec("text", "text", ("text", "sentence", "document", "content", "review", "utterance"),
                          "The text to classify."),
                FieldSpec("label", "label", ("label", "labels", "category", "class", "intent", "sentiment"),
                          "The correct label."),
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

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column '{self.column}'" if self.column else "")
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


def _value_shape(values: list[Any]) -> str:
    """'list_of_dicts', 'list', 'json_list_of_dicts', 'json_list', 'scalar' or 'empty'."""
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, str) and v.strip().startswith("["):
            try:
                v = json.loads(v)
            except (ValueError, RecursionError):  # a cell of 5,000 '[' must read as text, not crash
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


def detect(columns: list[str], sample_rows: list[dict[str, Any]]) -> Detection:
    """Suggest format + column mapping from column names and the shape of their values."""
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

    def rank(s: Suggestion) -> tuple[int, int, int]:
        spec = FORMATS[s.format]
        all_exact = int(s.exact == len(s.mapping))
        return (all_exact, s.exact, len(s.mapping) - len(spec.fields))

    suggestions.sort(key=rank, reverse=True)
    cols = ", ".join(columns) or "(none)"
    if not suggestions:
        return Detection([], True, f"The columns ({cols}) do not match a known seed format. Pick the format "
                                   "and say which column holds each field.")
    best = suggestions[0]
    best_all_exact = rank(best)[0] == 1
    rivals = [s for s in suggestions[1:] if rank(s)[:2] == rank(best)[:2]]
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
_TAG_RE = re.compile(r"^(O|[BIES]-\S+)$")


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


def _as_list(v: Any) -> list[Any] | None:
    if isinstance(v, list | tuple):
        return list(v)
    if hasattr(v, "tolist"):  # numpy arrays from Parquet readers
        return list(v.tolist())
    if isinstance(v, str) and v.strip().startswith("["):
        try:
            parsed = json.loads(v)
        except (ValueError, RecursionError):
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def normalise_row(
    fmt: SeedFormat, mapping: dict[str, str], row: dict[str, Any], row_no: int,
    label_names: dict[str, list[str]] | None = None,
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
            if f.kind == "label" and label_names and f.name in label_names and text.isdigit():
                names = label_names[f.name]
                text = names[int(text)] if int(text) < len(names) else text
            if f.required and not text.strip():
                problems.append(Problem(row_no, where, f"{f.name} is empty"))
            values[f.name] = text
        elif f.kind == "messages":
            msgs, msg_problems = _normalise_messages(raw, row_no, where)
            problems += msg_problems
            values[f.name] = msgs
        else:  # tokens / tags
            items = _as_list(raw)
            if items is None or not items:
                what = "missing" if _is_missing(raw) or items == [] else "not a list"
                problems.append(Problem(row_no, where, f"{f.name} is {what}; expected a list like "
                                                        '["Ada", "lives", "in", "Paris"]'))
                continue
            if f.kind == "tags" and label_names and f.name in label_names:
                names = label_names[f.name]
                items = [names[t] if isinstance(t, int) and 0 <= t < len(names) else t for t in items]
            values[f.name] = [str(x) for x in items]
    if fmt == SeedFormat.NER and "tokens" in values and "tags" in values:
        problems += _check_ner(values["tokens"], values["tags"], row_no, mapping)
    if any(p.severity == "error" for p in problems):
        return None, problems
    return values, problems


def _normalise_messages(raw: Any, row_no: int, where: str) -> tuple[list[dict[str, str]], list[Problem]]:
    items = _as_list(raw)
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
    bad = [t for t in tags if not _TAG_RE.match(t)]
    if bad:
        return [Problem(row_no, col, f"tag '{bad[0]}' is not a BIO tag (O, B-TYPE, I-TYPE)",
                        severity="warning")]
    return []


def content_key(fmt: SeedFormat, record: dict[str, Any]) -> str:
    """Same key for records that differ only in case and whitespace: how duplicates are found."""
    def norm(v: Any) -> Any:
        if isinstance(v, str):
            return " ".join(v.lower().split())
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in sorted(v.items())}
        return v

    family = FORMATS[fmt].family
    payload = json.dumps([family, norm(to_chat_key(fmt, record))], ensure_ascii=False, sort_keys=True)
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
