"""A person in a real browser on the Train tab: a frozen dataset version and a base model are there, they
pick the Quick preset, shorten the run in the advanced settings, press Train, watch it finish with its
loss curves, reload, and see the same run and curves (read back from the workspace).

The base model is tests' tiny 2-layer Llama (SmolLM2's tokenizer and chat template): real training in a
real worker process, fast enough for CI's two cores.
"""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from studio.data.importer import commit_import, preview_file
from studio.data.versions import FreezeConfig, freeze_version
from studio.workspace import Workspace
from studio.workspace.projects import find_project, update_project
from tests.browser import browser_page
from tests.conftest import ROOT, SHARED_SEEDS
from tests.test_browser_seeds import open_new_project

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def set_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input")
    box.fill("")
    box.press_sequentially(value)
    box.press("Tab")


def test_train_from_the_browser_and_see_the_curves_after_a_reload(running_app, tiny_chat_model, tmp_path) -> None:
    with browser_page(height=1300) as page:
        open_new_project(page, running_app.url, "Train in the browser")
        ws = Workspace.open(running_app.home)
        pid = find_project(ws, "Train in the browser").id
        commit_import(ws, pid, preview_file(ws, SHARED_SEEDS, project_id=pid))
        freeze_version(ws, pid, FreezeConfig(name="v1", validation_fraction=0.05, test_fraction=0.1))
        update_project(ws, pid, base_model_ref=str(tiny_chat_model))
        page.reload()
        page.get_by_role("tab", name="Train").click()
        expect(page.locator("#train-progress")).to_contain_text("No run yet")
        expect(page.locator("#train-estimate")).to_contain_text("on this CPU")
        # No GPU here: the picker offers the processor, ticked; with nothing ticked the page says what to do.
        where = page.locator("#train-devices")
        expect(where).to_contain_text("This computer's processor (CPU)")
        expect(where).to_contain_text("No GPU here")
        where.locator("input[type=checkbox]").first.uncheck()
        expect(page.locator("#train-estimate")).to_contain_text("Tick at least one place to train")
        where.locator("input[type=checkbox]").first.click()
        expect(where.locator("label.selected")).to_have_count(1)  # Gradio marks a ticked choice's label
        expect(page.locator("#train-estimate")).to_contain_text("on this CPU")

        page.locator("#train-preset").get_by_text("Quick").click()
        expect(page.locator("#train-preset-help")).to_contain_text("a few minutes")
        page.get_by_text("Advanced settings").click()
        set_number(page, "train-max-steps", "6")
        set_number(page, "train-eval-every-steps", "2")
        expect(page.locator("#train-effective-batch")).to_contain_text("rows per update")
        page.get_by_role("button", name="Train", exact=True).click()

        progress = page.locator("#train-progress .train-progress")
        expect(progress).to_have_attribute("data-status", "done", timeout=180_000)
        expect(progress).to_have_attribute("data-step", "6")
        expect(progress).to_contain_text("the CPU")
        expect(page.locator("#train-stats")).to_contain_text("tokens/s")
        curves = page.locator("#train-curves")
        expect(curves.locator("polyline[data-series='train']")).to_be_visible()
        expect(curves.locator("polyline[data-series='validation']")).to_be_visible()
        page.wait_for_timeout(800)
        page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")
        page.screenshot(path=str(tmp_path / "train.png"), full_page=True)

        page.reload()
        page.get_by_role("tab", name="Train").click()
        expect(page.locator("#train-progress .train-progress")).to_have_attribute("data-status", "done")
        expect(page.locator("#train-runs")).to_contain_text("done")
        expect(page.locator("#train-curves polyline[data-series='train']")).to_be_visible()
        expect(page.locator("#train-curves polyline[data-series='validation']")).to_be_visible()

    with ws.read() as conn:
        points = conn.execute("SELECT split, COUNT(*) AS n FROM run_metric WHERE name='loss' GROUP BY split").fetchall()
    counts = {p["split"]: p["n"] for p in points}
    assert counts.get("train", 0) >= 3 and counts.get("validation", 0) >= 2
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "train.png", ROOT / "assets" / "screenshot-train.png")
