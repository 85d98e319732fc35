"""The loopback Hub stand-in (tests/hub_server.py) against the real huggingface_hub and datasets clients.

Other tests trust this server to behave like the Hub for uploads; these show it does, for what they rely
on: round trips byte for byte, visibility and ownership, no-op re-pushes, and the client's reaction to
rate limits and dropped connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub_server import HubServer, isolate_hf_client

ALICE, BOB, ALICE_READ = "hf_alice_secret_token", "hf_bob_secret_token", "hf_alice_read_token"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    with HubServer(tokens={ALICE: "alice", BOB: "bob"}) as server:
        server.add_token(ALICE_READ, "alice", write=False)
        isolate_hf_client(monkeypatch, tmp_path, endpoint=server.url)
        yield server


def api(hub: HubServer, token: str | None = None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url, token=token if token is not None else False)


def adapter_folder(root: Path) -> Path:
    """What an adapter push looks like: LFS weights, small JSON, a card with YAML front matter."""
    folder = root / "adapter"
    (folder / "tokenizer").mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 64)
    (folder / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}')
    (folder / "tokenizer" / "tokenizer_config.json").write_text('{"model_max_length": 512}')
    (folder / "README.md").write_text("---\nlibrary_name: peft\ntags:\n- seed-studio\n---\n# An adapter\n")
    return folder


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_model_round_trip_is_byte_identical(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    alice = api(hub, ALICE)
    url = alice.create_repo("alice/tiny-adapter", private=True)
    folder = adapter_folder(tmp_path)
    commit = alice.upload_folder(repo_id="alice/tiny-adapter", folder_path=folder, commit_message="Add adapter")

    assert url.repo_id == "alice/tiny-adapter"
    assert hub.repo("alice/tiny-adapter").sha == commit.oid
    assert sorted(alice.list_repo_files("alice/tiny-adapter")) == sorted([".gitattributes", *files_under(folder)])
    info = alice.model_info("alice/tiny-adapter", files_metadata=True)
    assert info.private and info.sha == commit.oid and info.card_data["library_name"] == "peft"
    weights = next(s for s in info.siblings if s.rfilename == "adapter_model.safetensors")
    assert weights.lfs is not None and weights.size == 256 * 64  # stored through the LFS batch API
    local = Path(snapshot_download("alice/tiny-adapter", token=ALICE))
    assert {k: v for k, v in files_under(local).items() if k != ".gitattributes"} == files_under(folder)
    one = hf_hub_download("alice/tiny-adapter", "tokenizer/tokenizer_config.json", token=ALICE,
                          cache_dir=tmp_path / "other-cache")
    assert Path(one).read_bytes() == (folder / "tokenizer" / "tokenizer_config.json").read_bytes()
    tree = {e.path for e in alice.list_repo_tree("alice/tiny-adapter", recursive=True)}
    assert {"tokenizer", "tokenizer/tokenizer_config.json"} <= tree
    assert hub.token_leaks(ALICE) == []


def test_repush_of_identical_files_adds_no_commit_and_changes_only_what_changed(hub: HubServer,
                                                                                 tmp_path: Path) -> None:
    alice = api(hub, ALICE)
    alice.create_repo("alice/a", private=True)
    folder = adapter_folder(tmp_path)
    first = alice.upload_folder(repo_id="alice/a", folder_path=folder, commit_message="v1")
    again = alice.upload_folder(repo_id="alice/a", folder_path=folder, commit_message="v1 again")
    (folder / "README.md").write_text("---\nlibrary_name: peft\n---\n# Better card\n")
    third = alice.upload_folder(repo_id="alice/a", folder_path=folder, commit_message="v2")
    alice.delete_file("tokenizer/tokenizer_config.json", repo_id="alice/a")

    log = hub.commits("alice/a")
    assert again.oid == first.oid  # the client saw nothing changed: no commit
    assert [c.title for c in log] == ["initial commit", "v1", "v2",
                                      "Delete tokenizer/tokenizer_config.json with huggingface_hub"]
    assert log[2].oid == third.oid and log[2].added == ["README.md"]
    assert log[3].deleted == ["tokenizer/tokenizer_config.json"]
    assert "tokenizer/tokenizer_config.json" in log[2].files  # old revisions stay readable
    assert [c.commit_id for c in alice.list_repo_commits("alice/a")] == [c.oid for c in reversed(log)]


def test_private_repo_is_invisible_without_its_owner_token(hub: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    alice = api(hub, ALICE)
    alice.create_repo("alice/secret", private=True)
    alice.upload_file(path_or_fileobj=b"weights", path_in_repo="w.txt", repo_id="alice/secret")

    with pytest.raises(RepositoryNotFoundError) as anonymous:
        api(hub).model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError) as other_user:
        api(hub, BOB).list_repo_files("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", "w.txt", token=False, cache_dir=tmp_path / "c")
    assert anonymous.value.response.status_code == 401
    assert other_user.value.response.status_code == 404
    assert api(hub, ALICE_READ).list_repo_files("alice/secret") == [".gitattributes", "w.txt"]
    assert not api(hub).repo_exists("alice/secret")


def test_someone_elses_repo_and_read_tokens_get_403(hub: HubServer) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    alice = api(hub, ALICE)
    alice.create_repo("alice/pub")
    before = [c.oid for c in hub.commits("alice/pub")]

    with pytest.raises(HfHubHTTPError) as taken:
        api(hub, BOB).create_repo("alice/pub")
    with pytest.raises(HfHubHTTPError) as push:
        api(hub, BOB).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/pub")
    with pytest.raises(HfHubHTTPError) as read_only:
        api(hub, ALICE_READ).upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/pub")
    with pytest.raises(HfHubHTTPError) as read_only_create:
        api(hub, ALICE_READ).create_repo("alice/new")

    assert [e.value.response.status_code for e in (taken, push, read_only, read_only_create)] == [403] * 4
    assert "read-only" in str(read_only.value)
    assert [c.oid for c in hub.commits("alice/pub")] == before
    assert hub.repo("alice/new") is None
    # create_repo(exist_ok=True) on one's own repo answers 409 with its url, which the client accepts.
    assert alice.create_repo("alice/pub", exist_ok=True).repo_id == "alice/pub"
    me, reader = alice.whoami(), api(hub, ALICE_READ).whoami()
    assert (me["name"], me["auth"]["accessToken"]["role"]) == ("alice", "write")
    assert reader["auth"]["accessToken"]["role"] == "read"


def test_datasetdict_push_to_hub_and_load_dataset_round_trip(hub: HubServer) -> None:
    from datasets import Dataset, DatasetDict, load_dataset

    rows = {
        "train": [{"instruction": f"Say {i}", "output": str(i), "tags": ["a"] * i} for i in range(7)],
        "test": [{"instruction": "Say ten", "output": "10", "tags": ["b"]}],
    }
    data = DatasetDict({split: Dataset.from_list(r) for split, r in rows.items()})
    data.push_to_hub("alice/seeds", token=ALICE, private=True)
    data.push_to_hub("alice/seeds", token=ALICE, private=True)  # identical: no new commit

    back = load_dataset("alice/seeds", token=ALICE)
    assert {split: back[split].to_list() for split in back} == rows
    repo = hub.repo("alice/seeds", "dataset")
    assert repo.private and [c.title for c in repo.commits] == ["initial commit", "Upload dataset"]
    assert sorted(repo.files) == [".gitattributes", "README.md", "data/test-00000-of-00001.parquet",
                                  "data/train-00000-of-00001.parquet"]
    assert repo.is_lfs("data/train-00000-of-00001.parquet")
    assert hub.token_leaks(ALICE) == []


def test_rate_limit_is_retried_by_the_client_where_the_hub_client_retries(hub: HubServer) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    alice = api(hub, ALICE)
    alice.create_repo("alice/r")
    hub.fail_next(1, 429, match="/preupload/")  # preupload goes through http_backoff: retried (~1 s)
    alice.upload_file(path_or_fileobj=b"one", path_in_repo="one.txt", repo_id="alice/r")
    hub.fail_next(1, 429, match="/commit/")  # the commit POST is not retried: the caller sees the 429
    with pytest.raises(HfHubHTTPError) as limited:
        alice.upload_file(path_or_fileobj=b"two", path_in_repo="two.txt", repo_id="alice/r")

    statuses = [r.status for r in hub.requests if "/preupload/" in r.path]
    assert statuses[:2] == [429, 200]
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["RateLimit"] == '"api";r=0;t=0'
    assert alice.list_repo_files("alice/r") == [".gitattributes", "one.txt"]


def test_dropped_connection_fails_the_call_and_keeps_the_repo_unchanged(hub: HubServer) -> None:
    import httpx2

    alice = api(hub, ALICE)
    alice.create_repo("alice/d")
    before = hub.commits("alice/d")
    hub.drop_next(1, match="POST .*/commit/")
    with pytest.raises(httpx2.TransportError):
        alice.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/d")
    assert hub.commits("alice/d") == before
    assert [r.status for r in hub.requests if "/commit/" in r.path] == [None]  # logged, never answered

    alice.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/d")  # the next one works
    assert hub.repo("alice/d").files["x.txt"] == b"x"


def test_token_leak_detector_finds_a_token_written_into_a_file(hub: HubServer) -> None:
    alice = api(hub, ALICE)
    alice.create_repo("alice/oops")
    alice.upload_file(path_or_fileobj=f"token: {ALICE}\n".encode(), path_in_repo="config.yaml",
                      repo_id="alice/oops")

    leaks = hub.token_leaks(ALICE)
    assert any("body" in leak for leak in leaks)  # the commit carried it (base64 inside NDJSON)
    assert any("file config.yaml" in leak for leak in leaks)
    assert all(ALICE not in leak for leak in leaks)
    assert all(r.authorized and "Authorization" not in r.headers for r in hub.requests)
    assert hub.token_leaks(BOB) == []


def test_unknown_token_and_invalid_card_are_refused(hub: HubServer) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as unknown:
        api(hub, "hf_not_a_token").create_repo("mallory/x")
    alice = api(hub, ALICE)
    alice.create_repo("alice/card")
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        alice.upload_file(path_or_fileobj=b"---\ntags: [unclosed\n---\n", path_in_repo="README.md",
                          repo_id="alice/card")

    assert unknown.value.response.status_code == 401
    assert hub.repo("mallory/x") is None
    assert alice.list_repo_files("alice/card") == [".gitattributes"]
