"""The whole journey in a real browser, as a non-engineer makes it, with no terminal: open the studio, create
a project, upload the shared Self-Instruct seeds, generate a small batch with the embedded teacher (SmolLM2),
apply the filters, review the sample with the keyboard, pass the gate, freeze a dataset version, train a
few steps on CPU, compare base and fine-tuned side by side, and publish the adapter and the dataset to the
loopback Hub. A screenshot of each step is saved; with SEED_STUDIO_UPDATE_SCREENSHOTS=1 they become the
README's screenshots.

Everything is real: the app process, the embedded model as teacher and as base, the training worker, the
Hub clients (against tests/hub_server.py, since huggingface.co cannot be reached here). The slowest test of
the suite (a few minutes on 2 cores), so it runs in `make test` and `make test-fast` skips it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from studio.workspace import Workspace
from tests.browser import browser_page
from tests.conftest import ROOT, SHARED_SEEDS, RunningApp
from tests.hub_server import HubServer
from tests.test_browser_seeds import open_new_project

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOKEN = "hf_journeyToken0123456789abcdef"
# README image <- the journey step it shows.
README_SHOTS = {"1-seeds": "screenshot-task-seeds.png", "2-generate": "screenshot-generate.png",
                "3-review": "screenshot-review.png", "5-train": "screenshot-train.png",
                "6-compare": "screenshot-compare.png", "7-publish": "screenshot-publish.png"}


def shot(page: Page, folder: Path, name: str, full_page: bool = True) -> None:
    page.wait_for_timeout(400)  # let bars and toasts settle
    page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")
    page.screenshot(path=str(folder / f"journey-{name}.png"), full_page=full_page)


def set_number(page: Page, selector: str, value: str) -> None:
    box = page.locator(selector)
    box.fill("")
    box.press_sequentially(value)
    box.press("Tab")


def test_seeds_to_published_adapter_in_the_browser(converted_chat_model: Path, models_dir: Path,
                                                    tmp_path: Path) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    with HubServer(tokens={TOKEN: "ana"}) as hub:
        app = RunningApp(tmp_path / "home", extra_env={
            "SEED_STUDIO_MODELS_DIR": str(models_dir),  # the converted SmolLM2 of this test session
            "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf_home")})
        try:
            with browser_page(height=1100) as page:
                # 1 · project and seeds
                open_new_project(page, app.url, "Everyday helper")
                page.locator("#task-description textarea").press_sequentially(
                    "Answer everyday questions and small writing tasks in a friendly, concise way.", delay=2)
                page.locator("#seed-upload input[type=file]").set_input_files(str(SHARED_SEEDS))
                expect(page.locator("#import-summary")).to_contain_text("120 ready to import")
                # The README's first picture: the task with its advice and the file checked, from the top.
                page.evaluate("window.scrollTo(0, 0)")
                shot(page, shots, "1-seeds", full_page=False)
                page.get_by_role("button", name="Import 120 seeds").click()
                expect(page.locator("#seed-count")).to_contain_text("120 seeds")

                # 2 · a small batch from the embedded teacher: new phrasings of the seeds' instructions, decoded
                # under the strategy's JSON schema (each seed's own answer is kept, so the rows stay sound)
                page.get_by_role("tab", name="Generate").click()
                expect(page.locator("#gen-progress")).to_contain_text("No batch yet")
                page.locator("#gen-strategy").get_by_text("Instruction expansion").click()
                page.get_by_text("Endpoint and decoding settings").click()
                slider = page.locator("#gen-max-tokens input[type=number]")
                slider.fill("160")
                slider.press("Enter")
                # A 135M teacher writes mostly near-copies of its seeds; seed 6 is one where several of its
                # rows pass the filters (found with `seed-studio generate --seed`; the same seed writes the
                # same batch), so the journey does not depend on luck.
                set_number(page, "#gen-seed input", "6")
                set_number(page, "#gen-count input", "8")
                page.get_by_role("button", name="Start batch").click()
                progress = page.locator("#gen-progress .gen-progress")
                expect(progress).to_have_attribute("data-state", "done", timeout=420_000)
                shot(page, shots, "2-generate")

                # 3 · filters, then the sample reviewed with the keyboard, and the gate
                page.get_by_role("tab", name="Review").click()
                expect(page.locator("#rev-batch-note")).to_contain_text("usable rows")
                # Rephrasings share their seed's answer, so "Same meaning" would mark most: off, as in Review's docs.
                page.locator("#rev-filters").get_by_label("Same meaning").uncheck()
                # A 135M teacher's rewordings drift from their seeds (fidelity marks all 8 of a seed-6 batch):
                # off, so the journey has rows to review; the filter itself is tested in test_fidelity.py.
                page.locator("#rev-filters").get_by_label("Drifted from its seed").uncheck()
                page.get_by_role("button", name="Apply filters").click()
                expect(page.locator("#rev-filter-summary")).to_contain_text("Applied", timeout=120_000)
                page.locator("#rev-reviewer textarea").press_sequentially("ana")
                page.locator("#rev-reviewer textarea").press("Tab")
                page.get_by_role("button", name="Draw sample").click()
                card = page.locator("#rev-card .rev-card")
                expect(card).to_have_attribute("data-total", re.compile(r"^[1-9]\d*$"))
                total = int(card.get_attribute("data-total"))
                page.locator("#rev-card").click()  # focus the page, not a text field
                for n in range(total):
                    page.keyboard.press("a")
                    expect(card).to_have_attribute("data-reviewed", str(n + 1))
                gate = page.locator("#rev-gate .gate")
                expect(gate).to_have_attribute("data-decision", "pass")
                shot(page, shots, "3-review")
                page.get_by_role("button", name="Apply the decision").click()
                expect(page.locator("#rev-gate-result")).to_contain_text("rows selected for datasets")
                expect(page.locator("#rev-gate")).to_contain_text("selected")

                # 4 · a frozen dataset version
                page.get_by_role("tab", name="Dataset").click()
                page.get_by_role("button", name="Freeze version").click()
                expect(page.locator("#ds-versions")).to_contain_text("v1")
                shot(page, shots, "4-dataset")

                # 5 · a few training steps on CPU (LoRA on the embedded SmolLM2)
                page.get_by_role("tab", name="Train").click()
                page.locator("#train-preset").get_by_text("Quick").click()
                page.get_by_text("Advanced settings").click()
                set_number(page, "#train-max-steps input", "3")
                set_number(page, "#train-eval-every-steps input", "1")
                page.get_by_role("button", name="Train", exact=True).click()
                train = page.locator("#train-progress .train-progress")
                expect(train).to_have_attribute("data-status", "done", timeout=420_000)
                expect(page.locator("#train-curves polyline[data-series='validation']")).to_be_visible()
                shot(page, shots, "5-train")

                # 6 · base vs fine-tuned, side by side
                page.get_by_role("tab", name="Compare").click()
                expect(page.locator("#compare-runs")).to_contain_text("lora")
                page.locator("#compare-prompt textarea").press_sequentially("Give three tips for staying healthy.")
                page.get_by_text("Decoding settings (the same for every column)").click()
                tokens = page.locator("#compare-max-tokens input[type=number]")
                tokens.fill("48")
                tokens.press("Enter")
                page.locator("#compare-go").click()
                expect(page.locator("#compare-status")).to_contain_text("Same prompt", timeout=180_000)
                assert page.locator("#compare-out-base textarea").input_value()
                assert page.locator("#compare-out-1 textarea").input_value()
                shot(page, shots, "6-compare", full_page=False)

                # 7 · publish the adapter and the dataset
                page.get_by_role("tab", name="Publish").click()
                page.locator("#publish-token input").fill(TOKEN)
                page.locator("#publish-check").click()
                expect(page.locator("#publish-account")).to_contain_text("Signed in as ana")
                page.locator("#publish-repo textarea, #publish-repo input").first.fill("everyday-helper-lora")
                page.locator("#publish-model-go").click()
                result = page.locator("#publish-result")
                expect(result).to_contain_text("Pushed to ana/everyday-helper-lora", timeout=180_000)
                page.locator("#publish-ds-repo textarea, #publish-ds-repo input").first.fill("everyday-helper-data")
                page.locator("#publish-dataset-go").click()
                expect(result).to_contain_text("Pushed to ana/everyday-helper-data", timeout=180_000)
                expect(page.locator("#publish-table")).to_contain_text("ana/everyday-helper-lora")
                page.locator("#publish-result").scroll_into_view_if_needed()
                shot(page, shots, "7-publish", full_page=False)
        finally:
            app.stop()

        assert hub.repo("ana/everyday-helper-lora") is not None
        assert hub.repo("ana/everyday-helper-data", "dataset") is not None
    ws = Workspace.open(app.home)
    with ws.read() as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM run WHERE status='done'").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM publication").fetchone()[0] == 2
    assert len(list(shots.glob("journey-*.png"))) == 7
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        for step, name in README_SHOTS.items():
            shutil.copy(shots / f"journey-{step}.png", ROOT / "assets" / name)
