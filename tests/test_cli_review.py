"""`seed-studio filter`, `review sample|verdict|gate|revise`, `diversity` and `dataset freeze|list|show|export`
as a user types them (real processes, one workspace), from a real batch of perturbed human seeds to an
exported dataset version."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import SHARED_SEEDS
from tests.test_cli_generate import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli-review") / "home"
    assert run(home, "project", "create", "cli", "--task", "Answer everyday questions helpfully").returncode == 0
    assert run(home, "seeds", "import", str(SHARED_SEEDS)).returncode == 0
    return home


def ok(home: Path, *args: str) -> dict | list:
    done = run(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_filter_review_gate_freeze_and_export(home: Path) -> None:
    batch = ok(home, "generate", "--strategy", "nlpaug", "--count", "40", "--augmenter", "keyboard", "--seed", "5")
    bid = str(batch["id"])

    preview = ok(home, "filter", "--batch", bid, "--preview")
    with sqlite3.connect(home / "studio.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM filter_result").fetchone()[0] == 0  # a preview writes nothing
    applied = ok(home, "filter", "--batch", bid, "--off", "semantic_duplicate")
    assert applied["total"] == preview["total"] == 40
    with sqlite3.connect(home / "studio.db") as conn:
        filters = {r[0] for r in conn.execute("SELECT DISTINCT filter FROM filter_result")}
    assert "semantic_duplicate" not in filters and {"exact_duplicate", "near_duplicate", "heuristics"} <= filters

    sample = ok(home, "review", "sample", "--batch", bid, "--min", "6", "--seed", "11")
    items = sample["items"]
    assert len(items) == 6 and all(i["verdict"] is None for i in items)
    assert ok(home, "review", "sample", "--batch", bid)["items"] == items  # the same sample for everyone

    gate = ok(home, "review", "gate", "--batch", bid, "--min-reviews", "6")
    assert gate["decision"] == "inconclusive" and gate["reviewed"] == 0

    for item in items[:5]:
        ok(home, "review", "verdict", "--batch", bid, "--row", str(item["row"]), "--verdict", "accept",
           "--reviewer", "ana", "--accuracy", "5")
    last = items[5]
    edited = {"instruction": "Write a short thank-you note to a colleague.", "input": "",
              "output": "Thank you for your help with the report this week!"}
    saved = ok(home, "review", "verdict", "--batch", bid, "--row", str(last["row"]), "--verdict", "edit",
               "--tag", "format", "--edit-json", json.dumps(edited), "--reviewer", "ana")
    assert saved["reviewed"] == 6 and saved["total"] == 6

    gate = ok(home, "review", "gate", "--batch", bid, "--min-reviews", "6", "--threshold", "0.2")
    assert gate["reviewed"] == 6 and gate["errors"] == 1
    assert gate["rate"] == pytest.approx(1 / 6)
    assert 0 < gate["low"] < gate["rate"] < gate["high"] < 1
    assert gate["decision"] == "pass"
    applied_gate = ok(home, "review", "gate", "--batch", bid, "--min-reviews", "6", "--threshold", "0.2", "--apply",
                      "--per-seed-cap", "1")
    assert applied_gate["decision"] == "pass"
    batches = ok(home, "batches", "list")
    assert next(b for b in batches if b["id"] == batch["id"])["state"] == "selected"

    plan = ok(home, "dataset", "freeze", "--dry-run")
    versions_before = ok(home, "dataset", "list")
    assert versions_before == []  # a dry run writes nothing
    frozen = ok(home, "dataset", "freeze", "--name", "first")
    assert frozen["name"] == "first" and plan
    listed = ok(home, "dataset", "list")
    assert [v["name"] for v in listed] == ["first"]
    exported = ok(home, "dataset", "export", "first", "--format", "jsonl", "--style", "prompt_completion")
    files = {k: Path(v) for k, v in exported["files"].items()}
    assert {"train", "validation"} <= set(files) and all(p.exists() for p in files.values())
    first = json.loads(files["train"].read_text().splitlines()[0])
    assert {"prompt", "completion", "origin"} <= set(first)
    card = run(home, "dataset", "show", "first")
    assert card.returncode == 0 and "validation" in card.stdout.lower()

    report = ok(home, "diversity", "--batch", bid)
    assert report["rows"] > 0 and 0 < report["distinct_2"] <= 1


def test_bad_input_exits_2_with_a_plain_message_and_writes_nothing(home: Path) -> None:
    batch = ok(home, "generate", "--strategy", "nlpaug", "--count", "8", "--augmenter", "ocr", "--seed", "9")
    bid = str(batch["id"])
    with sqlite3.connect(home / "studio.db") as conn:
        before = conn.execute("SELECT COUNT(*) FROM filter_result").fetchone()[0]
    bad = run(home, "filter", "--batch", bid, "--near", "1.5")
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ")
    ok(home, "review", "sample", "--batch", bid, "--min", "3")
    row = ok(home, "review", "sample", "--batch", bid)["items"][0]["row"]
    bad_tag = run(home, "review", "verdict", "--batch", bid, "--row", str(row), "--verdict", "reject",
                  "--tag", "boring")
    assert bad_tag.returncode == 2 and "hallucination" in bad_tag.stderr
    bad_verdict = run(home, "review", "verdict", "--batch", bid, "--row", str(row), "--verdict", "maybe")
    assert bad_verdict.returncode == 2 and "accept" in bad_verdict.stderr
    wrong_batch = run(home, "review", "verdict", "--batch", "999", "--row", str(row), "--verdict", "accept")
    assert wrong_batch.returncode == 2 and "not in batch #999" in wrong_batch.stderr
    bad_gate = run(home, "review", "gate", "--batch", bid, "--threshold", "0")
    assert bad_gate.returncode == 2 and bad_gate.stderr.startswith("Error: ")
    with sqlite3.connect(home / "studio.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM filter_result").fetchone()[0] == before
        assert conn.execute("SELECT COUNT(*) FROM review r JOIN candidate c ON c.id = r.candidate_id "
                            "WHERE c.batch_id = ?", (int(bid),)).fetchone()[0] == 0
    missing = run(home, "dataset", "export", "nope")
    assert missing.returncode == 2 and "nope" in missing.stderr
