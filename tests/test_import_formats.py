"""Seed import from every file type and every recognised layout, on real human-written seeds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.data.formats import SeedFormat, content_key, detect
from studio.data.importer import commit_import, preview_file
from studio.workspace.projects import create_project
from studio.workspace.seeds import delete_seeds, list_seeds, update_seed


def load_shared(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_shared_self_instruct_seeds_import_whole(ws, shared_seeds) -> None:
    p = create_project(ws, "Self-Instruct")
    preview = preview_file(ws, shared_seeds, project_id=p.id)
    assert preview.format == SeedFormat.ALPACA and not preview.detection.needs_mapping
    assert preview.counts["rows"] == 120 and preview.counts["usable"] == 120
    result = commit_import(ws, p.id, preview)
    assert result.imported == 120
    seeds = list_seeds(ws, p.id)
    source = load_shared(shared_seeds)
    assert [s.data["instruction"] for s in seeds] == [r["instruction"] for r in source]
    assert [s.data["output"] for s in seeds] == [r["output"] for r in source]
    # Columns that are not seed fields are kept, so nothing the user uploaded is dropped.
    assert seeds[0].meta["id"] == source[0]["id"] and "is_classification" in seeds[0].meta
    assert seeds[0].source == "self_instruct_seeds.jsonl" and seeds[0].source_row == 1


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_every_file_type_gives_the_same_seeds(ws, shared_seeds, tmp_path, suffix) -> None:
    rows = [{k: r[k] for k in ("instruction", "input", "output")} for r in load_shared(shared_seeds)]
    frame = pd.DataFrame(rows)
    path = tmp_path / f"seeds{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t", quoting=csv.QUOTE_MINIMAL)
    elif suffix == ".json":
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path)
    p = create_project(ws, f"t{suffix}")
    result = commit_import(ws, p.id, preview_file(ws, path, project_id=p.id))
    assert result.imported == len(rows)
    assert [s.data for s in list_seeds(ws, p.id)] == rows


def test_excel_style_csv_with_bom_semicolons_and_crlf(ws, tmp_path) -> None:
    path = tmp_path / "excel.csv"
    text = "instruction;input;output\r\nSay hi;;Hello!\r\n\"Add; numbers\";2 and 3;5\r\n"
    path.write_bytes("\ufeff".encode() + text.encode("utf-8"))
    p = create_project(ws, "Excel")
    commit_import(ws, p.id, preview_file(ws, path, project_id=p.id))
    assert [s.data for s in list_seeds(ws, p.id)] == [
        {"instruction": "Say hi", "input": "", "output": "Hello!"},
        {"instruction": "Add; numbers", "input": "2 and 3", "output": "5"},
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


LAYOUTS = [
    (SeedFormat.PROMPT_COMPLETION, [{"prompt": "2+2=", "completion": "4"}, {"prompt": "3+3=", "completion": "6"}]),
    (SeedFormat.MESSAGES, [{"messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Capital of France?"},
                                         {"role": "assistant", "content": "Paris."}]}]),
    (SeedFormat.CLASSIFICATION, [{"text": "I love it", "label": "positive"}, {"text": "Awful", "label": "negative"}]),
    (SeedFormat.NER, [{"tokens": ["Ada", "lives", "in", "Paris"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]}]),
]


@pytest.mark.parametrize(("fmt", "rows"), LAYOUTS, ids=[f.value for f, _ in LAYOUTS])
def test_each_layout_is_recognised(ws, tmp_path, fmt, rows) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    p = create_project(ws, fmt.value)
    preview = preview_file(ws, path, project_id=p.id)
    assert preview.format == fmt and not preview.detection.needs_mapping, preview.detection.message
    assert commit_import(ws, p.id, preview).imported == len(rows)


def test_sharegpt_conversations_become_messages(ws, tmp_path) -> None:
    rows = [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}]
    p = create_project(ws, "sharegpt")
    preview = preview_file(ws, write_jsonl(tmp_path / "c.jsonl", rows), project_id=p.id)
    assert preview.format == SeedFormat.MESSAGES
    commit_import(ws, p.id, preview)
    assert list_seeds(ws, p.id)[0].data == {"messages": [{"role": "user", "content": "Hi"},
                                                         {"role": "assistant", "content": "Hello!"}]}


def test_messages_in_a_csv_cell_as_json(ws, tmp_path) -> None:
    msgs = [{"role": "user", "content": "Hi, there"}, {"role": "assistant", "content": "Hello"}]
    pd.DataFrame([{"messages": json.dumps(msgs)}]).to_csv(tmp_path / "m.csv", index=False)
    p = create_project(ws, "csv-msgs")
    preview = preview_file(ws, tmp_path / "m.csv", project_id=p.id)
    assert preview.format == SeedFormat.MESSAGES and preview.counts["usable"] == 1


def test_ambiguous_columns_need_the_mapping_step(ws, tmp_path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"task": "Why is the sky blue?", "answer": "Rayleigh scattering."}])
    p = create_project(ws, "qa")
    preview = preview_file(ws, path, project_id=p.id)
    assert preview.detection.needs_mapping
    assert preview.format == SeedFormat.ALPACA and preview.mapping == {"instruction": "task", "output": "answer"}
    # question / answer is a QA set: prompt and completion, no question asked.
    det = detect(["question", "answer"], [{"question": "a", "answer": "b"}])
    assert not det.needs_mapping and det.best.format == SeedFormat.PROMPT_COMPLETION


def test_explicit_mapping_imports_unrecognised_columns(ws, tmp_path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"ask": "Name a colour", "reply": "Blue", "note": "easy"}])
    p = create_project(ws, "odd")
    preview = preview_file(ws, path, project_id=p.id)
    assert preview.format is None and preview.mapping_problem
    preview = preview.remap(SeedFormat.PROMPT_COMPLETION, {"prompt": "ask", "completion": "reply"})
    assert commit_import(ws, p.id, preview).imported == 1
    seed = list_seeds(ws, p.id)[0]
    assert seed.data == {"prompt": "Name a colour", "completion": "Blue"} and seed.meta == {"note": "easy"}


def test_duplicates_are_flagged_in_the_file_and_against_the_project(ws, tmp_path) -> None:
    rows = [{"instruction": "Say hi", "output": "Hello"}, {"instruction": "say  HI ", "output": "hello"},
            {"instruction": "Say bye", "output": "Bye"}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    p = create_project(ws, "dups")
    preview = preview_file(ws, path, project_id=p.id)
    assert preview.counts["duplicates"] == 1 and preview.rows[1].duplicate_of == "row 1"
    assert any(pr.row == 2 and "duplicate" in pr.message for pr in preview.problems)
    assert commit_import(ws, p.id, preview).imported == 2
    again = preview_file(ws, path, project_id=p.id)
    assert again.counts["usable"] == 0 and "already in this project" in again.rows[0].duplicate_of
    # An Alpaca row and the same prompt/completion row are one example.
    pc = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Say bye", "completion": "Bye"}])
    assert preview_file(ws, pc, project_id=p.id).counts["duplicates"] == 1


def test_per_row_problems_name_row_and_column(ws, tmp_path) -> None:
    rows = [{"instruction": "Fine", "output": "ok"}, {"instruction": "", "output": "x"},
            {"instruction": "No answer", "output": "  "}]
    preview = preview_file(ws, write_jsonl(tmp_path / "p.jsonl", rows))
    errors = [(pr.row, pr.column) for pr in preview.problems if pr.severity == "error"]
    assert errors == [(2, "instruction"), (3, "output")]
    assert preview.counts == {"rows": 3, "usable": 1, "with_errors": 2, "duplicates": 0, "warnings": 0}


def test_ner_length_mismatch_and_non_bio_tags(ws, tmp_path) -> None:
    rows = [{"tokens": ["a", "b"], "tags": ["O"]}, {"tokens": ["Ada"], "tags": ["PERSON"]}]
    preview = preview_file(ws, write_jsonl(tmp_path / "n.jsonl", rows))
    assert preview.rows[0].record is None and "2 tokens but 1 tags" in preview.rows[0].problems[0].message
    assert preview.rows[1].record is not None and preview.rows[1].problems[0].severity == "warning"


def test_one_project_holds_one_kind_of_task(ws, tmp_path) -> None:
    p = create_project(ws, "mixed")
    commit_import(ws, p.id, preview_file(ws, write_jsonl(tmp_path / "a.jsonl", [{"instruction": "a", "output": "b"}]),
                                         project_id=p.id))
    cls = preview_file(ws, write_jsonl(tmp_path / "c.jsonl", [{"text": "t", "label": "x"}]), project_id=p.id)
    with pytest.raises(Exception, match="create a new project"):
        commit_import(ws, p.id, cls)
    # prompt/completion is the same family as Alpaca: it joins.
    pc = preview_file(ws, write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "completion": "r"}]), project_id=p.id)
    assert commit_import(ws, p.id, pc).imported == 1


def test_edit_and_delete_seeds(ws, tmp_path) -> None:
    p = create_project(ws, "edit")
    rows = [{"instruction": "Say hi", "output": "Hello"}, {"instruction": "Say bye", "output": "Bye"}]
    commit_import(ws, p.id, preview_file(ws, write_jsonl(tmp_path / "e.jsonl", rows), project_id=p.id))
    first, second = list_seeds(ws, p.id)
    edited = update_seed(ws, first.id, {"instruction": "Say hi politely", "input": "", "output": "Hello there!"})
    assert edited.data == {"instruction": "Say hi politely", "input": "", "output": "Hello there!"}
    assert edited.meta == first.meta
    with ws.read() as conn:
        key = conn.execute("SELECT content_key FROM seed WHERE id = ?", (first.id,)).fetchone()[0]
    assert key == content_key(SeedFormat.ALPACA, edited.data)
    with pytest.raises(Exception, match="output is empty"):
        update_seed(ws, first.id, {"instruction": "x", "input": "", "output": ""})
    with pytest.raises(Exception, match=f"duplicate of seed #{second.id}"):
        update_seed(ws, first.id, {"instruction": "Say bye", "input": "", "output": "Bye"})
    assert list_seeds(ws, p.id)[0].data == edited.data  # refused edits changed nothing
    assert delete_seeds(ws, p.id, [second.id]) == 1
    assert [s.id for s in list_seeds(ws, p.id)] == [first.id]


def _reference_key(record: dict) -> str:
    """content_key as first written: every string lower-cased and its whitespace collapsed, one by one."""
    import hashlib

    def norm(v):
        if isinstance(v, str):
            return " ".join(v.lower().split())
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {k: norm(x) for k, x in sorted(v.items())}
        return v

    payload = json.dumps(["ner", norm(record)], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(max_size=6)), st.lists(st.text(alphabet="ΣΑΟΔİIiσςẞß\x00\x1f \t\u0085\u00a0ab", max_size=6)))
def test_content_key_of_token_lists_is_unchanged(a: list[str], b: list[str]) -> None:
    # Token lists are normalised in one pass (one lower() for the whole list); the keys must stay those of the
    # per-token normalisation, or seeds imported before would no longer be found as duplicates.
    record = {"tokens": a + b, "tags": ["O"] * len(a + b)}
    assert content_key(SeedFormat.NER, record) == _reference_key(record)
