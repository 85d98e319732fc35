"""`seed-studio compare`, `eval` and `evals` as a user types them, and the adapter toggle on the embedded
SmolLM2: the base side with an adapter attached answers exactly like the plain model loaded alone.

Commands that work run in this process through typer's CliRunner (one torch import for the file); bad
input runs as real processes, so the exit status and the "Error:" line are what a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.config import load_settings
from studio.data.versions import FreezeConfig, freeze_version
from studio.evaluation.sidebyside import SideBySide
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from tests.conftest import SHARED_SEEDS, snapshot
from tests.factories import project_with_seeds
from tests.test_batch_eval import insert_run
from tests.test_cli_generate import run
from tests.test_sidebyside import _make_adapter

SAMPLE = ["--temperature", "0.7", "--seed", "3", "--max-new-tokens", "6"]
PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def home(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """(home, run id of a LoRA run with a real random adapter, run id of a full fine-tune)."""
    home = tmp_path_factory.mktemp("cli-compare") / "home"
    ws = Workspace(load_settings(home))
    project_id = project_with_seeds(ws, SHARED_SEEDS, name="cli-eval", task="Answer everyday questions")
    version_id = freeze_version(ws, project_id, FreezeConfig()).id
    adapter = _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("cli-adapter"))
    lora = insert_run(ws, project_id, version_id, str(tiny_chat_model), adapter=adapter)
    full = insert_run(ws, project_id, version_id, str(tiny_chat_model), method="full")
    return home, lora, full


def cli(home: Path, *args: str) -> str:
    """stdout of a command that must succeed, run in this process."""
    from typer.testing import CliRunner

    from studio.cli import app

    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result.stdout


def ok(home: Path, *args: str) -> dict | list:
    return json.loads(cli(home, *args, "--json"))


def test_compare_prints_both_answers(home: tuple[Path, int, int], tiny_chat_model: Path) -> None:
    path, lora, _ = home
    out = ok(path, "compare", "--run", str(lora), "--prompt", PROMPT, *SAMPLE)
    assert out["prompt"] == PROMPT and out["runs"] == [lora] and out["base_model"] == str(tiny_chat_model)
    assert out["settings"] == {"max_new_tokens": 6, "temperature": 0.7, "top_p": 1.0, "seed": 3}
    assert list(out["answers"]) == ["base", f"run {lora}"]
    # The same answers as the library gives in this process, with the same settings and seed.
    model = SideBySide.load(Workspace(load_settings(path)), str(tiny_chat_model), [lora])
    settings = {"max_new_tokens": 6, "temperature": 0.7, "seed": 3}
    assert out["answers"]["base"] == model.generate(PROMPT, which="base", **settings)
    assert out["answers"][f"run {lora}"] == model.generate(PROMPT, which=lora, **settings)
    assert out["answers"]["base"] != out["answers"][f"run {lora}"]

    text = cli(path, "compare", "--run", str(lora), "--prompt", PROMPT, *SAMPLE)
    assert f"── base ({tiny_chat_model}) ──" in text and f"── run {lora} (fine-tuned) ──" in text
    for answer in out["answers"].values():
        assert answer in text


def test_eval_json_and_the_list(home: tuple[Path, int, int]) -> None:
    path, lora, _ = home
    ev = ok(path, "eval", "--run", str(lora), "--limit", "2", *SAMPLE)
    assert ev["status"] == "done" and ev["run_id"] == lora and ev["split"] == "test"
    assert [r["metric"] for r in ev["metrics"]["rows"]] == ["rouge_l", "bleu", "exact"]
    assert ev["metrics"]["n"] == 2 and len(ev["examples"]) == 2 and ev["progress"]["done"] == 2
    assert set(ev["metrics"]["loss"]) == {"base", "tuned"} and ev["config"]["limit"] == 2

    listed = ok(path, "evals", "--run", str(lora))
    assert listed[0]["id"] == ev["id"] and "examples" not in listed[0]
    assert listed[0]["metrics"] == ev["metrics"]
    assert ev["id"] in [e["id"] for e in ok(path, "evals", "--project", "cli-eval")]

    text = cli(path, "eval", "--run", str(lora), "--split", "validation", "--limit", "1", *SAMPLE)
    assert "| ROUGE-L |" in text and "| Loss (lower is better) |" in text and "validation split" in text
    shown = cli(path, "evals", "--run", str(lora))
    assert "validation" in shown and "done" in shown


def test_eval_on_a_held_out_file_flags_the_row_seen_in_training(home: tuple[Path, int, int], tmp_path: Path) -> None:
    import csv

    from studio.data.versions import version_rows
    from studio.train.runs import get_run
    from tests.test_eval_metrics import LENGTH_RATIO, write_module

    path, lora, _ = home
    ws = Workspace(load_settings(path))
    trained = sorted(version_rows(ws, get_run(ws, lora).dataset_version_id, "train"), key=lambda r: r.id)[0].data
    held_out = tmp_path / "held out.csv"
    with held_out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["instruction", "input", "output"])
        writer.writeheader()
        writer.writerow({"instruction": "Name a colour of the rainbow.", "input": "", "output": "Indigo."})
        writer.writerow({k: trained.get(k, "") for k in ("instruction", "input", "output")})  # seen in training
    metric = write_module(tmp_path, "length_ratio", LENGTH_RATIO)

    ev = ok(path, "eval", "--run", str(lora), "--file", str(held_out), "--metric", str(metric), *SAMPLE)
    assert ev["status"] == "done" and ev["split"] == "file" and ev["config"]["file"] == "held out.csv"
    assert ev["source"]["name"] == "held out.csv" and ev["source"]["format"] == "alpaca"
    assert ev["source"]["rows_used"] == 2 and len(ev["source"]["sha256"]) == 64
    assert ev["metrics"]["n"] == 2 and ev["metrics"]["overlap_train"] == 1
    flags = {e["reference"]: e["overlap"] for e in ev["examples"]}
    assert flags == {"Indigo.": None, trained["output"]: "same row as training"}
    assert [r["metric"] for r in ev["metrics"]["rows"]] == ["rouge_l", "bleu", "exact"]
    assert {e["key"] for e in ev["metrics"]["extra"]} == {"length_ratio", "longest"}

    text = cli(path, "eval", "--run", str(lora), "--file", str(held_out), *SAMPLE)
    assert "Evaluated on 2 rows of held-out file held out.csv." in text
    assert "⚠️ 1 of 2 rows repeat the training data (1 whole row)" in text
    assert "inflate the scores" in text and "| ROUGE-L |" in text
    assert "Rows that repeat the training data:\n  row 2: same row as training" in text
    listed = cli(path, "evals", "--run", str(lora))
    assert "file held out.csv" in listed


def test_eval_with_the_judge(home: tuple[Path, int, int]) -> None:
    from tests.scripted_llm import ScriptedLLM

    path, lora, _ = home
    with ScriptedLLM() as llm:
        ev = ok(path, "eval", "--run", str(lora), "--limit", "2", "--judge", "--teacher", llm.url,
                "--teacher-model", "scripted-teacher", *SAMPLE)
        assert llm.requests == 4  # two rows, each asked in both orders
    judge = ev["metrics"]["judge"]
    assert ev["teacher"]["base_url"] == llm.url and judge["n"] == 2 and judge["unparsed"] == 0
    assert judge["tuned_wins"] + judge["base_wins"] + judge["ties"] == 2
    assert all(e["judge"] in ("base", "tuned", "tie") for e in ev["examples"])


def test_bad_input_exits_2_and_writes_nothing(home: tuple[Path, int, int]) -> None:
    path, lora, full = home
    ws = Workspace(load_settings(path))
    before = snapshot(ws)
    cases = [
        (["compare", "--run", "999", "--prompt", "hi"], "no run #999"),
        (["compare", "--run", str(lora), "--prompt", "  "], "prompt is empty"),
        (["compare", "--run", str(full), "--prompt", "hi"], "full fine-tuning"),
        (["eval", "--run", "999"], "no run #999"),
        (["eval", "--run", str(full)], "full fine-tuning"),
        (["eval", "--run", str(lora), "--split", "train"], "use the test split"),
        (["eval", "--run", str(lora), "--judge"], "needs a teacher"),
        (["eval", "--run", str(lora), "--teacher", "http://127.0.0.1:9/v1"], "add --judge"),
        (["eval", "--run", str(lora), "--limit", "0"], "at least 1"),
        (["eval", "--run", str(lora), "--version", "no-such-version"], "no-such-version"),
        (["evals", "--run", "999"], "no run #999"),
        (["eval", "--run", str(lora), "--file", "/no/such/held-out.csv"], "There is no file at"),
        (["eval", "--run", str(lora), "--file", str(SHARED_SEEDS), "--split", "validation"], "not both"),
        # Offline, as here (said to evaluate, so the test means the same wherever it runs), with HF_HOME in tmp.
        (["eval", "--run", str(lora), "--metric", "seed-studio-no-such-metric"], "could not be loaded"),
    ]
    offline = {"HF_EVALUATE_OFFLINE": "1", "HF_HOME": str(path.parent / "hf-home")}
    for args, message in cases:
        done = run(path, *args, env=offline)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        error = done.stderr.strip().splitlines()[-1]
        assert error.startswith("Error:") and message in error, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert snapshot(ws) == before


@pytest.mark.slow
def test_smollm2_base_side_with_an_adapter_is_the_plain_model(converted_chat_model: Path,
                                                              tmp_path: Path) -> None:
    adapter = _make_adapter(converted_chat_model, tmp_path / "adapter")
    settings = {"max_new_tokens": 12, "temperature": 0.0, "seed": 0}
    plain = SideBySide(converted_chat_model).generate(PROMPT, which="base", **settings)
    attached = SideBySide(converted_chat_model, {1: adapter})
    assert plain and "Paris" in plain  # the real model answers
    assert attached.generate(PROMPT, which="base", **settings) == plain
    tuned = attached.generate(PROMPT, which=1, **settings)
    assert tuned != plain  # the random adapter really changes the model when switched on

    home = tmp_path / "home"
    ws = Workspace(load_settings(home))
    project = create_project(ws, "smol")
    run_id = insert_run(ws, project.id, None, str(converted_chat_model), adapter=adapter)
    done = run(home, "compare", "--run", str(run_id), "--prompt", PROMPT, "--max-new-tokens", "12", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answers"] == {"base": plain, f"run {run_id}": tuned}
