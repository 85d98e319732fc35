"""Blind A/B: pairs from the real SideBySide (tiny model + a real LoRA adapter), votes stored resolved to the model
behind A or B, the reveal, stable sides, the Wilson interval, persistence, and refusals that write nothing."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from studio.config import load_settings
from studio.data.chat import to_messages
from studio.data.versions import FreezeConfig, freeze_version, version_rows
from studio.errors import QualityError, TrainError
from studio.evaluation.ab import ABPair, ab_prompts, list_votes, make_pair, record_vote, vote_summary
from studio.evaluation.sidebyside import SideBySide
from studio.evaluation.votes import assign_sides
from studio.train import runs
from studio.train.settings import TrainConfig
from studio.workspace import Workspace
from tests.conftest import SHARED_SEEDS, snapshot
from tests.factories import project_with_seeds
from tests.test_sidebyside import _make_adapter

SETTINGS = {"max_new_tokens": 6, "temperature": 0.8, "seed": 3}
"""Sampling: the random tiny model's greedy reply is only whitespace, sampled text differs per side."""


@pytest.fixture
def run(ws: Workspace, tiny_chat_model: Path) -> runs.Run:
    """A run row (not trained) on the shared seeds: votes need a run; its answers come from `model`."""
    project_id = project_with_seeds(ws, SHARED_SEEDS)
    version = freeze_version(ws, project_id, FreezeConfig())
    return runs.create_run(ws, project_id, dataset_version_id=version.id, base_model_ref=str(tiny_chat_model),
                           config=TrainConfig(max_steps=2), device="cpu")


@pytest.fixture(scope="module")
def adapter(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("ab-adapter"))


RUN_ID = 1
"""Every test's fresh workspace gives its first run id 1: one loaded model serves the whole module."""


@pytest.fixture(scope="module")
def loaded(tiny_chat_model: Path, adapter: Path) -> SideBySide:
    return SideBySide(tiny_chat_model, {RUN_ID: adapter})


@pytest.fixture
def model(loaded: SideBySide, run: runs.Run) -> SideBySide:
    assert run.id == RUN_ID
    return loaded


def letter_for(pair: ABPair, wanted: str) -> str:
    """The letter a voter clicks to prefer `wanted` ('base' or 'tuned')."""
    return "A" if pair.shown_a == wanted else "B"


def vote_rows(ws: Workspace) -> list[dict]:
    conn = sqlite3.connect(ws.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM vote ORDER BY id")]
    finally:
        conn.close()


def test_pair_uses_identical_settings_and_stable_sides(ws: Workspace, run: runs.Run, model: SideBySide) -> None:
    prompts = ab_prompts(ws, run.id)[:6]
    pairs = [make_pair(model, run.id, p, base_model_ref="tiny", **SETTINGS) for p in prompts]
    for prompt, pair in zip(prompts[:2], pairs, strict=False):
        # Each side is exactly what SideBySide gives for that side with the same settings and seed.
        assert pair.base_answer == model.generate(prompt, which="base", **SETTINGS)
        assert pair.tuned_answer == model.generate(prompt, which=run.id, **SETTINGS)
    for prompt, pair in zip(prompts, pairs, strict=True):
        assert pair.settings == {**SETTINGS, "top_p": 1.0}
        shown = {"base": pair.base_answer, "tuned": pair.tuned_answer}
        assert pair.a_text == shown[pair.shown_a]
        assert pair.b_text == shown["tuned" if pair.shown_a == "base" else "base"]
        assert pair.shown_a == assign_sides(str(run.id), prompt)
    assert any(p.base_answer != p.tuned_answer for p in pairs)  # the adapter changes the answers
    # Both orders occur across prompts; asking again for a prompt shows the same sides (a reload is stable).
    assert {p.shown_a for p in pairs} == {"base", "tuned"}
    again = make_pair(model, run.id, prompts[0], base_model_ref="tiny", **SETTINGS)
    assert (again.shown_a, again.a_text, again.b_text) == (pairs[0].shown_a, pairs[0].a_text, pairs[0].b_text)


def test_vote_resolves_to_the_model_and_reveals(ws: Workspace, run: runs.Run, model: SideBySide) -> None:
    prompts = ab_prompts(ws, run.id)
    pair = make_pair(model, run.id, prompts[0], base_model_ref="tiny", **SETTINGS)
    other = "tuned" if pair.shown_a == "base" else "base"

    a = record_vote(ws, pair, " a ", voter="ana")
    b = record_vote(ws, pair, "B")
    tie = record_vote(ws, pair, "TIE")
    assert (a.pick, a.choice) == ("A", pair.shown_a)
    assert (b.pick, b.choice) == ("B", other)
    assert (tie.pick, tie.choice) == ("tie", "tie")

    names = {"tuned": f"the fine-tuned model (run {run.id})", "base": "the base model"}
    head = f"A was {names[pair.shown_a]}, B {names[other]}."
    assert a.reveal() == f"{head} You preferred A: {names[pair.shown_a]}."
    assert b.reveal() == f"{head} You preferred B: {names[other]}."
    assert tie.reveal() == f"{head} You called it a tie."

    stored = vote_rows(ws)
    assert [(r["pick"], r["choice"], r["shown_a"]) for r in stored] == [
        ("A", pair.shown_a, pair.shown_a), ("B", other, pair.shown_a), ("tie", "tie", pair.shown_a)]
    assert all(r["base_answer"] == pair.base_answer and r["tuned_answer"] == pair.tuned_answer for r in stored)
    assert stored[0]["voter"] == "ana" and stored[0]["prompt"] == prompts[0] and stored[0]["base_model_ref"] == "tiny"


def test_summary_is_a_wilson_interval_and_persists(ws: Workspace, run: runs.Run) -> None:
    prompts = ab_prompts(ws, run.id)[:10]
    wanted = ["tuned"] * 7 + ["base"] * 2 + ["tie"]
    for i, (prompt, want) in enumerate(zip(prompts, wanted, strict=True)):
        # Pairs built as make_pair builds them (its generation is checked above); the tally is the point here.
        shown_a = assign_sides(str(run.id), prompt)
        base, tuned = f"base answer {i}", f"tuned answer {i}"
        a, b = (base, tuned) if shown_a == "base" else (tuned, base)
        pair = ABPair(run.id, prompt, shown_a, a, b, base, tuned, "tiny", {})
        record_vote(ws, pair, "tie" if want == "tie" else letter_for(pair, want))

    # A fresh Workspace object (as another process would open it) reads the same votes back.
    again = Workspace(load_settings(ws.home))
    votes = list_votes(again, run.id)
    assert [v.choice for v in votes] == wanted and [v.prompt for v in votes] == prompts
    summary = vote_summary(again, run.id)
    assert (summary.tuned_wins, summary.base_wins, summary.ties, summary.n) == (7, 2, 1, 10)
    assert summary.win_rate == pytest.approx(7 / 9)
    # Wilson score interval over the 9 decisive votes, written out here independently of the code.
    z, p, n = 1.959963984540054, 7 / 9, 9
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert summary.low == pytest.approx(centre - half, abs=1e-6)
    assert summary.high == pytest.approx(centre + half, abs=1e-6)
    assert summary.low < 0.5 < summary.high and "Not enough evidence yet" in summary.message


def test_ab_prompts_are_the_user_turns_of_the_test_split(ws: Workspace, run: runs.Run) -> None:
    rows = version_rows(ws, run.dataset_version_id, "test")
    expected = list(dict.fromkeys(to_messages(r.format, r.data)[0]["content"] for r in rows))
    assert ab_prompts(ws, run.id) == expected and len(expected) == len(rows) > 0
    first = rows[0].data
    assert expected[0] == (first["instruction"] + (f"\n\n{first['input']}" if first["input"] else ""))
    assert len(ab_prompts(ws, run.id, "validation")) == len(version_rows(ws, run.dataset_version_id, "validation"))


def test_bad_votes_write_nothing(ws: Workspace, run: runs.Run, model: SideBySide) -> None:
    prompt = ab_prompts(ws, run.id)[0]
    pair = make_pair(model, run.id, prompt, base_model_ref="tiny", max_new_tokens=2)
    before = snapshot(ws)
    for pick in ("C", "", "both", None):
        with pytest.raises(QualityError, match="A vote is A, B or tie"):
            record_vote(ws, pair, pick)  # type: ignore[arg-type]
    flipped = ABPair(**{**pair.to_dict(), "shown_a": "tuned" if pair.shown_a == "base" else "base"})
    with pytest.raises(QualityError, match="do not match the sides"):
        record_vote(ws, flipped, "A")
    ghost = ABPair(**{**pair.to_dict(), "run_id": 999, "shown_a": assign_sides("999", prompt)})
    with pytest.raises(TrainError, match="no run #999"):
        record_vote(ws, ghost, "A")
    with pytest.raises(QualityError, match="at most 80 characters"):
        record_vote(ws, pair, "A", voter="x" * 81)
    with pytest.raises(QualityError, match="Type a prompt"):
        make_pair(model, run.id, "   ", base_model_ref="tiny")
    with pytest.raises(TrainError, match="no run #999"):
        list_votes(ws, 999)
    with pytest.raises(TrainError, match="no run #999"):
        ab_prompts(ws, 999)
    assert snapshot(ws) == before
    summary = vote_summary(ws, run.id)
    assert (summary.n, summary.win_rate, summary.message) == (0, 0.5, "No decisive votes yet.")
