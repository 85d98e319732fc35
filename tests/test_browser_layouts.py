"""A person brings the files they downloaded: every published layout, uploaded in a real browser.

One page walks every fixture of tests/fixtures/seed_files (upload, read the preview, clear), then uses the
choices a layout needs: a confirmed guess, chat-tree paths, a sheet, label names, the header tick.
"""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from studio.data.formats import FORMATS
from tests.browser import browser_page
from tests.conftest import ROOT
from tests.test_browser_seeds import open_new_project
from tests.test_import_layouts import FIXTURES, LAYOUTS

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def another_project(page, name: str) -> None:
    page.get_by_label("New project name").fill(name)
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#project-picker input")).to_have_value(f"{name}  ·  0 seeds")
    expect(page.locator("#seed-count")).to_contain_text("0 seeds")


def upload(page, name: str) -> None:
    box = page.locator("#seed-upload")
    clear = box.get_by_role("button", name="Clear")
    if clear.count():
        clear.first.click()
        expect(page.locator("#import-summary")).to_contain_text("Nothing is saved until you press")
    box.locator("input[type=file]").set_input_files(str(FIXTURES / name))


def test_every_layout_previews_in_the_page(running_app, tmp_path) -> None:
    with browser_page(height=1100) as page:
        open_new_project(page, running_app.url, "Layouts")
        summary = page.locator("#import-summary")
        for layout in LAYOUTS:
            upload(page, layout.file)
            title = FORMATS[layout.format].title
            expect(summary, f"{layout.file}").to_contain_text(
                f"{layout.rows} rows read as {title}; {layout.usable} ready to import")
            expect(page.get_by_role("button", name=f"Import {layout.usable} seed")).to_be_enabled()
            for note in layout.notes[:1]:
                expect(summary, f"{layout.file}").to_contain_text(note)
            if layout.problems:
                problems = page.locator("#seed-problems")
                where = layout.problems[0].split("(", 1)[1].split(",")[0].rstrip(")")  # 'line 9', 'task 43'
                expect(problems, f"{layout.file}").to_contain_text(where)
            if not layout.confident:  # a guess opens the mapping step with the guess filled in
                for fld, col in layout.mapping.items():
                    expect(page.locator(f"#map-{fld} input"), f"{layout.file}").to_have_value(col)


def test_layout_choices_then_import(running_app, tmp_path) -> None:
    with browser_page(height=1300) as page:
        open_new_project(page, running_app.url, "NER from CoNLL")
        summary = page.locator("#import-summary")

        # CoNLL-2003: tag scheme and entity types in the preview, the chunk column offered as the other choice.
        upload(page, "conll2003.conll")
        expect(summary).to_contain_text("Tags from column 4 (IOB1; entity types LOC, MISC, ORG, PER)")
        expect(summary).to_contain_text("Column 3 also holds tags")
        page.get_by_text("Format and column mapping").click()
        expect(page.locator("#map-tags input")).to_have_value("column 4")
        for toast in page.locator(".toast-close").all():  # the 'project created' note would cover the summary
            toast.click()
        expect(page.locator(".toast-close")).to_have_count(0)
        page.wait_for_timeout(600)  # its fade-out
        page.locator("#seed-upload").evaluate("el => el.scrollIntoView()")
        page.screenshot(path=str(tmp_path / "import-conll.png"), full_page=False)
        page.get_by_role("button", name="Import 10 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("10 seeds")
        expect(page.locator("#seed-library")).to_contain_text("conll2003.conll row 1")

        # OpenAssistant trees: every path instead of the best one.
        another_project(page, "Chat trees")
        upload(page, "oasst_trees.jsonl")
        expect(summary).to_contain_text("4 rows read as Chat messages; 3 ready to import")
        page.get_by_text("Format and column mapping").click()
        page.get_by_label("Every path through the tree").check()
        expect(summary).to_contain_text("10 rows read as Chat messages; 9 ready to import")
        expect(page.locator("#seed-problems")).to_contain_text("the prompt has no reply yet")
        page.get_by_role("button", name="Import 9 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("9 seeds")

        # A workbook: the sheet with seed columns is read; the picker reads another one.
        another_project(page, "Workbook")
        upload(page, "seeds_two_sheets.xlsx")
        expect(summary).to_contain_text("4 rows read as Instruction / input / output (Alpaca)")
        page.get_by_text("Format and column mapping").click()
        sheet = page.locator("#seed-sheet input")
        expect(sheet).to_have_value("Seeds")
        sheet.click()
        page.get_by_role("option", name="Notes").click()
        expect(summary).to_contain_text("which do not match a seed format")
        sheet.click()
        page.get_by_role("option", name="Seeds").click()
        expect(summary).to_contain_text("4 ready to import")
        page.get_by_role("button", name="Import 4 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("4 seeds")

        # Labels stored as ids: names typed in the preview; an id without a name is a listed row problem.
        another_project(page, "Tweets")
        upload(page, "label_id_no_name.csv")
        expect(summary).to_contain_text("The labels are numbers (0, 1, 2)")
        page.get_by_text("Format and column mapping").click()
        names = page.locator("#seed-label-names textarea, #seed-label-names input").first
        names.fill("negative, positive")
        names.press("Enter")
        expect(summary).to_contain_text("4 ready to import")
        problems = page.locator("#seed-problems")
        expect(problems).to_contain_text("label id 2 has no name")
        expect(problems).to_contain_text("line 4")
        expect(problems).to_contain_text("line 7")
        expect(names).to_be_visible()  # the mapping step stays open while the person works in it
        page.wait_for_timeout(500)  # the page settles (no pending dim) before the picture
        page.screenshot(path=str(tmp_path / "import-label-names.png"), full_page=False)
        page.get_by_role("button", name="Import 4 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("4 seeds")
        page.locator("#seed-library").get_by_text("Friendly driver").first.wait_for()
        expect(page.locator("#seed-library")).to_contain_text("positive")

        # No header row: columns by number with a guess; the tick reads the first row as names instead.
        another_project(page, "AG News")
        upload(page, "ag_news_noheader.csv")
        expect(summary).to_contain_text("Best guess from the values")
        header = page.get_by_label("First row names the columns")
        expect(header).not_to_be_checked()
        expect(page.locator("#map-text input")).to_have_value("column 3")
        header.check()
        expect(summary).to_contain_text("5 rows read")
        header.uncheck()
        expect(summary).to_contain_text("6 rows read")
        names = page.locator("#seed-label-names textarea, #seed-label-names input").first
        names.fill("1=World, 2=Sports, 3=Business, 4=Sci/Tech")
        names.press("Enter")
        expect(summary).to_contain_text("4 labels: Business, Sci/Tech, Sports, World")
        page.get_by_role("button", name="Import 6 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("6 seeds")

    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "import-conll.png", ROOT / "assets" / "screenshot-import-conll.png")
