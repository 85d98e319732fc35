"""A person in a real browser on the Generate tab: preview rows, keep them, run a batch that streams into
the table, look at a row's provenance, reload and see the same batch.

The teacher is tests.scripted_llm, a real OpenAI-compatible server on loopback that the app reaches
through its EndpointTeacher (see that module for why a scripted teacher stands in for an LLM here).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest
from playwright.sync_api import expect

from studio.augment.classic import augmenter_info
from tests.browser import browser_page
from tests.conftest import ROOT
from tests.scripted_llm import ScriptedLLM
from tests.test_browser_seeds import open_new_project

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_preview_keep_and_run_a_batch_from_the_generate_tab(running_app, tmp_path) -> None:
    with ScriptedLLM(delay=0.2) as llm, browser_page(height=1100) as page:
        open_new_project(page, running_app.url, "Generate in the browser")
        page.locator("#use-example").click()
        page.get_by_role("button", name="Import 16 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("16 seeds")

        page.get_by_role("tab", name="Generate").click()
        expect(page.locator("#gen-progress")).to_contain_text("No batch yet")
        teacher = page.locator("#gen-teacher input")
        teacher.fill(llm.url)
        teacher.press("Enter")
        page.get_by_role("button", name="Test connection").click()
        expect(page.locator("#gen-test-result")).to_contain_text("Connected to")
        # The person's choice is the project's teacher from now on (saved on their input, not on a refresh).
        for _ in range(50):  # its own event: give it up to 10 s on a busy machine
            with sqlite3.connect(running_app.home / "studio.db") as conn:
                saved = conn.execute("SELECT teacher_ref FROM project WHERE name = 'Generate in the browser'"
                                     ).fetchone()
            if saved and llm.url in saved[0]:
                break
            page.wait_for_timeout(200)
        assert saved and llm.url in saved[0], saved

        # Preview: rows appear, nothing is stored until "Keep these rows".
        page.get_by_role("button", name="Preview 5 rows").click()
        preview = page.locator("#gen-preview-table")
        expect(preview).to_contain_text("New instruction")
        page.get_by_role("button", name="Keep these rows").click()
        expect(page.locator("#gen-batches")).to_contain_text("5 / 5")

        # A batch of 12 streams into the table with a progress bar, then says it is done.
        count = page.locator("#gen-count input")
        count.fill("")
        count.press_sequentially("12")
        page.locator("#gen-hint textarea").press_sequentially("late deliveries, refunds, angry customers")
        page.get_by_text("Endpoint and decoding settings").click()
        seed = page.locator("#gen-seed input")
        seed.press_sequentially("1234")
        seed.press("Tab")
        page.get_by_role("button", name="Start batch").click()
        progress = page.locator("#gen-progress")
        expect(progress).to_contain_text("running")
        expect(page.locator("#gen-progress .gen-progress")).to_have_attribute("data-state", "done", timeout=60_000)
        expect(progress).to_contain_text("12 / 12 rows")
        rows = page.locator("#gen-rows")
        expect(rows).to_contain_text("New instruction")
        page.wait_for_timeout(1000)  # let the progress bar finish its transition
        page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")  # cosmetic: no toasts
        page.screenshot(path=str(tmp_path / "generate.png"), full_page=True)

        # The seed typed in the page is the batch's seed (as `seed-studio generate --seed 1234`).
        with sqlite3.connect(running_app.home / "studio.db") as conn:
            params = json.loads(conn.execute("SELECT params FROM batch ORDER BY id DESC LIMIT 1").fetchone()[0])
        assert (params["rng_seed"], params["generation"]["seed"]) == (1234, 1234)

        # Every row knows where it came from.
        rows.locator("span:visible", has_text="New instruction").first.click()
        expect(page.locator("#gen-provenance")).to_contain_text('"strategy": "few-shot"')
        expect(page.locator("#gen-provenance")).to_contain_text(llm.url)

        # A reload shows the same truth, from the workspace.
        page.reload()
        page.get_by_role("tab", name="Generate").click()
        expect(page.locator("#gen-progress")).to_contain_text("12 / 12 rows")
        expect(page.locator("#gen-batches")).to_contain_text("5 / 5")

    assert (tmp_path / "generate.png").stat().st_size > 10_000
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "generate.png", ROOT / "assets" / "screenshot-generate.png")


def test_stop_and_resume_in_the_page(running_app) -> None:
    with ScriptedLLM(delay=0.4) as llm, browser_page() as page:
        open_new_project(page, running_app.url, "Stop and resume")
        page.locator("#use-example").click()
        page.get_by_role("button", name="Import 16 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("16 seeds")
        page.get_by_role("tab", name="Generate").click()
        teacher = page.locator("#gen-teacher input")
        teacher.fill(llm.url)
        teacher.press("Enter")
        count = page.locator("#gen-count input")
        count.fill("")
        count.press_sequentially("200")
        page.get_by_role("button", name="Start batch").click()
        state = page.locator("#gen-progress .gen-progress")
        expect(state).to_have_attribute("data-state", "running")
        page.get_by_role("button", name="Stop").click()
        expect(state).to_have_attribute("data-state", "stopped", timeout=30_000)
        done_at_stop = int(state.get_attribute("data-done") or 0)
        assert done_at_stop < 200
        page.get_by_role("button", name="Resume").click()
        expect(state).to_have_attribute("data-state", "done", timeout=90_000)
        expect(state).to_have_attribute("data-done", "200")


def test_bad_requests_show_a_message_and_start_nothing(running_app) -> None:
    with browser_page() as page:
        open_new_project(page, running_app.url, "Bad generate")
        page.get_by_role("tab", name="Generate").click()
        page.get_by_role("button", name="Start batch").click()
        expect(page.get_by_text("This project has no seeds yet")).to_be_visible()
        expect(page.locator("#gen-batches")).not_to_contain_text("few-shot")
        # Classic augmentation: the augmenters are checked when it is picked (not at start-up), so one that
        # cannot run here (WordNet without NLTK's data) is marked and says why.
        page.locator("#gen-strategy").get_by_text("Classic augmentation (nlpaug)").click()
        expect(page.get_by_text("Replaces letters with neighbours on a QWERTY keyboard")).to_be_visible()
        wordnet = augmenter_info("wordnet_synonym")
        label = wordnet.title if wordnet.available else f"{wordnet.title} (unavailable)"
        page.locator("#gen-augmenter input").click()
        page.get_by_role("option", name=label, exact=True).click()
        expect(page.get_by_text(wordnet.help if wordnet.available else "WordNet synonyms need")).to_be_visible()
