"""Publish: repo names, tokens, model and dataset cards, and real pushes with the real `huggingface_hub`,
`datasets` and `peft` clients against the loopback Hub (tests/hub_server.py): an adapter pushed, downloaded and
loaded onto its base gives the same outputs; a dataset pushed and loaded back has the same rows per split;
cards parse; the token is written nowhere; re-pushes add no duplicates; failures are plain HubErrors that change
nothing locally and write no publication row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from studio.config import load_settings
from studio.errors import HubError, StudioError, TrainError
from studio.publish import hub_errors
from studio.publish.auth import resolve_token, whoami
from studio.publish.model_card import model_card, public_base_id
from studio.publish.push import list_publications, push_adapter, push_dataset
from studio.publish.repos import validate_repo_id
from studio.workspace import Workspace, utc_now
from studio.workspace.projects import create_project
from tests.conftest import snapshot
from tests.hub_server import HubServer, isolate_hf_client
from tests.test_report import crafted_version
from tests.test_report import finished_run as report_run
from tests.test_sidebyside import _make_adapter

TOKEN = "hf_aliceWriteToken0123456789"
READ_TOKEN = "hf_aliceReadOnly0123456789"
BOB_TOKEN = "hf_bobWriteToken0123456789"
PROMPT = "Name a colour."


# ------------------------------------------------------------------------------------------ names (no requests)


@pytest.mark.parametrize(("text", "namespace", "expected"), [
    ("alice/support-lora", None, "alice/support-lora"),
    ("  support_lora.v2 ", "alice", "alice/support_lora.v2"),
    ("https://huggingface.co/alice/x", None, "alice/x"),
    ("https://huggingface.co/datasets/acme/data-1", None, "acme/data-1"),
    ("a" * 96, "alice", "alice/" + "a" * 96),
])
def test_valid_repo_ids(text: str, namespace: str | None, expected: str) -> None:
    assert validate_repo_id(text, namespace) == expected


@pytest.mark.parametrize(("text", "says"), [
    ("", "No repo name"),
    ("support-lora", "names no owner"),
    ("alice/my adapter", "' '"),
    ("alice/ü-model", "'ü'"),
    ("alice/a--b", "'--' or '..'"),
    ("alice/a..b", "'--' or '..'"),
    ("alice/-abc", "starts or ends"),
    ("alice/abc.", "starts or ends"),
    ("alice/" + "a" * 97, "at most 96"),
    ("alice/x/y", "slashes"),
    ("/x", "empty owner"),
    ("alice/model.git", ".git"),
])
def test_invalid_repo_ids_say_which_rule(text: str, says: str) -> None:
    with pytest.raises(HubError, match=None) as info:
        validate_repo_id(text, None)
    assert says in str(info.value)
    assert isinstance(info.value, StudioError)


# ------------------------------------------------------------------------------------------ tokens


def test_token_order_explicit_then_env_then_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = isolate_hf_client(monkeypatch, tmp_path)
    assert resolve_token() is None
    (home / "token").parent.mkdir(parents=True, exist_ok=True)
    (home / "token").write_text("hf_fromLoginFile123456\n")
    assert resolve_token() == "hf_fromLoginFile123456"
    monkeypatch.setenv("HF_TOKEN", "hf_fromEnvironment123456")
    assert resolve_token() == "hf_fromEnvironment123456"
    assert resolve_token("  hf_explicit123456 ") == "hf_explicit123456"


# ------------------------------------------------------------------------------------------ errors and retries


def _http_error(status: int, headers: dict[str, str] | None = None) -> Exception:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("POST", "http://127.0.0.1:1/api/repos/create")
    response = httpx2.Response(status, headers=headers or {}, request=request, text="refused")
    return HfHubHTTPError(f"{status} refused", response=response)


@pytest.mark.parametrize(("status", "says"), [
    (401, "rejected the access token"), (403, "belongs to another user"), (429, "rate-limiting"),
    (503, "having trouble (HTTP 503)"), (400, "refused the request (HTTP 400"),
])
def test_hub_failures_become_plain_messages(status: int, says: str) -> None:
    ctx = hub_errors.PushContext("alice/x", "model", "alice", "http://user:pw@127.0.0.1:9/")
    error = hub_errors.translate(_http_error(status), ctx)
    assert isinstance(error, HubError) and says in str(error)
    assert "alice/x" in str(error) and "Nothing was published" in str(error)
    assert "pw" not in str(error) and "127.0.0.1:9" in str(error)


def test_retries_transient_failures_then_gives_a_plain_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2

    waits: list[float] = []
    ctx = hub_errors.PushContext("alice/x")
    failures = [_http_error(429, {"Retry-After": "3"}), httpx2.ConnectError("refused"), _http_error(502)]

    def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    assert hub_errors.with_retries(flaky, ctx, sleep=waits.append) == "ok"
    assert waits == [3.0, hub_errors.BACKOFF_S[1], hub_errors.BACKOFF_S[2]]  # Retry-After is honoured

    calls: list[int] = []

    def always_limited() -> None:
        calls.append(1)
        raise _http_error(429)

    with pytest.raises(HubError, match="rate-limiting"):
        hub_errors.with_retries(always_limited, ctx, sleep=lambda s: None)
    assert len(calls) == 1 + len(hub_errors.BACKOFF_S)

    def forbidden() -> None:
        calls.append(1)
        raise _http_error(403)

    calls.clear()
    with pytest.raises(HubError, match="belongs to another user"):
        hub_errors.with_retries(forbidden, ctx, sleep=lambda s: None)
    assert len(calls) == 1  # a refusal is not retried

    with pytest.raises(ZeroDivisionError):  # a bug is not disguised as a Hub problem
        hub_errors.with_retries(lambda: 1 / 0, ctx, sleep=lambda s: None)


# ------------------------------------------------------------------------------------------ the workspace


def test_publication_table_has_the_publish_columns(ws: Workspace) -> None:
    with ws.read() as conn:
        columns = {r["name"] for r in conn.execute("PRAGMA table_info(publication)")}
    assert {"private", "files", "message", "account", "revision", "url"} <= columns


# ------------------------------------------------------------------------------------------ cards (no requests)


def _run_row(ws: Workspace, project_id: int, version_id: int, base_ref: str, method: str = "lora") -> int:
    from studio.train.settings import TrainConfig

    now = utc_now()
    provenance = {"libraries": {"peft": "9.9.9", "transformers": "8.8.8"}, "base_model_path": "/home/secret/models"}
    with ws.write() as conn:
        return int(conn.execute(
            "INSERT INTO run(project_id, dataset_version_id, base_model_ref, method, config, status, name, message, "
            "output_dir, provenance, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'done', 'card run', 'Done.', ?, "
            "?, ?, ?)", (project_id, version_id, base_ref, method, json.dumps(TrainConfig(method=method).to_dict()),
                         str(ws.runs_dir / "99"), json.dumps(provenance), now, now)).lastrowid)


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card[4:card.index("\n---", 4)])


def test_model_card_front_matter_parses_and_names_the_hub_base(ws: Workspace) -> None:
    project = create_project(ws, "colours", task_description="Name colours | briefly.")
    version_id = crafted_version(ws, project.id)
    run_id = _run_row(ws, project.id, version_id, "embedded:smollm2-135m-instruct")
    card = model_card(ws, run_id, "alice/colours-lora", dataset_repo="alice/colours-data")
    meta = _front_matter(card)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-generation"
    assert {"seed-studio", "lora", "trl", "sft"} <= set(meta["tags"])
    assert meta["datasets"] == ["alice/colours-data"] and meta["license"] == "apache-2.0"
    for section in ("## Training", "## Evaluation", "## Intended use and limits", "## How to use", "## Provenance"):
        assert section in card
    assert 'PeftModel.from_pretrained(base, "alice/colours-lora")' in card
    assert "peft 9.9.9" in card and "Learning rate" in card and "`v1`" in card
    assert "/home/secret" not in card and str(ws.home) not in card
    assert "embedded:" not in card  # the base is named by its Hub id everywhere, the evaluation section too

    merged = _front_matter(model_card(ws, run_id, "alice/colours-lora-merged", dataset_repo=None, kind="merged"))
    assert merged["library_name"] == "transformers" and "datasets" not in merged

    hub_run = _run_row(ws, project.id, version_id, "Qwen/Qwen2.5-0.5B-Instruct", method="full")
    meta = _front_matter(model_card(ws, hub_run, "alice/q", dataset_repo=None, kind="model"))
    assert meta["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct" and meta["license"] == "other"
    assert "full-fine-tune" in meta["tags"]


def test_a_local_base_is_named_by_folder_only(ws: Workspace, tmp_path: Path) -> None:
    local = tmp_path / "private-dir" / "my-base"
    local.mkdir(parents=True)
    project = create_project(ws, "p")
    run_id = _run_row(ws, project.id, crafted_version(ws, project.id), str(local))
    card = model_card(ws, run_id, "alice/x", dataset_repo=None)
    assert "base_model" not in _front_matter(card)
    assert "my-base (a local model folder)" in card and str(tmp_path) not in card
    cache = tmp_path / "models" / "hub" / "models--acme--base-7b" / "snapshots" / "abc"
    assert public_base_id(str(cache)) == "acme/base-7b"


# ------------------------------------------------------------------------------------------ real pushes


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, tiny_chat_model: Path) -> tuple[Workspace, int, int, Path]:
    """A workspace with a done run (a real LoRA adapter on the tiny model) and a frozen version: (ws, run, version,
    the local adapter)."""
    ws = Workspace(load_settings(tmp_path_factory.mktemp("publish") / "home"))
    adapter = _make_adapter(tiny_chat_model, tmp_path_factory.mktemp("publish-adapter"))
    project = create_project(ws, "colours", task_description="Name colours.")
    version_id = crafted_version(ws, project.id)
    run = report_run(ws, project.id, version_id, tiny_chat_model, adapter)
    return ws, run.id, version_id, Path(run.output_dir) / "adapter"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    with HubServer(tokens={TOKEN: "alice", BOB_TOKEN: "bob"}) as server:
        server.add_token(READ_TOKEN, "alice", write=False)
        isolate_hf_client(monkeypatch, tmp_path, endpoint=server.url)
        monkeypatch.setattr(hub_errors, "BACKOFF_S", (0.0, 0.0, 0.0))
        yield server


def _logits(base_dir: Path, adapter_dir: Path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32),
                                      str(adapter_dir)).eval()
    with torch.no_grad():
        return model(ids).logits


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def test_push_adapter_round_trip(made, hub: HubServer, tiny_chat_model: Path, tmp_path: Path) -> None:
    import torch
    from huggingface_hub import HfApi, snapshot_download

    ws, run_id, _version_id, adapter = made
    seen: list[tuple[float, str]] = []
    pub = push_adapter(ws, run_id, "colours-lora", token=TOKEN, endpoint=hub.url,
                       progress=lambda f, m: seen.append((f, m)), dataset_repo="colours-data")
    assert pub.repo_id == "alice/colours-lora" and pub.private and pub.kind == "adapter" and pub.account == "alice"
    assert pub.revision == hub.commits("alice/colours-lora")[-1].oid
    assert pub.url == f"{hub.url.rstrip('/')}/alice/colours-lora"
    assert seen[-1][0] == 1.0 and [f for f, _ in seen] == sorted(f for f, _ in seen)
    assert "adapter_model.safetensors" in pub.files and "README.md" in pub.files
    assert "training_args.bin" not in pub.files
    assert HfApi(endpoint=hub.url, token=TOKEN).repo_info("alice/colours-lora").private
    assert len(hub.commits("alice/colours-lora")) == 2  # the initial commit, then ONE commit with every file

    local = snapshot_download("alice/colours-lora", endpoint=hub.url, token=TOKEN, cache_dir=tmp_path / "dl")
    assert torch.equal(_logits(tiny_chat_model, Path(local)), _logits(tiny_chat_model, adapter))
    assert (Path(local) / "adapter_model.safetensors").read_bytes() == (adapter / "adapter_model.safetensors"
                                                                         ).read_bytes()
    config = json.loads((Path(local) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_chat_model.name  # the folder's name, not its path
    card = (Path(local) / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["library_name"] == "peft" and meta["datasets"] == ["alice/colours-data"]
    assert "## Evaluation" in card and str(tiny_chat_model.parent) not in card

    # Re-push: the same paths, no duplicates; a publication row per push. Identical files make no new commit;
    # a changed card (no dataset link now) makes one that rewrites README.md only.
    api = HfApi(endpoint=hub.url, token=TOKEN)
    before = sorted(api.list_repo_files("alice/colours-lora"))
    again = push_adapter(ws, run_id, "alice/colours-lora", token=TOKEN, endpoint=hub.url,
                         dataset_repo="alice/colours-data")
    assert len(hub.commits("alice/colours-lora")) == 2 and again.revision == pub.revision
    third = push_adapter(ws, run_id, "alice/colours-lora", token=TOKEN, endpoint=hub.url)
    commits = hub.commits("alice/colours-lora")
    assert len(commits) == 3 and commits[-1].added == ["README.md"] and third.revision == commits[-1].oid
    after = sorted(api.list_repo_files("alice/colours-lora"))
    assert after == before and len(after) == len(set(after))
    assert [p.id for p in list_publications(ws, pub.project_id)][:3] == [third.id, again.id, pub.id]

    # The token is nowhere: not on the server but in Authorization headers, not in the workspace or caches.
    assert hub.token_leaks(TOKEN) == []
    for root in (ws.home, tmp_path):
        assert _files_containing(root, TOKEN.encode()) == []


def test_push_merged_model_loads_without_peft(made, hub: HubServer, tiny_chat_model: Path, tmp_path: Path) -> None:
    import torch
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ws, run_id, _version_id, adapter = made
    before = sorted(p.name for p in (adapter.parent).iterdir())
    pub = push_adapter(ws, run_id, "alice/colours", token=TOKEN, endpoint=hub.url, merged=True, private=False)
    assert pub.merged is not None and pub.merged.repo_id == "alice/colours-merged" and not pub.merged.private
    assert sorted(p.name for p in adapter.parent.iterdir()) == before  # the run's folder is untouched
    local = Path(snapshot_download("alice/colours-merged", endpoint=hub.url, cache_dir=tmp_path / "dl"))
    meta = _front_matter((local / "README.md").read_text())
    assert meta["library_name"] == "transformers"
    assert (local / "tokenizer.json").read_bytes() == (tiny_chat_model / "tokenizer.json").read_bytes()
    ids = AutoTokenizer.from_pretrained(str(local))(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(str(local), dtype=torch.float32).eval()(ids).logits
    assert torch.allclose(merged, _logits(tiny_chat_model, adapter), atol=1e-5)
    assert {p.kind for p in list_publications(ws, pub.project_id)} >= {"adapter", "merged"}


def test_push_full_fine_tune_as_a_model(made, hub: HubServer, tiny_chat_model: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM

    ws, run_id, version_id, _adapter = made
    with ws.read() as conn:
        project_id = conn.execute("SELECT project_id FROM run WHERE id = ?", (run_id,)).fetchone()[0]
    full = _run_row(ws, project_id, version_id, str(tiny_chat_model), method="full")
    folder = Path(ws.runs_dir / "99")
    with ws.write() as conn:
        conn.execute("UPDATE run SET output_dir = ? WHERE id = ?", (str(folder), full))
    shutil.copytree(tiny_chat_model, folder / "adapter")  # a full run keeps the whole model there
    (folder / "adapter" / "training_args.bin").write_bytes(b"pickled arguments with /home/me/paths")
    pub = push_adapter(ws, full, "alice/colours-full", token=TOKEN, endpoint=hub.url, merged=True)
    assert pub.kind == "model" and pub.merged is None  # already a whole model: nothing to merge
    assert "model.safetensors" in pub.files and "training_args.bin" not in pub.files
    local = Path(snapshot_download("alice/colours-full", endpoint=hub.url, token=TOKEN, cache_dir=tmp_path / "dl"))
    assert _front_matter((local / "README.md").read_text())["library_name"] == "transformers"
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        pushed = AutoModelForCausalLM.from_pretrained(str(local), dtype=torch.float32).eval()(ids).logits
        mine = AutoModelForCausalLM.from_pretrained(str(tiny_chat_model), dtype=torch.float32).eval()(ids).logits
    assert torch.equal(pushed, mine)


def test_push_dataset_round_trip(made, hub: HubServer, tmp_path: Path) -> None:
    from datasets import load_dataset
    from huggingface_hub import hf_hub_download

    from studio.data.export import version_records

    ws, _run_id, version_id, _adapter = made
    # No endpoint argument: HF_ENDPOINT (set by isolate_hf_client) decides, as in the web app.
    pub = push_dataset(ws, version_id, "colours-data", token=TOKEN, private=False)
    assert pub.kind == "dataset" and pub.repo_id == "alice/colours-data" and not pub.private
    assert pub.url == f"{hub.url.rstrip('/')}/datasets/alice/colours-data"

    loaded = load_dataset("alice/colours-data", token=TOKEN)
    expected = version_records(ws, version_id)
    assert set(loaded) == {s for s, rows in expected.items() if rows}
    for split, rows in expected.items():
        if rows:
            assert loaded[split].to_list() == rows

    card = Path(hf_hub_download("alice/colours-data", "README.md", repo_type="dataset", endpoint=hub.url,
                                cache_dir=tmp_path / "dl")).read_text()
    meta = _front_matter(card)
    assert meta["license"] == "other" and "seed-studio" in meta["tags"]
    assert {c["config_name"] for c in meta["configs"]} == {"default"} and "dataset_info" in meta
    assert "## Provenance" in card and 'load_dataset("alice/colours-data")' in card

    files = pub.files
    push_dataset(ws, version_id, "alice/colours-data", token=TOKEN, endpoint=hub.url)
    assert list_publications(ws, pub.project_id)[0].files == files  # re-push: same shards, no duplicates
    assert hub.token_leaks(TOKEN) == []
    assert _files_containing(ws.home, TOKEN.encode()) == []


# ------------------------------------------------------------------------------------------ failures


def _nothing_changed(ws: Workspace, before: dict, project_id: int) -> None:
    assert snapshot(ws) == before
    assert list_publications(ws, project_id) == []


@pytest.fixture
def fresh(made, tmp_path: Path) -> tuple[Workspace, int, int, int]:
    """The module's run and version in a workspace of its own (so 'no publication row' is checkable)."""
    import shutil

    ws, run_id, version_id, _adapter = made
    home = tmp_path / "copy"
    shutil.copytree(ws.home, home, ignore=shutil.ignore_patterns("models"))
    copy = Workspace(load_settings(home))
    with copy.write() as conn:
        conn.execute("DELETE FROM publication")
        conn.execute("UPDATE run SET output_dir = ? WHERE id = ?", (str(home / "runs" / str(run_id)), run_id))
        project_id = conn.execute("SELECT project_id FROM run WHERE id = ?", (run_id,)).fetchone()[0]
    return copy, run_id, version_id, project_id


def test_names_are_checked_before_any_request(fresh, hub: HubServer) -> None:
    ws, run_id, version_id, project_id = fresh
    before = snapshot(ws)
    for bad in ("alice/bad name", "alice/a--b", "x" * 97):
        with pytest.raises(HubError):
            push_adapter(ws, run_id, bad, token=TOKEN, endpoint=hub.url)
        with pytest.raises(HubError):
            push_dataset(ws, version_id, bad, token=TOKEN, endpoint=hub.url)
    with pytest.raises(HubError, match="-merged"):  # the merged repo's name is checked too
        push_adapter(ws, run_id, "alice/" + "m" * 90, token=TOKEN, endpoint=hub.url, merged=True)
    with pytest.raises(TrainError, match="no run"):
        push_adapter(ws, 999, "alice/x", token=TOKEN, endpoint=hub.url)
    assert hub.requests == []
    _nothing_changed(ws, before, project_id)


@pytest.mark.parametrize(("token", "repo", "says"), [
    ("hf_notAKnownToken123456", "alice/x", "rejected the access token"),
    (READ_TOKEN, "alice/x", "read-only"),
    (TOKEN, "bob/colours", "not the signed-in account"),
    (None, "alice/x", "No Hugging Face access token"),
])
def test_refusals_change_nothing(fresh, hub: HubServer, token: str | None, repo: str, says: str) -> None:
    from huggingface_hub import HfApi

    ws, run_id, version_id, project_id = fresh
    HfApi(endpoint=hub.url, token=BOB_TOKEN).create_repo("bob/colours")
    before, commits = snapshot(ws), len(hub.commits("bob/colours"))
    with pytest.raises(HubError, match=says) as info:
        push_adapter(ws, run_id, repo, token=token, endpoint=hub.url)
    with pytest.raises(HubError, match=says):
        push_dataset(ws, version_id, repo, token=token, endpoint=hub.url)
    assert token is None or token not in str(info.value)
    assert len(hub.commits("bob/colours")) == commits and hub.repo("alice/x") is None
    _nothing_changed(ws, before, project_id)


def test_rate_limit_is_retried_then_explained(fresh, hub: HubServer) -> None:
    ws, run_id, _version_id, project_id = fresh
    hub.fail_next(2, status=429, match="POST /api/repos/create")
    pub = push_adapter(ws, run_id, "alice/limited", token=TOKEN, endpoint=hub.url)
    assert pub.repo_id == "alice/limited"  # two 429s, then it went through
    creates = [r.status for r in hub.requests if r.method == "POST" and r.path == "/api/repos/create"]
    assert creates == [429, 429, 200] or creates[:2] == [429, 429]

    with fresh[0].write() as conn:
        conn.execute("DELETE FROM publication")
    before = snapshot(ws)
    hub.fail_next(50, status=429, match="POST /api/repos/create")
    hub.requests.clear()
    with pytest.raises(HubError, match="rate-limiting"):
        push_adapter(ws, run_id, "alice/limited-2", token=TOKEN, endpoint=hub.url)
    assert [r.status for r in hub.requests if r.path == "/api/repos/create"] == [429] * (1 + len(hub_errors.BACKOFF_S))
    assert hub.repo("alice/limited-2") is None
    _nothing_changed(ws, before, project_id)


def test_network_failure_is_retried_then_explained(fresh, hub: HubServer) -> None:
    ws, run_id, version_id, project_id = fresh
    hub.drop_next(1, match="POST /api/repos/create")
    assert push_dataset(ws, version_id, "alice/dropped-once", token=TOKEN, endpoint=hub.url).revision
    assert [r.status for r in hub.requests if r.path == "/api/repos/create"][:2] == [None, 200]

    with ws.write() as conn:
        conn.execute("DELETE FROM publication")
    before = snapshot(ws)
    hub.drop_next(50, match="POST /api/(models|datasets)/alice/dropped/commit")
    with pytest.raises(HubError, match="cannot be reached"):
        push_adapter(ws, run_id, "alice/dropped", token=TOKEN, endpoint=hub.url)
    commits = [r.status for r in hub.requests if r.path.startswith("/api/models/alice/dropped/commit")]
    assert commits and set(commits) == {None} and len(commits) >= 1 + len(hub_errors.BACKOFF_S)
    assert [c.title for c in hub.commits("alice/dropped")] == ["initial commit"]  # the repo got no files
    _nothing_changed(ws, before, project_id)
    url = hub.url
    hub.stop()
    with pytest.raises(HubError, match="cannot be reached"):
        whoami(TOKEN, endpoint=url)


def test_a_hub_that_never_answers_times_out_then_is_explained(fresh, hub: HubServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub waits forever by default; a commit the Hub holds must not hang the push."""
    import time


    ws, run_id, _version_id, project_id = fresh
    monkeypatch.setenv("SEED_STUDIO_HUB_TIMEOUT", "1")
    before = snapshot(ws)
    # Held 10 s, then applied anyway: longer than every try together (4 tries of 1 s), as a stuck real Hub.
    hub.delay_next(50, seconds=10, match="POST /api/models/alice/silent/commit")
    started = time.monotonic()
    with pytest.raises(HubError, match=r"did not answer within 1 s .* may or may not have been updated") as err:
        push_adapter(ws, run_id, "alice/silent", token=TOKEN, endpoint=hub.url)
    assert time.monotonic() - started < 9  # given up and explained, before the Hub got round to answering
    assert "publish again" in str(err.value) and TOKEN not in str(err.value)
    held = [r for r in hub.requests if r.path.startswith("/api/models/alice/silent/commit")]
    assert len(held) == 1 + len(hub_errors.BACKOFF_S)  # every try timed out, then it was reported
    _nothing_changed(ws, before, project_id)

    # The held commits land late, as the message warned; publishing again then uploads nothing twice and
    # records the publication once.
    deadline = time.monotonic() + 30
    while any(r.status is None for r in held) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [r.status for r in held] == [200] * len(held)
    assert len(hub.commits("alice/silent")) >= 2  # "initial commit" and the held upload(s)
    hub.clear_faults()
    monkeypatch.setenv("SEED_STUDIO_HUB_TIMEOUT", "30")
    pub = push_adapter(ws, run_id, "alice/silent", token=TOKEN, endpoint=hub.url)
    assert [p.repo_id for p in list_publications(ws, project_id)] == ["alice/silent"]
    assert "adapter_model.safetensors" in hub.repo("alice/silent").files
    assert pub.revision == hub.repo("alice/silent").sha


def test_hubs_own_refusal_of_someone_elses_repo(fresh, hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the studio's own namespace check lets a push through (an organization the token lists but may not
    write to), the Hub's 403 on the write still ends as the plain message, with nothing written anywhere."""
    from huggingface_hub import HfApi

    from studio.publish import push

    ws, run_id, version_id, project_id = fresh
    HfApi(endpoint=hub.url, token=BOB_TOKEN).create_repo("bob/colours")
    HfApi(endpoint=hub.url, token=BOB_TOKEN).create_repo("bob/colours-data", repo_type="dataset")
    monkeypatch.setattr(push, "_check_may_write", lambda acct, repo, endpoint: None)
    before = snapshot(ws)
    with pytest.raises(HubError, match="refused to let the account alice write to the model repo bob/colours"):
        push_adapter(ws, run_id, "bob/colours", token=TOKEN, endpoint=hub.url)
    with pytest.raises(HubError, match="refused to let the account alice write to the dataset repo bob/colours-d"):
        push_dataset(ws, version_id, "bob/colours-data", token=TOKEN, endpoint=hub.url)
    assert [r.status for r in hub.requests if "/commit/" in r.path or r.path == "/api/repos/create"].count(403) >= 2
    assert len(hub.commits("bob/colours")) == 1 and len(hub.commits("bob/colours-data", "dataset")) == 1
    _nothing_changed(ws, before, project_id)


def test_push_carries_the_runs_exports_and_says_how_to_run_them(hub: HubServer, tiny_chat_model: Path,
                                                                tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download

    from studio.export.run_export import ExportRequest, export_run

    ws = Workspace(load_settings(tmp_path / "home"))
    project = create_project(ws, "colours", task_description="Name colours.")
    run = report_run(ws, project.id, crafted_version(ws, project.id), tiny_chat_model,
                     _make_adapter(tiny_chat_model, tmp_path / "adapter"))
    exported = export_run(ws, run.id, ExportRequest(quants=["q8_0"], ollama=True))
    gguf = f"run{run.id}-q8_0.gguf"

    pub = push_adapter(ws, run.id, "colours-lora", token=TOKEN, endpoint=hub.url)
    assert gguf in pub.files and "Modelfile" in pub.files
    got = hf_hub_download("alice/colours-lora", gguf, endpoint=hub.url, token=TOKEN, cache_dir=tmp_path / "dl")
    assert Path(got).read_bytes() == (exported.folder / gguf).read_bytes()
    card = Path(hf_hub_download("alice/colours-lora", "README.md", endpoint=hub.url, token=TOKEN,
                                cache_dir=tmp_path / "dl")).read_text()
    assert "## Run it locally" in card and f"hf download alice/colours-lora {gguf} --local-dir ." in card
    assert f"hf download alice/colours-lora Modelfile {gguf} --local-dir run{run.id}" in card
    assert f"--lora-modules run{run.id}=alice/colours-lora" in card and "vLLM can serve this adapter" in card
    assert str(exported.folder) not in card

    # Pushed again without them: the repo mirrors what was asked, the GGUF and the Modelfile are gone.
    push_adapter(ws, run.id, "alice/colours-lora", token=TOKEN, endpoint=hub.url, exports=False)
    files = HfApi(endpoint=hub.url, token=TOKEN).list_repo_files("alice/colours-lora")
    assert gguf not in files and "Modelfile" not in files and "adapter_model.safetensors" in files
