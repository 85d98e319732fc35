"""Diversity plans: what a batch should cover, decided before generation rather than hoped for.

A plan holds topics and optional attributes to vary (persona, difficulty, length, tone), each value with
a weight. Every work unit of a batch samples one topic and one value per attribute, by weight, from a
generator seeded with the batch's seed and the unit's number, so a resumed unit draws the same values.
The draws go into the unit's prompt (the `plan` template variable: a list, one draw per row asked for) and
into each row's meta (`meta["plan"] = {"topic": ..., "persona": ...}`), which the data profile compares
with the plan.

Every row a unit asks for gets its own draw (`sample_items`): the n examples of one few-shot call, or the
n phrasings of one expansion, are each given a different topic (without repeats while there are enough)
and their own attribute values, since a small teacher left to one topic writes n near-copies.

Plans are stored as versions, like prompts (`diversity_plan` table): each save is a new version; a batch
records the plan it used in its params (`params["plan"]`, `params["plan_version"]`).

Topics come from the user (typed, or uploaded as a list) or from the teacher (`propose_topics`), which
answers under a JSON schema, so even the embedded model gives a usable list.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.errors import GenerationError
from studio.workspace import Workspace, utc_now

MAX_VALUES = 500
MAX_VALUE_CHARS = 200
SUGGESTED_ATTRIBUTES: dict[str, list[str]] = {
    "persona": ["a beginner", "a busy professional", "a student", "an expert"],
    "difficulty": ["easy", "medium", "hard"],
    "length": ["one sentence", "a short paragraph", "several paragraphs"],
    "tone": ["neutral", "friendly", "formal", "frustrated"],
}
"""Offered in the UI as starting points; a plan holds only what the user keeps."""
_WEIGHT = re.compile(r"^(?P<value>.*?)\s*\|\s*(?P<weight>[0-9]*\.?[0-9]+)\s*$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9 _-]{0,39}$")


@dataclass(frozen=True)
class PlanValue:
    value: str
    weight: float = 1.0


@dataclass
class DiversityPlan:
    topics: list[PlanValue] = field(default_factory=list)
    attributes: dict[str, list[PlanValue]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.topics and not any(self.attributes.values())

    def dimensions(self) -> dict[str, list[PlanValue]]:
        """topic first, then the attributes: every dimension a unit samples."""
        out = {"topic": self.topics} if self.topics else {}
        out.update({k: v for k, v in self.attributes.items() if v})
        return out

    def to_dict(self) -> dict[str, Any]:
        def values(vs: list[PlanValue]) -> list[dict[str, Any]]:
            return [{"value": v.value, "weight": v.weight} for v in vs]

        return {"topics": values(self.topics), "attributes": {k: values(v) for k, v in self.attributes.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DiversityPlan:
        data = data or {}

        def values(items: Any) -> list[PlanValue]:
            return [PlanValue(str(i["value"]), float(i.get("weight", 1.0))) for i in items or []]

        return cls(values(data.get("topics")), {str(k): values(v) for k, v in (data.get("attributes") or {}).items()})

    def sample(self, rng_seed: int, unit_idx: int) -> dict[str, str]:
        """The values unit `unit_idx` of a batch writes about: one per dimension, drawn by weight."""
        return self.sample_items(rng_seed, unit_idx, 1)[0]

    def sample_items(self, rng_seed: int, unit_idx: int, n: int) -> list[dict[str, str]]:
        """One draw for each of the `n` rows a unit asks for. Topics are drawn by weight without repeats
        while the plan has enough of them, so the rows of one call are about different things (a small
        teacher otherwise writes n near-copies); attributes are drawn independently per row."""
        rng = random.Random(f"{rng_seed}:plan:{unit_idx}")
        draws: list[dict[str, str]] = [{} for _ in range(n)]
        for name, values in self.dimensions().items():
            picked = _weighted_distinct(rng, values, n) if name == "topic" else \
                [rng.choices([v.value for v in values], weights=[v.weight for v in values])[0] for _ in range(n)]
            for draw, value in zip(draws, picked, strict=True):
                draw[name] = value
        return draws


def _weighted_distinct(rng: random.Random, values: list[PlanValue], n: int) -> list[str]:
    """n values by weight, none twice until every value has been drawn once (then round again)."""
    out: list[str] = []
    while len(out) < n:
        left = list(values)
        while left and len(out) < n:
            pick = rng.choices(range(len(left)), weights=[v.weight for v in left])[0]
            out.append(left.pop(pick).value)
    return out


# --- reading what people type or upload ----------------------------------------------------------


def parse_values(text: str, *, what: str = "topic") -> list[PlanValue]:
    """One value per line (or comma-separated on one line for attributes), `value | weight` for a weight.

    Blank lines and duplicates (case-insensitive) are dropped; a bad weight is a GenerationError that
    names the line.
    """
    out: list[PlanValue] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip().lstrip("-*•").strip()
        if not line or line.startswith("#"):
            continue
        value, weight = line, 1.0
        if "|" in line:
            m = _WEIGHT.match(line)
            if not m:
                raise GenerationError(f"Line {number} ({line[:60]!r}): write a weight as 'value | 2' with a number "
                                      "after the bar, or leave the bar out.")
            value, weight = m["value"].strip(), float(m["weight"])
            if weight <= 0:
                raise GenerationError(f"Line {number}: a weight must be above 0 (got {weight:g}); remove the line "
                                      f"to leave that {what} out.")
        if len(value) > MAX_VALUE_CHARS:
            raise GenerationError(f"Line {number}: this {what} is over {MAX_VALUE_CHARS} characters; shorten it.")
        if value.lower() in seen:
            continue
        seen.add(value.lower())
        out.append(PlanValue(value, weight))
    if len(out) > MAX_VALUES:
        raise GenerationError(f"{len(out)} {what}s is more than a plan holds ({MAX_VALUES}); keep the ones that "
                              "matter most.")
    return out


def parse_attributes(text: str) -> dict[str, list[PlanValue]]:
    """Lines like `persona: a student, a nurse | 2, a retiree`: a name, a colon, comma-separated values."""
    out: dict[str, list[PlanValue]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, rest = line.partition(":")
        name = name.strip().lower()
        if not colon or not rest.strip():
            raise GenerationError(f"Attribute line {number} ({line[:60]!r}): write it as 'name: value, value', "
                                  "for example 'difficulty: easy, medium, hard'.")
        if not _NAME.match(name) or name == "topic":
            raise GenerationError(f"Attribute line {number}: '{name}' cannot name an attribute; use a short word "
                                  "such as persona, difficulty, length or tone (topics have their own box).")
        values = parse_values("\n".join(v for v in rest.split(",")), what=f"{name} value")
        if values:
            out[name] = values
    return out


def format_values(values: list[PlanValue]) -> str:
    return "\n".join(v.value if v.weight == 1 else f"{v.value} | {v.weight:g}" for v in values)


def format_attributes(attributes: dict[str, list[PlanValue]]) -> str:
    return "\n".join(f"{name}: " + ", ".join(v.value if v.weight == 1 else f"{v.value} | {v.weight:g}" for v in vs)
                     for name, vs in attributes.items())


def read_topic_file(path: str | Path) -> list[PlanValue]:
    """Topics from an uploaded list: .txt (one per line), .csv/.tsv (first column, or a 'topic' column,
    and a 'weight' column when there is one), .json/.jsonl (strings, or objects with topic/value)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise GenerationError(f"{path.name} is not UTF-8 text; save the topic list as UTF-8 .txt or .csv.") from None
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        import csv

        rows = list(csv.reader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        header = [h.strip().lower() for h in rows[0]] if rows else []
        col = header.index("topic") if "topic" in header else 0
        wcol = header.index("weight") if "weight" in header else None
        body = rows[1:] if ("topic" in header or wcol is not None) else rows
        lines = [(r[col].strip() + (f" | {r[wcol].strip()}" if wcol is not None and len(r) > wcol and
                                    r[wcol].strip() else "")) for r in body if len(r) > col and r[col].strip()]
        return parse_values("\n".join(lines))
    if suffix in (".json", ".jsonl"):
        try:
            items = ([json.loads(line) for line in text.splitlines() if line.strip()] if suffix == ".jsonl"
                     else json.loads(text))
        except json.JSONDecodeError as error:
            raise GenerationError(f"{path.name} is not valid JSON ({error.msg} at line {error.lineno}).") from None
        if isinstance(items, dict):
            items = items.get("topics", [])
        lines = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                value = item.get("topic", item.get("value", ""))
                lines.append(f"{value} | {item['weight']}" if "weight" in item else str(value))
            else:
                lines.append(str(item))
        return parse_values("\n".join(lines))
    return parse_values(text)


# --- versions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanVersion:
    id: int
    project_id: int
    version: int
    plan: DiversityPlan
    note: str
    created_at: str

    @property
    def label(self) -> str:
        return f"v{self.version}" + (f" · {self.note}" if self.note else "")


def _row(r: Any) -> PlanVersion:
    return PlanVersion(r["id"], r["project_id"], r["version"], DiversityPlan.from_dict(json.loads(r["plan"])),
                       r["note"], r["created_at"])


def save_plan(ws: Workspace, project_id: int, plan: DiversityPlan, *, note: str = "") -> PlanVersion:
    """Store the plan as the project's next version (an unchanged plan is not stored twice)."""
    if plan.empty:
        raise GenerationError("The plan is empty: add topics, or attributes such as 'difficulty: easy, hard'.")
    current = latest_plan(ws, project_id)
    if current is not None and current.plan.to_dict() == plan.to_dict():
        return current
    with ws.write() as conn:
        version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM diversity_plan WHERE project_id=?",
                               (project_id,)).fetchone()[0]
        cur = conn.execute("INSERT INTO diversity_plan(project_id, version, plan, note, created_at) VALUES "
                           "(?, ?, ?, ?, ?)",
                           (project_id, version, json.dumps(plan.to_dict()), note.strip(), utc_now()))
        row = conn.execute("SELECT * FROM diversity_plan WHERE id=?", (cur.lastrowid,)).fetchone()
    return _row(row)


def list_plans(ws: Workspace, project_id: int) -> list[PlanVersion]:
    """Newest first."""
    with ws.read() as conn:
        rows = conn.execute("SELECT * FROM diversity_plan WHERE project_id=? ORDER BY version DESC",
                            (project_id,)).fetchall()
    return [_row(r) for r in rows]


def latest_plan(ws: Workspace, project_id: int) -> PlanVersion | None:
    plans = list_plans(ws, project_id)
    return plans[0] if plans else None


def get_plan(ws: Workspace, plan_id: int) -> PlanVersion:
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM diversity_plan WHERE id=?", (plan_id,)).fetchone()
    if row is None:
        raise GenerationError(f"There is no diversity plan {plan_id}. `seed-studio plan list` shows the plans.")
    return _row(row)


# --- topics from the teacher ---------------------------------------------------------------------------

PROPOSE_PARAMS = {"max_new_tokens": 200, "temperature": 0.7, "top_p": 0.95}


def topic_prompt(task: str, seed_texts: list[str], n: int) -> str:
    shown = "\n".join(f"- {t[:200]}" for t in seed_texts)
    return (f"We are building training data for this task: {task or 'answer requests like the examples'}\n\n"
            f"Here are some example requests:\n{shown}\n\n"
            f"List {n} different topics or situations that requests for this task could be about. Cover ground "
            "the examples do not: other subjects, other kinds of people, other settings. Each topic is a few "
            f"words.\nAnswer with a JSON array of {n} strings.")


def propose_topics(ws: Workspace, project_id: int, teacher: Any, *, n: int = 8, rng_seed: int = 0) -> list[str]:
    """The teacher's topic suggestions for the project (one call, answered under a JSON schema).

    Topics that merely repeat a seed request, or each other, are dropped. Raises GenerationError when
    nothing usable comes back, so the user knows to type topics instead.
    """
    from studio.augment.parsing import parse_text_list
    from studio.augment.strategies import Example, seed_view
    from studio.teachers.base import GenerationParams
    from studio.workspace.projects import get_project
    from studio.workspace.seeds import list_seeds

    if not 1 <= n <= 50:
        raise GenerationError(f"Ask for between 1 and 50 topics (got {n}).")
    project = get_project(ws, project_id)
    seeds = list_seeds(ws, project_id)
    if not seeds:
        raise GenerationError("The teacher suggests topics from the seeds: import seeds first, or type topics.")
    shown = random.Random(rng_seed).sample(seeds, min(8, len(seeds)))
    texts = [seed_view(Example(s.id, s.format, s.data))["instruction"] for s in shown]
    schema = {"type": "array", "minItems": n, "maxItems": n,
              "items": {"type": "string", "minLength": 3, "maxLength": 60}}
    params = GenerationParams(max_new_tokens=max(PROPOSE_PARAMS["max_new_tokens"], n * 22),
                              temperature=PROPOSE_PARAMS["temperature"], top_p=PROPOSE_PARAMS["top_p"], seed=rng_seed)
    answer = teacher.generate([[{"role": "user", "content": topic_prompt(project.task_description, texts, n)}]],
                              params, schema=schema)[0]
    seed_lower = {t.strip().lower() for t in texts}
    topics: list[str] = []
    for item in parse_text_list(answer or "", expected=n).items:
        topic = " ".join(str(item).split()).strip(" .")
        if topic and topic.lower() not in seed_lower and topic.lower() not in {t.lower() for t in topics}:
            topics.append(topic[:MAX_VALUE_CHARS])
    if not topics:
        raise GenerationError("The teacher gave no usable topics. Type a few yourself (one per line), or try a "
                              "bigger teacher.")
    return topics


def describe_draw(draw: dict[str, str]) -> str:
    return "; ".join(f"{k}: {v}" for k, v in draw.items())


def plan_line(draws: list[dict[str, str]]) -> str:
    """The draws as the lines old templates without a `plan` variable get appended."""
    if not draws or not any(draws):
        return ""
    if len(draws) == 1:
        return f"Write it for this: {describe_draw(draws[0])}."
    return "Give each one its own subject:\n" + "\n".join(f"{i}. {describe_draw(d)}"
                                                           for i, d in enumerate(draws, start=1))
