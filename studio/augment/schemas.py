"""JSON schemas of the teachers' answers, sized so a whole answer fits in `max_new_tokens`.

Each teacher strategy (and the judge) declares the shape of its answer here; a local teacher decodes
under it (`studio.teachers.grammar`), an endpoint gets it as `response_format`. The sizes matter: a
grammar keeps a model inside the JSON, but not inside the token budget, and an array cut off after
two of five items is a worse answer than five shorter items. So every string gets a `maxLength` from
the budget: `max_new_tokens` times a conservative CHARS_PER_TOKEN, less the JSON's own punctuation,
shared among the strings in proportion to their weights (an answer gets more room than a question).
Strategies also cap a string by what it stands for (`like`): a rewording of a 60-character request
needs no 400 characters, and a cap that follows the seeds keeps a small model from filling the budget
with junk that tokenizes at two characters a token and runs into the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from studio.teachers.base import JsonSchema

CHARS_PER_TOKEN = 2.0
"""English BPE text runs about 4 characters a token; JSON escapes, numbers and rare words cost more."""
MIN_STRING = 12
"""No string is squeezed below this, even if the budget says so: a shorter one is useless anyway."""
MAX_STRING = 4000


def string_budgets(max_new_tokens: int, weights: Sequence[float], *, overhead: int) -> list[int]:
    """maxLength for each string: the budget in characters, less `overhead` for punctuation and keys,
    shared in proportion to `weights`."""
    room = max(0.0, max_new_tokens * CHARS_PER_TOKEN - overhead)
    total = sum(weights) or 1.0
    return [int(min(MAX_STRING, max(MIN_STRING, room * w / total))) for w in weights]


CAP_STEPS = (60, 80, 120, 160, 240, 320, 480, 640, 960, 1280, 1920, 2560, 4000)
"""Caps are rounded up to one of these, so a batch compiles a handful of grammars, not one per seed."""


def like(*texts: str, factor: float = 2.0, floor: int = 80) -> int:
    """A length cap that follows what the string stands for: `factor` times the longest of `texts`,
    rounded up to a CAP_STEPS value."""
    wanted = max(floor, int(factor * max((len(t) for t in texts), default=0)))
    return next((step for step in CAP_STEPS if step >= wanted), MAX_STRING)


def _text(max_length: int, *, required: bool = True) -> JsonSchema:
    return {"type": "string", "minLength": 1 if required else 0, "maxLength": max_length}


def string_list(n: int, max_new_tokens: int, *, cap: int = MAX_STRING) -> JsonSchema:
    """Exactly n non-empty strings (instruction expansion), each at most `cap` characters."""
    (length,) = string_budgets(max_new_tokens, [1.0], overhead=0)
    per_item = min(cap, max(MIN_STRING, (length - 2) // n - 3))  # [ ] and each item's quotes and comma
    return {"type": "array", "minItems": n, "maxItems": n,
            "items": {"type": "string", "minLength": 8, "maxLength": per_item}}


def object_list(n: int, fields: Sequence[str], max_new_tokens: int, *, weights: dict[str, float] | None = None,
                optional: Sequence[str] = (), enums: dict[str, list[str]] | None = None,
                caps: dict[str, int] | None = None, leading: Sequence[dict[str, str]] = ()) -> JsonSchema:
    """Exactly n objects with these fields, in this order (few-shot). `enums` fixes a field's values
    (a classification label); `optional` fields may be empty strings (an Alpaca input); `caps` bounds a
    field's length below its share of the budget.

    `leading`, one dict per item (a diversity plan's draws), puts its keys first in that item with their
    values fixed (`prefixItems`): the grammar writes `{"topic":"gardening",` and the model goes on from
    there. A small teacher ignores a plan that is only in the prompt; one it has just written itself
    conditions what follows (bench/structured.py --plan-only)."""
    enums, caps = enums or {}, caps or {}
    leading = [{k: v for k, v in draw.items() if k not in fields} for draw in leading][:n]
    free = [f for f in fields if f not in enums]
    weights = weights or {}
    forced = max((sum(len(k) + len(v) + 6 for k, v in draw.items()) for draw in leading), default=0)
    overhead = n * (2 + forced + sum(len(f) + 6 for f in fields)) + 2 + n * sum(max(map(len, v), default=0)
                                                                               for v in enums.values())
    budgets = string_budgets(max_new_tokens, [weights.get(f, 1.0) * n for f in free], overhead=overhead)
    properties: dict[str, Any] = {}
    for name in fields:
        if name in enums:
            properties[name] = {"type": "string", "enum": list(enums[name])}
        else:
            per_item = min(caps.get(name, MAX_STRING), max(MIN_STRING, budgets[free.index(name)] // n))
            properties[name] = _text(per_item, required=name not in optional)
    item = {"type": "object", "properties": properties, "required": list(fields), "additionalProperties": False}
    if not leading:
        return {"type": "array", "minItems": n, "maxItems": n, "items": item}
    items = [{**item, "properties": {**{k: {"type": "string", "enum": [v]} for k, v in draw.items()}, **properties},
              "required": [*draw, *fields]} for draw in leading]
    items += [item] * (n - len(items))
    return {"type": "array", "minItems": n, "maxItems": n, "prefixItems": items, "items": False}


def keyed_texts(keys: Sequence[str], max_new_tokens: int, *, cap: int = MAX_STRING) -> JsonSchema:
    """One object with a non-empty string under each key, in order (response-pair styles, a refinement)."""
    overhead = 2 + sum(len(k) + 6 for k in keys)
    budgets = [min(cap, b) for b in string_budgets(max_new_tokens, [1.0] * len(keys), overhead=overhead)]
    return {"type": "object", "properties": {k: _text(b) for k, b in zip(keys, budgets, strict=True)},
            "required": list(keys), "additionalProperties": False}


def scores(names: Sequence[str], low: int, high: int, text_field: str, max_new_tokens: int) -> JsonSchema:
    """Integer scores from low to high under each name, then a short text (the judge's rationale)."""
    overhead = 2 + sum(len(n) + 5 for n in names) + len(text_field) + 6
    (length,) = string_budgets(max_new_tokens, [1.0], overhead=overhead)
    properties: dict[str, Any] = {n: {"type": "integer", "enum": list(range(low, high + 1))} for n in names}
    properties[text_field] = _text(length)
    return {"type": "object", "properties": properties, "required": [*names, text_field],
            "additionalProperties": False}
