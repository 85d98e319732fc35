"""Preference pairs from reviews, edits, blind A/B votes and (when allowed) judge scores; frozen with a version.

A real workspace: the real seeds, a batch written as generation writes it, verdicts through the review API, votes
through the A/B API (the answers written in, as no model runs here), then freezing, export and the card.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.data.export import export_version, preference_records
from studio.data.preferences import PreferenceConfig, build_pairs, preference_pairs
from studio.data.versions import FreezeConfig, freeze_version, plan_version, version_rows
from studio.errors import DatasetVersionError
from studio.evaluation.ab import ABPair, record_vote
from studio.evaluation.votes import assign_sides
from studio.review.verdicts import record_verdict
from studio.workspace import Workspace
from tests.factories import add_batch, finished_run, project_with_seeds


def _row(q: str, a: str) -> dict[str, str]:
    return {"instruction": q, "input": "", "output": a}


def _user(q: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}]


def _reviewed_batch(ws: Workspace, pid: int, seed_ids: list[int] | None = None) -> list[int]:
    rows = [_row("Q1", "A good"), _row("Q1", "A bad"), _row("Q1", "A so-so"), _row("Q2", "B1"), _row("Q2", "B2"),
            _row("Q3", "C1"), _row("Q1", "A unread")]
    batch = add_batch(ws, pid, rows, strategy="response-pairs",
                      seed_ids=[seed_ids] * len(rows) if seed_ids else None)
    with ws.read() as conn:
        ids = [r["id"] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=? ORDER BY id", (batch,))]
    record_verdict(ws, ids[0], verdict="accept", reviewer="ann")
    record_verdict(ws, ids[1], verdict="accept", reviewer="ann")
    record_verdict(ws, ids[1], verdict="reject", reviewer="bo", reason_tags=["off-task"])  # any reject wins
    record_verdict(ws, ids[2], verdict="edit", reviewer="bo", edited_data=_row("Q1", "A better"))
    record_verdict(ws, ids[3], verdict="accept", reviewer="ann")
    record_verdict(ws, ids[5], verdict="edit", reviewer="ann", edited_data=_row("Q3 reworded", "C1"))
    # The judge scored Q2's answers 5 and 1, and Q1's kept and rejected answers the other way round.
    with ws.write() as conn:
        for cid, score in ((ids[3], 5.0), (ids[4], 1.0), (ids[0], 2.0), (ids[1], 4.5)):
            conn.execute("INSERT INTO judgement(candidate_id, overall, created_at) VALUES (?, ?, '2026-12-07')",
                         (cid, score))
    return ids


def _vote(ws: Workspace, run_id: int, prompt: str, base: str, tuned: str, pick_model: str) -> None:
    shown_a = assign_sides(f"{run_id}", prompt)
    a, b = (base, tuned) if shown_a == "base" else (tuned, base)
    pair = ABPair(run_id, prompt, shown_a, a, b, base, tuned, "base-model")
    side = "tie" if pick_model == "tie" else ("A" if pick_model == shown_a else "B")
    record_vote(ws, pair, side, voter="cy")


def _triples(pairs) -> list[tuple[str, str, str, str]]:
    return sorted((p.source, p.prompt[-1]["content"], p.chosen, p.rejected) for p in pairs)


def test_pairs_from_a_reviewed_batch_are_exactly_kept_vs_rejected_and_edit_vs_original(
        ws: Workspace, shared_seeds: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    ids = _reviewed_batch(ws, pid)
    preview = build_pairs(ws, pid)
    assert _triples(preview.pairs) == [
        ("edit", "Q1", "A better", "A so-so"),
        ("review", "Q1", "A better", "A bad"),  # the edited text is the kept answer
        ("review", "Q1", "A good", "A bad"),
    ]
    assert preview.by_source == {"review": 2, "edit": 1, "vote": 0, "judge": 0}
    assert preview.dropped == {"prompt_edited": 1}  # Q3's edit rewrote the question
    review = next(p for p in preview.pairs if p.source == "review" and p.chosen == "A good")
    assert review.provenance["chosen_candidate_id"] == ids[0] and review.provenance["rejected_candidate_id"] == ids[1]
    assert review.provenance["reviewers"] == ["ann", "bo"]
    assert review.prompt == _user("Q1") and not review.machine

    # Machine pairs only when asked: Q2's 5 vs 1. Q1's judge scores favour the rejected answer: a person said no,
    # so that answer is never chosen; A good (2) vs A bad (4.5) is the human pair already.
    with pytest.raises(DatasetVersionError, match="machine_pairs"):
        build_pairs(ws, pid, PreferenceConfig(sources=["judge"]))
    machine = build_pairs(ws, pid, PreferenceConfig(machine_pairs=True))
    judge = [p for p in machine.pairs if p.source == "judge"]
    assert _triples(judge) == [("judge", "Q2", "B1", "B2")]
    assert judge[0].machine and judge[0].provenance["chosen_score"] == 5.0
    assert machine.dropped.get("duplicate", 0) == 0


def test_pairs_from_blind_votes_winner_over_loser_and_no_pair_for_a_tie(ws: Workspace, shared_seeds: Path,
                                                                       tiny_chat_model: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    version = freeze_version(ws, pid, FreezeConfig(name="v1"))
    run_id = finished_run(ws, pid, version.id, str(tiny_chat_model))
    _vote(ws, run_id, "Name a fruit.", "A car.", "An apple.", "tuned")
    _vote(ws, run_id, "Name a colour.", "Blue.", "Sky.", "base")
    _vote(ws, run_id, "Name a day.", "Monday.", "Tuesday.", "tie")
    preview = build_pairs(ws, pid, PreferenceConfig(sources=["vote"]))
    assert _triples(preview.pairs) == [("vote", "Name a colour.", "Blue.", "Sky."),
                                       ("vote", "Name a fruit.", "An apple.", "A car.")]
    fruit = next(p for p in preview.pairs if p.chosen == "An apple.")
    assert fruit.provenance["winner"] == "tuned" and fruit.provenance["voter"] == "cy"


def test_freezing_holds_out_prompts_and_seeds_of_validation_and_test_and_exports_the_pairs(
        ws: Workspace, shared_seeds: Path, tmp_path: Path) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    first = freeze_version(ws, pid, FreezeConfig(name="seeds only"))
    train_seed = next(r.source_id for r in version_rows(ws, first.id, "train") if r.origin == "seed")
    test_seed = next(r.source_id for r in version_rows(ws, first.id, "test") if r.origin == "seed")
    _reviewed_batch(ws, pid, seed_ids=[train_seed])
    # A second batch from a test seed: its pair would teach the model about a prompt it is tested on.
    leaked = add_batch(ws, pid, [_row("Q9", "good"), _row("Q9", "bad")], strategy="response-pairs",
                       seed_ids=[[test_seed], [test_seed]])
    with ws.read() as conn:
        a, b = [r["id"] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=? ORDER BY id", (leaked,))]
    record_verdict(ws, a, verdict="accept", reviewer="ann")
    record_verdict(ws, b, verdict="reject", reviewer="ann", reason_tags=["other"])

    cfg = FreezeConfig(name="with pairs", preferences=PreferenceConfig(machine_pairs=True, validation_fraction=0.5))
    plan = plan_version(ws, pid, cfg)
    assert plan.preferences is not None and plan.preferences["dropped"]["held_out"] == 1
    assert "preference pairs: " in plan.summary()
    version = freeze_version(ws, pid, cfg)
    prefs = version.stats["preferences"]
    assert prefs["sizes"]["train"] + prefs["sizes"]["validation"] == 4  # 3 human + 1 judge pair; Q9 held out
    assert prefs["by_source"] == {"review": 2, "edit": 1, "vote": 0, "judge": 1} and prefs["machine"] == 1
    train, held = preference_pairs(ws, version.id, "train"), preference_pairs(ws, version.id, "validation")
    assert held and train  # two prompts, one on each side
    sides = [{p["prompt"][-1]["content"] for p in split} for split in (train, held)]
    assert not sides[0] & sides[1]  # all pairs of one prompt on the same side
    assert all(p["chosen"][0]["role"] == "assistant" for p in train + held)
    # The same config and seeds give the same pairs in the same places.
    again = freeze_version(ws, pid, FreezeConfig.from_dict({**cfg.to_dict(), "name": "again"}))
    assert preference_pairs(ws, again.id) == preference_pairs(ws, version.id)
    with ws.write() as conn, pytest.raises(Exception, match="frozen"):
        conn.execute("UPDATE preference_pair SET chosen='x' WHERE version_id=?", (version.id,))

    result = export_version(ws, version.id, file_format="jsonl", out_dir=tmp_path)
    exported = [json.loads(line) for line in result.files["preferences-train"].read_text().splitlines()]
    assert [e["chosen"] for e in exported] == [p["chosen"] for p in train]
    assert preference_records(ws, version.id)["validation"][0]["source"] in ("review", "edit", "judge")
    card = result.card_path.read_text()
    assert "## Preference pairs" in card and "config_name: preferences" in card
    assert "1 pairs are machine pairs" in card and "judge scores (machine pair)" in card


def test_the_cli_previews_and_freezes_pairs(ws: Workspace, shared_seeds: Path) -> None:
    from tests.test_cli import run

    pid = project_with_seeds(ws, shared_seeds, name="cli pairs")
    _reviewed_batch(ws, pid)
    preview = json.loads(run(ws.home, "dataset", "pairs", "--json", "--project", "cli pairs").stdout)
    assert preview["by_source"] == {"review": 2, "edit": 1, "vote": 0, "judge": 0}
    assert preview["pairs"][0]["chosen"][0]["role"] == "assistant"
    text = run(ws.home, "dataset", "pairs", "--machine-pairs", "--project", "cli pairs").stdout
    assert "4 preference pairs" in text and "judge scores (machine pair)" in text
    out = run(ws.home, "dataset", "freeze", "--preferences", "--name", "prefs", "--project", "cli pairs").stdout
    assert "preference pairs: " in out
    bad = run(ws.home, "dataset", "freeze", "--preferences", "--pairs-held-out", "0.9", "--project", "cli pairs",
              ok=False)
    assert bad.returncode != 0 and "validation_fraction must be a number from 0 to 0.5" in bad.stderr
