"""Frozen dataset versions from the real shared seeds and crafted synthetic rows: split sizes, the leakage rule,
the synthetic cap, the general mix, refusals that change nothing, and versions that never change."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from studio.data.card import dataset_card
from studio.data.importer import commit_import, preview_file
from studio.data.versions import (
    FreezeConfig,
    freeze_version,
    get_version,
    list_versions,
    plan_version,
    version_rows,
)
from studio.errors import DatasetVersionError
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from studio.workspace.seeds import delete_seeds, list_seeds, update_seed
from studio.workspace.store import utc_now
from tests.conftest import snapshot
from tests.factories import add_batch, project_with_seeds

# --- builders shared with test_export -------------------------------------------------------------


def variants(ws: Workspace, project_id: int, per_seed: int = 1) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """One new alpaca row per seed (per_seed times), each derived from that seed alone."""
    rows, sources = [], []
    for k in range(per_seed):
        for s in list_seeds(ws, project_id):
            rows.append({**s.data, "instruction": f"{s.data['instruction']} (variant {k + 1})"})
            sources.append([s.id])
    return rows, sources


def select_batch(ws: Workspace, project_id: int, rows: list[dict[str, Any] | None], *,
                 seed_ids: list[list[int]] | None = None, metas: list[dict[str, Any]] | None = None,
                 fmt: str = "alpaca", strategy: str = "instruction-expansion",
                 gate: tuple[str, int, int, float, float, float] | None = ("pass", 40, 2, 0.05, 0.0138, 0.1651)) -> int:
    """A batch whose usable rows passed the review gate: selection rows, a gate_decision, status 'selected'."""
    batch_id = add_batch(ws, project_id, rows, seed_ids=seed_ids, metas=metas, fmt=fmt, strategy=strategy)
    now = utc_now()
    with ws.write() as conn:
        for c in conn.execute("SELECT id, data FROM candidate WHERE batch_id = ? AND data IS NOT NULL ORDER BY id",
                              (batch_id,)).fetchall():
            conn.execute("INSERT INTO selection(batch_id, candidate_id, data, reason, created_at) "
                         "VALUES (?, ?, ?, 'passed the gate', ?)", (batch_id, c["id"], c["data"], now))
        if gate is not None:
            decision, reviewed, errors, rate, low, high = gate
            conn.execute("INSERT INTO gate_decision(batch_id, decision, reviewed, errors, rate, low, high, threshold, "
                         "confidence, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0.2, 0.95, ?)",
                         (batch_id, decision, reviewed, errors, rate, low, high, now))
        conn.execute("UPDATE batch SET status = 'selected' WHERE id = ?", (batch_id,))
    return batch_id


def candidate_ids(ws: Workspace, batch_id: int) -> list[int]:
    with ws.read() as conn:
        return [r[0] for r in conn.execute("SELECT id FROM candidate WHERE batch_id = ? ORDER BY id", (batch_id,))]


def split_seed_ids(ws: Workspace, version_id: int) -> dict[str, set[int]]:
    return {s: {r.source_id for r in version_rows(ws, version_id, s) if r.origin == "seed"}
            for s in ("train", "validation", "test")}


def lineage(ws: Workspace, candidate_id: int) -> set[int]:
    """Seed ids a candidate derives from, following example_candidate_ids (written independently of the code)."""
    with ws.read() as conn:
        r = conn.execute("SELECT seed_ids, meta FROM candidate WHERE id = ?", (candidate_id,)).fetchone()
    out = set(json.loads(r["seed_ids"]))
    for ex in json.loads(r["meta"]).get("example_candidate_ids", []):
        out |= lineage(ws, ex)
    return out


def rows_of(ws: Workspace, version_id: int) -> list[tuple]:
    return [(r.split, r.position, r.origin, r.source_id, str(r.format), json.dumps(r.data, sort_keys=True))
            for r in version_rows(ws, version_id)]


@pytest.fixture
def project(ws: Workspace, shared_seeds: Path) -> int:
    return project_with_seeds(ws, shared_seeds, name="Self-Instruct", task="Follow instructions helpfully.")


def small_project(ws: Workspace, shared_seeds: Path, tmp_path: Path, n: int, name: str = "small") -> int:
    path = tmp_path / f"seeds-{n}.jsonl"
    path.write_text("".join(shared_seeds.read_text().splitlines(keepends=True)[:n]))
    p = create_project(ws, name)
    commit_import(ws, p.id, preview_file(ws, path, project_id=p.id))
    return p.id


def general_file(tmp_path: Path, n: int = 60, name: str = "general.jsonl") -> Path:
    path = tmp_path / name
    with path.open("w") as f:
        for i in range(n):
            msgs = [{"role": "user", "content": f"General question number {i}: what is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]
            if i % 5 == 0:
                msgs.insert(0, {"role": "system", "content": "You are a careful assistant."})
            f.write(json.dumps({"messages": msgs}) + "\n")
    return path


# --- splits -----------------------------------------------------------------------------------------


def test_split_sizes_names_and_counts(ws, project) -> None:
    plan = plan_version(ws, project)
    assert plan.name == "v1" and plan.family == "chat"
    assert plan.seeds == {"total": 120, "train": 84, "validation": 18, "test": 18}
    v1 = freeze_version(ws, project)
    assert v1.name == "v1" and v1.splits == {"train": 84, "validation": 18, "test": 18}
    assert v1.counts == plan.counts and v1.stats["counts"]["train"] == {"seed": 84, "synthetic": 0, "general": 0}
    assert plan.sizes == v1.splits and v1.to_dict()["sizes"] == v1.splits and v1.total == plan.total == 120
    assert json.loads(json.dumps(plan.to_dict()))["counts"] == json.loads(json.dumps(v1.to_dict()))["counts"]
    parts = split_seed_ids(ws, v1.id)
    assert sum(len(p) for p in parts.values()) == 120 and not (parts["train"] & parts["validation"])
    assert not (parts["train"] & parts["test"]) and not (parts["validation"] & parts["test"])
    rows = version_rows(ws, v1.id, "train")
    assert [r.position for r in rows] == list(range(84))
    seed = {s.id: s for s in list_seeds(ws, project)}[rows[0].source_id]
    assert rows[0].data == seed.data and rows[0].format == seed.format
    assert "there are no reviewed synthetic rows: this version holds human seeds only." in v1.stats["warnings"]
    v2 = freeze_version(ws, project, FreezeConfig(validation_fraction=0.1, test_fraction=0.2))
    assert v2.name == "v2" and v2.splits == {"train": 84, "validation": 12, "test": 24}
    assert v2.config["validation_fraction"] == 0.1 and v2.config["name"] == "v2"
    assert [v.name for v in list_versions(ws, project)] == ["v2", "v1"]


def test_small_projects_get_one_row_each_and_warnings(ws, shared_seeds, tmp_path) -> None:
    ten = small_project(ws, shared_seeds, tmp_path, 10, "ten")
    plan = plan_version(ws, ten, FreezeConfig(validation_fraction=0.04, test_fraction=0.04))
    assert plan.seeds == {"total": 10, "train": 8, "validation": 1, "test": 1}
    assert "validation has only 1 row, so its scores will be noisy. Add seeds, or raise validation_fraction." \
        in plan.warnings
    none = plan_version(ws, ten, FreezeConfig(validation_fraction=0.0))
    assert none.seeds["validation"] == 0 and "there is no validation split (validation_fraction is 0)." in none.warnings
    five = small_project(ws, shared_seeds, tmp_path, 5, "five")
    assert plan_version(ws, five).seeds == {"total": 5, "train": 3, "validation": 1, "test": 1}


def test_too_few_seeds_or_none_are_refused(ws, shared_seeds, tmp_path) -> None:
    empty = create_project(ws, "empty").id
    four = small_project(ws, shared_seeds, tmp_path, 4, "four")
    before = snapshot(ws)
    with pytest.raises(DatasetVersionError, match="no seeds yet"):
        freeze_version(ws, empty)
    with pytest.raises(DatasetVersionError, match="has 4 seeds; a version needs at least 5"):
        freeze_version(ws, four)
    with pytest.raises(DatasetVersionError, match="no project #999"):
        freeze_version(ws, 999)
    assert snapshot(ws) == before


def test_classification_seeds_are_stratified_by_label(ws, tmp_path) -> None:
    path = tmp_path / "intents.jsonl"
    labels = ["refund", "delivery", "account"]
    path.write_text("".join(json.dumps({"text": f"Customer message {i} about my {labels[i % 3]} issue, case {i}.",
                                        "label": labels[i % 3]}) + "\n" for i in range(30)))
    p = create_project(ws, "intents")
    commit_import(ws, p.id, preview_file(ws, path, project_id=p.id))
    v = freeze_version(ws, p.id, FreezeConfig(validation_fraction=0.2, test_fraction=0.2))
    assert v.family == "classification" and v.splits == {"train": 18, "validation": 6, "test": 6}
    for split in ("train", "validation", "test"):
        got = [r.data["label"] for r in version_rows(ws, v.id, split)]
        assert sorted(set(got)) == sorted(labels) and max(got.count(x) for x in labels) - min(
            got.count(x) for x in labels) == 0


# --- leakage ------------------------------------------------------------------------------------------


def test_validation_is_human_only_and_nothing_leaks(ws, project) -> None:
    seeds = [s.id for s in list_seeds(ws, project)]
    rows, sources = variants(ws, project)
    single = select_batch(ws, project, rows, seed_ids=sources)
    # Few-shot style rows shown three seeds each: most touch a held-out seed.
    triples = [[seeds[i], seeds[(i + 1) % 120], seeds[(i + 2) % 120]] for i in range(0, 120, 3)]
    few = select_batch(ws, project, [{"instruction": f"Few-shot task {i}", "input": "", "output": f"Answer {i}."}
                                     for i in range(len(triples))], seed_ids=triples, strategy="few-shot")
    v1 = freeze_version(ws, project)
    parts = split_seed_ids(ws, v1.id)
    # Rows that showed, as examples, synthetic rows derived from validation seeds, but no seed of their own.
    by_seed = dict(zip([s[0] for s in sources], candidate_ids(ws, single), strict=True))
    val_examples = [by_seed[s] for s in sorted(parts["validation"])[:4]]
    transitive = select_batch(ws, project, [{"instruction": f"Second-hand task {i}", "input": "",
                                             "output": f"Second-hand answer {i}."} for i in range(4)],
                              seed_ids=[[] for _ in range(4)],
                              metas=[{"example_candidate_ids": [c]} for c in val_examples], strategy="few-shot")
    v2 = freeze_version(ws, project)
    assert split_seed_ids(ws, v2.id) == parts, "same seeds and rng_seed: the same seed split"
    assert {r.origin for r in version_rows(ws, v2.id, "validation")} == {"seed"}
    for r in version_rows(ws, v2.id, "train"):
        if r.origin == "synthetic":
            assert lineage(ws, r.source_id) <= parts["train"], f"train row {r.source_id} derives from held-out seeds"
    test_rows = [r for r in version_rows(ws, v2.id, "test") if r.origin == "synthetic"]
    assert test_rows
    for r in test_rows:
        src = lineage(ws, r.source_id)
        assert not src & parts["validation"] and (src <= parts["test"] or src <= parts["train"])
    used = {r.source_id for r in version_rows(ws, v2.id) if r.origin == "synthetic"}
    assert not used & set(candidate_ids(ws, transitive))
    considered = 120 + len(triples) + 4
    assert v2.stats["synthetic"]["considered"] == considered
    assert len(used) + sum(v2.stats["dropped"].values()) == considered
    assert v2.stats["dropped"]["validation_seed"] >= 18 + 4
    assert v2.stats["dropped"]["test_and_train_seeds"] > 0
    few_used = used & set(candidate_ids(ws, few))
    assert all(lineage(ws, c) <= parts["train"] for c in few_used)


def test_synthetic_share_of_test_follows_the_fraction(ws, project) -> None:
    rows, sources = variants(ws, project)
    select_batch(ws, project, rows, seed_ids=sources)
    plan = plan_version(ws, project)
    usable = 120 - plan.dropped["validation_seed"]
    assert plan.dropped["validation_seed"] == 18
    assert plan.counts["test"]["synthetic"] == round(0.1 * usable) == 10
    assert plan.dropped["test_seed_over_share"] == 18 - 10
    assert plan.counts["train"]["synthetic"] == 84
    zero = plan_version(ws, project, FreezeConfig(test_synthetic_fraction=0))
    assert zero.counts["test"]["synthetic"] == 0 and zero.dropped["test_seed_over_share"] == 18
    more = freeze_version(ws, project, FreezeConfig(test_synthetic_fraction=0.3))
    # 30% of 102 = 31: the 18 test-derived rows, topped up with 13 drawn from the train-eligible ones.
    assert more.counts["test"]["synthetic"] == 31 and more.counts["train"]["synthetic"] == 84 - 13
    assert more.stats["test_synthetic"] == {"from_test_seeds": 18, "from_train_seeds": 13}
    assert "Test also holds 13 synthetic rows generated from train seeds" in dataset_card(ws, more.id)


def test_synthetic_cap_drops_the_excess_reproducibly(ws, project) -> None:
    rows, sources = variants(ws, project, per_seed=3)
    select_batch(ws, project, rows, seed_ids=sources)
    free = plan_version(ws, project, FreezeConfig(synthetic_cap=1.0))
    eligible = free.counts["train"]["synthetic"]
    assert eligible > 84 and "synthetic_cap" not in free.dropped
    half = plan_version(ws, project, FreezeConfig(synthetic_cap=0.5))
    assert half.counts["train"]["synthetic"] == 84 and half.train_synthetic_share == 0.5
    assert half.dropped["synthetic_cap"] == eligible - 84
    assert any("over the synthetic cap (50% of train)" in w for w in half.warnings)
    none = plan_version(ws, project, FreezeConfig(synthetic_cap=0.0))
    assert none.counts["train"]["synthetic"] == 0 and none.dropped["synthetic_cap"] == eligible
    a = freeze_version(ws, project, FreezeConfig(name="half-a", synthetic_cap=0.5))
    b = freeze_version(ws, project, FreezeConfig(name="half-b", synthetic_cap=0.5))
    assert rows_of(ws, a.id) == rows_of(ws, b.id)
    assert a.stats["dropped"]["synthetic_cap"] == eligible - 84


def test_duplicates_and_incomplete_rows_are_dropped(ws, project) -> None:
    seeds = list_seeds(ws, project)
    train_seed = sorted(split_seed_ids(ws, freeze_version(ws, project).id)["train"])[0]
    extra = {"instruction": "Name three primary colours.", "input": "", "output": "Red, yellow and blue."}
    batch = select_batch(ws, project, [dict(seeds[5].data), extra, {**extra, "output": "red,  yellow and BLUE."},
                                       extra, {"instruction": "Only half a row", "input": "", "output": "x"}],
                         seed_ids=[[train_seed]] * 5)
    with ws.write() as conn:  # a reviewer's edit that lost a field
        conn.execute("UPDATE selection SET data = ? WHERE candidate_id = ?",
                     (json.dumps({"instruction": "Only half a row"}), candidate_ids(ws, batch)[4]))
    plan = plan_version(ws, project, FreezeConfig(test_synthetic_fraction=0))
    assert plan.dropped == {"duplicate_of_seed": 1, "duplicate": 2, "malformed": 1}
    assert plan.counts["train"]["synthetic"] == 1


# --- which synthetic rows ---------------------------------------------------------------------------


def _review(ws: Workspace, candidate_id: int, reviewer: str, verdict: str, edited: dict | None = None) -> None:
    with ws.write() as conn:
        conn.execute("INSERT INTO review(candidate_id, reviewer, verdict, edited_data, created_at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (candidate_id, reviewer, verdict, json.dumps(edited) if edited else None, utc_now()))


def test_selected_rows_use_the_edit_and_reviewed_accepts_count(ws, project) -> None:
    train_seed = sorted(split_seed_ids(ws, freeze_version(ws, project).id)["train"])[0]
    rows = [{"instruction": f"Reviewed task {i}", "input": "", "output": f"Reviewed answer {i}."} for i in range(6)]
    open_batch = add_batch(ws, project, rows, seed_ids=[[train_seed]] * 6)  # reviewed, not gated yet
    c = candidate_ids(ws, open_batch)
    edited = {"instruction": "Reviewed task 1", "input": "", "output": "A better answer, fixed by Ann."}
    _review(ws, c[0], "ann", "accept")
    _review(ws, c[1], "ann", "edit", edited)
    _review(ws, c[2], "ann", "accept")
    _review(ws, c[2], "bob", "reject")  # any reviewer's reject leaves it out
    _review(ws, c[3], "ann", "accept")
    _review(ws, c[3], "ann", "reject")  # a changed mind: the newest verdict counts
    _review(ws, c[4], "ann", "reject")
    _review(ws, c[4], "ann", "accept")
    gone = add_batch(ws, project, [{"instruction": "Discarded task", "input": "", "output": "Discarded."}],
                     seed_ids=[[train_seed]], status="discarded")
    _review(ws, candidate_ids(ws, gone)[0], "ann", "accept")
    selected = select_batch(ws, project, [{"instruction": "Selected task", "input": "", "output": "Original."}],
                            seed_ids=[[train_seed]])
    with ws.write() as conn:
        conn.execute("UPDATE selection SET data = ? WHERE batch_id = ?",
                     (json.dumps({"instruction": "Selected task", "input": "", "output": "Edited in review."}),
                      selected))
    cfg = FreezeConfig(test_synthetic_fraction=0, synthetic_cap=1.0)
    v = freeze_version(ws, project, cfg)
    synthetic = {r.source_id: r.data for r in version_rows(ws, v.id, "train") if r.origin == "synthetic"}
    sel_id = candidate_ids(ws, selected)[0]
    assert set(synthetic) == {c[0], c[1], c[4], sel_id}
    assert synthetic[c[1]] == edited and synthetic[sel_id]["output"] == "Edited in review."
    info = {b["id"]: b for b in v.stats["batches"]}
    assert info[open_batch]["reviewed_accepts"] == 3 and info[selected]["selected"] == 1 and gone not in info
    cfg.include_reviewed_accepts = False
    only_selected = plan_version(ws, project, cfg)
    assert only_selected.counts["train"]["synthetic"] == 1
    cfg.batch_ids = [open_batch]
    cfg.include_reviewed_accepts = True
    assert plan_version(ws, project, cfg).counts["train"]["synthetic"] == 3


def test_stats_record_filters_gate_and_provenance(ws, project) -> None:
    rows, sources = variants(ws, project)
    batch = select_batch(ws, project, [*rows[:10], None], seed_ids=[*sources[:10], []], gate=None)
    c = candidate_ids(ws, batch)
    now = utc_now()
    with ws.write() as conn:
        conn.execute("UPDATE batch SET filter_config = ?, filtered_at = ?, teacher = ? WHERE id = ?",
                     (json.dumps({"enabled": {"near_duplicate": True}}), now,
                      json.dumps({"kind": "endpoint", "base_url": "https://llm.example.com/v1",
                                  "model": "big-teacher"}), batch))
        for cid, flt in ((c[0], "near_duplicate"), (c[1], "near_duplicate"), (c[1], "refusal"), (c[10], "parse")):
            conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, reason, created_at) "
                         "VALUES (?, ?, 0, 'crafted', ?)", (cid, flt, now))
            conn.execute("DELETE FROM selection WHERE candidate_id = ?", (cid,))
        conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, created_at) VALUES (?, 'parse', 1, ?)",
                     (c[2], now))
        # An earlier inconclusive evaluation, then the pass: the newest decision is the one reported.
        for decision, reviewed, errors, rate, low, high in (("inconclusive", 10, 1, 0.1, 0.0179, 0.4042),
                                                            ("pass", 40, 2, 0.05, 0.0138, 0.1651)):
            conn.execute("INSERT INTO gate_decision(batch_id, decision, reviewed, errors, rate, low, high, "
                         "threshold, confidence, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0.2, 0.95, ?)",
                         (batch, decision, reviewed, errors, rate, low, high, now))
    v = freeze_version(ws, project)
    (b,) = v.stats["batches"]
    assert b["filters"]["applied"] and b["filters"]["removed"] == 3
    assert b["filters"]["removed_by"] == {"near_duplicate": 2, "parse": 1, "refusal": 1}
    assert b["gate"]["decision"] == "pass" and b["gate"]["rate"] == 0.05 and b["gate"]["high"] == 0.1651
    assert b["selected"] == 8 and b["rows"] == 11 and b["usable_rows"] == 10
    used = v.stats["synthetic"]["used"]
    assert v.stats["strategies"] == {"instruction-expansion": used}
    assert v.stats["teacher_models"] == {"big-teacher @ https://llm.example.com/v1": used}
    assert v.stats["share"]["seed"] == pytest.approx(120 / v.total)


# --- the general mix --------------------------------------------------------------------------------


def test_general_rows_go_to_train_only(ws, project, tmp_path) -> None:
    path = general_file(tmp_path)
    file_rows = [json.loads(line) for line in path.read_text().splitlines()]
    v = freeze_version(ws, project, FreezeConfig(general_path=str(path), general_fraction=0.1))
    general = [r for r in version_rows(ws, v.id) if r.origin == "general"]
    assert len(general) == round(0.1 * 84) == 8
    assert {r.split for r in general} == {"train"}
    for r in general:
        assert r.format == "messages" and r.data == file_rows[r.source_id - 1]
    assert v.stats["general"]["file"] == "general.jsonl" and v.stats["general"]["used"] == 8
    assert v.stats["general"]["usable_rows"] == 60 and len(v.stats["general"]["sha256"]) == 64
    assert v.counts["train"] == {"seed": 84, "synthetic": 0, "general": 8}
    assert v.splits["train"] == 92
    again = freeze_version(ws, project, FreezeConfig(general_path=str(path), general_fraction=0.1))
    assert rows_of(ws, again.id) == rows_of(ws, v.id)


def test_general_file_smaller_than_asked_is_used_whole(ws, project, tmp_path) -> None:
    path = tmp_path / "pc.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Say hello number {i}.", "completion": f"Hello {i}!"}) + "\n"
                            for i in range(3)))
    plan = plan_version(ws, project, FreezeConfig(general_path=str(path), general_fraction=1.0))
    assert plan.counts["train"]["general"] == 3 and plan.general["format"] == "prompt_completion"
    assert "the general file has 3 usable rows, fewer than the 84 asked for; all of them are used." in plan.warnings


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("missing.jsonl", None, "does not exist"),
    ("labels.csv", "text,label\nI love it,positive\nAwful,negative\n", "holds Text + label (classification) rows"),
    ("broken.jsonl", '{"prompt": "a", "completion": "b"}\n{"prompt": oops}\n{"prompt": "c", "completion": "d"}\n',
     "line 2 is not valid JSON"),
    ("sales.csv", "date,amount\n2024-01-01,12.5\n", "is not a chat dataset"),
    ("unfinished.jsonl", '{"messages": [{"role": "user", "content": "Hi"}]}\n', "no usable row"),
    ("notes.docx", "hello", "are not supported"),
    ("notes.txt", "hello", "notes.txt is not a CoNLL-style column file"),
])
def test_bad_general_file_changes_nothing(ws, project, tmp_path, name, content, expected) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    before = snapshot(ws)
    cfg = FreezeConfig(general_path=str(path))
    with pytest.raises(DatasetVersionError, match=re.escape(expected)):
        freeze_version(ws, project, cfg)
    with pytest.raises(DatasetVersionError, match=re.escape(expected)):
        plan_version(ws, project, cfg)
    assert snapshot(ws) == before


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cfg", "expected"), [
    (FreezeConfig(validation_fraction=0.7), "validation_fraction must be between 0 and 0.5"),
    (FreezeConfig(test_fraction=-0.1), "test_fraction must be between 0 and 0.5"),
    (FreezeConfig(validation_fraction=0.35, test_fraction=0.35), "at most 0.6 of the seeds"),
    (FreezeConfig(synthetic_cap=1.5), "synthetic_cap must be between 0 and 1"),
    (FreezeConfig(test_synthetic_fraction="lots"), "test_synthetic_fraction must be a number"),
    (FreezeConfig(general_fraction=float("nan")), "general_fraction must be a number"),
    (FreezeConfig(name="12"), "only digits"),
    (FreezeConfig(name="x" * 61), "at most 60 characters"),
    (FreezeConfig(batch_ids=["3"]), "batch_ids must be a list of batch numbers"),
    (FreezeConfig(batch_ids=[999]), "Batch 999 is not a batch of this project"),
    (FreezeConfig(rng_seed=1.5), "rng_seed must be a whole number"),
    (FreezeConfig(license="Apache 2"), "not a license id"),
    (FreezeConfig(language="English"), "not a language code"),
    (FreezeConfig(general_path="x.jsonl", general_fraction=0), "general_fraction is 0"),
])
def test_bad_config_changes_nothing(ws, project, cfg, expected) -> None:
    before = snapshot(ws)
    with pytest.raises(DatasetVersionError, match=expected):
        freeze_version(ws, project, cfg)
    assert snapshot(ws) == before


def test_duplicate_name_discarded_batch_and_mixed_families_are_refused(ws, project) -> None:
    freeze_version(ws, project, FreezeConfig(name="Baseline"))
    rows, sources = variants(ws, project)
    discarded = add_batch(ws, project, rows[:3], seed_ids=sources[:3], status="discarded")
    before = snapshot(ws)
    with pytest.raises(DatasetVersionError, match="already has a version called 'baseline'"):
        freeze_version(ws, project, FreezeConfig(name="baseline"))
    with pytest.raises(DatasetVersionError, match=f"Batch {discarded} was discarded"):
        freeze_version(ws, project, FreezeConfig(batch_ids=[discarded]))
    assert snapshot(ws) == before
    select_batch(ws, project, [{"text": "I love this product", "label": "positive"}], fmt="classification")
    before = snapshot(ws)
    with pytest.raises(DatasetVersionError, match="holds classification rows but this project's seeds are chat"):
        freeze_version(ws, project)
    assert snapshot(ws) == before


def test_plan_writes_nothing(ws, project, tmp_path) -> None:
    rows, sources = variants(ws, project, per_seed=2)
    select_batch(ws, project, rows, seed_ids=sources)
    before = snapshot(ws)
    plan = plan_version(ws, project, FreezeConfig(general_path=str(general_file(tmp_path))))
    assert plan.total > 120 and plan.counts["train"]["general"] > 0
    assert snapshot(ws) == before
    assert "Version v1:" in plan.summary() and "validation: 18 rows (18 seed)" in plan.summary()
    frozen = freeze_version(ws, project, FreezeConfig(general_path=str(general_file(tmp_path))))
    assert frozen.counts == plan.counts and frozen.stats["dropped"] == plan.dropped


# --- frozen and reproducible ------------------------------------------------------------------------


def test_versions_are_frozen_copies(ws, project) -> None:
    rows, sources = variants(ws, project)
    select_batch(ws, project, rows, seed_ids=sources)
    v = freeze_version(ws, project)
    before = rows_of(ws, v.id)
    parts = split_seed_ids(ws, v.id)
    edited, deleted = sorted(parts["validation"])[0], sorted(parts["train"])[0]
    update_seed(ws, edited, {"instruction": "Completely rewritten instruction.", "input": "",
                             "output": "Completely rewritten output."})
    assert delete_seeds(ws, project, [deleted]) == 1
    assert rows_of(ws, v.id) == before
    assert get_version(ws, project, v.id).splits == v.splits
    conn = sqlite3.connect(ws.db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="frozen"):
            conn.execute("UPDATE dataset_row SET data = '{}' WHERE version_id = ?", (v.id,))
        with pytest.raises(sqlite3.IntegrityError, match="frozen"):
            conn.execute("UPDATE dataset_version SET splits = '{}' WHERE id = ?", (v.id,))
    finally:
        conn.close()
    assert rows_of(ws, v.id) == before
    # The next version sees the edit and the deletion.
    after = freeze_version(ws, project)
    assert after.stats["seeds"]["total"] == 119
    assert deleted not in {r.source_id for r in version_rows(ws, after.id) if r.origin == "seed"}


def test_same_config_same_rows_other_seed_other_split(ws, project) -> None:
    rows, sources = variants(ws, project, per_seed=2)
    select_batch(ws, project, rows, seed_ids=sources)
    a = freeze_version(ws, project, FreezeConfig(name="a", rng_seed=7))
    b = freeze_version(ws, project, FreezeConfig(name="b", rng_seed=7))
    assert rows_of(ws, a.id) == rows_of(ws, b.id) and a.stats["counts"] == b.stats["counts"]
    c = freeze_version(ws, project, FreezeConfig(name="c", rng_seed=8))
    assert split_seed_ids(ws, c.id)["validation"] != split_seed_ids(ws, a.id)["validation"]


def test_get_version_by_name_or_id(ws, project) -> None:
    v1 = freeze_version(ws, project)
    named = freeze_version(ws, project, FreezeConfig(name="Clean March"))
    assert get_version(ws, project, "clean march").id == named.id
    assert get_version(ws, project, v1.id).name == "v1" and get_version(ws, project, str(v1.id)).name == "v1"
    assert get_version(ws, project, "V1").id == v1.id
    with pytest.raises(DatasetVersionError, match=r"no dataset version 'v9'.*v1 \(#\d+\), Clean March"):
        get_version(ws, project, "v9")
    other = create_project(ws, "other").id
    with pytest.raises(DatasetVersionError, match="has none yet"):
        get_version(ws, other, v1.id)
    with pytest.raises(DatasetVersionError, match="'dev' is not a split"):
        version_rows(ws, v1.id, "dev")
    with pytest.raises(DatasetVersionError, match="no dataset version #424242"):
        version_rows(ws, 424242)
    assert freeze_version(ws, project).name == "v2"


def test_config_round_trips() -> None:
    cfg = FreezeConfig(name="x", batch_ids=[1, 2], general_path="/tmp/g.jsonl", rng_seed=3, license="mit")
    assert FreezeConfig.from_dict({**cfg.to_dict(), "unknown": 1}) == cfg
    assert FreezeConfig.from_dict(None) == FreezeConfig()
