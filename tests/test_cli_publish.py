"""`seed-studio push adapter|dataset` and `seed-studio publications`, as real processes against the loopback Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from studio.config import load_settings
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from tests.conftest import ROOT, snapshot
from tests.hub_server import HubServer, isolate_hf_client
from tests.test_report import crafted_version
from tests.test_report import finished_run as report_run
from tests.test_sidebyside import _make_adapter

TOKEN = "hf_cliAliceToken0123456789"
CLI = Path(sys.executable).parent / "seed-studio"


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "studio.cli"]
    return subprocess.run([*cmd, *args, "--home", str(home)], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_chat_model: Path) -> Path:
    """A workspace with project 'colours', dataset version v1 and a done run #1 with a real LoRA adapter."""
    home = tmp_path_factory.mktemp("cli-publish") / "home"
    ws = Workspace(load_settings(home))
    project = create_project(ws, "colours", task_description="Name colours.")
    version_id = crafted_version(ws, project.id)
    report_run(ws, project.id, version_id, tiny_chat_model,
               _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("cli-adapter")))
    return home


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer(tokens={TOKEN: "alice"}) as server:
        isolate_hf_client(monkeypatch, tmp_path, endpoint=server.url)  # the CLI process inherits this environment
        yield server


def test_push_dataset_and_adapter_then_list(home: Path, hub: HubServer) -> None:
    out = cli(home, "push", "dataset", "--version", "v1", "--repo", "colours-data", "--project", "colours",
              "--endpoint", hub.url, "--token-env", "MY_HUB_TOKEN", "--json", env={"MY_HUB_TOKEN": TOKEN})
    assert out.returncode == 0, out.stderr
    pub = json.loads(out.stdout)
    assert pub["repo_id"] == "alice/colours-data" and pub["kind"] == "dataset" and pub["private"] is True
    assert hub.repo("alice/colours-data", "dataset") is not None

    out = cli(home, "push", "adapter", "--run", "1", "--repo", "alice/colours-lora", "--public",
              "--dataset-repo", "alice/colours-data", "--endpoint", hub.url, env={"HF_TOKEN": TOKEN})
    assert out.returncode == 0, out.stderr
    assert "Pushed adapter to alice/colours-lora (public)" in out.stdout
    assert "[100%]" in out.stderr and "Uploading" in out.stderr  # progress goes to stderr
    readme = hub.repo("alice/colours-lora").files["README.md"].decode()
    assert "datasets:\n- alice/colours-data" in readme

    listed = json.loads(cli(home, "publications", "--project", "colours", "--json").stdout)
    assert [(p["kind"], p["repo_id"]) for p in listed] == [("adapter", "alice/colours-lora"),
                                                          ("dataset", "alice/colours-data")]
    table = cli(home, "publications", "--project", "colours").stdout
    assert "alice/colours-lora@" in table and "public" in table and "private" in table
    assert hub.token_leaks(TOKEN) == []
    assert [p for p in home.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()] == []


@pytest.mark.parametrize(("args", "env", "says"), [
    (["push", "adapter", "--run", "1", "--repo", "alice/bad name"], {"HF_TOKEN": TOKEN}, "' '"),
    (["push", "adapter", "--run", "1", "--repo", "alice/a--b", "--merged"], {"HF_TOKEN": TOKEN}, "'--'"),
    (["push", "adapter", "--run", "42", "--repo", "alice/x"], {"HF_TOKEN": TOKEN}, "no run"),
    (["push", "adapter", "--run", "1", "--repo", "alice/x", "--token-env", "NOT_SET_ANYWHERE"], {},
     "NOT_SET_ANYWHERE"),
    (["push", "dataset", "--version", "v9", "--repo", "alice/x", "--project", "colours"], {"HF_TOKEN": TOKEN},
     "v9"),
    (["push", "dataset", "--version", "v1", "--repo", "x" * 97, "--project", "colours"], {"HF_TOKEN": TOKEN},
     "at most 96"),
    (["push", "dataset", "--version", "v1", "--repo", "alice/x", "--project", "colours"], {},
     "No Hugging Face access token"),
])
def test_bad_input_exits_2_before_any_request(home: Path, hub: HubServer, args: list[str], env: dict[str, str],
                                              says: str) -> None:
    ws = Workspace(load_settings(home))
    before = snapshot(ws)
    out = cli(home, *args, "--endpoint", hub.url, env=env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("Error: ") and says in out.stderr and "Traceback" not in out.stderr
    assert hub.requests == []
    assert snapshot(ws) == before


def test_refused_token_exits_2_with_a_plain_message(home: Path, hub: HubServer) -> None:
    ws = Workspace(load_settings(home))
    before = snapshot(ws)
    out = cli(home, "push", "adapter", "--run", "1", "--repo", "alice/x", "--endpoint", hub.url,
              env={"HF_TOKEN": "hf_revokedToken0123456789"})
    assert out.returncode == 2 and "rejected the access token" in out.stderr
    assert "hf_revokedToken0123456789" not in out.stderr + out.stdout
    assert snapshot(ws) == before and hub.repo("alice/x") is None
