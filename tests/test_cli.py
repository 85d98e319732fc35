"""The `seed-studio` CLI, run as a real process on a real workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_SEEDS

CLI = Path(sys.executable).parent / "seed-studio"


def run(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "studio.cli"]
    proc = subprocess.run([*cmd, *args, *(["--home", str(home)] if args[0] != "app" else [])],
                          capture_output=True, text=True, timeout=120)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_entry_point_is_installed() -> None:
    assert CLI.exists(), "pyproject.toml declares the seed-studio script; `make test` installs it"


def test_project_and_seed_round_trip(tmp_path, shared_seeds) -> None:
    home = tmp_path / "home"
    out = run(home, "project", "create", "Self-Instruct", "--task", "better at coding").stdout
    assert "Created project #1" in out and "[warning] Too vague" in out
    run(home, "project", "create", "Second")
    run(home, "project", "use", "Self-Instruct")
    listed = json.loads(run(home, "project", "list", "--json").stdout)
    assert [(p["name"], p["current"]) for p in listed] == [("Second", False), ("Self-Instruct", True)]

    out = run(home, "seeds", "import", str(shared_seeds)).stdout
    assert "120 ready to import" in out and "Imported 120 seeds" in out
    seeds = json.loads(run(home, "seeds", "list", "--json").stdout)
    assert len(seeds) == 120 and seeds[0]["format"] == "alpaca"
    first = json.loads(shared_seeds.read_text().splitlines()[0])
    assert seeds[0]["data"]["instruction"] == first["instruction"]

    out = run(home, "seeds", "delete", str(seeds[0]["id"]), str(seeds[1]["id"])).stdout
    assert "Deleted 2 seeds" in out
    assert len(json.loads(run(home, "seeds", "list", "--json").stdout)) == 118
    # The other project is untouched.
    assert json.loads(run(home, "seeds", "list", "--json", "--project", "Second").stdout) == []


def test_mapping_step_on_the_command_line(tmp_path) -> None:
    home = tmp_path / "home"
    run(home, "project", "create", "QA")
    path = tmp_path / "qa.csv"
    path.write_text("task,answer,note\nWhy is the sky blue?,Rayleigh scattering.,book\n")
    proc = run(home, "seeds", "import", str(path), ok=False)
    assert proc.returncode == 2
    assert "Check the column mapping" in proc.stderr
    assert "--format alpaca --map task=instruction --map answer=output" in proc.stderr
    out = run(home, "seeds", "import", str(path), "--format", "alpaca", "--map", "task=instruction",
              "--map", "answer=output").stdout
    assert "Imported 1 seeds" in out
    (seed,) = json.loads(run(home, "seeds", "list", "--json").stdout)
    assert seed["data"]["instruction"] == "Why is the sky blue?" and seed["meta"] == {"note": "book"}


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty (0 bytes)"),
    ("instruction,output\nCaf\xe9,x\n".encode("latin-1"), "is not UTF-8 text: line 2"),
    (b'{"instruction": "a", "output": "b"}\n{"instruction": "c", "out', "line 2 looks cut off"),
])
def test_errors_exit_2_with_the_ui_message(tmp_path, content, message) -> None:
    home = tmp_path / "home"
    run(home, "project", "create", "Errors")
    run(home, "seeds", "import", str(EXAMPLE_SEEDS))
    path = tmp_path / ("bad.jsonl" if b"{" in content else "bad.csv")
    path.write_bytes(content)
    proc = run(home, "seeds", "import", str(path), ok=False)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(json.loads(run(home, "seeds", "list", "--json").stdout)) == 16  # nothing changed


def test_unknown_project_and_bad_flags_exit_2(tmp_path) -> None:
    home = tmp_path / "home"
    proc = run(home, "seeds", "list", ok=False)
    assert proc.returncode == 2 and "There is no project yet" in proc.stderr
    run(home, "project", "create", "P")
    proc = run(home, "seeds", "import", str(EXAMPLE_SEEDS), "--format", "csv", ok=False)
    assert proc.returncode == 2 and "is not a seed format" in proc.stderr
    proc = run(home, "seeds", "import", str(EXAMPLE_SEEDS), "--map", "nonsense", ok=False)
    assert proc.returncode == 2 and "column=field" in proc.stderr
    proc = run(home, "project", "use", "Missing", ok=False)
    assert proc.returncode == 2 and "No project is called 'Missing'" in proc.stderr


def test_models_list_shows_the_embedded_models(tmp_path) -> None:
    models = json.loads(run(tmp_path / "home", "models", "list", "--json").stdout)
    refs = {m["ref"]: m for m in models}
    assert {"embedded:smollm2-135m-instruct", "embedded:all-minilm-l6-v2"} <= set(refs)
    assert refs["embedded:all-minilm-l6-v2"]["role"] == "embedding"


def test_hub_import_when_the_hub_is_unreachable(tmp_path, monkeypatch) -> None:
    # A closed loopback port stands in for an unreachable Hub, whatever this machine's network allows.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    home = tmp_path / "home"
    run(home, "project", "create", "Hub")
    proc = run(home, "seeds", "import", "tatsu-lab/alpaca", "--hub", ok=False)
    assert proc.returncode == 2 and "tatsu-lab/alpaca" in proc.stderr and "cannot be reached" in proc.stderr


def test_app_command_serves_the_studio(tmp_path) -> None:
    import time
    import urllib.request

    from tests.conftest import free_port

    port = free_port()
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "studio.cli"]
    # Started from another folder: the command must not depend on the repository being the cwd.
    proc = subprocess.Popen([*cmd, "app", "--host", "127.0.0.1", "--port", str(port), "--home", str(tmp_path / "h")],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, "seed-studio app exited"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                    assert resp.status == 200 and b"Seed Studio" in resp.read()
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("seed-studio app served nothing within 60 s")
        assert (tmp_path / "h" / "studio.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
