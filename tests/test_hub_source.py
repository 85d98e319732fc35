"""Hub dataset import, driven through the real huggingface_hub client against the loopback stand-in."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from studio.data.hub_source import read_hub_dataset
from studio.errors import HubError
from tests.hub_server import HubServer, isolate_hf_client

MB = 1024 * 1024
TRAIN = [{"instruction": f"Say {i}", "output": str(i)} for i in range(3)]
TEST = [{"instruction": "Say ten", "output": "10"}]


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parquet_with_labels() -> bytes:
    """A Parquet file as `datasets` writes it: ClassLabel names in the `huggingface` schema metadata."""
    table = pa.table({"text": ["great", "awful"], "label": [1, 0], "ner_tags": [[0, 1], [0]]})
    features = {
        "text": {"dtype": "string", "_type": "Value"},
        "label": {"names": ["neg", "pos"], "_type": "ClassLabel"},
        "ner_tags": {"feature": {"names": ["O", "B-PER"], "_type": "ClassLabel"}, "_type": "List"},
    }
    table = table.replace_schema_metadata({b"huggingface": json.dumps({"info": {"features": features}})})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    isolate_hf_client(monkeypatch, tmp_path)
    with HubServer() as server:
        yield server


def test_jsonl_train_split_rows_exactly(hub: HubServer) -> None:
    hub.add_dataset("acme/seeds", {"README.md": "# seeds", "data/train.jsonl": jsonl(TRAIN),
                                   "data/test.jsonl": jsonl(TEST)})

    table = read_hub_dataset("acme/seeds", max_bytes=MB, endpoint=hub.url)

    assert table.rows == TRAIN
    assert table.columns == ["instruction", "output"]
    assert table.source == "acme/seeds (train split)"
    assert hub.downloads() == ["acme/seeds/data/train.jsonl"]
    test = read_hub_dataset("acme/seeds", split="test", max_bytes=MB, endpoint=hub.url)
    assert test.rows == TEST


def test_shards_are_concatenated_with_union_of_columns(hub: HubServer) -> None:
    hub.add_dataset("acme/shards", {
        "data/train-00000-of-00002.jsonl": jsonl([{"a": 1}]),
        "data/train-00001-of-00002.jsonl": jsonl([{"a": 2, "b": 3}]),
        "data/validation-00000-of-00001.jsonl": jsonl([{"a": 9}]),
    })

    table = read_hub_dataset("acme/shards", max_bytes=MB, endpoint=hub.url)

    assert table.rows == [{"a": 1}, {"a": 2, "b": 3}]
    assert table.columns == ["a", "b"]


def test_files_that_name_no_split_are_all_read(hub: HubServer) -> None:
    hub.add_dataset("acme/flat", {"part1.csv": "q,a\nhi,hello\n", "part2.csv": "q,a\nbye,ciao\n"})

    table = read_hub_dataset("acme/flat", max_bytes=MB, endpoint=hub.url)

    assert table.rows == [{"q": "hi", "a": "hello"}, {"q": "bye", "a": "ciao"}]


def test_parquet_class_label_names(hub: HubServer) -> None:
    hub.add_dataset("acme/sentiment", {"data/train-00000-of-00001.parquet": parquet_with_labels()})

    table = read_hub_dataset("acme/sentiment", max_bytes=MB, endpoint=hub.url)

    assert table.rows[0] == {"text": "great", "label": 1, "ner_tags": [0, 1]}
    assert table.label_names == {"label": ["neg", "pos"], "ner_tags": ["O", "B-PER"]}


CARD_WITH_FEATURES = """---
dataset_info:
  features:
  - name: text
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': negative
          '1': neutral
          '2': positive
  - name: ner_tags
    sequence:
      class_label:
        names:
          '0': O
          '1': B-PER
---
# Tweets
"""


def test_card_features_name_the_labels_of_a_csv_dataset(hub: HubServer, tmp_path: Path) -> None:
    """A CSV/JSON dataset declares its ClassLabel names only in the card's dataset_info (the Hub's YAML)."""
    from studio.config import load_settings
    from studio.data.importer import preview_hub
    from studio.workspace import Workspace

    hub.add_dataset("acme/tweets", {"README.md": CARD_WITH_FEATURES,
                                    "data/train.csv": b"text,label\nlove it,2\nmeh,1\nawful,0\n"})
    table = read_hub_dataset("acme/tweets", max_bytes=MB, endpoint=hub.url)
    assert table.label_names == {"label": ["negative", "neutral", "positive"], "ner_tags": ["O", "B-PER"]}
    preview = preview_hub(Workspace(load_settings(tmp_path / "home")), "acme/tweets", endpoint=hub.url)
    assert [r.record["label"] for r in preview.rows] == ["positive", "neutral", "negative"]
    assert "3 labels: negative, neutral, positive." in preview.notes


def test_unknown_dataset_is_not_found(hub: HubServer) -> None:
    with pytest.raises(HubError) as err:
        read_hub_dataset("acme/nope", max_bytes=MB, endpoint=hub.url)

    assert "acme/nope" in str(err.value)
    assert "not found" in str(err.value)


@pytest.mark.parametrize("bad_id", ["not a valid id!!", "a/b/c", ""])
def test_invalid_id(hub: HubServer, bad_id: str) -> None:
    with pytest.raises(HubError, match="not a valid Hugging Face dataset id") as err:
        read_hub_dataset(bad_id, max_bytes=MB, endpoint=hub.url)

    assert "tatsu-lab/alpaca" in str(err.value)
    assert hub.requests == []


def test_too_big_downloads_nothing(hub: HubServer) -> None:
    hub.add_dataset("acme/big", {"train.jsonl": jsonl(TRAIN * 200)})

    with pytest.raises(HubError, match=r"over the .* import limit") as err:
        read_hub_dataset("acme/big", max_bytes=1000, endpoint=hub.url)

    assert "acme/big" in str(err.value)
    assert hub.downloads() == []
    assert [r.method for r in hub.requests] == ["GET"]  # only the file listing


def test_missing_split_lists_the_splits(hub: HubServer) -> None:
    hub.add_dataset("acme/seeds", {"train/a.csv": "q,a\nx,y\n", "dev/b.csv": "q,a\nx,y\n"})

    with pytest.raises(HubError, match=r"no 'test' split\. Its splits are: train, validation") as err:
        read_hub_dataset("acme/seeds", split="test", max_bytes=MB, endpoint=hub.url)

    assert "acme/seeds" in str(err.value)


def test_no_supported_data_file(hub: HubServer) -> None:
    hub.add_dataset("acme/scripted", {"README.md": "x", "scripted.py": "print()", "data.zip": b"PK\x03\x04"})

    with pytest.raises(HubError, match="no data file in a format this studio reads") as err:
        read_hub_dataset("acme/scripted", max_bytes=MB, endpoint=hub.url)

    assert "acme/scripted" in str(err.value)
    assert "data.zip" in str(err.value)


def test_gated_dataset_without_token(hub: HubServer) -> None:
    hub.add_dataset("acme/gated", {"train.jsonl": jsonl(TRAIN)}, gated=True, token="hf_ok")

    with pytest.raises(HubError, match="gated") as err:
        read_hub_dataset("acme/gated", max_bytes=MB, endpoint=hub.url)

    assert "HF_TOKEN" in str(err.value)
    assert read_hub_dataset("acme/gated", max_bytes=MB, endpoint=hub.url, token="hf_ok").rows == TRAIN


def test_private_dataset_needs_its_token(hub: HubServer) -> None:
    hub.add_dataset("acme/private", {"train.jsonl": jsonl(TRAIN)}, private=True, token="hf_secret_123")

    with pytest.raises(HubError, match=r"not found.*HF_TOKEN"):
        read_hub_dataset("acme/private", max_bytes=MB, endpoint=hub.url)

    table = read_hub_dataset("acme/private", max_bytes=MB, endpoint=hub.url, token="hf_secret_123")
    assert table.rows == TRAIN
    assert hub.requests[-1].authorized


def test_rejected_token_is_never_shown(hub: HubServer) -> None:
    hub.add_dataset("acme/seeds", {"train.jsonl": jsonl(TRAIN)})

    with pytest.raises(HubError, match="rejected the access token") as err:
        read_hub_dataset("acme/seeds", max_bytes=MB, endpoint=hub.url, token="hf_wrong_456")

    assert "hf_wrong_456" not in str(err.value)


def test_unreachable_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_hf_client(monkeypatch, tmp_path)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    with pytest.raises(HubError, match="cannot be reached from this machine") as err:
        read_hub_dataset("acme/seeds", max_bytes=MB, endpoint=f"http://127.0.0.1:{port}")

    assert "acme/seeds" in str(err.value)
    assert "upload the file here" in str(err.value)


def test_offline_mode_sends_nothing(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_dataset("acme/seeds", {"train.jsonl": jsonl(TRAIN)})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(HubError, match=r"cannot be reached .*HF_HUB_OFFLINE"):
        read_hub_dataset("acme/seeds", max_bytes=MB, endpoint=hub.url)

    assert hub.requests == []


def test_download_lands_in_the_test_cache(hub: HubServer, tmp_path: Path) -> None:
    hub.add_dataset("acme/seeds", {"train.jsonl": jsonl(TRAIN)})

    read_hub_dataset("acme/seeds", max_bytes=MB, endpoint=hub.url)

    assert list((tmp_path / "hf_home" / "hub").glob("datasets--acme--seeds/snapshots/*/train.jsonl"))
