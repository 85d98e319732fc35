"""Start-up stays light: building the studio page loads no model library (the page must be served in
seconds; bench/startup.py measures the time)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "sentence_transformers", "datasets", "peft", "trl")


def test_building_the_app_imports_no_model_library(tmp_path) -> None:
    code = (
        "import sys\n"
        f"from studio.workspace import Workspace\nfrom studio.ui.shell import build_app\n"
        f"build_app(Workspace.open({str(tmp_path / 'home')!r}))\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_app_honours_gradio_server_env(running_app) -> None:
    # The fixture starts app.py with only GRADIO_SERVER_NAME / GRADIO_SERVER_PORT set (as Spaces does).
    assert running_app.url.startswith("http://127.0.0.1:")
    assert running_app.proc.poll() is None
