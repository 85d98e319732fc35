"""A person in a real browser on the Publish tab pushes a finished run's adapter and a dataset version to the
Hub (the loopback Hub stand-in, tests/hub_server.py, with the real huggingface_hub and datasets clients in the
app), with a token pasted into the page; the token ends up in no file of the workspace.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from studio.workspace import Workspace
from studio.workspace.projects import find_project
from tests.browser import browser_page, busy_cpu
from tests.conftest import ROOT, SHARED_SEEDS, RunningApp
from tests.factories import publishable_run
from tests.hub_server import HubServer
from tests.test_browser_seeds import open_new_project

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOKEN = "hf_browserPublishToken1234567890"


def test_publish_adapter_and_dataset_from_the_browser(tiny_chat_model: Path, tmp_path: Path) -> None:
    with HubServer(tokens={TOKEN: "alice"}) as hub:
        app = RunningApp(tmp_path / "home", extra_env={"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1",
                                                       "HF_HOME": str(tmp_path / "hf_home")})
        try:
            with browser_page(height=1300) as page:
                open_new_project(page, app.url, "Publish in the browser")
                ws = Workspace.open(app.home)
                pid = find_project(ws, "Publish in the browser").id
                run_id, version_id = publishable_run(ws, pid, SHARED_SEEDS, tiny_chat_model)
                page.reload()
                page.get_by_role("tab", name="Publish").click()
                expect(page.locator("#publish-run input")).to_have_value(re.compile("first try"))

                page.locator("#publish-token input").fill(TOKEN)
                page.locator("#publish-check").click()
                expect(page.locator("#publish-account")).to_contain_text("Signed in as alice")

                # Export for local runtimes: the estimate shows before anything is written, then the files and
                # the commands that run them.
                estimate = page.locator("#export-estimate")
                expect(estimate).to_contain_text(f"Will write run{run_id}-q8_0.gguf", timeout=60_000)
                expect(estimate).to_contain_text("Modelfile")
                assert not (Path(ws.runs_dir) / str(run_id) / "export").exists()
                page.locator("#export-go").click()
                view = page.locator("#export-result")
                expect(view).to_contain_text(f"ollama create run{run_id} -f Modelfile", timeout=120_000)
                expect(view).to_contain_text("llama-server -m ")
                expect(view).to_contain_text("vllm serve")
                expect(estimate).to_contain_text(f"Exported run{run_id}-q8_0.gguf")
                view.scroll_into_view_if_needed()
                page.screenshot(path=str(tmp_path / "export.png"), full_page=False)

                page.locator("#publish-repo textarea, #publish-repo input").first.fill("seed-lora")
                # On a busy machine (a clean-clone run once waited 120 s for this answer while the push had
                # landed), with a reload's refreshes still under way when the button is pressed.
                with busy_cpu():
                    page.reload()
                    page.get_by_role("tab", name="Publish").click()
                    expect(page.locator("#publish-run input")).to_have_value(re.compile("first try"), timeout=60_000)
                    page.locator("#publish-token input").fill(TOKEN)
                    page.locator("#publish-repo textarea, #publish-repo input").first.fill("seed-lora")
                    page.locator("#publish-model-go").click()
                    result = page.locator("#publish-result")
                    expect(result).to_contain_text("Pushed to alice/seed-lora", timeout=120_000)
                    expect(result).to_contain_text("adapter_model.safetensors")
                    expect(result).to_contain_text(f"run{run_id}-q8_0.gguf")  # the export went beside it

                page.locator("#publish-ds-repo textarea, #publish-ds-repo input").first.fill("seed-data")
                page.locator("#publish-dataset-go").click()
                expect(result).to_contain_text("Pushed to alice/seed-data", timeout=120_000)
                table = page.locator("#publish-table")
                expect(table).to_contain_text("alice/seed-lora")
                expect(table).to_contain_text("alice/seed-data")
                expect(page.get_by_text("Published from this project")).to_be_visible()
                page.evaluate("document.querySelectorAll('.toast-wrap').forEach(e => e.remove())")
                page.locator("#publish-result").scroll_into_view_if_needed()
                page.screenshot(path=str(tmp_path / "publish.png"), full_page=False)
        finally:
            app.stop()

    with ws.read() as conn:
        kinds = sorted((r["kind"], r["subject_id"]) for r in conn.execute("SELECT kind, subject_id FROM publication"))
    assert kinds == [("adapter", run_id), ("dataset", version_id)]
    # The token was only ever in the page and the Authorization header: no file of the workspace holds it.
    for path in app.home.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert TOKEN not in app.log.read_text(errors="replace")
    if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
        shutil.copy(tmp_path / "publish.png", ROOT / "assets" / "screenshot-publish.png")
        shutil.copy(tmp_path / "export.png", ROOT / "assets" / "screenshot-export.png")
