"""A person in a real browser learns from preferences: the reviews are done (a friendly answer kept and a curt one
rejected for each of 24 prompts, through the review API), they build the pairs in the Dataset tab, freeze a
version with them, train with "Learn from: preference pairs (DPO)" on the Train tab and watch the reward curves,
then ask the tuned model and the base side by side in Compare.

The base model is tests' tiny 2-layer Llama: real DPO in a real worker process, fast enough for CI's two cores.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.sync_api import expect

from studio.data.importer import commit_import, preview_file
from studio.workspace import Workspace
from studio.workspace.projects import find_project, update_project
from tests.browser import browser_page
from tests.conftest import ROOT, SHARED_SEEDS
from tests.test_browser_seeds import open_new_project
from tests.test_browser_train import set_number
from tests.test_preference_training import reviewed_pairs

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_build_pairs_freeze_train_dpo_and_compare(running_app, tiny_chat_model, tmp_path) -> None:
    with browser_page(height=1500) as page:
        open_new_project(page, running_app.url, "Preferences in the browser")
        ws = Workspace.open(running_app.home)
        pid = find_project(ws, "Preferences in the browser").id
        commit_import(ws, pid, preview_file(ws, SHARED_SEEDS, project_id=pid))
        reviewed_pairs(ws, pid)
        update_project(ws, pid, base_model_ref=str(tiny_chat_model))
        page.reload()

        # Dataset: build the pairs, read a few, freeze a version with them.
        page.get_by_role("tab", name="Dataset").click()
        page.get_by_text("Preference pairs (for DPO / ORPO)").click()
        page.get_by_role("button", name="Build pairs").click()
        out = page.locator("#ds-pairs-out")
        expect(out).to_contain_text("24 preference pairs over 24 prompts")
        expect(out).to_contain_text("24 from accepted vs rejected in review")
        table = page.locator("#ds-pairs-table")
        expect(table).to_contain_text("is a lovely topic")
        expect(table).to_contain_text("Stop asking me about")
        expect(page.locator("#ds-pairs-on input")).to_be_checked()  # building pairs ticks "add them"
        page.locator("#ds-name textarea").fill("with pairs")
        page.locator("#ds-freeze").click()
        expect(page.locator("#ds-plan-out")).to_contain_text("Frozen as with pairs")
        # Two kept answers went to the test split (as synthetic test rows): their prompts' pairs are left out.
        expect(page.locator("#ds-plan-out")).to_contain_text("preference pairs: 18 train, 4 held out")
        expect(page.locator("#ds-plan-out")).to_contain_text("left out 2 pairs: its prompt or its seeds belong")
        expect(page.locator("#ds-card")).to_contain_text("Preference pairs")
        page.screenshot(path=str(tmp_path / "pairs.png"), full_page=False)

        # Train: learn from the pairs.
        page.get_by_role("tab", name="Train").click()
        version = page.locator("#train-version input")
        expect(version).to_have_value(re.compile(r"with pairs .* 18 \+ 4 preference pairs"))
        start_from = page.locator("#train-start-from-run")
        expect(start_from).to_be_hidden()  # learning from examples: nothing to go on from
        page.locator("#train-objective").get_by_text("Preference pairs (DPO)").click()
        expect(start_from.locator("input")).to_have_value("The base model (a new adapter)")  # no finished run yet
        where = page.locator("#train-devices")
        if not where.locator("label.selected").count():
            where.locator("input[type=checkbox]").first.click()
        page.get_by_text("Advanced settings").click()
        set_number(page, "train-max-steps", "6")
        set_number(page, "train-eval-every-steps", "3")
        set_number(page, "train-learning-rate", "0.005")
        page.locator("#train-name textarea").fill("prefers friendly")
        page.locator("#train-start").click()
        progress = page.locator("#train-progress .train-progress")
        expect(progress).to_have_attribute("data-status", "done", timeout=240_000)
        expect(progress).to_contain_text("held-out pairs it prefers the chosen answer")
        rewards = page.locator("#train-rewards")
        # (attached, not "visible": a flat line at 100% has no height for the browser)
        expect(rewards.locator("polyline[data-series='held-out pairs']")).to_have_count(1)
        expect(rewards.locator("polyline[data-series='train pairs']")).to_have_count(1)
        expect(rewards).to_contain_text("how often the better answer wins")
        rewards.screenshot(path=str(tmp_path / "train-rewards.png"))

        # Compare: the preference-tuned run answers beside its base model.
        page.get_by_role("tab", name="Compare").click()
        expect(page.locator("#compare-runs")).to_contain_text("prefers friendly")
        prompt = page.locator("#compare-prompt textarea")
        prompt.fill("Tell me about lanterns.")
        page.locator("#compare-go").click()
        expect(page.locator("#compare-status")).to_contain_text("Same prompt, same settings, same seed",
                                                                timeout=120_000)
        expect(page.locator("#compare-out-1")).to_contain_text("Fine-tuned: prefers friendly")

        # Back on Train, the finished run is offered to go on from: picked at once on switching to preferences.
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-objective").get_by_text("Examples (SFT)").click()
        expect(start_from).to_be_hidden()
        page.locator("#train-objective").get_by_text("Preference pairs (DPO)").click()
        expect(start_from.locator("input")).to_have_value(re.compile(r"^Run \d+ “prefers friendly” · LoRA · learned "
                                                                     r"from preference pairs \(DPO\) · finished"))
        page.get_by_text("Advanced settings").click()  # closed again for the picture (it was opened above)
        page.screenshot(path=str(tmp_path / "train-preferences.png"), full_page=False)

    with ws.read() as conn:
        run = conn.execute("SELECT config, status FROM run WHERE project_id=?", (pid,)).fetchone()
    assert run["status"] == "done" and '"objective": "dpo"' in run["config"]
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "pairs.png", ROOT / "assets" / "screenshot-pairs.png")
        shutil.copy(tmp_path / "train-preferences.png", ROOT / "assets" / "screenshot-train-preferences.png")
