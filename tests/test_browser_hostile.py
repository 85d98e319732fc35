"""HTML and JavaScript in seeds and generated rows, in a real browser: every place that shows such text (the
upload preview, the seed library, the filter table and the review card, the dataset card, the Compare
prompt picker, prompt, columns and evaluation examples) shows it as text; none of it runs.

Every seed carries `<script>` in its instruction and an `<img onerror>` in its answer, so whichever rows land
in a split or a sample, the page has to show hostile text. If any of it ran, `window.__pwned` would be set.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from studio.data.versions import FreezeConfig, freeze_version
from studio.workspace import Workspace
from studio.workspace.projects import find_project, update_project
from tests.browser import browser_page
from tests.conftest import SHARED_SEEDS
from tests.factories import add_batch, finished_run
from tests.test_browser_seeds import open_new_project

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=1">'
SVG = "<svg onload=\"window.__pwned=1\"></svg>"
# What must never appear in the page as markup: any element carrying a handler, or a script that sets the flag.
INJECTED = """() => ({pwned: window.__pwned === undefined ? null : window.__pwned,
  handlers: [...document.querySelectorAll('[onerror], [onload]')].filter(e => e !== document.body).length,
  scripts: [...document.querySelectorAll('script')].filter(s => s.textContent.includes('__pwned')).length})"""


def assert_inert(page, where: str) -> None:
    page.wait_for_timeout(200)  # an <img src=x> fails to load at once; let any handler have its chance
    seen = page.evaluate(INJECTED)
    assert seen == {"pwned": None, "handlers": 0, "scripts": 0}, f"{where}: hostile text became markup: {seen}"


def hostile_seeds(tmp_path) -> tuple:
    rows = [json.loads(line) for line in SHARED_SEEDS.read_text().splitlines() if line.strip()]
    rows = [{"instruction": f"{SCRIPT} {r['instruction']}", "input": r.get("input", ""),
             "output": f"{r['output']} {IMG}"} for r in rows]
    path = tmp_path / "hostile <img src=x onerror=window.__pwned=1>.jsonl"  # the name is shown too
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path, rows


def test_html_in_seeds_and_generated_rows_is_shown_as_text(running_app, tiny_chat_model, tmp_path) -> None:
    path, rows = hostile_seeds(tmp_path)
    with browser_page(height=1400) as page:
        open_new_project(page, running_app.url, "Hostile text")
        ws = Workspace.open(running_app.home)
        pid = find_project(ws, "Hostile text").id

        # Task & Seeds: the preview and, after the import, the library.
        page.locator("#seed-upload input[type=file]").set_input_files(str(path))
        expect(page.locator("#import-summary")).to_contain_text(f"{len(rows)} ready to import")
        expect(page.locator("#seed-preview")).to_contain_text(SCRIPT)
        expect(page.locator("#seed-preview")).to_contain_text(IMG)
        assert_inert(page, "seed preview")
        page.get_by_role("button", name=f"Import {len(rows)} seeds").click()
        expect(page.locator("#seed-count")).to_contain_text(f"{len(rows)} seeds")
        expect(page.locator("#seed-library")).to_contain_text(SCRIPT)
        assert_inert(page, "seed library")

        # Review: generated rows with markup, in the filter table and on the review card.
        generated = [{"instruction": f"{SVG} Write a haiku about the number {i}.", "input": IMG,
                      "output": f"{SCRIPT} Number {i} stands alone, {IMG} quiet in the row."} for i in range(24)]
        add_batch(ws, pid, generated)
        page.reload()
        page.get_by_role("tab", name="Review").click()
        expect(page.locator("#rev-batch-note")).to_contain_text("usable rows")
        page.locator("#rev-filters").get_by_label("Same meaning").uncheck()  # no embedding model: fast
        page.locator("#rev-filters").get_by_label("Drifted from its seed").uncheck()  # the other one that embeds
        # Preview only: the filters would (rightly) drop rows this alike; the sample is drawn from all of them.
        page.get_by_role("button", name="Preview effect").click()
        expect(page.locator("#rev-filter-summary")).to_contain_text("Preview")
        expect(page.locator("#rev-filter-rows")).to_contain_text(SVG)
        page.locator("#rev-reviewer textarea").press_sequentially("eve")
        page.locator("#rev-reviewer textarea").press("Tab")
        page.get_by_role("button", name="Draw sample").click()
        card = page.locator("#rev-card")
        expect(card.locator(".rev-card")).to_have_attribute("data-total", "20")
        expect(card).to_contain_text(SCRIPT)
        expect(card).to_contain_text(SVG)
        expect(card).to_contain_text(IMG)
        assert_inert(page, "review card")
        card.click()
        page.keyboard.press("a")  # the next card is drawn the same way
        expect(card.locator(".rev-card")).to_have_attribute("data-reviewed", "1")
        expect(card).to_contain_text(SCRIPT)
        assert_inert(page, "second review card")

        # Dataset: a task description with markup, on the card of a frozen version.
        update_project(ws, pid, task_description=f"Answer politely. {IMG} {SCRIPT}")
        version = freeze_version(ws, pid, FreezeConfig(name="v1", validation_fraction=0.05, test_fraction=0.05))
        page.reload()
        page.get_by_role("tab", name="Dataset").click()
        expect(page.locator("#ds-versions")).to_contain_text("v1")
        expect(page.locator("#ds-card")).to_contain_text("Answer politely.")
        expect(page.locator("#ds-card")).to_contain_text(IMG)
        assert_inert(page, "dataset card")

        # Compare: the picker lists test prompts with markup; the prompt and both columns show text.
        finished_run(ws, pid, version.id, str(tiny_chat_model))
        page.reload()
        page.get_by_role("tab", name="Compare").click()
        expect(page.locator("#compare-runs")).to_contain_text("first try")
        page.locator("#compare-pick input").click()
        expect(page.get_by_role("option").first).to_contain_text("<script>")
        page.get_by_role("option").first.click()
        expect(page.locator("#compare-prompt textarea")).to_have_value(re.compile(r"^<script>window\.__pwned=1"))
        page.get_by_text("Decoding settings").click()
        tokens = page.locator("#compare-max-tokens input[type=number]")
        tokens.fill("8")
        tokens.press("Enter")
        page.locator("#compare-go").click()
        expect(page.locator("#compare-status")).to_contain_text("Same prompt, same settings", timeout=120_000)
        # The tiny random model may answer with nothing but special tokens; the columns are text boxes either way.
        expect(page.locator("#compare-prompt textarea")).to_have_value(re.compile(r"^<script>window\.__pwned=1"))
        assert_inert(page, "compare columns")

        # Evaluation examples: prompts and references (with markup) in a table.
        limit = page.locator("#eval-limit input")
        limit.fill("2")
        limit.press("Tab")
        page.locator("#eval-go").click()
        expect(page.locator("#eval-progress .eval-progress")).to_have_attribute("data-status", "done",
                                                                                timeout=180_000)
        expect(page.locator("#eval-examples")).to_contain_text(SCRIPT)
        expect(page.locator("#eval-examples")).to_contain_text(IMG)
        assert_inert(page, "evaluation examples")

        # The check itself works: the same markup, inserted as markup, is caught.
        page.evaluate(f"document.body.insertAdjacentHTML('beforeend', {json.dumps(IMG)})")
        page.wait_for_timeout(300)
        assert page.evaluate(INJECTED)["pwned"] == 1
