"""LLM-as-judge: a teacher scores synthetic rows on a rubric, to help a reviewer look at the worst first.

The rubric has three criteria scored 1-5 — accuracy, tone, instruction_following — and a short
rationale; `overall` is their mean. Scores are advice, not a verdict: the review gate still counts human
verdicts only. Each call stores one `judgement` row per candidate (a newer row supersedes an older one),
one transaction per chunk of rows, so a teacher that fails half-way leaves the finished chunks saved and
a second run continues with the rest. An answer that cannot be read is stored with parse_status 'failed',
no scores, the raw answer, and the reason in `rationale`; it is tried again on the next run. The judge is
recorded as the teacher's description (kind, model, public URL), never with an API key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from studio.errors import QualityError, TeacherError
from studio.teachers.base import ChatMessages, GenerationParams
from studio.teachers.spec import TeacherSpec, describe_spec
from studio.workspace import Workspace, utc_now

if TYPE_CHECKING:
    from studio.augment.candidates import Candidate
    from studio.teachers.base import Teacher
    from studio.workspace.seeds import Seed

CRITERIA = ("accuracy", "tone", "instruction_following")
RUBRIC_VERSION = 1
JUDGE_MARKER = f"[seed-studio judge rubric v{RUBRIC_VERSION}]"
"""First line of every judge prompt: lets test servers and logs tell judge prompts from generation prompts."""
CANDIDATE_START = "### Candidate prompt"
ANSWER_START = "### Candidate answer"
CANDIDATE_END = "### End of candidate"
JUDGE_PARAMS = GenerationParams(max_new_tokens=256, temperature=0.0, top_p=1.0, seed=0)


def judge_schema(max_new_tokens: int) -> dict[str, Any]:
    """The judge's answer: 1-5 for each criterion, then the rationale (decoded under it on a local judge,
    sent as response_format to an endpoint)."""
    from studio.augment.schemas import scores

    return scores(CRITERIA, 1, 5, "rationale", max_new_tokens)
"""Greedy: the same row gets the same scores from the same judge."""

_EXAMPLE_CHARS = 600
_CANDIDATE_CHARS = 4000
_RATIONALE_CHARS = 1000
_MAX_TEXT = 100_000
_MAX_JSON_TRIES = 50
_IDENTITY_KEYS = ("kind", "ref", "base_url", "model", "rubric")

_SYSTEM = ("You are a strict, fair reviewer of training data for a small language model. You score one "
           "example at a time against a rubric and answer with JSON only.")


# --- the prompt ----------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def judge_messages(task_description: str, candidate_prompt: str, candidate_answer: str,
                   seed_examples: Sequence[tuple[str, str]]) -> ChatMessages:
    """The judge conversation for one row; `seed_examples` are (prompt, answer) pairs a person wrote."""
    lines = [JUDGE_MARKER, "", f"Task the data is for: {task_description.strip() or '(not described)'}", ""]
    if seed_examples:
        lines.append("Examples written by a person, showing the quality and style to expect:")
        for n, (prompt, answer) in enumerate(seed_examples, 1):
            lines += [f"Example {n}", f"Prompt: {_clip(prompt, _EXAMPLE_CHARS)}",
                      f"Answer: {_clip(answer, _EXAMPLE_CHARS)}", ""]
    lines += [
        "Score the candidate below from 1 (very poor) to 5 (excellent) on each criterion:",
        "- accuracy: the answer is correct and invents no facts, numbers or names.",
        "- tone: the answer matches the tone and style of the examples and suits the task.",
        "- instruction_following: the answer does exactly what the prompt asks (content, format, length), "
        "and the prompt is a sensible request for this task.",
        "",
        CANDIDATE_START, _clip(candidate_prompt, _CANDIDATE_CHARS),
        ANSWER_START, _clip(candidate_answer, _CANDIDATE_CHARS),
        CANDIDATE_END,
        "",
        "Reply with only this JSON object and nothing else:",
        '{"accuracy": <1-5>, "tone": <1-5>, "instruction_following": <1-5>, '
        '"rationale": "<one or two sentences on the main weakness, or why it is good>"}',
    ]
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


# --- reading the judge's answer ------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeParse:
    status: Literal["ok", "failed"]
    accuracy: int | None = None
    tone: int | None = None
    instruction_following: int | None = None
    rationale: str = ""
    error: str = ""
    """Why it failed, in plain words; empty when ok."""

    @property
    def overall(self) -> float | None:
        scores = [self.accuracy, self.tone, self.instruction_following]
        if any(s is None for s in scores):
            return None
        return round(sum(s for s in scores if s is not None) / 3, 4)


_NAMES = {
    "accuracy": r"accura(?:cy|te)|correctness|factual(?:ity)?",
    "tone": r"tone|style",
    "instruction_following": r"instructions?[\s_-]*following|following[\s_-]+(?:the[\s_-]+)?instructions?"
                             r"|instruction[\s_-]*adherence|adherence",
}
_KEY_ALIASES = {"accuracy": "accuracy", "correctness": "accuracy", "factuality": "accuracy",
                     "factual_accuracy": "accuracy", "tone": "tone", "style": "tone",
                     "instruction_following": "instruction_following", "instructions_following":
                     "instruction_following", "following_instructions": "instruction_following",
                     "instruction_adherence": "instruction_following", "adherence": "instruction_following",
                     "accurate": "accuracy"}
_RATIONALE_KEYS = ("rationale", "reason", "reasoning", "explanation", "justification", "comment", "comments")
# "Accuracy: 4", "**Tone**: 4/5", "Accuracy (1-5): 5", "accuracy score = 3". The number must end there: not
# the 1 of "1-5", not the 1 of "1e999".
_PROSE = {c: re.compile(rf"\b(?:{names})\b\s*(?:\*\*|__)?\s*(?:\(\s*1\s*(?:-|–|to)\s*5\s*\))?[^\w\n]{{0,6}}"
                        rf"(?:score[^\w\n]{{0,3}})?(-?\d+(?:\.\d+)?)(?!\w|\.\d|\s*(?:-|–|to)\s*5\b)"
                        rf"(?:\s*(?:/|out\s+of)\s*(\d+))?", re.I)
          for c, names in _NAMES.items()}
_PROSE_RATIONALE = re.compile(r"\b(?:rationale|reason(?:ing)?|explanation|justification)\b\s*\**\s*[:\-]\s*\**\s*"
                              r"(.+)", re.I)
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*(\d+))?\s*$", re.I)


class _Refused(Exception):
    """A score was given but cannot be used (out of range, another scale)."""


def _score(value: Any, denominator: Any = None, criterion: str = "") -> int | None:
    """A 1-5 integer from 4, 4.0, "4", "4/5", {"score": 4}; None when there is no number; _Refused when wrong."""
    if isinstance(value, dict):
        inner = next((value[k] for k in ("score", "value", "rating") if k in value), None)
        return _score(inner, None, criterion)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        m = _NUMBER.match(value)
        if not m:
            return None
        value, denominator = float(m.group(1)), m.group(2)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if denominator is not None and int(denominator) != 5:
        raise _Refused(f"{criterion} was scored {value:g} out of {denominator}, not on the 1-5 scale")
    if not 1 <= value <= 5:
        raise _Refused(f"{criterion} {value:g} is outside 1-5")
    return math.floor(value + 0.5)  # 4.5 -> 5: judges that hedge with halves get rounded up


def _norm_key(key: Any) -> str:
    return re.sub(r"[^a-z]+", "_", str(key).lower()).strip("_")


def _json_objects(text: str) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    tries = 0
    i = text.find("{")
    while i != -1 and tries < _MAX_JSON_TRIES:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        i = text.find("{", end)
    return found


def _from_json(obj: dict[str, Any]) -> tuple[dict[str, int], str] | None:
    """Scores and rationale from one JSON object (one level of nesting, like {"scores": {...}}, is read)."""
    flat: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict) and _norm_key(key) not in _KEY_ALIASES:
            flat.update({_norm_key(k): v for k, v in value.items()})
        else:
            flat[_norm_key(key)] = value
    scores: dict[str, int] = {}
    for key, value in flat.items():
        criterion = _KEY_ALIASES.get(key)
        if criterion and criterion not in scores:
            score = _score(value, None, criterion)
            if score is not None:
                scores[criterion] = score
    if not scores:
        return None
    rationale = next((str(flat[k]) for k in _RATIONALE_KEYS if isinstance(flat.get(k), str)), "")
    return scores, rationale


def _from_prose(text: str) -> tuple[dict[str, int], str]:
    scores: dict[str, int] = {}
    for criterion, pattern in _PROSE.items():
        m = pattern.search(text)
        if m:
            score = _score(float(m.group(1)), m.group(2), criterion)
            if score is not None:
                scores[criterion] = score
    m = _PROSE_RATIONALE.search(text)
    return scores, (m.group(1).strip().strip('"') if m else "")


def parse_judgement(text: str) -> JudgeParse:
    """Scores from a judge's answer: JSON, fenced JSON, or "Accuracy: 4" prose. Never raises."""
    try:
        return _parse(text)
    except _Refused as refused:
        return JudgeParse("failed", error=f"The judge's scores cannot be used: {refused}.")
    except Exception as error:  # one odd answer must cost one row, never the run
        return JudgeParse("failed", error=f"The judge's answer could not be read ({type(error).__name__}).")


def _parse(text: str) -> JudgeParse:
    text = (text or "")[:_MAX_TEXT]
    if not text.strip():
        return JudgeParse("failed", error="The judge gave an empty answer.")
    found: tuple[dict[str, int], str] | None = None
    for obj in _json_objects(text):
        got = _from_json(obj)
        if got and (found is None or len(got[0]) > len(found[0])):
            found = got
        if found and len(found[0]) == len(CRITERIA):
            break
    if found is None or len(found[0]) < len(CRITERIA):
        prose = _from_prose(text)
        if found is None or len(prose[0]) > len(found[0]):
            found = prose
    scores, rationale = found
    missing = [c for c in CRITERIA if c not in scores]
    if missing:
        what = "no scores at all" if len(missing) == len(CRITERIA) else "no score for " + " and ".join(missing)
        return JudgeParse("failed", error=f"The judge's answer has {what} (it must give accuracy, tone and "
                                          "instruction_following from 1 to 5).")
    return JudgeParse("ok", scores["accuracy"], scores["tone"], scores["instruction_following"],
                      _clip(rationale, _RATIONALE_CHARS) if rationale else "")


# --- stored judgements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    id: int
    candidate_id: int
    judge: dict[str, Any]
    accuracy: int | None
    tone: int | None
    instruction_following: int | None
    overall: float | None
    rationale: str
    raw_output: str
    parse_status: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _judgement(r: Any) -> Judgement:
    return Judgement(r["id"], r["candidate_id"], json.loads(r["judge"] or "{}"), r["accuracy"], r["tone"],
                     r["instruction_following"], r["overall"], r["rationale"], r["raw_output"], r["parse_status"],
                     r["created_at"])


def latest_judgements(ws: Workspace, batch_id: int) -> dict[int, Judgement]:
    """candidate id -> its newest judgement (whichever judge made it), for the rows of a batch."""
    with ws.read() as conn:
        rows = conn.execute(
            "SELECT j.* FROM judgement j WHERE j.id IN (SELECT MAX(j2.id) FROM judgement j2 JOIN candidate c "
            "ON c.id = j2.candidate_id WHERE c.batch_id = ? GROUP BY j2.candidate_id) ORDER BY j.candidate_id",
            (batch_id,)).fetchall()
    return {r["candidate_id"]: _judgement(r) for r in rows}


def judge_identity(spec: TeacherSpec) -> dict[str, Any]:
    """What makes two judgements come from "the same judge": the teacher (not its speed settings) and the rubric."""
    described = describe_spec(spec)
    return {**{k: described.get(k, "") for k in _IDENTITY_KEYS if k != "rubric"}, "rubric": RUBRIC_VERSION}


def _same_judge(judge: dict[str, Any], identity: dict[str, Any]) -> bool:
    return all(judge.get(k, "") == v for k, v in identity.items())


def _latest_by_judge(ws: Workspace, batch_id: int, identity: dict[str, Any]) -> dict[int, Judgement]:
    """candidate id -> newest judgement by this judge."""
    with ws.read() as conn:
        rows = conn.execute("SELECT j.* FROM judgement j JOIN candidate c ON c.id = j.candidate_id "
                            "WHERE c.batch_id = ? ORDER BY j.id", (batch_id,)).fetchall()
    out: dict[int, Judgement] = {}
    for r in rows:
        j = _judgement(r)
        if _same_judge(j.judge, identity):
            out[j.candidate_id] = j
    return out


# --- judging a batch -----------------------------------------------------------------------------


@dataclass
class JudgeSummary:
    batch_id: int
    judge: dict[str, Any]
    rows: int
    """Rows in scope (usable; passing the filters when only_passing and the batch was filtered)."""
    judged: int
    """Judged by this call with usable scores."""
    failed: int
    """Judged by this call, but the answer could not be read (stored with parse_status 'failed')."""
    skipped: int
    """Already judged by the same judge (not sent again)."""
    mean_accuracy: float | None
    mean_tone: float | None
    mean_instruction_following: float | None
    mean_overall: float | None
    """Means over the newest usable judgement by this judge of every row in scope, this call's and earlier ones."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}

    @property
    def message(self) -> str:
        parts = [f"Judged {self.judged} row{'s' if self.judged != 1 else ''}"]
        if self.failed:
            parts.append(f"{self.failed} answer{'s' if self.failed != 1 else ''} could not be read")
        if self.skipped:
            parts.append(f"{self.skipped} already judged by this judge were skipped")
        text = "; ".join(parts) + "."
        if self.mean_overall is not None:
            text += f" Mean score {self.mean_overall:.2f} / 5."
        return text


ProgressFn = Callable[[int, int], None]
"""on_progress(done, total): rows judged so far in this call, rows this call will judge."""


def _scope(ws: Workspace, batch_id: int, only_passing: bool) -> list[Candidate]:
    from studio.augment.candidates import list_candidates

    rows = [c for c in list_candidates(ws, batch_id=batch_id) if c.data is not None]
    if only_passing:
        with ws.read() as conn:
            failing = {r[0] for r in conn.execute(
                "SELECT DISTINCT f.candidate_id FROM filter_result f JOIN candidate c ON c.id = f.candidate_id "
                "WHERE c.batch_id = ? AND f.passed = 0", (batch_id,))}
        rows = [c for c in rows if c.id not in failing]
    return rows


def _examples(candidate: Candidate, seeds: dict[int, Seed], how_many: int = 2) -> list[tuple[str, str]]:
    """The seeds the row grew from first (the style it should keep), then the project's first seeds."""
    from studio.data.formats import summary_text

    ids = [i for i in candidate.seed_ids if i in seeds] + [i for i in seeds if i not in candidate.seed_ids]
    return [summary_text(seeds[i].format, seeds[i].data) for i in ids[:how_many]]


def judge_batch(ws: Workspace, batch_id: int, spec: TeacherSpec, *, api_key: str | None = None,
                teacher: Teacher | None = None, only_passing: bool = True, limit: int | None = None,
                on_progress: ProgressFn | None = None, batch_size: int = 16, rejudge: bool = False,
                params: GenerationParams | None = None) -> JudgeSummary:
    """Score a batch's rows with the teacher `spec` describes (`teacher`, when given, is used as that teacher).

    Rows the same judge already scored are skipped unless `rejudge`; `limit` caps the rows sent this call.
    A TeacherError stops the run; the chunks judged before it stay saved.
    """
    from studio.augment.batches import get_batch
    from studio.workspace.projects import get_project
    from studio.workspace.seeds import list_seeds

    if not 1 <= batch_size <= 256:
        raise QualityError(f"The judge's chunk size must be between 1 and 256 rows (got {batch_size}).")
    if limit is not None and limit < 0:
        raise QualityError(f"The number of rows to judge cannot be negative (got {limit}).")
    batch = get_batch(ws, batch_id)
    rows = _scope(ws, batch_id, only_passing)
    if not rows:
        which = "passed the filters" if only_passing else "parsed"
        raise QualityError(f"Batch {batch_id} has no rows that {which}, so there is nothing to judge.")
    identity = judge_identity(spec)
    before = _latest_by_judge(ws, batch_id, identity)
    # A failed judgement (unreadable answer) is not a score: it is tried again.
    todo = rows if rejudge else [c for c in rows if not (c.id in before and before[c.id].parse_status == "ok")]
    skipped = len(rows) - len(todo)
    if limit is not None:
        todo = todo[:limit]
    record: dict[str, Any] = {**describe_spec(spec), "rubric": RUBRIC_VERSION}
    task = get_project(ws, batch.project_id).task_description
    seeds = {s.id: s for s in list_seeds(ws, batch.project_id)}
    gen = params or JUDGE_PARAMS
    judged = failed = 0
    if todo and teacher is None:
        from studio.teachers.spec import build_teacher

        teacher = build_teacher(ws, spec, api_key=api_key)
    for start in range(0, len(todo), batch_size):
        assert teacher is not None
        chunk = todo[start:start + batch_size]
        conversations = [judge_messages(task, *c.summary(), _examples(c, seeds)) for c in chunk]
        try:
            texts = teacher.generate(conversations, gen, schema=judge_schema(gen.max_new_tokens))
        except TeacherError as error:
            raise TeacherError(f"{error} The judge stopped after {judged + failed} of {len(todo)} rows; their "
                               "scores are saved, and running the judge again continues with the rest.") from error
        if start == 0:
            served = {k: v for k, v in teacher.describe().items() if isinstance(v, str | int | float | bool)}
            served.pop("base_url", None)  # the spec has the public URL already
            record["served"] = served
        parsed = [parse_judgement(t or "") for t in texts]
        now = utc_now()
        with ws.write() as conn:
            for c, text, p in zip(chunk, texts, parsed, strict=True):
                conn.execute(
                    "INSERT INTO judgement(candidate_id, judge, accuracy, tone, instruction_following, overall, "
                    "rationale, raw_output, parse_status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.id, json.dumps(record), p.accuracy, p.tone, p.instruction_following, p.overall,
                     p.rationale if p.status == "ok" else p.error, text or "", p.status, now))
        judged += sum(p.status == "ok" for p in parsed)
        failed += sum(p.status != "ok" for p in parsed)
        if on_progress:
            on_progress(judged + failed, len(todo))
    return _summary(ws, batch_id, rows, identity, record, judged, failed, skipped)


def _summary(ws: Workspace, batch_id: int, rows: list[Candidate], identity: dict[str, Any], record: dict[str, Any],
             judged: int, failed: int, skipped: int) -> JudgeSummary:
    latest = _latest_by_judge(ws, batch_id, identity)
    ok = [latest[c.id] for c in rows if c.id in latest and latest[c.id].parse_status == "ok"]

    def mean(values: list[float | int | None]) -> float | None:
        got = [v for v in values if v is not None]
        return round(sum(got) / len(got), 4) if got else None

    return JudgeSummary(batch_id, record, len(rows), judged, failed, skipped,
                        mean([j.accuracy for j in ok]), mean([j.tone for j in ok]),
                        mean([j.instruction_following for j in ok]), mean([j.overall for j in ok]))
