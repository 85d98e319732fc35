"""Accessibility and first impression, in Chromium.

Names come from Chromium's own accessibility tree (what a screen reader is given), not from our guesses
about labels: every control on every tab, with every accordion open, must have a name, and the fields of a
tab must be told apart. The page must work at 1280x800 and at phone width (390 px), and the first screen
must say what to do in one sentence and offer the team's example."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from studio.examples import SUPPORT_REPLIES
from studio.ui import texts
from tests.browser import browser_page

pytestmark = pytest.mark.slow

TABS = [texts.TASK_TAB, texts.GENERATE_TAB, texts.REVIEW_TAB, texts.DATASET_TAB, texts.TRAIN_TAB,
        texts.COMPARE_TAB, texts.PUBLISH_TAB]
# Roles a person operates, plus images (a picture with no name is read as "image").
NAMED_ROLES = {"button", "textbox", "searchbox", "combobox", "listbox", "option", "checkbox", "radio", "switch",
               "slider", "spinbutton", "tab", "link", "menuitem", "columnheader", "image", "img"}
# Fields that hold the user's input: two with the same name on one tab cannot be told apart by ear.
FIELD_ROLES = {"textbox", "combobox", "checkbox", "slider"}

_DESCRIBE = """function () {
  const owner = this.closest('[id]');
  return this.outerHTML.slice(0, 160) + '  (inside #' + (owner ? owner.id : '?') + ')';
}"""


def accessibility_tree(page) -> tuple[list[str], list[tuple[str, str]]]:
    """(unnamed nodes described, (role, name) of every field) from Chromium's accessibility tree."""
    cdp = page.context.new_cdp_session(page)
    try:
        unnamed, fields = [], []
        for node in cdp.send("Accessibility.getFullAXTree")["nodes"]:
            if node.get("ignored"):
                continue  # hidden: another tab, a closed accordion, aria-hidden decoration
            role = (node.get("role") or {}).get("value")
            name = str((node.get("name") or {}).get("value") or "").strip()
            if role in FIELD_ROLES and name:
                fields.append((role, name))
            if role in NAMED_ROLES and not name:
                obj = cdp.send("DOM.resolveNode", {"backendNodeId": node["backendDOMNodeId"]})["object"]
                html = cdp.send("Runtime.callFunctionOn", {"objectId": obj["objectId"], "returnByValue": True,
                                                           "functionDeclaration": _DESCRIBE})["result"]["value"]
                unnamed.append(f"{role}: {html}")
        return unnamed, fields
    finally:
        cdp.detach()


def open_tab(page, name: str) -> None:
    """Click the tab; on a narrow screen the tabs that do not fit are behind Gradio's "More tabs" button."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.is_visible():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.get_by_role("button", name=name, exact=True).click()
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")


def open_every_accordion(page) -> None:
    closed = page.locator("button.label-wrap:not(.open):visible")
    for _ in range(40):  # an accordion can hold another: open until none is left closed
        if not closed.count():
            return
        closed.first.click()
    raise AssertionError("accordions keep closing again")


def page_width(page) -> tuple[int, int]:
    return page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


def start_line(page) -> str:
    return page.locator("#studio-intro p").filter(has_text="Start here:").inner_text()


def test_first_screen_says_what_to_do_and_offers_the_example(running_app) -> None:
    with browser_page(1280, 800) as page:
        page.goto(running_app.url)
        expect(page.locator("#project-status")).to_be_visible()
        # One sentence, on the first screen, without scrolling.
        line = start_line(page)
        assert len(re.findall(r"[.!?](?:\s|$)", line)) == 1, line
        assert "Try the example" in line
        example = page.locator("#try-example")
        expect(example).to_be_in_viewport(ratio=1)
        expect(page.locator("#studio-intro")).to_be_in_viewport(ratio=1)
        expect(page.get_by_role("button", name=texts.PROJECT_CREATE)).to_be_in_viewport(ratio=1)
        assert page.evaluate("window.scrollY") == 0

        example.click()
        expect(page.locator("#seed-count")).to_contain_text("16 seeds")
        expect(page.locator("#project-picker input")).to_have_value("Example: support replies  ·  16 seeds")
        expect(page.locator("#task-description textarea")).to_have_value(SUPPORT_REPLIES.task)
        expect(page.locator("#task-advice")).to_contain_text("Specific")
        expect(page.locator("#seed-library")).to_contain_text("order #4821")

        # The next step is ready: Generate previews rows from these seeds.
        open_tab(page, texts.GENERATE_TAB)
        expect(page.get_by_role("button", name="Preview 5 rows")).to_be_enabled()

        # A second try is a second fresh project, not 32 seeds in the first.
        example.click()
        expect(page.locator("#project-picker input")).to_have_value("Example: support replies (2)  ·  16 seeds")


def test_every_control_on_every_tab_has_a_name(running_app) -> None:
    problems: dict[str, list[str]] = {}
    with browser_page(1280, 800) as page:
        page.goto(running_app.url)
        expect(page.locator("#project-status")).to_be_visible()
        unnamed, _ = accessibility_tree(page)
        if unnamed:
            problems["first screen"] = unnamed
        page.locator("#try-example").click()
        expect(page.locator("#seed-count")).to_contain_text("16 seeds")
        page.locator("#seed-library").get_by_role("gridcell").filter(has_text="order #4821").first.click()
        for tab in TABS:
            open_tab(page, tab)
            open_every_accordion(page)
            unnamed, fields = accessibility_tree(page)
            twins = sorted({f"{role} '{name}'" for role, name in fields if fields.count((role, name)) > 1})
            if unnamed or twins:
                problems[tab] = unnamed + [f"two fields called {t}" for t in twins]
            width, viewport = page_width(page)
            assert width <= viewport, f"{tab}: the page is {width} px wide in a {viewport} px window"
    assert not problems, "\n".join(f"{tab}:\n  " + "\n  ".join(found) for tab, found in problems.items())


def test_the_studio_works_on_a_phone(running_app) -> None:
    with browser_page(390, 844) as page:
        page.goto(running_app.url)
        expect(page.locator("#project-status")).to_be_visible()
        assert "Start here:" in start_line(page)
        expect(page.locator("#try-example")).to_be_in_viewport(ratio=1)
        # The project bar stacks instead of squeezing the project name into a few letters.
        picker = page.locator("#project-picker").bounding_box()
        name = page.locator("#new-project-name").bounding_box()
        assert picker["width"] > 300 and name["y"] > picker["y"] + picker["height"] - 1, (picker, name)

        page.locator("#try-example").click()
        expect(page.locator("#seed-count")).to_contain_text("16 seeds")
        expect(page.locator("#project-picker input")).to_have_value("Example: support replies  ·  16 seeds")
        # Wide tables scroll sideways inside their frame; the page itself never does.
        table = page.locator("#seed-library table").first
        frame = table.locator("xpath=..")
        assert table.bounding_box()["width"] > frame.evaluate("e => e.clientWidth")
        assert frame.evaluate("e => getComputedStyle(e).overflowX") in ("auto", "scroll")

        for tab in TABS:
            open_tab(page, tab)
            width, viewport = page_width(page)
            assert width <= viewport, f"{tab}: the page is {width} px wide on a {viewport} px phone"
        # And a step still works there: freeze a seeds-only version from the Dataset tab.
        open_tab(page, texts.DATASET_TAB)
        page.get_by_role("button", name="Freeze version").click()
        expect(page.locator("#ds-versions")).to_contain_text("v1")
