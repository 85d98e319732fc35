"""`seed-studio generate`, `candidates`, `batches`, `prompts`, `teacher` as a user types them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.scripted_llm import ScriptedLLM

CLI = Path(sys.executable).with_name("seed-studio")


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "studio.cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "STUDIO_HOME": str(home), **(env or {})})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, ) -> Path:
    home = tmp_path_factory.mktemp("cli-gen") / "home"
    assert run(home, "project", "create", "cli", "--task", "Answer everyday questions helpfully").returncode == 0
    shared = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
    assert run(home, "seeds", "import", str(shared)).returncode == 0
    return home


def test_generate_nlpaug_and_list_candidates_with_provenance(home: Path) -> None:
    done = run(home, "generate", "--strategy", "nlpaug", "--count", "6", "--augmenter", "ocr", "--json")
    assert done.returncode == 0, done.stderr
    batch = json.loads(done.stdout)
    assert batch["state"] == "done" and batch["rows_ok"] == 6 and batch["params"]["options"]["augmenter"] == "ocr"
    listed = run(home, "candidates", "list", "--batch", str(batch["id"]), "--json")
    rows = json.loads(listed.stdout)
    assert len(rows) == 6
    for row in rows:
        p = row["provenance"]
        assert set(p) >= {"project_id", "batch_id", "strategy", "seed_ids", "prompt_version_id", "teacher",
                          "decoding_params", "raw_output", "parse_status", "created_at"}
        assert p["strategy"] == "nlpaug" and p["seed_ids"] and p["parse_status"] == "ok"
    table = run(home, "batches", "list")
    assert f"#{batch['id']}" in table.stdout and "6/6" in table.stdout.replace(" ", "")


def test_generate_with_an_endpoint_teacher_preview_keep_and_batch(home: Path) -> None:
    with ScriptedLLM() as llm:
        before = json.loads(run(home, "batches", "list", "--json").stdout)
        shown = run(home, "generate", "-s", "instruction-expansion", "--preview", "--teacher", llm.url,
                    "--teacher-model", llm.model, "--json")
        assert shown.returncode == 0, shown.stderr
        rows = json.loads(shown.stdout)
        assert len([r for r in rows if r["data"]]) == 5 and all(r["raw_output"] for r in rows)
        assert json.loads(run(home, "batches", "list", "--json").stdout) == before  # a preview saves nothing

        kept = run(home, "generate", "-s", "instruction-expansion", "--preview", "--keep", "--teacher",
                   f"{llm.model}@{llm.url}")
        assert kept.returncode == 0 and "Kept 5 rows as batch" in kept.stdout

        batch = run(home, "generate", "-s", "response-expansion", "-n", "4", "--teacher", llm.url, "--styles",
                    "formal,pirate: talks like a pirate", "--json")
        assert batch.returncode == 0, batch.stderr
        info = json.loads(batch.stdout)
        assert info["rows_ok"] == 4 and info["teacher"]["base_url"] == llm.url and info["prompt_version"] == 1
        styles = {r["provenance"]["meta"]["style"] for r in json.loads(
            run(home, "candidates", "list", "--batch", str(info["id"]), "--json").stdout)}
        assert styles == {"formal", "pirate"}

        tested = run(home, "teacher", "test", "--teacher", llm.url)
        assert tested.returncode == 0 and "Connected to" in tested.stdout


def test_prompt_versions_from_the_cli(home: Path, tmp_path: Path) -> None:
    first = json.loads(run(home, "prompts", "list", "-s", "few-shot", "--json").stdout)
    assert first[0]["note"] == "shipped default"
    edited = tmp_path / "few_shot.jinja"
    edited.write_text(first[0]["template"].replace("different cases", "harder cases"), encoding="utf-8")
    saved = run(home, "prompts", "save", "-s", "few-shot", "--file", str(edited), "--note", "harder")
    assert saved.returncode == 0 and "v2" in saved.stdout
    bad = tmp_path / "bad.jinja"
    bad.write_text("Write {{ n }} rows like {{ exampels }}", encoding="utf-8")
    refused = run(home, "prompts", "save", "-s", "few-shot", "--file", str(bad))
    assert refused.returncode == 2 and "{{ exampels }}" in refused.stderr and "Traceback" not in refused.stderr
    assert [v["version"] for v in json.loads(run(home, "prompts", "list", "-s", "few-shot", "--json").stdout)] == [2, 1]


@pytest.mark.parametrize(("args", "message"), [
    (["-s", "entity-swap", "-n", "5"], "Entity swapping needs NER seeds"),
    (["-s", "nlpaug", "-n", "0"], "Ask for at least 1 row"),
    (["-s", "nlpaug", "-n", "10000000"], "more than one batch can hold"),
    (["-s", "telepathy", "-n", "5"], "Unknown strategy 'telepathy'"),
    (["-s", "nlpaug", "-n", "5", "--augmenter", "wordnet_synonym"], "WordNet"),
    (["-s", "few-shot", "-n", "5", "--teacher", "http://127.0.0.1:9/v1", "--timeout", "2"], "127.0.0.1:9"),
    (["-s", "few-shot", "-n", "5", "--api-key-env", "NO_SUCH_VARIABLE_SET"], "NO_SUCH_VARIABLE_SET"),
    (["--resume", "999"], "no batch 999"),
])
def test_bad_generate_requests_exit_2_with_the_reason(home: Path, args: list[str], message: str) -> None:
    result = run(home, "generate", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_augmenters_say_which_work_here(home: Path) -> None:
    listed = {a["name"]: a for a in json.loads(run(home, "teacher", "augmenters", "--json").stdout)}
    assert listed["keyboard"]["available"] and listed["split"]["available"]
    if not listed["wordnet_synonym"]["available"]:
        assert "WordNet" in listed["wordnet_synonym"]["reason"]


def test_plan_from_the_command_line(home: Path, tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("garden ponds\ntax forms | 2\n", encoding="utf-8")
    saved = run(home, "plan", "save", "--topics-file", str(topics), "--topic", "bird songs",
                "--vary", "difficulty: easy, hard | 3", "--note", "from the CLI", "--json")
    assert saved.returncode == 0, saved.stderr
    plan = json.loads(saved.stdout)
    assert [t["value"] for t in plan["plan"]["topics"]] == ["bird songs", "garden ponds", "tax forms"]
    assert plan["plan"]["attributes"]["difficulty"][1] == {"value": "hard", "weight": 3.0}
    assert "bird songs" in run(home, "plan", "show", str(plan["id"])).stdout
    bad = run(home, "plan", "save", "--vary", "difficulty easy")
    assert bad.returncode == 2 and "name: value" in bad.stderr
    with ScriptedLLM() as llm:
        done = run(home, "generate", "--strategy", "few-shot", "--count", "4", "--per-call", "2", "--plan",
                   str(plan["id"]), "--teacher", llm.url, "--teacher-model", llm.model, "--json")
    assert done.returncode == 0, done.stderr
    batch = json.loads(done.stdout)
    assert batch["params"]["plan_id"] == plan["id"] and batch["rows_ok"] == 4
    rows = json.loads(run(home, "candidates", "list", "--batch", str(batch["id"]), "--json").stdout)
    assert all(r["provenance"]["meta"]["plan"]["topic"] in ("bird songs", "garden ponds", "tax forms") for r in rows)
    profile = json.loads(run(home, "batches", "profile", str(batch["id"]), "--json").stdout)
    assert profile["coverage"]
