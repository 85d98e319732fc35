"""Structured answers: JSON schemas per strategy, grammar-constrained local teachers, response_format on
endpoints (honoured and refused), and diversity plans, on the real human seeds.

The local tests run the embedded SmolLM2 itself (real weights, CPU): every teacher strategy and the judge
must give schema-valid answers on at least 95% of calls and fill their batch. Endpoint tests use
tests.scripted_llm over real HTTP; its "honour" mode checks each answer against the schema it was sent,
and its "reject" mode answers like `transformers serve` (whose own refusal is tested in
tests/test_teacher_endpoint.py).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from studio.augment import batches, schemas
from studio.augment.candidates import list_candidates
from studio.augment.plan import (
    DiversityPlan,
    PlanValue,
    list_plans,
    parse_attributes,
    parse_values,
    read_topic_file,
)
from studio.augment.strategies import StrategyOptions, get_strategy
from studio.errors import GenerationError
from studio.teachers.base import GenerationParams
from studio.teachers.grammar import schema_valid
from studio.teachers.local import LocalTeacher
from studio.teachers.spec import parse_teacher
from studio.workspace import Workspace
from tests.conftest import snapshot
from tests.scripted_llm import ScriptedLLM
from tests.test_generation import project_with_seeds

TEACHER_STRATEGIES = ["instruction-expansion", "instruction-refinement", "response-expansion", "few-shot"]


@pytest.fixture
def pid(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds)


def request(pid: int, strategy: str, count: int, teacher: Any = None, *, max_new_tokens: int = 256,
            **options: Any) -> batches.BatchRequest:
    return batches.BatchRequest(pid, strategy, count, teacher, None, StrategyOptions(**options),
                                GenerationParams(max_new_tokens=max_new_tokens, temperature=0.7), rng_seed=11)


# --- schemas -----------------------------------------------------------------------------------------


def test_schemas_fit_the_token_budget_and_validate() -> None:
    few = schemas.object_list(3, ["instruction", "input", "output"], 256, weights={"output": 2.0},
                              optional=("input",))
    props = few["items"]["properties"]
    assert few["minItems"] == few["maxItems"] == 3 and few["items"]["required"] == ["instruction", "input", "output"]
    assert abs(props["output"]["maxLength"] - 2 * props["instruction"]["maxLength"]) <= 1  # by weight
    # Three items of full-length strings fit in the characters 256 tokens hold (2.5 a token, conservatively).
    assert 3 * sum(p["maxLength"] for p in props.values()) <= 256 * schemas.CHARS_PER_TOKEN
    assert props["input"]["minLength"] == 0 and props["instruction"]["minLength"] == 1
    item = {"instruction": "Name a fruit.", "input": "", "output": "An apple."}
    assert schema_valid(few, json.dumps([item] * 3)) and not schema_valid(few, json.dumps([item] * 2))
    assert not schema_valid(few, json.dumps([{**item, "output": "x" * 500}] * 3))
    assert not schema_valid(few, "Here you go: " + json.dumps([item] * 3))
    labels = schemas.object_list(2, ["text", "label"], 128, enums={"label": ["pos", "neg"]})
    assert schema_valid(labels, '[{"text":"great","label":"pos"},{"text":"bad","label":"neg"}]')
    assert not schema_valid(labels, '[{"text":"great","label":"happy"},{"text":"bad","label":"neg"}]')
    judge = schemas.scores(["accuracy", "tone"], 1, 5, "rationale", 128)
    assert schema_valid(judge, '{"accuracy":4,"tone":5,"rationale":"Fine."}')
    assert not schema_valid(judge, '{"accuracy":7,"tone":5,"rationale":"Fine."}')


def test_plan_draws_open_each_item_and_the_grammar_keeps_them() -> None:
    from studio.teachers.grammar import closing_reserve

    draws = [{"topic": "gardening", "difficulty": "hard"}, {"topic": "tax forms", "difficulty": "easy"},
             {"topic": "music", "output": "clashes with a field, so it is not forced"}]
    fields = ["instruction", "input", "output"]
    plain = schemas.object_list(3, fields, 256, optional=("input",))
    planned = schemas.object_list(3, fields, 256, optional=("input",), leading=draws)
    assert planned["items"] is False and len(planned["prefixItems"]) == 3
    first, _, third = planned["prefixItems"]
    assert list(first["properties"])[:3] == ["topic", "difficulty", "instruction"]
    assert first["properties"]["topic"] == {"type": "string", "enum": ["gardening"]}
    assert first["required"] == ["topic", "difficulty", *fields]
    assert list(third["properties"]) == ["topic", *fields]  # the seed format's own field wins
    # The forced keys come out of the strings' share of the budget, and the reserve still counts every string.
    assert first["properties"]["output"]["maxLength"] < plain["items"]["properties"]["output"]["maxLength"]
    assert closing_reserve(planned) >= closing_reserve(plain)
    item = {"instruction": "Name a plant.", "input": "", "output": "A fern."}
    good = [{"topic": "gardening", "difficulty": "hard", **item}, {"topic": "tax forms", "difficulty": "easy", **item},
            {"topic": "music", **item}]
    assert schema_valid(planned, json.dumps(good))
    swapped = [good[1], good[0], good[2]]  # each item must carry its own draw
    assert not schema_valid(planned, json.dumps(swapped))
    assert not schema_valid(planned, json.dumps([item] * 3))
    # A few-shot unit with a plan starts its items with the draws; without one it is the plain list.
    short = _alpaca("Name a fruit.", "An apple.")
    few = get_strategy("few-shot").answer_schema([short, short], StrategyOptions(n=2), 256, draws[:2])
    assert [p["properties"]["topic"]["enum"] for p in few["prefixItems"]] == [["gardening"], ["tax forms"]]
    assert "prefixItems" not in get_strategy("few-shot").answer_schema([short, short], StrategyOptions(n=2), 256)


def _alpaca(instruction: str, output: str) -> Any:
    from studio.augment.strategies import Example
    from studio.data.formats import SeedFormat

    return Example(1, SeedFormat.ALPACA, {"instruction": instruction, "input": "", "output": output})


# --- endpoint: response_format honoured, refused --------------------------------------------------------


def test_endpoint_sends_the_schema_and_a_honouring_server_answers_under_it(ws: Workspace, pid: int) -> None:
    with ScriptedLLM(response_format="honour") as llm:
        for strategy in TEACHER_STRATEGIES:
            b = batches.run_batch(ws, batches.plan_batch(ws, request(pid, strategy, 4, parse_teacher(
                llm.url, model=llm.model), n=2, styles=["formal", "casual"])).id)
            assert b.state == "done" and b.rows_ok == 4, (strategy, b.job.message)
            assert b.teacher["served"]["structured"] == "response_format"
            rows = list_candidates(ws, batch_id=b.id)
            assert all(c.meta["structured"] == "response_format" and c.parse_status == "ok" for c in rows)
        sent = [f for f in llm.formats if f]
        assert len(sent) == llm.requests  # every request carried it
        assert all(f["type"] == "json_schema" and f["json_schema"]["schema"]["type"] in ("array", "object")
                   for f in sent)
        # With a plan, each item the server writes starts with the row's own draw (the server checks the
        # answer against the schema it was sent: a wrong or missing topic would be an HTTP 500).
        req = request(pid, "few-shot", 4, parse_teacher(llm.url, model=llm.model), n=2)
        req.plan = DiversityPlan([PlanValue("tax forms"), PlanValue("garden ponds"), PlanValue("bird song")])
        b = batches.run_batch(ws, batches.plan_batch(ws, req).id)
        assert b.state == "done" and b.rows_ok == 4, b.job.message
        for c in list_candidates(ws, batch_id=b.id):
            items = json.loads(c.raw_output)
            assert items[c.meta["item"]]["topic"] == c.meta["plan"]["topic"]


def test_endpoint_that_refuses_response_format_falls_back_to_the_prompt(ws: Workspace, pid: int) -> None:
    with ScriptedLLM(response_format="reject") as llm:
        spec = parse_teacher(llm.url, model=llm.model, concurrency=2)
        b = batches.run_batch(ws, batches.plan_batch(ws, request(pid, "few-shot", 6, spec, n=2)).id)
        assert b.state == "done" and b.rows_ok == 6
        served = b.teacher["served"]
        assert served["structured"] == "prompt" and served["response_format_refused"].startswith("HTTP 400")
        assert "not supported" in served["response_format_refused"]
        assert all(c.meta["structured"] == "prompt" for c in list_candidates(ws, batch_id=b.id))
        # Refused once per request in flight at the start, then never sent again.
        assert sum(1 for f in llm.formats if f) <= 2 and llm.formats[-1] is None


# --- diversity plans -------------------------------------------------------------------------------------


def test_plan_text_parsing_and_weighted_draws(tmp_path: Path) -> None:
    topics = parse_values("- late delivery\nlost parcel | 3\n\nLost parcel\n# a comment\n")
    assert topics == [PlanValue("late delivery"), PlanValue("lost parcel", 3.0)]
    attrs = parse_attributes("tone: polite, angry | 0.5\nPersona: a student")
    assert attrs == {"tone": [PlanValue("polite"), PlanValue("angry", 0.5)], "persona": [PlanValue("a student")]}
    for bad, words in [("refunds | lots", "weight"), ("refunds | 0", "above 0")]:
        with pytest.raises(GenerationError, match=words):
            parse_values(bad)
    for bad, words in [("no colon here", "name: value"), ("topic: a, b", "topics have their own box")]:
        with pytest.raises(GenerationError, match=words):
            parse_attributes(bad)
    csv = tmp_path / "topics.csv"
    csv.write_text("topic,weight\nrefunds,2\nlate delivery,\n", encoding="utf-8")
    assert read_topic_file(csv) == [PlanValue("refunds", 2.0), PlanValue("late delivery")]
    jsonl = tmp_path / "topics.jsonl"
    jsonl.write_text('"returns"\n{"topic": "billing", "weight": 4}\n', encoding="utf-8")
    assert read_topic_file(jsonl) == [PlanValue("returns"), PlanValue("billing", 4.0)]

    plan = DiversityPlan(topics, attrs)
    assert plan.sample(5, 3) == plan.sample(5, 3)  # a resumed unit draws the same values
    draws = Counter(plan.sample(5, i)["topic"] for i in range(2000))
    assert 2.5 < draws["lost parcel"] / draws["late delivery"] < 3.5
    # The rows of one call get different topics while there are enough, then a new round.
    assert sorted(d["topic"] for d in plan.sample_items(5, 0, 2)) == ["late delivery", "lost parcel"]
    assert Counter(d["topic"] for d in plan.sample_items(5, 0, 4)) == {"late delivery": 2, "lost parcel": 2}


def test_a_plan_reaches_the_prompt_the_rows_and_the_batch(ws: Workspace, pid: int) -> None:
    plan = DiversityPlan([PlanValue("tax forms"), PlanValue("garden ponds", 2)],
                         {"difficulty": [PlanValue("easy"), PlanValue("hard")]})
    with ScriptedLLM() as llm:
        spec = parse_teacher(llm.url, model=llm.model)
        req = request(pid, "few-shot", 6, spec, n=2)
        req.plan = plan
        b = batches.run_batch(ws, batches.plan_batch(ws, req).id)
        prompts = [m[-1]["content"] for m in llm.prompts]
    assert b.params["plan"] == plan.to_dict() and b.params["plan_version"] == 1
    assert [v.version for v in list_plans(ws, pid)] == [1]
    rows = list_candidates(ws, batch_id=b.id)
    assert rows and all(set(c.meta["plan"]) == {"topic", "difficulty"} for c in rows)
    for c in rows:  # each row's recorded draw is what its prompt asked for
        asked = [p for p in prompts if f"topic: {c.meta['plan']['topic']}; difficulty: {c.meta['plan']['difficulty']}"
                 in p]
        assert asked
    # The same plan again is the same version; a plan on a strategy that keeps the seed's meaning is refused,
    # and a preview writes no plan version.
    req.plan = DiversityPlan.from_dict(plan.to_dict())
    assert batches.plan_batch(ws, req).params["plan_version"] == 1
    before = snapshot(ws)
    bad = request(pid, "instruction-refinement", 2, spec)
    bad.plan = plan
    with pytest.raises(GenerationError, match="does not apply"):
        batches.plan_batch(ws, bad)
    assert snapshot(ws) == before


# --- the embedded SmolLM2, constrained ---------------------------------------------------------------------


class Recording:
    """The real LocalTeacher; records each answer with the schema it was asked for."""

    def __init__(self, inner: LocalTeacher) -> None:
        self.inner = inner
        self.calls: list[tuple[dict[str, Any] | None, str]] = []

    def generate(self, conversations: list[Any], params: GenerationParams, *, schema: Any = None) -> list[str]:
        texts = self.inner.generate(conversations, params, schema=schema)
        self.calls.extend((schema[i] if isinstance(schema, list) else schema, t) for i, t in enumerate(texts))
        return texts

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


@pytest.mark.slow
def test_embedded_teacher_gives_valid_answers_for_every_strategy_and_the_judge(
        ws: Workspace, pid: int, converted_chat_model: Path) -> None:
    from studio.quality.judge import judge_batch

    # The session's converted copy of the embedded model, by folder (converting again per test costs 20 s).
    spec = parse_teacher(str(converted_chat_model), batch_size=4)
    teacher = Recording(LocalTeacher(str(converted_chat_model), ws.models_dir, batch_size=4))
    # Small batches (one or two teacher calls each): the suite's time is precious, and a call's validity does
    # not depend on how many others there are. Sampling is seeded, so the run is the same every time.
    cases = {"few-shot": dict(n=2, k=3), "instruction-expansion": dict(n=2), "instruction-refinement": {},
             "response-expansion": dict(styles=["formal", "casual"])}
    last = None
    for strategy, options in cases.items():
        before = len(teacher.calls)
        req = request(pid, strategy, 2, spec, max_new_tokens=160, **options)
        if strategy == "few-shot":  # with a plan: the grammar writes each item's draw first
            req.plan = DiversityPlan([PlanValue("gardening"), PlanValue("tax forms"), PlanValue("bird song")])
        b = batches.run_batch(ws, batches.plan_batch(ws, req).id, teacher=teacher)
        calls = teacher.calls[before:]
        valid = sum(schema_valid(s, t) for s, t in calls if s is not None)
        assert calls and all(s is not None for s, _ in calls)
        assert valid >= 0.95 * len(calls), (strategy, [t for s, t in calls if not schema_valid(s, t)])
        assert b.state == "done" and b.rows_ok >= 2, (strategy, b.job.message)
        assert b.teacher["served"]["structured"] == "grammar"
        if req.plan is not None:
            rows = [c for c in list_candidates(ws, batch_id=b.id) if c.data is not None]
            assert rows and all(json.loads(c.raw_output)[c.meta["item"]]["topic"] == c.meta["plan"]["topic"]
                                for c in rows)
        last = b
    before = len(teacher.calls)
    summary = judge_batch(ws, last.id, spec, teacher=teacher, only_passing=False, limit=2,
                          params=GenerationParams(max_new_tokens=96, temperature=0.0))
    calls = teacher.calls[before:]
    assert summary.judged == len(calls) == 2 and all(schema_valid(s, t) for s, t in calls)
    # The closing bias only lifts tokens that close a string: a biased brace or bracket would be text there.
    from transformers import AutoTokenizer

    from studio.teachers.grammar import closer_ids

    tokenizer = AutoTokenizer.from_pretrained(str(converted_chat_model))
    closers = [tokenizer.decode([i]) for i in closer_ids(tokenizer) if i != tokenizer.eos_token_id]
    assert closers and all(t.strip().startswith('"') for t in closers), closers


def test_strategy_schemas_follow_the_seeds_they_show() -> None:
    from studio.augment.strategies import Example
    from studio.data.formats import SeedFormat

    short = Example(1, SeedFormat.ALPACA, {"instruction": "Name a fruit.", "input": "", "output": "An apple."})
    expansion = get_strategy("instruction-expansion").answer_schema([short], StrategyOptions(n=3), 512)
    assert expansion["items"]["maxLength"] == 80  # a rewording of a short request stays short (80: a cap step)
    few = get_strategy("few-shot").answer_schema([short, short], StrategyOptions(n=2), 512)
    assert few["items"]["properties"]["output"]["maxLength"] == 60
    labels = [Example(i, SeedFormat.CLASSIFICATION, {"text": t, "label": lab})
              for i, (t, lab) in enumerate([("great", "pos"), ("awful", "neg")])]
    few = get_strategy("few-shot").answer_schema(labels, StrategyOptions(n=2), 128)
    assert few["items"]["properties"]["label"] == {"type": "string", "enum": ["neg", "pos"]}
    styles = get_strategy("response-expansion").answer_schema([short], StrategyOptions(styles=["formal", "casual"]),
                                                              256)
    assert styles["required"] == ["formal", "casual"] and not styles["additionalProperties"]
