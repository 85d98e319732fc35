"""Chat views of every seed format, exports that load back with `datasets` row for row, all-or-nothing export
folders, and a dataset card whose YAML parses and which tells the truth without secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from studio.data.card import dataset_card, size_category
from studio.data.chat import ner_entities, to_messages, to_prompt_completion
from studio.data.export import export_version, to_dataset_dict, version_records
from studio.data.formats import SeedFormat
from studio.data.versions import FreezeConfig, freeze_version, version_rows
from studio.errors import DatasetVersionError
from studio.workspace.seeds import list_seeds
from studio.workspace.store import utc_now
from tests.factories import project_with_seeds
from tests.test_dataset_versions import candidate_ids, general_file, select_batch, variants

# --- chat views ---------------------------------------------------------------------------------------


def test_alpaca_with_and_without_input(shared_seeds) -> None:
    rows = [json.loads(line) for line in shared_seeds.read_text().splitlines()]
    with_input = next(r for r in rows if r["input"].strip())
    without = next(r for r in rows if not r["input"].strip())
    msgs = to_messages("alpaca", with_input)
    assert msgs == [{"role": "user", "content": with_input["instruction"] + "\n\n" + with_input["input"]},
                    {"role": "assistant", "content": with_input["output"]}]
    assert to_messages(SeedFormat.ALPACA, without)[0] == {"role": "user", "content": without["instruction"]}
    assert to_messages("alpaca", without, system="Be brief.")[0] == {"role": "system", "content": "Be brief."}
    assert to_prompt_completion("alpaca", with_input) == {"prompt": msgs[0]["content"],
                                                          "completion": with_input["output"]}


def test_prompt_completion_and_classification() -> None:
    pc = {"prompt": "Translate 'cat' to French.", "completion": "chat"}
    assert to_messages("prompt_completion", pc) == [{"role": "user", "content": pc["prompt"]},
                                                    {"role": "assistant", "content": "chat"}]
    assert to_prompt_completion("prompt_completion", pc) == pc
    cl = {"text": "The parcel never arrived.", "label": "delivery"}
    assert to_messages("classification", cl) == [{"role": "user", "content": cl["text"]},
                                                 {"role": "assistant", "content": "delivery"}]
    assert to_prompt_completion("classification", cl) == {"prompt": cl["text"], "completion": "delivery"}


def test_messages_system_and_multi_turn() -> None:
    single = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    assert to_messages("messages", single) == single["messages"]
    assert to_messages("messages", single) is not single["messages"]
    with_system = to_messages("messages", single, system="Be kind.")
    assert with_system[0] == {"role": "system", "content": "Be kind."} and with_system[1:] == single["messages"]
    assert to_prompt_completion("messages", single) == {"prompt": "Hi", "completion": "Hello!"}
    multi = {"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}, {"role": "user", "content": "Times 3?"},
                          {"role": "assistant", "content": "12"}]}
    assert to_messages("messages", multi, system="Other") == multi["messages"], "its own system message stays"
    assert to_prompt_completion("messages", multi) == {
        "prompt": "System: You are terse.\n\nUser: 2+2?\n\nAssistant: 4\n\nUser: Times 3?\n\nAssistant:\n",
        "completion": "12"}
    assert to_prompt_completion("messages", single, system="Sys")["prompt"] == "System: Sys\n\nUser: Hi\n\nAssistant:\n"
    with pytest.raises(ValueError, match="no assistant message"):
        to_prompt_completion("messages", {"messages": [{"role": "user", "content": "Hi"}]})


@pytest.mark.parametrize(("tags", "expected"), [
    (["B-PER", "I-PER", "O", "O", "B-LOC"],
     [{"text": "Ada Lovelace", "type": "PER"}, {"text": "London", "type": "LOC"}]),
    (["PER", "PER", "O", "O", "LOC"],  # IO tags without prefixes
     [{"text": "Ada Lovelace", "type": "PER"}, {"text": "London", "type": "LOC"}]),
    (["I-PER", "I-PER", "O", "O", "I-LOC"],  # IO tags with I- only
     [{"text": "Ada Lovelace", "type": "PER"}, {"text": "London", "type": "LOC"}]),
    (["B-PER", "E-PER", "O", "O", "S-LOC"],  # BIOES
     [{"text": "Ada Lovelace", "type": "PER"}, {"text": "London", "type": "LOC"}]),
    (["B-PER", "B-PER", "O", "O", "O"],  # two adjacent one-word entities
     [{"text": "Ada", "type": "PER"}, {"text": "Lovelace", "type": "PER"}]),
    (["B-PER", "I-ORG", "O", "O", "O"],  # a type change starts a new entity
     [{"text": "Ada", "type": "PER"}, {"text": "Lovelace", "type": "ORG"}]),
    (["O"] * 5, []),
])
def test_ner_entities(tags, expected) -> None:
    record = {"tokens": ["Ada", "Lovelace", "lived", "in", "London"], "tags": tags}
    assert ner_entities(record["tokens"], tags) == expected
    msgs = to_messages("ner", record)
    assert msgs[0] == {"role": "user", "content": "Ada Lovelace lived in London"}
    assert json.loads(msgs[1]["content"]) == expected
    assert to_prompt_completion("ner", record) == {"prompt": msgs[0]["content"], "completion": msgs[1]["content"]}


# --- exports ------------------------------------------------------------------------------------------


@pytest.fixture
def version(ws, shared_seeds, tmp_path) -> int:
    """v1 of the shared seeds with a gated synthetic batch (filtered, reviewed) and a general mix."""
    project = project_with_seeds(ws, shared_seeds, name="Self-Instruct / demo", task="Follow instructions helpfully.")
    rows, sources = variants(ws, project)
    batch = select_batch(ws, project, rows, seed_ids=sources)
    now = utc_now()
    with ws.write() as conn:
        conn.execute("UPDATE batch SET filter_config = '{\"enabled\": {}}', filtered_at = ?, teacher = ? WHERE id = ?",
                     (now, json.dumps({"kind": "endpoint", "model": "big-teacher",
                                       "base_url": "https://alice:s3cretpass@llm.example.com/v1?api_key=sk-abc123456789"}),
                      batch))
        for cid in candidate_ids(ws, batch)[:7]:
            conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, reason, created_at) "
                         "VALUES (?, 'near_duplicate', 0, 'same as row #1', ?)", (cid, now))
            conn.execute("DELETE FROM selection WHERE candidate_id = ?", (cid,))
    return freeze_version(ws, project, FreezeConfig(general_path=str(general_file(tmp_path)))).id


def _load(result, file_format: str, cache: Path) -> dict[str, list[dict]]:
    from datasets import load_dataset

    builder = "parquet" if file_format == "parquet" else "json"
    loaded = load_dataset(builder, data_files={s: str(p) for s, p in result.files.items()}, cache_dir=str(cache))
    return {s: loaded[s].to_list() for s in loaded}


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
@pytest.mark.parametrize("style", ["messages", "prompt_completion"])
def test_export_loads_back_row_for_row(ws, version, tmp_path, file_format, style) -> None:
    result = export_version(ws, version, file_format=file_format, style=style)
    assert result.folder == ws.exports_dir / "self-instruct-demo" / f"v1-{style}-{file_format}"
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(
        ["README.md", *(f"{s}.{file_format}" for s in ("train", "validation", "test"))])
    expected = version_records(ws, version, style)
    loaded = _load(result, file_format, tmp_path / "cache")
    assert loaded == expected
    assert result.rows == {s: len(expected[s]) for s in expected}
    stored = version_rows(ws, version)
    assert sum(result.rows.values()) == len(stored)
    train = loaded["train"]
    assert {r["origin"] for r in train} == {"seed", "synthetic", "general"}
    assert {r["origin"] for r in loaded["validation"]} == {"seed"}
    first = stored[0]
    assert train[0]["source_id"] == first.source_id and train[0]["format"] == str(first.format)
    if style == "messages":
        assert train[0]["messages"] == to_messages(first.format, first.data)
    else:
        assert {k: train[0][k] for k in ("prompt", "completion")} == to_prompt_completion(first.format, first.data)
    card = result.card_path.read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert [f["path"] for f in meta["configs"][0]["data_files"]] == [p.name for p in result.files.values()]


def test_dataset_dict_matches_the_export(ws, version) -> None:
    dd = to_dataset_dict(ws, version)
    assert set(dd) == {"train", "validation", "test"}
    records = version_records(ws, version)
    assert {s: dd[s].to_list() for s in dd} == records
    assert dd["train"].column_names == ["messages", "origin", "source_id", "format"]
    pc = to_dataset_dict(ws, version, style="prompt_completion")
    assert pc["test"].column_names == ["prompt", "completion", "origin", "source_id", "format"]


def test_empty_splits_have_no_file(ws, shared_seeds, tmp_path) -> None:
    project = project_with_seeds(ws, shared_seeds)
    v = freeze_version(ws, project, FreezeConfig(validation_fraction=0))
    result = export_version(ws, v.id, out_dir=tmp_path / "out")
    assert result.folder == tmp_path / "out" / "v1-messages-parquet"
    assert set(result.files) == {"train", "test"} and not (result.folder / "validation.parquet").exists()
    assert set(to_dataset_dict(ws, v.id)) == {"train", "test"}
    meta = yaml.safe_load(result.card_path.read_text().split("---\n")[1])
    assert [f["split"] for f in meta["configs"][0]["data_files"]] == ["train", "test"]
    assert "Empty splits have no file." in result.card_path.read_text()


def test_failed_export_leaves_nothing_behind(ws, version, monkeypatch) -> None:
    from datasets import Dataset

    real = Dataset.to_parquet
    calls = []

    def fail_on_second(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(Dataset, "to_parquet", fail_on_second)
    with pytest.raises(OSError, match="simulated"):
        export_version(ws, version)
    parent = ws.exports_dir / "self-instruct-demo"
    assert len(calls) == 2 and Path(calls[0]).exists() is False, "the first file was written, then removed"
    assert list(parent.iterdir()) == []

    # An earlier export survives a failed re-export untouched, and a good re-export replaces it.
    monkeypatch.setattr(Dataset, "to_parquet", real)
    good = export_version(ws, version)
    before = {p.name: p.read_bytes() for p in good.folder.iterdir()}
    calls.clear()
    monkeypatch.setattr(Dataset, "to_parquet", fail_on_second)
    with pytest.raises(OSError, match="simulated"):
        export_version(ws, version)
    assert {p.name: p.read_bytes() for p in good.folder.iterdir()} == before
    assert [p.name for p in parent.iterdir()] == [good.folder.name]
    monkeypatch.setattr(Dataset, "to_parquet", real)
    again = export_version(ws, version)
    assert again.folder == good.folder and [p.name for p in parent.iterdir()] == [good.folder.name]


def test_bad_export_requests(ws, version) -> None:
    with pytest.raises(DatasetVersionError, match="'xlsx' is not an export format; use parquet, jsonl or csv"):
        export_version(ws, version, file_format="xlsx")
    with pytest.raises(DatasetVersionError, match="'alpaca' is not an export style"):
        export_version(ws, version, style="alpaca")
    with pytest.raises(DatasetVersionError, match="no dataset version #999"):
        export_version(ws, 999)
    assert not any(ws.exports_dir.iterdir())


# --- the card -----------------------------------------------------------------------------------------


def test_card_front_matter_and_contents(ws, version) -> None:
    card = dataset_card(ws, version)
    assert card.startswith("---\n")
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "other" and "language" not in meta
    assert meta["task_categories"] == ["text-generation"] and meta["tags"] == ["synthetic", "seed-studio"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"][0]["data_files"][0] == {"split": "train", "path": "train.parquet"}
    assert "Follow instructions helpfully." in card
    assert "| validation | 18 | 0 | 0 | 18 |" in card
    assert "| instruction-expansion |" in card and "big-teacher @ https://llm.example.com/v1" in card
    assert "near_duplicate: 7" in card  # the filter and how many rows it removed
    assert "| 40 | 2 | 5.0% | 1.4% – 16.5% (95.0%) | 20.0% | pass |" in card  # error rate, interval, decision
    assert "Validation is human-written only" in card and "derived from a validation seed" in card
    assert "synthetic rows generated from train seeds" not in card  # the test-derived rows filled test's share
    assert "general.jsonl" in card and "## General data mix" in card
    assert 'load_dataset("parquet", data_files=' in card and "No license was chosen" in card
    for secret in ("s3cretpass", "alice", "api_key", "sk-abc123456789"):
        assert secret not in card
    jsonl = yaml.safe_load(dataset_card(ws, version, file_format="jsonl").split("---\n")[1])
    assert jsonl["configs"][0]["data_files"][0] == {"split": "train", "path": "train.jsonl"}


def test_card_with_license_and_language(ws, shared_seeds) -> None:
    project = project_with_seeds(ws, shared_seeds)
    v = freeze_version(ws, project, FreezeConfig(license="apache-2.0", language="en"))
    meta = yaml.safe_load(dataset_card(ws, v.id).split("---\n")[1])
    assert meta["license"] == "apache-2.0" and meta["language"] == ["en"]
    card = dataset_card(ws, v.id)
    assert "No automatic filter was applied" in card and "No review gate decision was recorded" in card
    assert [size_category(n) for n in (999, 1000, 25_000, 100_000)] == ["n<1K", "1K<n<10K", "10K<n<100K",
                                                                          "100K<n<1M"]
    assert list_seeds(ws, project)  # the seeds are still there: exporting never touches them
