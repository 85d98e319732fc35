"""A person in a real browser on the Review tab: apply the filters, review a sample with the keyboard,
see the gate decide, reload and find every verdict saved; then a bad batch fails, is discarded, and its
drafted prompt revision becomes a new prompt version; finally the Dataset tab freezes a version.

The batch is written straight into the app's workspace (tests.factories.add_batch): generation has its
own browser test, and crafted rows make the filters' and the gate's outcome known in advance.
"""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from studio.data.importer import commit_import, preview_file
from studio.workspace import Workspace
from studio.workspace.projects import find_project, update_project
from tests.browser import browser_page, busy_cpu
from tests.conftest import ROOT, SHARED_SEEDS
from tests.factories import add_batch
from tests.scripted_llm import ScriptedLLM
from tests.test_browser_seeds import open_new_project

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOPICS = ["a rainy Monday", "a lost umbrella", "the first snow", "a new bicycle", "a noisy neighbour",
          "a late train", "a birthday cake", "a garden in spring", "a broken laptop", "a quiet library",
          "a hiking trip", "a job interview", "a power cut", "a street market", "a chess match",
          "a school reunion", "a flat tyre", "a summer storm", "a museum visit", "a cooking class",
          "a football final", "a road trip", "a first concert", "a foggy harbour", "a camping night",
          "a city marathon", "a bakery queue", "a science fair", "a moving day", "a winter sale"]


def crafted_rows() -> list[dict]:
    rows = [{"instruction": f"Write two sentences about {t} for a children's magazine.", "input": "",
             "output": f"Here is a small story about {t}. Everyone learned something kind that day."}
            for t in TOPICS]
    rows.append(dict(rows[0]))  # an exact duplicate
    rows.append({"instruction": "Explain why the sky looks blue in the afternoon.", "input": "",
                 "output": "As an AI language model, I cannot see the sky."})  # an AI-ism
    return rows


def setup_project(running_app, page, name: str) -> tuple[Workspace, int]:
    open_new_project(page, running_app.url, name)
    ws = Workspace.open(running_app.home)
    pid = find_project(ws, name).id
    commit_import(ws, pid, preview_file(ws, SHARED_SEEDS, project_id=pid))
    return ws, pid


def open_review(page) -> None:
    page.reload()
    page.get_by_role("tab", name="Review").click()
    expect(page.locator("#rev-batch-note")).to_contain_text("usable rows")


def test_filter_review_with_the_keyboard_and_pass_the_gate(running_app, tmp_path) -> None:
    with browser_page(height=1400) as page:
        ws, pid = setup_project(running_app, page, "Review in the browser")
        add_batch(ws, pid, crafted_rows())
        open_review(page)

        # 1 · filters: the preview marks the duplicate and the AI-ism; apply saves it.
        page.locator("#rev-filters").get_by_label("Same meaning").uncheck()  # keeps this test model-free and fast
        # The crafted rows are not rewordings of the seeds add_batch assigns them: fidelity is off for them.
        page.locator("#rev-filters").get_by_label("Drifted from its seed").uncheck()
        page.get_by_role("button", name="Preview effect").click()
        summary = page.locator("#rev-filter-summary")
        expect(summary).to_contain_text("Preview")
        expect(summary).to_contain_text("30 of 32 rows pass")
        page.get_by_role("button", name="Apply filters").click()
        expect(summary).to_contain_text("Applied")
        expect(page.locator("#rev-filter-rows")).to_contain_text("As an AI language model")

        # The diversity report draws the seeds and the new rows on one map.
        page.get_by_text("How diverse is this batch?").click()
        page.get_by_role("button", name="Compute diversity report").click()
        expect(page.locator("#rev-diversity-summary")).to_contain_text("distinct-2", timeout=60_000)
        expect(page.locator("#rev-map figure[data-chart='scatter']")).to_have_attribute("data-points", "152")

        # 2 · review 20 rows with the keyboard: A accepts, 3 then R rejects as off-task.
        page.locator("#rev-reviewer textarea").press_sequentially("ana")
        page.locator("#rev-reviewer textarea").press("Tab")
        page.get_by_role("button", name="Draw sample").click()
        card = page.locator("#rev-card .rev-card")
        expect(card).to_have_attribute("data-total", "20")
        page.locator("#rev-card").click()  # focus the page, not a text field
        for n in range(19):
            page.keyboard.press("a")
            expect(card).to_have_attribute("data-reviewed", str(n + 1))
        page.wait_for_timeout(300)  # a person's pause: the card's reset of the tags has landed
        page.keyboard.press("3")
        expect(page.locator("#rev-tags input[type=checkbox]").nth(2)).to_be_checked()
        page.keyboard.press("r")
        expect(card).to_have_attribute("data-reviewed", "20")
        expect(page.locator("#rev-card")).to_contain_text("20 / 20 reviewed")

        # 3 · the gate: 1 error in 20 (5%) is under 10%: pass, with its interval on screen.
        gate = page.locator("#rev-gate .gate")
        expect(gate).to_have_attribute("data-decision", "pass")
        expect(page.locator("#rev-gate")).to_contain_text("5.0%")
        page.wait_for_timeout(500)
        page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)

        # A reload (and an app restart would be the same: it is all in the workspace) loses nothing.
        # On a busy machine (CI once lost this answer: a refresh from the reload landed after it), the
        # decision's answer reaches the page and the gate ends up showing the decision.
        with busy_cpu():
            page.reload()
            page.get_by_role("tab", name="Review").click()
            expect(page.locator("#rev-reviewer textarea")).to_have_value("ana")
            expect(page.locator("#rev-card .rev-card")).to_have_attribute("data-reviewed", "20")
            expect(page.locator("#rev-gate .gate")).to_have_attribute("data-decision", "pass")

            page.get_by_role("button", name="Apply the decision").click()
            expect(page.locator("#rev-gate-result")).to_contain_text("rows selected for datasets", timeout=60_000)
            expect(page.locator("#rev-gate")).to_contain_text("selected", timeout=60_000)
        page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")
        page.locator("#rev-gate").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "review-decided.png"), full_page=False)

        # The Dataset tab freezes the seeds and the selected rows into a version.
        page.get_by_role("tab", name="Dataset").click()
        page.get_by_role("button", name="Preview splits").click()
        expect(page.locator("#ds-plan-out")).to_contain_text("nothing saved")
        page.get_by_role("button", name="Freeze version").click()
        expect(page.locator("#ds-versions")).to_contain_text("v1")
        expect(page.locator("#ds-card")).to_contain_text("validation")

    with ws.read() as conn:
        verdicts = conn.execute("SELECT verdict, reviewer FROM review").fetchall()
    assert len(verdicts) == 20 and {v["reviewer"] for v in verdicts} == {"ana"}
    assert sorted(v["verdict"] for v in verdicts).count("reject") == 1
    assert (tmp_path / "review.png").stat().st_size > 10_000
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "review.png", ROOT / "assets" / "screenshot-review.png")


def test_a_failed_gate_discards_the_batch_and_saves_a_revised_prompt(running_app) -> None:
    with ScriptedLLM() as llm, browser_page(height=1400) as page:
        ws, pid = setup_project(running_app, page, "Failing batch")
        update_project(ws, pid, teacher_ref=f"{llm.model}@{llm.url}")  # the teacher drafts the revision
        add_batch(ws, pid, crafted_rows()[:25], strategy="instruction-expansion")
        open_review(page)
        page.locator("#rev-reviewer textarea").press_sequentially("bo")
        page.locator("#rev-reviewer textarea").press("Tab")
        page.get_by_role("button", name="Draw sample").click()
        card = page.locator("#rev-card .rev-card")
        expect(card).to_have_attribute("data-total", "20")
        page.locator("#rev-card").click()
        for n in range(20):
            page.wait_for_timeout(300)  # a person's pause: the card's reset of the tags has landed
            page.keyboard.press("1")  # hallucination (each row starts with no tags)
            page.keyboard.press("r")
            expect(card).to_have_attribute("data-reviewed", str(n + 1))
        expect(page.locator("#rev-gate .gate")).to_have_attribute("data-decision", "fail")
        page.get_by_role("button", name="Apply the decision").click()
        expect(page.locator("#rev-gate-result")).to_contain_text("failed the gate and is discarded")
        expect(page.locator("#rev-gate")).to_contain_text("discarded")
        revision = page.locator("#rev-revision")
        expect(revision).to_contain_text("{{", timeout=60_000)
        page.get_by_role("button", name="Save as a new prompt version").click()
        expect(page.locator("#rev-revision-note")).to_contain_text("Saved as prompt v2")

    with ws.read() as conn:
        status = conn.execute("SELECT status FROM batch WHERE project_id=?", (pid,)).fetchone()["status"]
        versions = conn.execute("SELECT version, source_batch_id FROM prompt_version WHERE project_id=? "
                                "AND strategy='instruction-expansion' ORDER BY version", (pid,)).fetchall()
        kept = conn.execute("SELECT COUNT(*) FROM candidate c JOIN batch b ON b.id=c.batch_id "
                            "WHERE b.project_id=?", (pid,)).fetchone()[0]
    assert status == "discarded" and kept == 25  # discarded, nothing deleted
    assert [v["version"] for v in versions][-1] == 2 and versions[-1]["source_batch_id"] is not None
