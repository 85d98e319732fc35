"""Bad uploads: each gets a plain message naming the file, row or column and what to do, and nothing
already in the workspace changes (a snapshot of every table is compared before and after)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from studio.config import load_settings
from studio.data.importer import commit_import, preview_file
from studio.errors import InputFileError, MappingError, NoUsableRowsError, StudioError
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from tests.conftest import EXAMPLE_SEEDS, snapshot


@pytest.fixture
def project(ws: Workspace):
    """A project that already holds seeds, so 'nothing changed' has something to lose."""
    p = create_project(ws, "Existing")
    commit_import(ws, p.id, preview_file(ws, EXAMPLE_SEEDS, project_id=p.id))
    return p


def attempt(ws: Workspace, project_id: int, path: Path) -> StudioError:
    before = snapshot(ws)
    with pytest.raises(StudioError) as info:
        commit_import(ws, project_id, preview_file(ws, path, project_id=project_id))
    assert snapshot(ws) == before, "a failed import must not change the workspace"
    return info.value


def test_empty_file(ws, project, tmp_path) -> None:
    path = tmp_path / "seeds.csv"
    path.write_bytes(b"")
    err = attempt(ws, project.id, path)
    assert isinstance(err, InputFileError)
    assert "seeds.csv is empty" in str(err) and "Upload the file that holds" in str(err)


def test_whitespace_only_file(ws, project, tmp_path) -> None:
    path = tmp_path / "seeds.jsonl"
    path.write_text("\n  \n\n")
    assert "only blank space" in str(attempt(ws, project.id, path))


def test_header_but_no_rows(ws, project, tmp_path) -> None:
    path = tmp_path / "seeds.csv"
    path.write_text("instruction,input,output\n")
    err = attempt(ws, project.id, path)
    assert isinstance(err, NoUsableRowsError) and "header but no data rows" in str(err)


def test_wrong_columns(ws, project, tmp_path) -> None:
    path = tmp_path / "sales.csv"
    pd.DataFrame({"date": ["2024-01-01"], "amount": [12.5]}).to_csv(path, index=False)
    err = attempt(ws, project.id, path)
    assert isinstance(err, MappingError)
    assert "sales.csv" in str(err) and "'date', 'amount'" in str(err) and "Pick a format" in str(err)


def test_missing_required_column(ws, project, tmp_path) -> None:
    path = tmp_path / "half.jsonl"
    path.write_text(json.dumps({"instruction": "Say hi", "input": ""}) + "\n")
    preview = preview_file(ws, path, project_id=project.id).remap("alpaca", {"instruction": "instruction"})
    before = snapshot(ws)
    with pytest.raises(MappingError, match="no column is mapped to 'output'"):
        commit_import(ws, project.id, preview)
    assert snapshot(ws) == before


def test_mapping_to_a_column_that_is_not_there(ws, project, tmp_path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"q": "x", "a": "y"}) + "\n")
    preview = preview_file(ws, path).remap("alpaca", {"instruction": "q", "output": "answer"})
    assert "has no column 'answer'" in preview.mapping_problem


def test_non_utf8_bytes(ws, project, tmp_path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("instruction,output\nSay hi,Hello\nCafé,Crème brûlée\n".encode("latin-1"))
    err = attempt(ws, project.id, path)
    assert isinstance(err, InputFileError)
    assert re.search(r"latin1\.csv is not UTF-8 text: line 3 has the byte 0xe9", str(err))
    assert "Save it as UTF-8" in str(err)


def test_utf16_file(ws, project, tmp_path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("instruction,output\nhi,hello\n".encode("utf-16"))
    assert "saved as UTF-16" in str(attempt(ws, project.id, path))


@pytest.mark.parametrize(("payload", "what"), [
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 200, "ZIP archive (an Excel .xlsx"),
    (b"%PDF-1.7\n" + bytes(range(256)), "PDF document"),
    (bytes(range(256)) * 4, "binary file"),
])
def test_binary_file_renamed_csv(ws, project, tmp_path, payload, what) -> None:
    path = tmp_path / "seeds.csv"
    path.write_bytes(payload)
    err = attempt(ws, project.id, path)
    assert "seeds.csv" in str(err) and what in str(err) and "CSV" in str(err)


def test_parquet_renamed_csv_says_so(ws, project, tmp_path) -> None:
    path = tmp_path / "seeds.csv"
    pd.DataFrame({"instruction": ["a"], "output": ["b"]}).to_parquet(path)
    assert "Parquet file. Rename it to .parquet" in str(attempt(ws, project.id, path))


def test_truncated_jsonl_line(ws, project, tmp_path) -> None:
    path = tmp_path / "cut.jsonl"
    good = [json.dumps({"instruction": f"Task {i}", "output": f"Answer {i}"}) for i in range(5)]
    path.write_text("\n".join(good) + '\n{"instruction": "Task 5", "output": "Ans')
    err = attempt(ws, project.id, path)
    assert "cut.jsonl: line 6 looks cut off" in str(err) and "Fix or delete that line" in str(err)


def test_broken_jsonl_line_in_the_middle(ws, project, tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c" "output": "d"}\n'
                    '{"instruction": "e", "output": "f"}\n')
    assert "bad.jsonl: line 2 is not valid JSON (Expecting ',' delimiter at column" in str(
        attempt(ws, project.id, path))


def test_malformed_json(ws, project, tmp_path) -> None:
    path = tmp_path / "seeds.json"
    path.write_text('[{"instruction": "a", "output": "b"},\n {"instruction": ')
    assert "seeds.json is not valid JSON" in str(attempt(ws, project.id, path))


def test_damaged_parquet(ws, project, tmp_path) -> None:
    path = tmp_path / "seeds.parquet"
    pd.DataFrame({"instruction": ["a"] * 50, "output": ["b"] * 50}).to_parquet(path)
    path.write_bytes(path.read_bytes()[:60])
    assert "damaged or incomplete Parquet file" in str(attempt(ws, project.id, path))


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEED_STUDIO_MAX_UPLOAD_MB", "0.01")
    ws = Workspace(load_settings(tmp_path / "home"))
    p = create_project(ws, "small limit")
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps({"instruction": f"t{i}", "output": "x" * 100}) for i in range(200)))
    err = attempt(ws, p.id, path)
    assert "big.jsonl is" in str(err) and "over the 10.2 KB upload limit" in str(err)
    assert "SEED_STUDIO_MAX_UPLOAD_MB" in str(err)


def test_default_size_limit_is_50_mb(ws) -> None:
    assert ws.settings.max_upload_bytes == 50 * 1024 * 1024


def test_zero_usable_rows(ws, project, tmp_path) -> None:
    path = tmp_path / "blank_answers.csv"
    path.write_text("instruction,output\nSay hi,\nSay bye,   \n")
    err = attempt(ws, project.id, path)
    assert isinstance(err, NoUsableRowsError)
    assert "None of the 2 rows of blank_answers.csv can be used" in str(err)
    assert "row 1 (line 2), column 'output': output is empty" in str(err)


def test_all_rows_already_imported(ws, project) -> None:
    err = attempt(ws, project.id, EXAMPLE_SEEDS)
    assert isinstance(err, NoUsableRowsError) and "duplicates of seeds already here" in str(err)


def test_unsupported_extension(ws, project, tmp_path) -> None:
    path = tmp_path / "seeds.docx"
    path.write_bytes(b"PK\x03\x04")
    err = attempt(ws, project.id, path)
    assert "'.docx' are not supported" in str(err) and "CSV UTF-8" in str(err)


def test_csv_row_with_an_unquoted_comma(ws, project, tmp_path) -> None:
    path = tmp_path / "commas.csv"
    path.write_text("instruction,output\nList fruits,apple, pear\nSay hi,hello\n")
    preview = preview_file(ws, path, project_id=project.id)
    (problem,) = [p for p in preview.problems if p.severity == "error"]
    assert problem.row == 1 and "has 3 values but the header names 2 columns" in problem.message
    assert preview.counts["usable"] == 1  # the good row still imports


def test_duplicate_header_names(ws, project, tmp_path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("instruction,output,output\na,b,c\n")
    assert "names the column 'output' more than once" in str(attempt(ws, project.id, path))


def test_json_that_is_not_a_list_of_objects(ws, project, tmp_path) -> None:
    path = tmp_path / "numbers.json"
    path.write_text("[1, 2, 3]")
    assert "item 1 of the list is a JSON int" in str(attempt(ws, project.id, path))


def test_hub_id_that_does_not_exist(ws, project, tmp_path, monkeypatch) -> None:
    from studio.data.importer import preview_hub
    from tests.hub_server import HubServer, isolate_hf_client

    isolate_hf_client(monkeypatch, tmp_path)
    before = snapshot(ws)
    with HubServer() as hub, pytest.raises(StudioError) as info:
        commit_import(ws, project.id, preview_hub(ws, "nobody/no-such-seeds", project_id=project.id,
                                                  endpoint=hub.url))
    assert "nobody/no-such-seeds" in str(info.value) and "not found" in str(info.value)
    assert snapshot(ws) == before


def test_hub_unreachable_gives_a_clear_message(ws, project, tmp_path, monkeypatch) -> None:
    from studio.data.importer import preview_hub
    from tests.hub_server import isolate_hf_client

    isolate_hf_client(monkeypatch, tmp_path)
    before = snapshot(ws)
    with pytest.raises(StudioError, match="cannot be reached from this machine"):
        preview_hub(ws, "tatsu-lab/alpaca", project_id=project.id, endpoint="http://127.0.0.1:9")
    assert snapshot(ws) == before
