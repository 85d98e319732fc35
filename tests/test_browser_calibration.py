"""A person on the Review tab sees, beside the gate, how far the judge and a second reviewer agree with the
reviews, and the warning once they would keep rows by the judge's score; the same numbers come from the API.

The reviewed batch is written straight into the app's workspace (tests.test_calibration.bad_judge_batch):
reviewing has its own browser test.
"""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from studio.review.verdicts import record_verdict
from tests.browser import browser_page
from tests.conftest import ROOT
from tests.test_browser_review import open_review, setup_project
from tests.test_calibration import bad_judge_batch

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_calibration_beside_the_gate_and_the_judge_warning(running_app, tmp_path) -> None:
    from gradio_client import Client

    with browser_page(height=1400) as page:
        ws, pid = setup_project(running_app, page, "Calibration")
        batch_id = bad_judge_batch(ws, pid)
        with ws.read() as conn:
            rows = [r["candidate_id"] for r in conn.execute(
                "SELECT candidate_id FROM review WHERE reviewer='ana' ORDER BY id LIMIT 5")]
        for i, cid in enumerate(rows):  # a second reviewer agrees with ana on 5 rows (4 rejects, 1 accept)
            record_verdict(ws, cid, verdict="reject" if i < 4 else "accept", reviewer="bo",
                           reason_tags=["other"] if i < 4 else [])
        open_review(page)

        block = page.locator("#rev-calibration .calib")
        expect(block).to_have_attribute("data-judge-usable", "false")
        expect(block).to_have_attribute("data-judge-agree", "8")
        expect(block).to_have_attribute("data-warning", "false")  # nothing is selected by score yet
        expect(block).to_contain_text("8 of 20 rows")
        expect(block).to_contain_text("Reviewers (ana, bo) saw 5 rows in common and all agreed on 5")
        gate = page.locator("#rev-gate .gate").bounding_box()
        box = block.bounding_box()
        assert box["y"] >= gate["y"] and box["y"] - (gate["y"] + gate["height"]) < 200  # right under the gate
        assert box["x"] < gate["x"] + gate["width"] and gate["x"] < box["x"] + box["width"]

        # Keeping rows by the judge's score now: the block warns, in words.
        page.locator("#rev-min-judge input[type=number]").fill("3")
        page.locator("#rev-min-judge input[type=number]").press("Tab")
        expect(block).to_have_attribute("data-warning", "true")
        expect(page.locator("#rev-calibration .calib-warning")).to_contain_text(
            "too far from the reviewers to select by its score")
        page.locator("#rev-calibration").screenshot(path=str(tmp_path / "calibration.png"))
        if os.environ.get("SEED_STUDIO_UPDATE_SCREENSHOTS"):
            shutil.copy(tmp_path / "calibration.png", ROOT / "assets" / "screenshot-calibration.png")

    client = Client(running_app.url, verbose=False)
    data = client.predict(batch_id, 3.0, api_name="/review_calibration")
    assert (data["judge"]["agree"], data["judge_usable"], data["reviewers"]["rows"]) == (8, False, 5)
