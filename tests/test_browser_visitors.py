"""The studio hosted for many people (a Space): two visitors in two browsers each get their own workspace.

The app runs with SPACE_ID set (as on Hugging Face Spaces), so it is in per-visitor mode, shows "Sign in with
Hugging Face" on the Publish tab, and switches training off with a note (this machine has no GPU).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from studio.ui.visitors import VISITORS_DIR
from studio.workspace import Workspace
from studio.workspace.projects import list_projects
from tests.browser import browser_contexts
from tests.conftest import EXAMPLE_SEEDS, RunningApp
from tests.test_browser_seeds import open_new_project

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_visitors_never_see_each_others_projects(tmp_path: Path) -> None:
    # What a Space with `hf_oauth: true` sets (the provider address is a closed port: nobody signs in here).
    space = {"SYSTEM": "spaces", "SPACE_ID": "seed-studio/test-space", "CUDA_VISIBLE_DEVICES": "",
             "OAUTH_CLIENT_ID": "test-client", "OAUTH_CLIENT_SECRET": "test-secret",
             "OAUTH_SCOPES": "openid profile write-repos", "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}
    app = RunningApp(tmp_path / "home", extra_env=space)
    try:
        with browser_contexts(2) as (ana, ben):
            open_new_project(ana, app.url, "Ana's replies")
            ana.locator("#seed-upload input[type=file]").set_input_files(str(EXAMPLE_SEEDS))
            expect(ana.locator("#import-summary")).to_contain_text("ready to import")
            ana.get_by_role("button", name="Import 16 seeds").click()
            expect(ana.locator("#seed-count")).to_contain_text("16 seeds")

            open_new_project(ben, app.url, "Ben's classifier")
            expect(ben.locator("#project-picker input")).to_have_value("Ben's classifier  ·  0 seeds")
            ben.locator("#project-picker input").click()
            expect(ben.get_by_role("option")).to_have_count(1)  # only his own project
            expect(ben.get_by_role("option", name="Ana's replies")).to_have_count(0)
            ben.keyboard.press("Escape")

            # Ana comes back (a reload): her project and seeds are there, Ben's is not.
            ana.reload()
            expect(ana.locator("#project-picker input")).to_have_value("Ana's replies  ·  16 seeds")
            ana.locator("#project-picker input").click()
            expect(ana.get_by_role("option")).to_have_count(1)
            ana.keyboard.press("Escape")

            # A Space without a GPU: training is off, with the reason; publishing offers the sign-in button.
            ana.get_by_role("tab", name="Train").click()
            expect(ana.locator("#train-space-no-gpu")).to_contain_text("no GPU")
            expect(ana.locator("#train-start")).to_be_disabled()
            ana.get_by_role("tab", name="Publish").click()
            expect(ana.locator("#publish-login")).to_be_visible()
    finally:
        app.stop()

    homes = sorted((app.home / VISITORS_DIR).iterdir())
    names = sorted(p.name for home in homes for p in list_projects(Workspace.open(home)))
    assert names == ["Ana's replies", "Ben's classifier"]
    assert [len(list_projects(Workspace.open(home))) for home in homes] == [1, 1]
    assert list_projects(Workspace.open(app.home)) == []  # nothing in the shared root
