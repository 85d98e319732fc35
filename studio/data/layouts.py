"""Published layouts that nest their rows, reshaped into one flat row per seed before any format is applied.

`reshape(table)` recognises, from the rows themselves:

- OpenAssistant message trees (oasst1/oasst2 "trees" JSONL: nested `replies`, roles prompter/assistant,
  `rank` among siblings) and the flat message table (message_id / parent_id rows): one conversation per
  tree along the best-ranked replies, or every path with `ReadOptions(chat_paths="all")`;
- Label Studio exports (`data` + `annotations[].result[]` labels) and character-offset entities (spaCy's
  `ents`, doccano's `entities` / `label`, Parquet list<struct<start, end, label>>): tokens + IOB2 tags;
- Self-Instruct seed tasks (`instruction` + a nested `instances` list): one row per instance;
- SQuAD (`data[].paragraphs[].qas[]`): one row per question, paragraph as input, first answer as output.

Anything else is returned unchanged. A reshaped table says what it was read as (`layout`, `notes`), where
each row came from (`origins`), and which rows cannot be used (`row_problems`): nothing is dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from studio.data.formats import as_list
from studio.data.spans import Span, SpanError, parse_span, spans_to_tags
from studio.data.table import MappingHint, RawTable, ReadOptions


def reshape(table: RawTable, options: ReadOptions | None = None) -> RawTable:
    options = options or ReadOptions()
    if not table.rows or table.layout:
        return table
    for recognise in _RECOGNISERS:
        out = recognise(table, options)
        if out is not None:
            return out
    return table


def _origin(table: RawTable, i: int) -> str:
    return table.origin(i + 1) or f"row {i + 1}"


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _first_present(table: RawTable, column: str) -> Any:
    return next((r[column] for r in table.rows[:50] if _present(r.get(column))), None)


# --------------------------------------------------------------------------------- OpenAssistant


def _rank(node: dict[str, Any]) -> float | None:
    rank = node.get("rank")  # absent in the trees export, NaN in the flat table when unranked
    return float(rank) if isinstance(rank, int | float) and not isinstance(rank, bool) and rank == rank else None


def _best_first(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replies a person may learn from, best-ranked first (rank 0 is best; unranked after ranked)."""
    usable = [r for r in replies if isinstance(r, dict) and not _deleted(r)
              and isinstance(r.get("text"), str) and r["text"].strip()]
    return sorted(usable, key=lambda r: (_rank(r) is None, _rank(r) or 0.0))


def _deleted(node: dict[str, Any]) -> bool:
    return node.get("deleted") is True


def _count_deleted(root: dict[str, Any]) -> int:
    count, stack = 0, [root]
    while stack:
        node = stack.pop()
        for r in as_list(node.get("replies")) or []:
            if isinstance(r, dict):
                count += int(_deleted(r))
                stack.append(r)
    return count


def _message(node: dict[str, Any]) -> dict[str, str]:
    role = "user" if str(node.get("role", "")).lower() in ("prompter", "user", "human") else "assistant"
    return {"role": role, "content": str(node.get("text", ""))}


def _tree_paths(root: dict[str, Any], all_paths: bool) -> list[list[dict[str, Any]]]:
    """Root-to-leaf paths, each cut back to its last assistant message; the best-ranked one alone unless
    all_paths. Paths with no assistant message are left out (the caller reports the tree)."""
    paths: list[list[dict[str, Any]]] = []
    stack: list[list[dict[str, Any]]] = [[root]]
    while stack:
        path = stack.pop()
        replies = _best_first(as_list(path[-1].get("replies")) or [])
        if not replies:
            paths.append(path)
            continue
        chosen = replies if all_paths else replies[:1]
        stack.extend([*path, r] for r in reversed(chosen))
    out: list[list[dict[str, Any]]] = []
    seen: set[tuple[int, ...]] = set()
    for path in paths:
        while path and _message(path[-1])["role"] != "assistant":
            path = path[:-1]
        key = tuple(id(n) for n in path)
        if path and key not in seen:
            seen.add(key)
            out.append(path)
    return out


def _oasst_rows(table: RawTable, trees: list[tuple[str, dict[str, Any], dict[str, Any]]],
                options: ReadOptions, layout: str) -> RawTable:
    """trees: (origin, root message, tree-level fields to keep)."""
    all_paths = options.chat_paths == "all"
    rows: list[dict[str, Any]] = []
    origins: list[str] = []
    problems: dict[int, str] = {}
    no_reply = 0
    deleted = sum(_count_deleted(root) for _, root, _ in trees)
    for origin, root, extra in trees:
        paths = _tree_paths(root, all_paths)
        if not paths:
            no_reply += 1
            rows.append({"messages": [_message(root)], **extra})
            origins.append(origin)
            problems[len(rows)] = "the prompt has no reply yet, so there is nothing for the model to learn"
            continue
        for k, path in enumerate(paths, start=1):
            row = {"messages": [_message(n) for n in path], **extra,
                   "lang": root.get("lang"), "message_ids": [n.get("message_id") for n in path]}
            rows.append({key: v for key, v in row.items() if _present(v)})
            origins.append(origin + (f", path {k}" if all_paths else ""))
    which = "every path of each tree" if all_paths else "the best-ranked path of each tree"
    notes = [f"{len(trees)} message trees; {which} becomes one conversation "
             f"({len(rows) - no_reply} conversations)."]
    if no_reply:
        notes.append(f"{no_reply} prompt{'s have' if no_reply != 1 else ' has'} no reply: listed below, "
                     "not imported.")
    if deleted:
        notes.append(f"{deleted} deleted message{'s were' if deleted != 1 else ' was'} left out, with the "
                     "replies below them.")
    return table.derived(rows, layout=layout, notes=notes, origins=origins, row_problems=problems,
                         chat_tree=True)


def _oasst_trees(table: RawTable, options: ReadOptions) -> RawTable | None:
    sample = _first_present(table, "prompt")
    if not (isinstance(sample, dict) and "replies" in sample and "role" in sample):
        return None
    trees = []
    for i, r in enumerate(table.rows):
        root = r.get("prompt")
        if not isinstance(root, dict):
            continue
        extra = {k: v for k, v in r.items() if k != "prompt" and isinstance(v, str | int | float | bool)}
        trees.append((_origin(table, i), root, extra))
    return _oasst_rows(table, trees, options, "OpenAssistant message trees")


def _oasst_messages(table: RawTable, options: ReadOptions) -> RawTable | None:
    need = {"message_id", "parent_id", "role", "text"}
    if not need <= set(table.columns):
        return None
    nodes: dict[str, dict[str, Any]] = {}
    first_row: dict[str, int] = {}
    for i, r in enumerate(table.rows):
        mid = r.get("message_id")
        if _present(mid):
            nodes[str(mid)] = {**r, "replies": []}
            first_row[str(mid)] = i
    roots = []
    for node in nodes.values():
        parent = node.get("parent_id")
        if _present(parent) and str(parent) in nodes:
            nodes[str(parent)]["replies"].append(node)
        elif not _present(parent) or parent == "":
            roots.append(node)
    trees = []
    for root in roots:
        extra = {"message_tree_id": root.get("message_tree_id") or root.get("message_id")}
        where = f"{_origin(table, first_row[str(root['message_id'])])}, message {str(root['message_id'])[:8]}"
        trees.append((where, root, extra))
    return _oasst_rows(table, trees, options, "OpenAssistant messages (flat table)")


# --------------------------------------------------------------------------------- entities as spans

_TEXT_COLUMNS = ("text", "sentence", "content", "document")
_SPAN_COLUMNS = ("entities", "ents", "spans", "label", "labels", "ner")


def _looks_like_spans(value: Any) -> bool:
    items = as_list(value)
    if not items:
        return False
    first = items[0].tolist() if hasattr(items[0], "tolist") else items[0]
    if isinstance(first, dict):
        return ("start" in first or "start_offset" in first) and ("end" in first or "end_offset" in first)
    return isinstance(first, list | tuple) and len(first) == 3 and isinstance(first[0], int | float)


def _span_rows(table: RawTable, layout: str, items: list[tuple[int, str | None, Any, dict[str, Any],
                                                              list[tuple[int, int]] | None]],
               no_text: str = "has no text to tag") -> RawTable:
    """items: (source row index, text, span list, fields to keep, token offsets given by the file). `no_text`:
    the problem of a row without text, in the layout's own words."""
    rows: list[dict[str, Any]] = []
    origins: list[str] = []
    problems: dict[int, str] = {}
    labels: set[str] = set()
    for i, text, raw_spans, keep, offsets in items:
        origins.append(_origin(table, i))
        if not isinstance(text, str) or not text.strip():
            rows.append({"tokens": None, "tags": None, **keep})
            problems[len(rows)] = no_text
            continue
        try:
            spans = [parse_span(s) for s in (as_list(raw_spans) or [])] if _present(raw_spans) else []
            tokens, tags = spans_to_tags(text, spans, offsets)
        except SpanError as exc:
            rows.append({"tokens": None, "tags": None, "text": text, **keep})
            problems[len(rows)] = str(exc)
            continue
        labels.update(s.label for s in spans)
        rows.append({"tokens": tokens, "tags": tags, "text": text, **keep})
    notes = [f"Entities given as character offsets, turned into tokens + IOB2 tags (entity types: "
             f"{', '.join(sorted(labels)) or 'none'})."]
    out = table.derived(rows, layout=layout, notes=notes, origins=origins, row_problems=problems)
    out.hint = MappingHint("ner", {"tokens": "tokens", "tags": "tags"}, confident=True,
                           message=f"Recognised as {layout}: entities become tokens + tags (NER).")
    return out


def _token_offsets(value: Any) -> list[tuple[int, int]] | None:
    """spaCy's Doc.to_json tokens ([{id, start, end}, ...]): its own tokenisation, used as given."""
    items = as_list(value)
    if not items or not all(isinstance(t, dict) and "start" in t and "end" in t for t in items):
        return None
    try:
        return [(int(t["start"]), int(t["end"])) for t in items]
    except (TypeError, ValueError):
        return None


def _span_table(table: RawTable, options: ReadOptions) -> RawTable | None:
    text_col = next((c for c in _TEXT_COLUMNS if c in table.columns), None)
    span_col = next((c for c in _SPAN_COLUMNS if c in table.columns
                     and _looks_like_spans(_first_present(table, c))), None)
    if text_col is None or span_col is None or ("tokens" in table.columns and "tags" in table.columns):
        return None
    items = []
    for i, r in enumerate(table.rows):
        offsets = _token_offsets(r.get("tokens"))
        keep = {k: v for k, v in r.items() if k not in (text_col, span_col, "tokens")}
        items.append((i, r.get(text_col), r.get(span_col), keep, offsets))
    layout = {"ents": "spaCy entities (Doc.to_json)", "entities": "Entity spans (doccano / spaCy / Parquet)",
              "label": "doccano spans ([start, end, label])"}.get(span_col, "Entity spans")
    return _span_rows(table, layout, items)


def _label_studio(table: RawTable, options: ReadOptions) -> RawTable | None:
    if "annotations" not in table.columns and "completions" not in table.columns:
        return None
    if not isinstance(_first_present(table, "data"), dict):
        return None
    items = []
    several: list[str] = []
    origins_override: dict[int, str] = {}
    for i, r in enumerate(table.rows):
        data = r.get("data") if isinstance(r.get("data"), dict) else {}
        text = data.get("text", next((v for v in data.values() if isinstance(v, str)), None))
        annotations = as_list(r.get("annotations")) or as_list(r.get("completions")) or []
        done = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        keep = {"task_id": r.get("id")} if _present(r.get("id")) else {}
        if keep:
            origins_override[i] = f"task {r['id']} ({_origin(table, i)})"
        if not done:
            items.append((i, None, None, keep, None))
            continue
        if len(done) > 1:
            several.append(str(r.get("id", i + 1)))
        results = as_list(done[0].get("result")) or []
        spans = [res for res in results if isinstance(res, dict) and isinstance(res.get("value"), dict)
                 and "start" in res["value"] and res.get("type", "labels") == "labels"]
        items.append((i, text, spans, keep, None))
    out = _span_rows(table, "Label Studio export", items,
                     no_text="has no finished annotation (skipped or cancelled in Label Studio)")
    out.origins = [origins_override.get(i, o) for i, o in enumerate(out.origins or [])]
    if several:
        out.notes.append(f"Task{'s' if len(several) > 1 else ''} {', '.join(several)} "
                         f"{'have' if len(several) > 1 else 'has'} several annotations: the first finished one "
                         "is used (check that the annotators agree).")
    return out


# --------------------------------------------------------------------------------- Self-Instruct


def _self_instruct(table: RawTable, options: ReadOptions) -> RawTable | None:
    if "instruction" not in table.columns or "instances" not in table.columns:
        return None
    sample = as_list(_first_present(table, "instances"))
    if not sample or not isinstance(sample[0], dict) or "output" not in sample[0]:
        return None
    rows: list[dict[str, Any]] = []
    origins: list[str] = []
    problems: dict[int, str] = {}
    for i, r in enumerate(table.rows):
        keep = {k: v for k, v in r.items() if k != "instances"}
        instances = as_list(r.get("instances")) or []
        if not instances:
            rows.append(keep)
            origins.append(_origin(table, i))
            problems[len(rows)] = "the task has no instances (no input/output example)"
            continue
        for k, inst in enumerate(instances, start=1):
            inst = inst if isinstance(inst, dict) else {}
            rows.append({**keep, "input": inst.get("input", ""), "output": inst.get("output"),
                         **({"instance": k} if len(instances) > 1 else {})})
            origins.append(_origin(table, i) + (f", instance {k}" if len(instances) > 1 else ""))
    notes = [f"Self-Instruct tasks: {len(table.rows)} tasks with {len(rows)} instances; each instance is one "
             "seed and keeps its task's name."]
    return table.derived(rows, layout="Self-Instruct seed tasks", notes=notes, origins=origins,
                         row_problems=problems)


# --------------------------------------------------------------------------------- SQuAD


def _squad(table: RawTable, options: ReadOptions) -> RawTable | None:
    """SQuAD 1.1/2.0 JSON ({"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}): one row per
    question, with its paragraph as the input and the first answer as the output."""
    sample = as_list(_first_present(table, "paragraphs"))
    if not sample or not isinstance(sample[0], dict) or "qas" not in sample[0]:
        return None
    rows: list[dict[str, Any]] = []
    origins: list[str] = []
    problems: dict[int, str] = {}
    for i, article in enumerate(table.rows):
        for p_no, para in enumerate(as_list(article.get("paragraphs")) or [], start=1):
            if not isinstance(para, dict):
                continue
            for qa in as_list(para.get("qas")) or []:
                if not isinstance(qa, dict):
                    continue
                answers = [a for a in as_list(qa.get("answers")) or [] if isinstance(a, dict)]
                row = {"question": qa.get("question"), "context": para.get("context"),
                       "answer": answers[0].get("text") if answers else None,
                       "title": article.get("title"), "id": qa.get("id")}
                rows.append({k: v for k, v in row.items() if v is not None})
                origins.append(f"{_origin(table, i)}, paragraph {p_no}, question {qa.get('id', len(rows))}")
                if not answers:
                    problems[len(rows)] = ("the question has no answer (unanswerable in SQuAD 2.0), so there is "
                                           "nothing for the model to learn")
    notes = [f"SQuAD: {len(table.rows)} articles, {len(rows)} questions; the paragraph is the input and the first "
             "answer the output."]
    return table.derived(rows, layout="SQuAD reading comprehension", notes=notes, origins=origins,
                         row_problems=problems)


_RECOGNISERS: list[Callable[[RawTable, ReadOptions], RawTable | None]] = [
    _oasst_trees, _oasst_messages, _label_studio, _span_table, _self_instruct, _squad,
]

__all__ = ["Span", "reshape"]
