"""The comparison report: Markdown (tables only) and HTML (inline SVG charts) from a real evaluation of a run with a
real LoRA adapter on the tiny model; escaping of user text, what it says when pieces are missing, the model card
fragment (no local paths, no credentials), atomic export, and the `seed-studio report` CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from studio.config import load_settings
from studio.errors import QualityError, TrainError
from studio.evaluation.ab import ABPair, record_vote
from studio.evaluation.batch import EvalConfig, Evaluation, evaluate
from studio.evaluation.report import comparison_report, export_report, model_card_section
from studio.evaluation.votes import assign_sides
from studio.train import runs
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now
from studio.workspace.projects import create_project
from tests.conftest import snapshot
from tests.test_cli_generate import run as cli
from tests.test_sidebyside import _make_adapter

HOSTILE = "<script>alert('x')</script> Summarise | this & that"
SECRET = "hf_abcdefghijklmnopqrstu"


def alpaca(i: int, instruction: str | None = None) -> dict[str, str]:
    return {"instruction": instruction or f"Name a colour number {i}.", "input": "", "output": f"Colour {i} is blue."}


def crafted_version(ws: Workspace, project_id: int) -> int:
    """A version written as freeze_version writes its rows: 6 train, 2 validation, 3 test (one hostile prompt)."""
    splits = {"train": [alpaca(i) for i in range(6)], "validation": [alpaca(10), alpaca(11)],
              "test": [alpaca(20, HOSTILE), alpaca(21), alpaca(22)]}
    with ws.write() as conn:
        version_id = int(conn.execute(
            "INSERT INTO dataset_version(project_id, name, family, splits, config, stats, created_at) "
            "VALUES (?, 'v1', 'chat', ?, '{}', '{}', ?)",
            (project_id, json.dumps({k: len(v) for k, v in splits.items()}), utc_now())).lastrowid or 0)
        for split, rows in splits.items():
            for i, row in enumerate(rows):
                conn.execute("INSERT INTO dataset_row(version_id, split, position, origin, source_id, format, data) "
                             "VALUES (?, ?, ?, 'seed', ?, 'alpaca', ?)", (version_id, split, i, i + 1, json.dumps(row)))
    return version_id


def finished_run(ws: Workspace, project_id: int, version_id: int, model: Path, adapter: Path) -> runs.Run:
    """A run as the worker leaves it when done: adapter on disk, status done, loss curves logged."""
    run = runs.create_run(ws, project_id, dataset_version_id=version_id, base_model_ref=str(model),
                          config=TrainConfig(max_steps=4), device="cpu", name="colours")
    target = Path(run.output_dir) / "adapter"
    target.mkdir(parents=True)
    for f in adapter.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    now = utc_now()
    with ws.write() as conn:
        conn.execute("UPDATE run SET status='done', step=4, finished_at=?, message='Finished all 4 steps.' "
                     "WHERE id=?", (now, run.id))
        for step, split, value in ((1, "train", 2.5), (2, "train", 2.1), (2, "validation", 2.3), (3, "train", 1.9),
                                   (4, "train", 1.7), (4, "validation", 2.0)):
            conn.execute("INSERT INTO run_metric(run_id, step, split, name, value, created_at) VALUES "
                         "(?, ?, ?, 'loss', ?, ?)", (run.id, step, split, value, now))
    return runs.get_run(ws, run.id)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, tiny_chat_model: Path) -> tuple[Workspace, runs.Run, Evaluation]:
    """One workspace for the module: a done run with a real adapter and a real test-split evaluation."""
    ws = Workspace(load_settings(tmp_path_factory.mktemp("report") / "home"))
    adapter = _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("report-adapter"))
    project = create_project(ws, "colours", task_description="Name colours.")
    version_id = crafted_version(ws, project.id)
    run = finished_run(ws, project.id, version_id, tiny_chat_model, adapter)
    ev = evaluate(ws, run.id, EvalConfig(max_new_tokens=6, temperature=0.8, seed=1))
    assert ev.status == "done" and ev.metrics["n"] == 3
    return ws, run, ev


def test_markdown_has_the_tables_and_says_what_is_missing(setup: tuple[Workspace, runs.Run, Evaluation]) -> None:
    ws, run, ev = setup
    report = comparison_report(ws, run.id)
    md = report.markdown
    assert report.title == "colours: base vs fine-tuned" and md.startswith("# colours: base vs fine-tuned\n")
    assert "| Method | LoRA |" in md and "| Steps | 4 / 4 |" in md and "| Best validation loss | 2.0000 |" in md
    for row in ev.metrics["rows"]:  # every metric with its base, tuned and change, as stored
        label = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact": "Exact match"}[row["metric"]]
        assert (f"| {label} (higher is better) | {row['base']:.3f} | {row['tuned']:.3f} | {row['delta']:+.3f} |"
                in md)
    assert "3 rows of the test split of dataset version v1 (#1), temperature 0.8, at most 6 new tokens, seed 1" in md
    loss = ev.metrics["loss"]
    assert f"| Loss (lower is better) | {loss['base']:.3f} | {loss['tuned']:.3f} |" in md
    # Missing pieces say what to do instead of failing.
    assert f"No finished evaluation on the validation split yet. Run one in the Compare tab (Batch evaluation), " \
           f"or with `seed-studio eval --run {run.id} --split validation`." in md
    assert "No blind A/B votes yet." in md
    # Sample pairs: every evaluated row (3 <= 5), user text escaped, no markup and no chart in Markdown.
    assert md.count("### Example ") == 3 and "**Fine-tuned:**" in md
    assert "<script" not in md and "&lt;script&gt;alert('x')&lt;/script&gt; Summarise \\| this &amp; that" in md
    assert "<svg" not in md and "Augmentation ablation" not in md


def test_html_escapes_user_text_and_draws_charts(setup: tuple[Workspace, runs.Run, Evaluation]) -> None:
    ws, run, _ = setup
    page = comparison_report(ws, run.id).html
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Summarise | this &amp; that" in page
    charts = dict(re.findall(r"data-chart='(\w+)' data-points='(\d+)'", page))
    assert page.count("<svg") == 3
    assert charts["line"] == "6"  # the 6 logged loss points
    assert charts["bar"] == "6"  # ROUGE-L, exact match and BLEU/100: base and fine-tuned
    assert charts["histogram"] == "3"  # one ROUGE-L change per evaluated row
    assert page.count("<polyline") == 2  # train and validation curves
    assert "No finished evaluation on the validation split yet." in page and "No blind A/B votes yet." in page
    assert f"<code>seed-studio eval --run {run.id} --split validation</code>" in page
    assert page.count("<h3>Example ") == 3


def test_votes_show_up_in_the_report(setup: tuple[Workspace, runs.Run, Evaluation], tiny_chat_model: Path,
                                     tmp_path: Path) -> None:
    ws, run, _ = setup
    # A second run of the project (no evaluation), so the module's first run keeps no votes.
    other = runs.create_run(ws, run.project_id, dataset_version_id=run.dataset_version_id,
                            base_model_ref=str(tiny_chat_model), config=TrainConfig(max_steps=4), device="cpu")
    for i, want in enumerate(["tuned", "tuned", "base", "tie"]):
        prompt = f"prompt {i} <b>bold</b>"
        shown_a = assign_sides(str(other.id), prompt)
        a, b = ("x", "y") if shown_a == "base" else ("y", "x")
        pair = ABPair(other.id, prompt, shown_a, a, b, "x", "y", "tiny", {})
        record_vote(ws, pair, "tie" if want == "tie" else ("A" if shown_a == want else "B"))
    report = comparison_report(ws, other.id)
    assert "| 2 | 1 | 1 | 67% |" in report.markdown
    assert "The fine-tuned model won 2 of 3 decisive votes (67%" in report.markdown
    assert "<td class='num'>2</td><td class='num'>1</td><td class='num'>1</td>" in report.html
    # Nothing evaluated for this run: both splits and the samples say what to do; the HTML draws no metric chart.
    assert report.markdown.count("No finished evaluation on the") == 3
    assert "data-chart='bar'" not in report.html
    card = model_card_section(ws, other.id)
    assert "Not evaluated against the base model yet." in card and "Blind A/B votes by people:" in card


def test_model_card_section_has_tables_and_no_secrets(setup: tuple[Workspace, runs.Run, Evaluation],
                                                      tiny_chat_model: Path) -> None:
    ws, run, ev = setup
    card = model_card_section(ws, run.id)
    assert card.startswith("## Evaluation\n")
    assert (f"on {ev.metrics['n']} held-out test rows (temperature 0.8, at most 6 new tokens, seed 1, the same for "
            "both models):") in card
    assert "| Metric | Base model | Fine-tuned | Change |" in card
    assert f"Fine-tuned from {tiny_chat_model.name} (a local model folder) with LoRA on dataset version v1 (#" in card
    assert str(tiny_chat_model.parent) not in card and str(ws.home) not in card

    # A judged evaluation whose stored judge text carries a credential and a URL with a password (inserted
    # directly in the eval table with the documented metrics shape: the judge needs a teacher model).
    metrics = {**ev.metrics, "judge": {
        "tuned_wins": 2, "base_wins": 1, "ties": 0, "n": 3, "win_rate": 2 / 3, "low": 0.2, "high": 0.94,
        "unparsed": 0, "message": f"Judge at https://user:pw@judge.example/v1?key={SECRET} said tuned; {SECRET}.",
        "teacher": f"judge-7b @ https://user:pw@judge.example/v1?key={SECRET}"}}
    with ws.write() as conn:
        conn.execute("INSERT INTO eval(run_id, split, metrics, created_at, project_id, dataset_version_id, "
                     "base_model_ref, status, config, examples) VALUES (?, 'test', ?, ?, ?, ?, ?, 'done', ?, ?)",
                     (run.id, json.dumps(metrics), utc_now(), run.project_id, run.dataset_version_id,
                      run.base_model_ref, json.dumps(ev.config.to_dict()), json.dumps(ev.examples)))
    for text in (model_card_section(ws, run.id), comparison_report(ws, run.id).markdown,
                 comparison_report(ws, run.id).html):
        assert SECRET not in text and "user:pw" not in text
        assert "https://judge.example/v1 said tuned; [redacted]." in text
        assert "LLM judge (judge-7b @ https://judge.example/v1), answers shown in both orders" in text


def test_export_writes_atomically_and_refuses_bad_input(setup: tuple[Workspace, runs.Run, Evaluation],
                                                        tmp_path: Path) -> None:
    ws, run, _ = setup
    report = comparison_report(ws, run.id)
    md = export_report(ws, run.id)
    assert md == ws.exports_dir / f"run-{run.id}-comparison.md" and md.read_text() == report.markdown
    page = export_report(ws, run.id, "HTML", tmp_path)  # a folder: the default name inside it
    assert page == tmp_path / f"run-{run.id}-comparison.html" and page.read_text() == report.html
    named = export_report(ws, run.id, "markdown", tmp_path / "deep" / "mine.md")
    assert named.read_text() == report.markdown
    leftovers = [p.name for folder in (ws.exports_dir, tmp_path) for p in folder.iterdir() if p.name.startswith(".")]
    assert leftovers == []

    before, files = snapshot(ws), sorted(ws.exports_dir.iterdir())
    with pytest.raises(QualityError, match="'pdf' is not a report format; use md"):
        export_report(ws, run.id, "pdf")
    with pytest.raises(TrainError, match="no run #999"):
        export_report(ws, 999)
    assert snapshot(ws) == before and sorted(ws.exports_dir.iterdir()) == files


def test_cli_report(setup: tuple[Workspace, runs.Run, Evaluation], tmp_path: Path) -> None:
    ws, run, _ = setup
    out = tmp_path / "report.html"
    done = cli(ws.home, "report", "--run", str(run.id), "--format", "html", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out) and out.read_text() == comparison_report(ws, run.id).html
    default = cli(ws.home, "report", "--run", str(run.id))
    assert default.returncode == 0 and Path(default.stdout.strip()) == ws.exports_dir / f"run-{run.id}-comparison.md"
    for args, message in ((("--run", str(run.id), "--format", "pdf"), "'pdf' is not a report format"),
                          (("--run", "999"), "There is no run #999")):
        bad = cli(ws.home, "report", *args)
        assert bad.returncode == 2 and bad.stderr.startswith("Error: ") and message in bad.stderr, bad.stderr
