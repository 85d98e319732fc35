"""Headless Chromium through Playwright, for browser tests (Debian's chromium; Playwright cannot
download its own browser here)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags Chromium tries Google's hosts at start and waits on them.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def require_chromium() -> None:
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (`make test` installs it when run as root)")


@contextmanager
def browser_page(width: int = 1280, height: int = 800) -> Iterator:
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    # Generous waits: CI shares 2 cores with model loading; a slow answer is not a wrong one.
    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


@contextmanager
def browser_contexts(count: int, width: int = 1280, height: int = 900) -> Iterator[list]:
    """`count` pages in separate browser contexts: separate cookies and storage, like different people."""
    from playwright.sync_api import expect, sync_playwright

    require_chromium()
    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            pages = []
            for _ in range(count):
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                page.set_default_timeout(30_000)
                pages.append(page)
            yield pages
        finally:
            browser.close()


@contextmanager
def busy_cpu(processes: int = 3) -> Iterator[None]:
    """A busy machine: `processes` Python processes spinning on the CPU (real load, not a mock) while the
    block runs. A CI machine shared with other jobs is like this; answers must still reach the page."""
    import subprocess
    import sys

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
