"""A person in a real browser: create a project, upload seeds, see the preview, import, reload."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from tests.browser import browser_page
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def open_new_project(page, url: str, name: str) -> None:
    """Open the studio, create a project from the project bar and wait until the tab has loaded it."""
    page.goto(url)
    # Let the page's load event answer first ("No project yet" appears, as the workspace is new): a project
    # created before it would be overwritten by its older answer, a race no person typing a name can hit.
    expect(page.locator("#project-status")).to_be_visible()
    page.get_by_label("New project name").fill(name)
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#seed-count")).to_contain_text("0 seeds")


def test_upload_preview_import_and_reload(running_app, shared_seeds, tmp_path) -> None:
    with browser_page() as page:
        open_new_project(page, running_app.url, "Self-Instruct seeds")
        expect(page.get_by_text("Start here:")).to_be_visible()
        expect(page.locator("#project-picker input")).to_have_value("Self-Instruct seeds  ·  0 seeds")

        page.locator("#task-description textarea").press_sequentially("better at coding", delay=10)
        expect(page.locator("#task-advice")).to_contain_text("Too vague")

        page.locator("#seed-upload input[type=file]").set_input_files(str(shared_seeds))
        summary = page.locator("#import-summary")
        expect(summary).to_contain_text("120 rows read as Instruction / input / output (Alpaca); 120 ready to import")
        preview = page.locator("#seed-preview")
        expect(preview).to_contain_text("Write a script in JavaScript for printing the current date and time.")
        page.screenshot(path=str(tmp_path / "task-seeds-preview.png"), full_page=True)

        page.get_by_role("button", name="Import 120 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("120 seeds")
        expect(page.locator("#seed-library")).to_contain_text("self_instruct_seeds.jsonl row 1")
        page.screenshot(path=str(tmp_path / "task-seeds-imported.png"), full_page=True)

        # A reload opens the same project (remembered in the browser) with what the workspace holds.
        page.reload()
        expect(page.locator("#project-picker input")).to_have_value("Self-Instruct seeds  ·  120 seeds")
        expect(page.locator("#seed-count")).to_contain_text("120 seeds")

    assert (tmp_path / "task-seeds-preview.png").stat().st_size > 10_000
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "task-seeds-preview.png", ROOT / "assets" / "screenshot-task-seeds.png")


def test_bad_upload_shows_the_message_in_the_page(running_app, tmp_path) -> None:
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("instruction,output\nCaf\xe9,x\n".encode("latin-1"))
    with browser_page() as page:
        open_new_project(page, running_app.url, "Bad uploads")
        expect(page.locator("#project-picker input")).to_have_value("Bad uploads  ·  0 seeds")
        page.locator("#seed-upload input[type=file]").set_input_files(str(bad))
        expect(page.locator("#import-summary")).to_contain_text("latin1.csv is not UTF-8 text: line 2")
        expect(page.locator("#import-seeds")).to_be_disabled()

        # A Hub import when the Hub cannot be reached says so in the page.
        page.get_by_text("…or import a dataset from the Hugging Face Hub").click()
        page.get_by_label("Hub dataset id").fill("tatsu-lab/alpaca")
        page.get_by_role("button", name="Load from the Hub").click()
        expect(page.locator("#import-summary")).to_contain_text("cannot be reached from this machine")


def test_mapping_step_edit_and_delete_in_the_page(running_app, tmp_path) -> None:
    qa = tmp_path / "qa.csv"
    qa.write_text("task,answer\nWhy is the sky blue?,Rayleigh scattering.\nName a prime,7\n")
    with browser_page() as page:
        open_new_project(page, running_app.url, "Mapping")

        page.locator("#seed-upload input[type=file]").set_input_files(str(qa))
        # Columns that only resemble a format: the mapping step opens with the guess filled in.
        expect(page.locator("#import-summary")).to_contain_text("Best guess")
        expect(page.locator("#map-instruction input")).to_have_value("task")
        expect(page.locator("#map-output input")).to_have_value("answer")
        page.get_by_role("button", name="Import 2 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("2 seeds")

        # Click a seed, edit it, save: the table shows the edit.
        page.locator("#seed-library").get_by_text("Name a prime").click()
        output = page.locator("#edit-output textarea")
        expect(output).to_have_value("7")
        output.fill("7 (also 2, 3, 5, 11...)")
        page.get_by_role("button", name="Save changes").click()
        expect(page.locator("#seed-library")).to_contain_text("7 (also 2, 3, 5, 11...)")

        # An edit that breaks the seed is refused with the reason; nothing changes.
        output.fill("")
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_text("output is empty").first).to_be_visible()

        page.get_by_role("button", name="Delete this seed").click()
        expect(page.locator("#seed-count")).to_contain_text("1 seed in")
        expect(page.locator("#seed-library")).not_to_contain_text("Name a prime")

    from studio.workspace import Workspace
    from studio.workspace.projects import find_project
    from studio.workspace.seeds import list_seeds

    ws = Workspace.open(running_app.home)
    (left,) = list_seeds(ws, find_project(ws, "Mapping").id)
    assert left.data["instruction"] == "Why is the sky blue?"


def test_problem_rows_are_listed_in_the_page(running_app, tmp_path) -> None:
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"instruction": "Say hi", "output": "Hello"}\n{"instruction": "Say bye", "output": ""}\n')
    with browser_page() as page:
        open_new_project(page, running_app.url, "Problems")
        page.locator("#seed-upload input[type=file]").set_input_files(str(mixed))
        problems = page.locator("#seed-problems")
        expect(problems).to_contain_text("output is empty")
        expect(problems).to_contain_text("output")
        expect(page.get_by_role("button", name="Import 1 seed")).to_be_enabled()


def test_example_seeds_for_a_newcomer(running_app) -> None:
    with browser_page() as page:
        open_new_project(page, running_app.url, "First try")
        page.locator("#use-example").click()
        expect(page.locator("#import-summary")).to_contain_text("support_replies.jsonl: 16 rows read")
        page.get_by_role("button", name="Import 16 seeds").click()
        expect(page.locator("#seed-count")).to_contain_text("16 seeds")
        # The picker's label follows at once, without a reload or opening the list.
        expect(page.locator("#project-picker input")).to_have_value("First try  ·  16 seeds")
