"""A person in a real browser plans what a batch should cover, generates it, and sees the coverage.

The example project comes with a plan (its delivery problems and customer tones); the person adds topics
from a file, runs a few-shot batch, sees each row's topic in the table, then opens the Review tab's data
profile: the planned topics and their real shares. The teacher is tests.scripted_llm over real HTTP,
answering under the schema each request carries ("honour" mode).
"""

from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.browser import browser_page
from tests.conftest import ROOT
from tests.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_plan_topics_generate_and_see_the_profile(running_app, tmp_path) -> None:
    topics_file = tmp_path / "topics.txt"
    topics_file.write_text("parcel left out in the rain\nrefund for a late order | 3\n", encoding="utf-8")
    with ScriptedLLM(response_format="honour") as llm, browser_page(height=1300) as page:
        page.goto(running_app.url)
        expect(page.locator("#project-status")).to_be_visible()
        page.locator("#try-example").click()
        expect(page.locator("#seed-count")).to_contain_text("16 seeds")

        page.get_by_role("tab", name="Generate").click()
        teacher = page.locator("#gen-teacher input")
        teacher.fill(llm.url)
        teacher.press("Enter")
        page.get_by_text("Diversity plan: what the new rows should cover").click()
        topics = page.locator("#gen-plan-topics textarea")
        expect(topics).to_have_value(re.compile(r"^late delivery\nlost parcel"))  # the example's own plan
        expect(page.locator("#gen-plan-use input")).to_be_checked()
        with page.expect_file_chooser() as chooser:
            page.locator("#gen-plan-upload").click()
        chooser.value.set_files(str(topics_file))
        expect(page.locator("#gen-plan-status")).to_contain_text("Added 2 topics")
        expect(topics).to_have_value(re.compile(r"refund for a late order \| 3$"))
        page.get_by_role("button", name="Save plan").click()
        expect(page.locator("#gen-plan-status")).to_contain_text("Saved plan v2: 10 topics, 1 things to vary")

        count = page.locator("#gen-count input")
        count.fill("")
        count.press_sequentially("12")
        count.press("Tab")
        page.get_by_role("button", name="Start batch").click()
        expect(page.locator("#gen-progress .gen-progress")).to_have_attribute("data-state", "done", timeout=60_000)
        expect(page.locator("#gen-rows")).to_contain_text("topic: ")
        expect(page.locator("#gen-rows")).to_contain_text("tone: ")
        if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS") == "1":
            page.locator("#gen-plan").screenshot(path=str(tmp_path / "plan.png"))
            shutil.copy(tmp_path / "plan.png", ROOT / "assets" / "screenshot-plan.png")

        page.get_by_role("tab", name="Review").click()
        expect(page.locator("#rev-batch-note")).to_contain_text("usable rows")
        page.get_by_text("Data profile of this batch").click()
        coverage = page.locator("#review-profile-coverage")
        expect(coverage).to_contain_text("Plan coverage: topic")
        expect(coverage).to_contain_text("refund for a late")  # labels of up to ~32 characters are shown whole
        expect(coverage.locator("[data-series='planned']").first).to_be_attached()
        expect(coverage.locator("[data-series='observed']").first).to_be_attached()
        expect(page.locator("#review-profile-status")).to_contain_text("ok")
        expect(page.locator("#review-profile-lengths figure.chart").first).to_be_visible()
        if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS") == "1":
            page.locator("#review-profile").screenshot(path=str(tmp_path / "profile.png"))
            shutil.copy(tmp_path / "profile.png", ROOT / "assets" / "screenshot-profile.png")
