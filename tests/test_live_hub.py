"""Opt-in: the Publish round trip against the real Hugging Face Hub (huggingface.co).

Set SEED_STUDIO_LIVE_HUB_TOKEN to a write token of a test account to run it; it is skipped otherwise. It
pushes a private adapter repo and a private dataset repo named seed-studio-live-<random>, reads them back
(snapshot_download + PEFT, load_dataset), checks the cards and that the token is in no written file, and
deletes both repos at the end.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

from studio.config import load_settings
from studio.publish.auth import whoami
from studio.publish.push import push_adapter, push_dataset
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from tests.hub_server import isolate_hf_client
from tests.test_publish import _logits
from tests.test_report import crafted_version
from tests.test_report import finished_run as report_run
from tests.test_sidebyside import _make_adapter

LIVE_TOKEN = os.environ.get("SEED_STUDIO_LIVE_HUB_TOKEN", "").strip()

pytestmark = [
    pytest.mark.skipif(not LIVE_TOKEN, reason="SEED_STUDIO_LIVE_HUB_TOKEN is not set: the round trip against the "
                                              "real Hugging Face Hub is opt-in"),
    pytest.mark.slow,
]


def test_live_round_trip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_chat_model: Path) -> None:
    import torch
    from datasets import load_dataset
    from huggingface_hub import HfApi, snapshot_download

    from studio.data.export import version_records

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    isolate_hf_client(monkeypatch, tmp_path)  # a private cache; the token is passed explicitly
    ws = Workspace(load_settings(tmp_path / "home"))
    project = create_project(ws, "live", task_description="Name colours.")
    version_id = crafted_version(ws, project.id)
    run = report_run(ws, project.id, version_id, tiny_chat_model,
                     _make_adapter(tiny_chat_model, tmp_path / "adapter-src"))
    user = whoami(LIVE_TOKEN)
    name = f"seed-studio-live-{uuid.uuid4().hex[:8]}"
    api = HfApi(token=LIVE_TOKEN)
    try:
        data = push_dataset(ws, version_id, name, token=LIVE_TOKEN)
        model = push_adapter(ws, run.id, name, token=LIVE_TOKEN, dataset_repo=data.repo_id)
        assert model.repo_id == data.repo_id == f"{user}/{name}" and model.private and data.private

        local = Path(snapshot_download(model.repo_id, token=LIVE_TOKEN, cache_dir=tmp_path / "dl"))
        assert torch.equal(_logits(tiny_chat_model, local), _logits(tiny_chat_model, Path(run.output_dir) / "adapter"))
        card = (local / "README.md").read_text()
        meta = yaml.safe_load(card[4:card.index("\n---", 4)])
        assert meta["library_name"] == "peft" and meta["datasets"] == [data.repo_id]

        loaded = load_dataset(data.repo_id, token=LIVE_TOKEN)
        for split, rows in version_records(ws, version_id).items():
            if rows:
                assert loaded[split].to_list() == rows
        again = push_adapter(ws, run.id, model.repo_id, token=LIVE_TOKEN, dataset_repo=data.repo_id)
        files = api.list_repo_files(model.repo_id)
        assert again.revision == model.revision and len(files) == len(set(files))
        for root in (ws.home, tmp_path):
            assert [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                    and LIVE_TOKEN.encode() in p.read_bytes()] == []
    finally:
        for repo_type in ("model", "dataset"):
            api.delete_repo(f"{user}/{name}", repo_type=repo_type, missing_ok=True)
