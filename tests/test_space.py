"""Running as a Hugging Face Space: front matter, the data path, who a visitor is, training without a GPU."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from studio import config
from studio.data.versions import FreezeConfig, freeze_version
from studio.errors import TrainError
from studio.train.runs import create_run
from studio.train.settings import TrainConfig
from studio.ui.visitors import COOKIE, VisitorWorkspaces, folder_name, visitor_key
from studio.workspace import Workspace
from tests.conftest import ROOT, snapshot
from tests.factories import project_with_seeds


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---\n")[1])


def test_readme_front_matter_is_a_complete_space_config() -> None:
    meta = front_matter()
    pinned = re.search(r"^gradio==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == pinned and meta["app_file"] == "app.py"
    assert meta["hf_oauth"] is True and "write-repos" in meta["hf_oauth_scopes"]
    assert meta["suggested_hardware"] and meta["license"]
    for package in ("authlib", "itsdangerous"):  # gradio[oauth]: the sign-in button needs them on the Space
        assert re.search(rf"^{package}==", (ROOT / "requirements.txt").read_text(), re.M | re.I)


def test_space_detection_and_persistent_data_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("STUDIO_HOME", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert not config.load_settings().on_space
    assert config.load_settings().home == Path("studio_home").resolve()

    monkeypatch.setenv("SPACE_ID", "alice/seed-studio")
    monkeypatch.setattr(config, "SPACE_PERSISTENT_DIR", tmp_path / "no-storage")
    assert config.load_settings().on_space
    assert config.load_settings().home == Path("studio_home").resolve()  # no persistent storage: local folder
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(config, "SPACE_PERSISTENT_DIR", tmp_path / "data")
    assert config.load_settings().home == tmp_path / "data" / "seed-studio"
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "mine"))
    assert config.load_settings().home == tmp_path / "mine"  # STUDIO_HOME always wins


def request(session: dict | None = None, cookies: dict | None = None, session_hash: str = "abc123") -> object:
    raw = SimpleNamespace(session=session or {}, cookies=cookies or {})
    return SimpleNamespace(request=raw, session_hash=session_hash)


def test_visitor_is_the_account_then_the_browser_then_the_session() -> None:
    browser = "Zq3x_8-kLm2Pq9Rs4Tu7Vw"
    signed_in = {"oauth_info": {"userinfo": {"preferred_username": "alice"}}}
    assert visitor_key(request(signed_in, {COOKIE: browser})) == "user:alice"
    assert visitor_key(request({}, {COOKIE: browser})) == f"browser:{browser}"
    assert visitor_key(request({}, {COOKIE: "../../etc"})) == "session:abc123"  # not a cookie we set
    assert visitor_key(request({}, {})) == "session:abc123"
    assert visitor_key(None) is None
    # Folder names say nothing about who it is, and differ per visitor.
    assert folder_name("user:alice") != folder_name("user:bob") and "alice" not in folder_name("user:alice")


def test_visitor_workspaces_are_separate_and_refuse_work_outside_an_event(ws: Workspace) -> None:
    visitors = VisitorWorkspaces(ws)
    alice, bob = visitors.for_key("user:alice"), visitors.for_key("user:bob")
    assert alice.home != bob.home and alice.home.parent == bob.home.parent == ws.home / "visitors"
    assert alice.models_dir == bob.models_dir == ws.models_dir  # the model cache is shared
    assert visitors.for_key("user:alice") is alice
    assert visitors.settings is ws.settings  # shared settings are readable anywhere
    with pytest.raises(RuntimeError, match="No visitor"):
        visitors.db_path  # noqa: B018 - outside an event nobody's data may be touched


def test_training_is_off_on_a_space_without_gpu(ws: Workspace, shared_seeds: Path, tiny_chat_model: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pid = project_with_seeds(ws, shared_seeds)
    version = freeze_version(ws, pid, FreezeConfig(name="v1"))
    space = Workspace(config.Settings(home=ws.home, models_dir=ws.models_dir, max_upload_mb=50, space_id="a/b"))
    monkeypatch.setenv("STUDIO_TRAIN_DEVICE", "cpu")
    before = snapshot(space)
    with pytest.raises(TrainError, match="no GPU"):
        create_run(space, pid, dataset_version_id=version.id, base_model_ref=str(tiny_chat_model),
                   config=TrainConfig(method="lora", max_steps=2))
    assert snapshot(space) == before
    monkeypatch.setenv("SEED_STUDIO_ALLOW_CPU_TRAINING", "1")  # a host who wants it anyway
    assert create_run(space, pid, dataset_version_id=version.id, base_model_ref=str(tiny_chat_model),
                      config=TrainConfig(method="lora", max_steps=2)).status == "queued"
