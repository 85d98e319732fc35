"""A person in a real browser on the Compare tab: a finished run is there; they pick a test prompt, and the base
model's and the fine-tuned model's answers stream into their columns at the same time. Then they evaluate on
held-out rows, then on a file of their own (one row of it was in training: flagged) with an extra metric of
their own, vote blind on an A/B pair, see who was who, export the report, reload, and find it all again.

The base model is the embedded SmolLM2 (real words in both columns). The run's adapter is a real LoRA adapter
with random weights written where a finished run keeps it: training itself is covered by test_train_runs and
test_browser_train, and here it would only cost CI minutes without changing what the page does.
"""

from __future__ import annotations

import csv
import os
import shutil

import pytest
from playwright.sync_api import expect

from studio.data.importer import commit_import, preview_file
from studio.data.versions import FreezeConfig, freeze_version, version_rows
from studio.workspace import Workspace
from studio.workspace.projects import find_project
from tests.browser import browser_page
from tests.conftest import ROOT, SHARED_SEEDS
from tests.factories import finished_run
from tests.test_browser_seeds import open_new_project
from tests.test_eval_metrics import LENGTH_RATIO, write_module

pytestmark = [pytest.mark.slow, pytest.mark.browser]

READ_COLUMNS = """() => ['#compare-out-base', '#compare-out-1'].map(
    id => document.querySelector(id + ' textarea').value)"""


def test_side_by_side_streams_evaluate_vote_and_report(running_app, converted_chat_model, tmp_path) -> None:
    with browser_page(height=1400) as page:
        open_new_project(page, running_app.url, "Compare in the browser")
        ws = Workspace.open(running_app.home)
        pid = find_project(ws, "Compare in the browser").id
        commit_import(ws, pid, preview_file(ws, SHARED_SEEDS, project_id=pid))
        version = freeze_version(ws, pid, FreezeConfig(name="v1", validation_fraction=0.05, test_fraction=0.1))
        run_id = finished_run(ws, pid, version.id, str(converted_chat_model))
        page.reload()
        page.get_by_role("tab", name="Compare").click()
        expect(page.locator("#compare-runs")).to_contain_text("first try")
        expect(page.locator("#compare-base input")).to_have_value(str(converted_chat_model))

        # A prompt from the test split fills the prompt box.
        page.locator("#compare-pick input").click()
        page.get_by_role("option").first.click()
        prompt = page.locator("#compare-prompt textarea")
        expect(prompt).not_to_have_value("")
        # A prompt of one's own: the one the README screenshot shows.
        prompt.fill("")
        prompt.press_sequentially("Give three tips for staying healthy.")
        page.get_by_text("Decoding settings").click()
        tokens = page.locator("#compare-max-tokens input[type=number]")
        tokens.fill("64")
        tokens.press("Enter")

        page.locator("#compare-go").click()
        # Watch both columns while they are written: at some moment both hold part of their answer.
        snapshots: list[list[str]] = []
        status = page.locator("#compare-status")
        for _ in range(2000):
            snapshots.append(page.evaluate(READ_COLUMNS))
            if "Done" in (status.text_content() or ""):
                break
            page.wait_for_timeout(25)
        expect(status).to_contain_text("Same prompt, same settings, same seed", timeout=120_000)
        final = page.evaluate(READ_COLUMNS)
        assert all(final), f"both columns answer: {final}"
        partial = [s for s in snapshots if all(s) and s != final]
        assert partial, "the two answers should grow at the same time, not one after the other"
        assert any(len(s[0]) < len(final[0]) and len(s[1]) < len(final[1]) for s in partial)
        expect(page.locator("#compare-out-1")).to_contain_text("Fine-tuned: first try")
        page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")
        page.screenshot(path=str(tmp_path / "compare.png"), full_page=False)

        # Numbers on three held-out rows.
        limit = page.locator("#eval-limit input")
        limit.fill("3")
        limit.press("Tab")
        page.locator("#eval-go").click()
        progress = page.locator("#eval-progress .eval-progress")
        expect(progress).to_have_attribute("data-status", "done", timeout=240_000)
        table = page.locator("#eval-table")
        for label in ("ROUGE-L", "BLEU", "Exact match", "Perplexity"):
            expect(table).to_contain_text(label)
        expect(page.locator("#eval-chart rect[data-series='fine-tuned']")).to_have_count(3)
        expect(page.locator("#eval-examples").get_by_role("row")).to_have_count(4)  # header + 3 rows

        # A held-out file of one's own: a new row and a row the model trained on; and a metric of one's own.
        trained = sorted(version_rows(ws, version.id, "train"), key=lambda r: r.id)[0].data
        held_out = tmp_path / "my questions.csv"
        with held_out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["instruction", "input", "output"])
            writer.writeheader()
            writer.writerow({"instruction": "Name a colour of the rainbow.", "input": "", "output": "Indigo."})
            writer.writerow({k: trained.get(k, "") for k in ("instruction", "input", "output")})
        metric = write_module(tmp_path, "length_ratio", LENGTH_RATIO)
        page.locator("#eval-split").get_by_label("a file I upload").check()
        page.locator("#eval-file input[type=file]").set_input_files(str(held_out))
        # Gradio draws the name's stem and extension in two spans (their text may join with a space).
        expect(page.locator("#eval-file").get_by_role("cell", name="my questions.csv")).to_be_visible()
        page.locator("#eval-metrics textarea").fill(str(metric))
        page.locator("#eval-go").click()
        expect(progress).to_contain_text("held-out file my questions.csv", timeout=30_000)
        expect(progress).to_have_attribute("data-status", "done", timeout=240_000)
        note = page.locator("#eval-note")
        expect(note).to_contain_text("read as Instruction / input / output (Alpaca): 2 rows used of 2 read")
        expect(note).to_contain_text("1 of 2 rows repeat the training data")
        expect(note).to_contain_text("inflate the scores")
        for label in ("ROUGE-L", "BLEU", "Exact match", "length_ratio"):
            expect(table).to_contain_text(label)
        flagged = page.locator("#eval-examples").get_by_role("row").filter(has_text="same row as training")
        expect(flagged).to_have_count(1)
        expect(flagged).to_contain_text(" ".join(trained["output"].split())[:20])
        note.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "eval-file.png"), full_page=False)

        # Blind A/B: a pair, a vote, the reveal, the tally.
        page.locator("#ab-voter textarea").press_sequentially("Ana")
        page.locator("#ab-next").click()
        expect(page.locator("#ab-vote-a")).to_be_enabled(timeout=120_000)
        a_text = page.locator("#ab-a textarea").input_value()
        b_text = page.locator("#ab-b textarea").input_value()
        assert a_text and b_text
        page.locator("#ab-vote-a").click()
        expect(page.locator("#ab-reveal")).to_contain_text("was the")
        expect(page.locator("#ab-tally")).to_contain_text("1 votes")
        expect(page.locator("#ab-vote-a")).to_be_disabled()

        page.locator("#report-html").click()
        expect(page.locator("#report-file")).to_contain_text(f"run-{run_id}-comparison")
        report = page.request.get(page.locator("#report-file a").first.get_attribute("href")).text()
        assert report.startswith("<!DOCTYPE html>") and "<svg" in report and "ROUGE-L" in report

        page.reload()
        page.get_by_role("tab", name="Compare").click()
        expect(page.locator("#eval-progress .eval-progress")).to_have_attribute("data-status", "done")
        expect(page.locator("#eval-table")).to_contain_text("ROUGE-L")
        expect(page.locator("#ab-tally")).to_contain_text("1 votes")

    with ws.read() as conn:
        vote = conn.execute("SELECT choice, shown_a, voter FROM vote WHERE run_id=?", (run_id,)).fetchone()
    assert vote["voter"] == "Ana" and vote["choice"] == vote["shown_a"]  # "A is better" = the model shown as A
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "compare.png", ROOT / "assets" / "screenshot-compare.png")
        shutil.copy(tmp_path / "eval-file.png", ROOT / "assets" / "screenshot-eval-file.png")
