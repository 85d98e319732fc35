"""The `prompt_echo` and `fidelity` filters on a real workspace with the real human-written seeds: rows that
echo the strategy prompts' wording, rewordings that drift from their seed (the embedded MiniLM), the
strategies neither applies to, and the stored marks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from studio.augment.candidates import list_candidates
from studio.augment.templates import default_template
from studio.data.formats import SeedFormat
from studio.errors import QualityError
from studio.quality.echo import WINDOW, default_phrases, find_echo, template_names, template_phrases
from studio.quality.filters import (
    FIDELITY_STRATEGIES,
    FILTER_NAMES,
    FILTERS,
    FilterConfig,
    FilterOutcome,
    FilterReport,
    apply_filters,
    passing_ids,
    row_text,
    run_filters,
    stored_report,
    stored_results,
    workspace_embed,
)
from studio.workspace import Workspace
from studio.workspace.seeds import Seed, list_seeds
from tests.factories import add_batch, project_with_seeds


@pytest.fixture
def pid(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds)


@pytest.fixture
def seeds(ws: Workspace, pid: int) -> list[Seed]:
    return list_seeds(ws, pid)


def only(*names: str, **settings: Any) -> FilterConfig:
    config = FilterConfig(**settings)
    config.enabled = {n: n in names for n in FILTER_NAMES}
    return config


def seed_with(seeds: list[Seed], instruction: str) -> Seed:
    return next(s for s in seeds if s.data["instruction"] == instruction)


def reworded(seed: Seed, instruction: str) -> dict[str, str]:
    """An expansion / refinement row: the seed with its request replaced (its answer still fits)."""
    return {**seed.data, "instruction": instruction}


def outcome(report: FilterReport, cid: int, name: str) -> FilterOutcome:
    return next(o for o in report.outcomes if o.candidate_id == cid and o.filter == name)


def never(texts: list[str]) -> Any:
    raise AssertionError(f"embedded {texts[:2]} although no row needs it")


# --- prompt_echo ------------------------------------------------------------------------------------------


def test_no_real_seed_echoes_the_prompt(shared_seeds: Path) -> None:
    rows = [json.loads(line) for line in shared_seeds.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 120
    # Some mention JSON ("import json", json.loads) or examples ("Here is an example:", "Example: He's the
    # black sheep"); none repeats a prompt's wording. Checked with nothing exempt.
    assert any("json" in json.dumps(r).lower() for r in rows) and any("example" in json.dumps(r).lower() for r in rows)
    for r in rows:
        data = {k: r[k] for k in ("instruction", "input", "output")}
        assert find_echo(row_text(SeedFormat.ALPACA, data)) is None, r["id"]


def test_template_phrases_come_from_the_shipped_templates() -> None:
    phrases = default_phrases()
    shipped = {"few_shot", "instruction_expansion", "instruction_refinement", "response_expansion"}
    assert shipped <= set(template_names())
    assert phrases == template_phrases(default_template(n) for n in template_names())
    assert len(phrases) > 40 and all(len(p) == WINDOW for p in phrases)
    # A Jinja tag ends a phrase (its value differs in every prompt), and so does a sentence.
    assert template_phrases(["one two three {{ seed.instruction }} four five six. Seven eight nine ten"]) == set()
    assert template_phrases(["Write {{ n }} new examples with the same logic, tone and structure."]) == {
        ("new", "examples", "with", "the", "same"), ("examples", "with", "the", "same", "logic"),
        ("with", "the", "same", "logic", "tone"), ("the", "same", "logic", "tone", "and"),
        ("same", "logic", "tone", "and", "structure")}


def test_echo_rows_fail_naming_the_phrase(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    s = seeds[:8]
    # A run of the instruction-expansion template's own words, whatever its current wording.
    template_words = sorted(template_phrases([default_template("instruction_expansion")]))[0]
    expansion = [reworded(s[0], f"Rewrite the request below in 3 different ways: {s[0].data['instruction']}"),
                 reworded(s[1], f"Request: {s[1].data['instruction']}"),
                 reworded(s[2], "Here are three examples that will help you improve your writing."),
                 reworded(s[3], "Answer with a JSON array of 3 strings and nothing else."),
                 reworded(s[4], " ".join(template_words).capitalize() + "."),
                 reworded(s[5], "Give me the laws that regulate rent increases in Oregon.")]  # no echo
    exp_id = add_batch(ws, pid, expansion, seed_ids=[[x.id] for x in s[:6]])
    response = add_batch(ws, pid, [{**s[6].data, "output": "Here is a possible response: " + s[6].data["output"]},
                                   {**s[7].data, "output": "The Reference answer says it all."}],
                         strategy="response-expansion", seed_ids=[[s[6].id], [s[7].id]])
    few_shot = add_batch(ws, pid, [{"instruction": "Example 4: Name a fruit that is yellow.", "input": "",
                                    "output": "A banana."},
                                   {"instruction": "Name a bird that cannot fly.", "input": "",
                                    "output": "The penguin. Here are 5 new examples:"}],
                         strategy="few-shot", seed_ids=[[x.id for x in s[:5]]] * 2)
    expected = {exp_id: ['"Rewrite the request', '"Request:"', '"Here are three examples"', '"Answer with a JSON array',
                         f'"{" ".join(template_words).capitalize()}', None],
                response: ['"Here is a possible response"', '"Reference answer"'],
                few_shot: ['"Example 4:"', '"Here are 5 new examples"']}
    for batch_id, reasons in expected.items():
        cands = list_candidates(ws, batch_id=batch_id)
        report = run_filters(cands, seeds, only("prompt_echo"), embed=never)
        for c, want in zip(cands, reasons, strict=True):
            o = outcome(report, c.id, "prompt_echo")
            if want is None:
                assert o.passed and o.reason == "" and o.score == 0.0
            else:
                assert not o.passed and o.score == 1.0 and o.reason.startswith(f"echoes the prompt: {want}"), o.reason


def test_an_edited_prompt_versions_wording_is_an_echo_for_its_own_batches(ws: Workspace, pid: int,
                                                                          seeds: list[Seed]) -> None:
    from studio.augment.prompt_versions import save_version
    from studio.quality.filters import apply_filters

    # A person edited the expansion prompt; its new sentence is in no shipped template.
    edited = save_version(ws, pid, "instruction-expansion", default_template("instruction_expansion") +
                          "\nWord every version as a cheerful shopkeeper greeting a regular customer.\n")
    echo = "Word every version as a cheerful shopkeeper would."
    assert find_echo(echo) is None  # the shipped templates' phrases alone miss it
    s = seeds[:2]
    rows = [reworded(s[0], echo), reworded(s[1], "Give me the laws that regulate rent increases in Oregon.")]
    with_version = add_batch(ws, pid, rows, seed_ids=[[x.id] for x in s])
    with ws.write() as conn:  # written with the edited prompt, as plan_batch records it
        conn.execute("UPDATE batch SET prompt_version_id = ? WHERE id = ?", (edited.id, with_version))
    report = apply_filters(ws, with_version, only("prompt_echo"))
    c = [x.id for x in list_candidates(ws, batch_id=with_version)]
    assert not outcome(report, c[0], "prompt_echo").passed and outcome(report, c[1], "prompt_echo").passed
    assert outcome(report, c[0], "prompt_echo").reason == 'echoes the prompt: "Word every version as a"'
    # Another batch, not written with that prompt: the same row is no echo of anything it was told.
    other = add_batch(ws, pid, rows, seed_ids=[[x.id] for x in s])
    assert apply_filters(ws, other, only("prompt_echo")).failed_by.get("prompt_echo", 0) == 0


def test_every_curated_pattern_has_a_trigger_word() -> None:
    from studio.quality.echo import _TRIGGER, ECHO_PATTERNS

    assert all(_TRIGGER.search(p) for p in ECHO_PATTERNS)  # else find_echo would skip it


def test_wording_the_seed_itself_has_is_not_an_echo(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    # The seed's own text is in the prompt: a row may keep it. Real seeds have none of the phrases, so a
    # seed that does is written here.
    seed_text = "Convert the list below into a JSON array. Request: keep the order."
    assert find_echo(seed_text) == "JSON array"
    assert find_echo("Turn this list into a JSON array, keeping the order.", exempt=[seed_text]) is None
    assert find_echo("Turn this into a JSON array. Request: keep it.", exempt=["a JSON array"]) == "Request:"
    assert find_echo("Turn this into a JSON array, please.", exempt=["JSON\narray"]) is None
    # Through the filter: the real seed "Rewrite the following sentence to be more professional." gives its
    # rewording "rewrite", which is not a prompt phrase; its row's own seeds are exempt, others' are not.
    seed = seed_with(seeds, "Rewrite the following sentence to be more professional.")
    batch_id = add_batch(ws, pid, [reworded(seed, "Rewrite the following sentence so it sounds professional.")],
                         seed_ids=[[seed.id]])
    report = run_filters(list_candidates(ws, batch_id=batch_id), seeds, only("prompt_echo"))
    assert report.passed_ids == [c.id for c in list_candidates(ws, batch_id=batch_id)]


# --- fidelity without the model ---------------------------------------------------------------------------


def test_fidelity_applies_to_rewordings_of_one_seed_only(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    junk = "Your code already contains the requested extra information."
    rows = {strategy: add_batch(ws, pid, [reworded(seeds[0], junk), reworded(seeds[1], junk)], strategy=strategy)
            for strategy in ("few-shot", "response-expansion", "nlpaug", "entity-swap")}
    for strategy, batch_id in rows.items():
        report = run_filters(list_candidates(ws, batch_id=batch_id), seeds, only("fidelity"), embed=never)
        assert report.passed_ids == [o.candidate_id for o in report.outcomes]
        for o in report.outcomes:
            assert o.passed and o.score is None
            assert o.reason == (f"not applicable to {strategy} rows: only rewordings of one seed's instruction are "
                                "checked")
    # A rewording whose seed is gone is not checked either; one without a strategy (a bare row) neither.
    gone = add_batch(ws, pid, [reworded(seeds[0], junk)], seed_ids=[[99_999]])
    report = run_filters(list_candidates(ws, batch_id=gone), seeds, only("fidelity"), embed=never)
    assert report.outcomes[0].passed and report.outcomes[0].reason == "not applicable: its seed #99999 is no longer " \
                                                                      "in the project"
    two = add_batch(ws, pid, [reworded(seeds[0], junk)], seed_ids=[[seeds[0].id, seeds[1].id]])
    report = run_filters(list_candidates(ws, batch_id=two), seeds, only("fidelity"), embed=never)
    assert report.outcomes[0].reason == "not applicable: the row names 2 seeds, not the one it rewords"
    bare = SimpleNamespace(id=1, format=SeedFormat.ALPACA, data=seeds[0].data, seed_ids=[seeds[0].id])
    assert run_filters([bare], seeds, only("fidelity")).outcomes[0].reason.startswith("not applicable to rows "
                                                                                     "without a strategy")
    # An expansion row needs the embedder; the other filters' callers without one get a plain error.
    expansion = add_batch(ws, pid, [reworded(seeds[0], junk)])
    with pytest.raises(ValueError, match=r"needs `embed`.*fidelity"):
        run_filters(list_candidates(ws, batch_id=expansion), seeds, only("fidelity"))
    assert set(FIDELITY_STRATEGIES) == {"instruction-expansion", "instruction-refinement"}


def test_fidelity_settings() -> None:
    assert FilterConfig().fidelity_threshold == 0.45
    assert [t.field for t in FILTERS["fidelity"].thresholds] == ["fidelity_threshold"]
    assert FilterConfig.from_dict({"fidelity_threshold": "0.6"}).fidelity_threshold == 0.6
    assert FilterConfig.from_dict(FilterConfig(fidelity_threshold=0.3).to_dict()).fidelity_threshold == 0.3
    for bad, message in ((1.5, "above 0 and at most 1; got 1.5"), (0, "above 0"), ("close", "must be a number")):
        with pytest.raises(QualityError, match=f"Fidelity threshold .*{message}"):
            FilterConfig(fidelity_threshold=bad).check()  # type: ignore[arg-type]


# --- fidelity with the embedded MiniLM ------------------------------------------------------------------


@pytest.mark.slow
def test_drifted_rewordings_fail_and_the_marks_are_stored(ws: Workspace, pid: int, seeds: list[Seed]) -> None:
    grocery = seed_with(seeds, "Make a grocery list for a healthy meal.")
    movie = seed_with(seeds, "Recommend a movie for me to watch during the weekend and explain the reason.")
    sort = seed_with(seeds, "Write a python function that sorts a list from large to small.")
    lyrics = seed_with(seeds, "Complete the lyrics.")
    expansion = add_batch(ws, pid, [
        reworded(grocery, "What should I buy at the store to cook a healthy dinner?"),  # faithful
        reworded(movie, "What film should I see this weekend, and why would I like it?"),  # faithful
        reworded(sort, "Your code already contains the requested extra information."),  # the embedded teacher
        reworded(lyrics, "The instructions will be in Spanish."),  # the embedded teacher
        reworded(grocery, movie.data["instruction"]),  # another seed's task
        reworded(movie, "Rewrite the request below in 3 different ways."),  # an echo that drifts as well
    ], seed_ids=[[grocery.id], [movie.id], [sort.id], [lyrics.id], [grocery.id], [movie.id]])
    refinement = add_batch(ws, pid, [
        reworded(sort, "Write a Python function that takes a list of numbers and returns it sorted from the "
                       "largest to the smallest."),
        reworded(lyrics, "Here are three examples that will help you improve your writing.")],
        strategy="instruction-refinement", seed_ids=[[sort.id], [lyrics.id]])
    # The two filters under test (near_duplicate and seed_overlap would mark some of these rows too: a
    # rewording keeps its seed's answer; one row takes another seed's instruction).
    config = only("prompt_echo", "fidelity")

    report = apply_filters(ws, expansion, config)
    c = [x.id for x in list_candidates(ws, batch_id=expansion)]
    fid = [outcome(report, cid, "fidelity") for cid in c]
    assert [o.passed for o in fid] == [True, True, False, False, False, False]
    assert all(o.score >= 0.6 and o.reason == "" for o in fid[:2])
    for o, seed in zip(fid[2:], (sort, lyrics, grocery, movie), strict=True):
        assert o.score < 0.45
        assert re.fullmatch(rf"drifted from seed #{seed.id} \(cosine -?0\.\d\d < 0\.45\): it no longer asks for the "
                            r"same thing", o.reason), o.reason
    assert report.first_failure[c[5]].filter == "prompt_echo"  # the more specific reason comes first
    assert report.failed_by["fidelity"] == 4 and passing_ids(ws, expansion) == c[:2]

    # The marks round-trip: stored outcomes are the report's, with the settings they were made with.
    stored = stored_results(ws, expansion)
    assert [o for cid in c for o in stored[cid]] == report.outcomes
    assert stored_report(ws, expansion).failed_by == report.failed_by
    with ws.read() as conn:
        params = json.loads(conn.execute("SELECT params FROM filter_result WHERE filter = 'fidelity' LIMIT 1")
                            .fetchone()[0])
    assert params["threshold"] == 0.45 and params["compares"] == "instruction"

    refined = apply_filters(ws, refinement, config)
    r = [x.id for x in list_candidates(ws, batch_id=refinement)]
    assert outcome(refined, r[0], "fidelity").passed
    assert not outcome(refined, r[1], "fidelity").passed and not outcome(refined, r[1], "prompt_echo").passed

    # The threshold decides: a strict one fails the faithful rewordings too (same vectors, no second load).
    strict = run_filters(list_candidates(ws, batch_id=expansion), seeds, only("fidelity", fidelity_threshold=0.95),
                         embed=workspace_embed(ws))
    assert not any(o.passed for o in strict.outcomes)
    assert [o.score for o in strict.outcomes] == pytest.approx([o.score for o in fid], abs=2e-3)
