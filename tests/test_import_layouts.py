"""Seed files as people download them: each published layout, read from a fixture that copies its real shape.

The fixtures in tests/fixtures/seed_files/ were written for these tests after reading real public files of each
layout (which ones, and the quirks copied, are in that folder's README.md); none of their content is copied.
Each layout is checked through the core (preview + import) and through the CLI (in this process with typer's
runner; tests/test_cli.py runs the installed command as a subprocess).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from studio.data.formats import SeedFormat
from studio.data.importer import commit_import, preview_file
from studio.data.readers import ReadOptions
from studio.errors import MappingError, StudioError
from studio.workspace.projects import create_project
from studio.workspace.seeds import list_seeds
from tests.conftest import snapshot

FIXTURES = Path(__file__).parent / "fixtures" / "seed_files"


@dataclass(frozen=True)
class Layout:
    file: str
    format: SeedFormat
    rows: int
    usable: int
    confident: bool = True
    mapping: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    """Each listed problem, as the start of 'row N (origin)' it must carry."""
    notes: tuple[str, ...] = ()
    first: dict | None = None
    """The first usable record, exactly."""


LAYOUTS = [
    # 1. NER in column formats
    Layout("conll2003.conll", SeedFormat.NER, 10, 10, mapping={"tokens": "column 1", "tags": "column 4"},
           notes=("10 sentences", "2 documents", "IOB1; entity types LOC, MISC, ORG, PER",
                  "Column 3 also holds tags (IOB1; chunk types")),
    Layout("conll2003.txt", SeedFormat.NER, 10, 10, mapping={"tokens": "column 1", "tags": "column 4"}),
    Layout("wnut17.tsv", SeedFormat.NER, 5, 5, mapping={"tokens": "column 1", "tags": "column 2"},
           notes=("IOB2; entity types corporation, creative-work, group, location, person, product",)),
    Layout("germeval2014.tsv", SeedFormat.NER, 5, 5, mapping={"tokens": "column 2", "tags": "column 3"},
           notes=("5 comment lines skipped", "IOB2; entity types LOC, LOCderiv, ORG, OTH, PER, PERpart",
                  "Column 4 also holds tags")),
    Layout("conll_broken.conll", SeedFormat.NER, 3, 2, mapping={"tokens": "column 1", "tags": "column 4"},
           problems=("row 2 (line 9)",)),
    # 2. NER as spans
    Layout("spacy_spans.jsonl", SeedFormat.NER, 6, 5, problems=("row 5 (line 5)",),
           notes=("entity types: DATE, GPE, ORG, PERSON",)),
    Layout("doccano.jsonl", SeedFormat.NER, 5, 5, notes=("entity types: LOC, ORG, PER",)),
    Layout("doccano_classic.jsonl", SeedFormat.NER, 5, 5),
    Layout("label_studio.json", SeedFormat.NER, 4, 2, problems=("row 3 (task 43", "row 4 (task 44"),
           notes=("Task 42 has several annotations",)),
    Layout("spans.parquet", SeedFormat.NER, 4, 4),
    # 3. Chat trees and chat in cells
    Layout("oasst_trees.jsonl", SeedFormat.MESSAGES, 4, 3, problems=("row 2 (line 2)",),
           notes=("4 message trees", "1 prompt has no reply", "1 deleted message was left out")),
    Layout("oasst_messages.parquet", SeedFormat.MESSAGES, 4, 3, problems=("row 2 (row 10, message 2b0f516b)",),
           notes=("1 prompt has no reply",)),
    Layout("chat_cells_json.csv", SeedFormat.MESSAGES, 4, 4),
    Layout("chat_cells_python.csv", SeedFormat.MESSAGES, 4, 4),
    Layout("chat_cells_numpy.csv", SeedFormat.MESSAGES, 4, 4),
    # 4. Instruction sets as published
    Layout("dolly.jsonl", SeedFormat.ALPACA, 7, 7,
           mapping={"instruction": "instruction", "input": "context", "output": "response"}),
    Layout("self_instruct_seed_tasks.jsonl", SeedFormat.ALPACA, 8, 8, notes=("5 tasks with 8 instances",)),
    Layout("squad_like_qa.json", SeedFormat.ALPACA, 7, 6,
           mapping={"instruction": "question", "input": "context", "output": "answer"},
           problems=("row 3 (item 1, paragraph 1, question 6a1f00c2e1b0d4a7f9c30003)",)),
    Layout("qa_pairs.csv", SeedFormat.PROMPT_COMPLETION, 5, 5, mapping={"prompt": "question", "completion": "answer"}),
    Layout("text2sql.jsonl", SeedFormat.ALPACA, 5, 5,
           mapping={"instruction": "question", "input": "context", "output": "answer"}),
    Layout("alpaca_extra.json", SeedFormat.ALPACA, 5, 5,
           mapping={"instruction": "instruction", "input": "input", "output": "output"}),
    # 5. Classification as published
    Layout("sst2.tsv", SeedFormat.CLASSIFICATION, 8, 8, mapping={"text": "sentence", "label": "label"},
           notes=("The labels are numbers (0, 1)",)),
    Layout("reviews_label_first.csv", SeedFormat.CLASSIFICATION, 6, 6, mapping={"text": "review", "label": "label"},
           notes=("2 labels: neg, pos",)),
    Layout("imdb_like.parquet", SeedFormat.CLASSIFICATION, 6, 6, notes=("2 labels: neg, pos",)),
    Layout("tweet_eval_like.csv", SeedFormat.CLASSIFICATION, 6, 6, notes=("The labels are numbers (0, 1, 2)",)),
    Layout("ag_news_noheader.csv", SeedFormat.CLASSIFICATION, 6, 6, confident=False,
           mapping={"text": "column 3", "label": "column 1"},
           notes=("The first row holds data", "The labels are numbers (1, 2, 3, 4)")),
    # 6. Spreadsheets
    Layout("seeds.xlsx", SeedFormat.ALPACA, 5, 5),
    Layout("seeds_two_sheets.xlsx", SeedFormat.ALPACA, 4, 4, notes=("Sheet 'Seeds' of 2 (Notes, Seeds)",)),
    Layout("semicolon.csv", SeedFormat.ALPACA, 3, 3),
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.file)
def test_layout_previews_and_imports(ws, layout: Layout) -> None:
    project = create_project(ws, layout.file)
    before = snapshot(ws)
    preview = preview_file(ws, FIXTURES / layout.file, project_id=project.id)
    assert snapshot(ws) == before, "a preview writes nothing"
    assert not preview.mapping_problem, preview.mapping_problem
    assert preview.format == layout.format
    assert preview.detection.needs_mapping is not layout.confident, preview.detection.message
    assert preview.counts["rows"] == layout.rows and preview.counts["usable"] == layout.usable, preview.summary()
    if layout.mapping:
        assert preview.mapping == layout.mapping
    listed = [str(p) for p in preview.problems if p.severity == "error"]
    assert len(listed) == len(layout.problems), listed
    for expected, got in zip(layout.problems, listed, strict=True):
        assert got.startswith(expected), (expected, got)
    for note in layout.notes:
        assert any(note in n for n in [*preview.notes, preview.detection.message]), (note, preview.notes)
    result = commit_import(ws, project.id, preview)
    assert result.imported == layout.usable and result.skipped == layout.rows - layout.usable
    assert len(list_seeds(ws, project.id)) == layout.usable


def records(ws, name: str, file: str, **kwargs) -> list[dict]:
    project = create_project(ws, name)
    preview = preview_file(ws, FIXTURES / file, project_id=project.id, **kwargs)
    commit_import(ws, project.id, preview)
    return [s.data | {"_meta": s.meta} for s in list_seeds(ws, project.id)]


def entities(record: dict) -> list[tuple[str, str]]:
    """(text, type) of each entity in an IOB1/IOB2 record, as a reader of the tags sees it."""
    from studio.augment.entity_swap import find_spans

    return [(" ".join(record["tokens"][s.start:s.end]), s.kind) for s in find_spans(record["tags"])]


def test_conll2003_sentences_tokens_and_iob1_entities(ws) -> None:
    seeds = records(ws, "conll", "conll2003.conll")
    assert seeds[0]["tokens"][:3] == ["SAILING", "-", "VANTERRA"]
    # IOB1 as published: Halden then Fjordmark are two entities (B- marks the second), kept as written.
    by_text = {" ".join(s["tokens"]): s for s in seeds}
    halden = next(s for t, s in by_text.items() if "Fjordmark" in t)
    assert ("Halden", "LOC") in entities(halden) and ("Fjordmark", "LOC") in entities(halden)
    assert sum(len(entities(s)) for s in seeds) == 19
    assert all(len(s["tokens"]) == len(s["tags"]) for s in seeds)
    assert any('"' in s["tokens"] for s in seeds), "the quote token is a token, not CSV quoting"


def test_wnut_emoji_tokens_and_both_kinds_of_blank_line(ws) -> None:
    seeds = records(ws, "wnut", "wnut17.tsv")
    assert sum(len(entities(s)) for s in seeds) == 8
    tokens = [t for s in seeds for t in s["tokens"]]
    assert "🔥" in tokens and "😒" in tokens
    assert ("The Salt Kingdom", "creative-work") in [e for s in seeds for e in entities(s)]


def test_germeval_outer_column_by_default_nested_on_request(ws) -> None:
    outer = records(ws, "germeval", "germeval2014.tsv")
    assert sum(len(entities(s)) for s in outer) == 12
    assert "#" in [t for s in outer for t in s["tokens"]], "a '#' token is data, not a comment"
    nested = records(ws, "germeval nested", "germeval2014.tsv", fmt="ner",
                     mapping={"tokens": "column 2", "tags": "column 4"})
    assert [e for s in nested for e in entities(s)] == [("Lindenau", "LOC"), ("Halden", "LOC"), ("Harrow", "LOC"),
                                                       ("Olsen", "PER")]


def test_spans_become_tokens_and_tags_exactly(ws) -> None:
    spacy = records(ws, "spacy", "spacy_spans.jsonl")
    first = spacy[0]
    assert entities(first) == [("Mara Lindqvist", "PERSON"), ("Zürich", "GPE"), ("Porto", "GPE"), ("2019", "DATE")]
    assert first["_meta"]["text"].startswith("Mara Lindqvist")
    assert spacy[-1]["tokens"][0] == "Dr.", "spaCy's own tokens are used when the file has them"
    doccano = records(ws, "doccano", "doccano.jsonl")
    classic = records(ws, "doccano classic", "doccano_classic.jsonl")
    assert [entities(r) for r in doccano] == [entities(r) for r in classic]
    assert entities(doccano[4]) == [("Kraków", "LOC"), ("Zofia Wrona", "PER"), ("Tarnów", "LOC"),
                                    ("Ostrava Steel", "ORG")]
    parquet = records(ws, "parquet spans", "spans.parquet")
    assert entities(parquet[0]) == [("Ines Calder", "PER"), ("Kelby", "LOC"), ("Strand Isle", "LOC")]
    assert entities(parquet[2]) == [], "a row with no entities is a valid row, all O"
    studio = records(ws, "label studio", "label_studio.json")
    assert entities(studio[1]) == [("Brightwater Energy", "ORG"), ("Loch Ardin", "LOC")], "first annotation"


def test_openassistant_best_path_and_all_paths(ws) -> None:
    best = records(ws, "oasst best", "oasst_trees.jsonl")
    assert [len(s["messages"]) for s in best] == [4, 2, 2]
    assert [m["role"] for m in best[0]["messages"]] == ["user", "assistant", "user", "assistant"]
    flat = records(ws, "oasst flat", "oasst_messages.parquet")
    assert [s["messages"] for s in flat] == [s["messages"] for s in best], "the flat table is the same trees"
    every = records(ws, "oasst all", "oasst_trees.jsonl", options=ReadOptions(chat_paths="all"))
    # Tree A: 5 leaves; tree C: the rank-0 answer (its follow-up question has no reply) and the rank-1 answer;
    # tree D: 2 (the deleted reply is left out).
    assert len(every) == 9
    assert all(s["messages"][-1]["role"] == "assistant" for s in every)
    assert not any("deleted" in m["content"].lower() for s in every for m in s["messages"])


def test_chat_cells_json_python_and_numpy_reprs_agree(ws) -> None:
    got = [[s["messages"] for s in records(ws, name, name)]
           for name in ("chat_cells_json.csv", "chat_cells_python.csv", "chat_cells_numpy.csv")]
    assert got[0] == got[1] == got[2]
    assert sum(len(m) for m in got[0]) == 11 and "system" in {m["role"] for conv in got[0] for m in conv}


def test_instruction_sets_keep_their_extra_columns(ws) -> None:
    dolly = records(ws, "dolly", "dolly.jsonl")
    assert dolly[0]["_meta"]["category"] == "closed_qa" and dolly[1]["input"] == ""
    tasks = records(ws, "self-instruct", "self_instruct_seed_tasks.jsonl")
    names = [s["_meta"]["name"] for s in tasks]
    assert len(tasks) == 8 and len(set(names)) == 5 and names.count(names[2]) >= 2
    alpaca = records(ws, "alpaca", "alpaca_extra.json")
    assert "text" in alpaca[0]["_meta"] and alpaca[3]["_meta"].get("category")


def test_classification_labels_from_metadata_and_from_the_user(ws) -> None:
    imdb = records(ws, "imdb", "imdb_like.parquet")
    assert [s["label"] for s in imdb].count("pos") == 3 and {s["label"] for s in imdb} == {"neg", "pos"}
    sst = records(ws, "sst2", "sst2.tsv", label_names={0: "negative", 1: "positive"})
    assert {s["label"] for s in sst} == {"negative", "positive"} and not sst[0]["text"].endswith(" ")
    ag = records(ws, "ag news", "ag_news_noheader.csv", fmt="classification",
                 mapping={"text": "column 3", "label": "column 1"},
                 label_names={1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"})
    assert [s["label"] for s in ag] == ["Business", "Sports", "Sci/Tech", "World", "Business", "Sci/Tech"]
    assert ag[0]["_meta"]["column 2"], "the title is kept"


def test_header_choice_can_be_overridden(ws) -> None:
    project = create_project(ws, "header")
    preview = preview_file(ws, FIXTURES / "ag_news_noheader.csv", project_id=project.id,
                           options=ReadOptions(header=True))
    assert preview.counts["rows"] == 5 and preview.table.has_header


def test_sheet_picker(ws) -> None:
    project = create_project(ws, "sheets")
    preview = preview_file(ws, FIXTURES / "seeds_two_sheets.xlsx", project_id=project.id)
    assert preview.table.sheets == ["Notes", "Seeds"] and preview.table.sheet == "Seeds"
    notes = preview_file(ws, FIXTURES / "seeds_two_sheets.xlsx", project_id=project.id,
                         options=ReadOptions(sheet="Notes"))
    assert notes.table.sheet == "Notes" and notes.format is None and notes.mapping_problem
    with pytest.raises(StudioError, match=r"has no sheet called 'Summary'\. Its sheets are 'Notes', 'Seeds'"):
        preview_file(ws, FIXTURES / "seeds_two_sheets.xlsx", options=ReadOptions(sheet="Summary"))
    seeds = records(ws, "one sheet", "seeds.xlsx")
    assert seeds[3]["output"] == "68" and "\n" in seeds[2]["output"], "a number cell is text; line breaks kept"


def test_semicolon_csv_with_bom_crlf_and_long_quoted_cells(ws) -> None:
    seeds = records(ws, "semicolon", "semicolon.csv")
    assert len(seeds) == 3 and max(len(s["instruction"]) + len(s["output"]) for s in seeds) > 500
    assert all("\r" not in s["output"] for s in seeds)
    assert any(";" in s["output"] and '"' in s["output"] and "\n" in s["output"] for s in seeds)


# ------------------------------------------------------------------------------------------- bad input


def test_label_id_with_no_name_is_a_row_problem(ws) -> None:
    project = create_project(ws, "ids")
    preview = preview_file(ws, FIXTURES / "label_id_no_name.csv", project_id=project.id,
                           label_names={0: "negative", 1: "positive"})
    errors = [str(p) for p in preview.problems]
    assert errors == [f"row {r} (line {r + 1}), column 'label': label id 2 has no name (the names are 0 = negative, "
                      "1 = positive); add its name or fix the id" for r in (3, 6)]
    assert commit_import(ws, project.id, preview).imported == 4


def test_wrong_tag_column_is_refused_before_any_row(ws) -> None:
    project = create_project(ws, "wrong column")
    before = snapshot(ws)
    preview = preview_file(ws, FIXTURES / "conll2003.conll", project_id=project.id, fmt="ner",
                           mapping={"tokens": "column 1", "tags": "column 2"})
    assert "The column 'column 2' does not hold entity tags" in preview.mapping_problem
    assert "column 3 does" in preview.mapping_problem or "column 4 does" in preview.mapping_problem
    with pytest.raises(MappingError):
        commit_import(ws, project.id, preview)
    assert snapshot(ws) == before


def test_label_column_holding_texts_is_refused(ws, tmp_path) -> None:
    path = tmp_path / "swapped.csv"
    path.write_text("text,label\n" + "".join(f'"Review number {i} says the parcel came on time, intact and dry, '
                                             'as promised.",pos\n' for i in range(6)))
    project = create_project(ws, "swapped")
    preview = preview_file(ws, path, project_id=project.id, fmt="classification",
                           mapping={"text": "label", "label": "text"})
    assert "holds a different long text in every row, not labels" in preview.mapping_problem


def test_span_off_token_boundaries_and_overlaps_name_the_span(ws, tmp_path) -> None:
    path = tmp_path / "spans.jsonl"
    rows = [{"text": "Ada lives in Paris.", "entities": [{"start": 13, "end": 16, "label": "LOC"}]},
            {"text": "Ada lives in Paris.", "entities": [{"start": 0, "end": 3, "label": "PER"},
                                                     {"start": 0, "end": 9, "label": "PER"}]},
            {"text": "Ada lives in Paris.", "entities": [{"start": 13, "end": 40, "label": "LOC"}]},
            {"text": "Ada lives in Paris.", "entities": [{"start": "x", "end": 3, "label": "PER"}]}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    project = create_project(ws, "spans")
    preview = preview_file(ws, path, project_id=project.id)
    msgs = [str(p) for p in preview.problems]
    assert msgs[0].startswith("row 1 (line 1): the entity LOC 'Par' at 13-16 ends inside a word")
    assert "overlaps another entity" in msgs[1]
    assert "lies outside the text (19 characters)" in msgs[2]
    assert "an entity offset is 'x', not a whole number" in msgs[3]
    with pytest.raises(StudioError, match="None of the 4 rows"):
        commit_import(ws, project.id, preview)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("notes.txt", "Dear team,\nhere are my seeds.\n\nThanks!\n", "is not a CoNLL-style column file"),
    ("old.xls", "\xd0\xcf\x11\xe0", r"is an old Excel workbook \(\.xls\)"),
    ("broken.xlsx", "PK\x03\x04 not really a workbook", "is a damaged or incomplete Excel workbook"),
    ("plain.xlsx", "instruction,output\n", "is not an Excel workbook"),
    ("seeds.arrow", "not arrow at all", "is not a readable Arrow file"),
    ("comments.conll", "# only\n# comments\n", "is not a CoNLL-style column file"),
])
def test_unreadable_files_say_what_was_expected(ws, tmp_path, name, content, message) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    project = create_project(ws, name)
    before = snapshot(ws)
    with pytest.raises(StudioError, match=message):
        preview_file(ws, path, project_id=project.id)
    assert snapshot(ws) == before


# ------------------------------------------------------------------------------------------- the CLI


def cli(home: Path, *args: str) -> tuple[int, str, str]:
    from typer.testing import CliRunner

    from studio.cli import app

    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    if isinstance(result.exception, StudioError):  # studio.cli.main() prints these and exits 2
        return 2, result.stdout, str(result.exception)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.file)
def test_layout_on_the_command_line(tmp_path, layout: Layout) -> None:
    home = tmp_path / "home"
    assert cli(home, "project", "create", "Layouts")[0] == 0
    code, out, err = cli(home, "seeds", "import", str(FIXTURES / layout.file), "--dry-run")
    if not layout.confident:
        # A guess: the command says so and prints the command that confirms it; nothing is imported.
        assert code == 2 and "Confirm it by running" in err, (out, err)
        confirm = shlex.split(err.split("Confirm it by running:\n", 1)[1].strip())
        assert confirm[:3] == ["seed-studio", "seeds", "import"]
        code, out, err = cli(home, *confirm[1:], "--dry-run")
    assert code == 0, (out, err)
    assert f"{layout.rows} rows read as" in out and f"{layout.usable} ready to import" in out
    assert "Dry run: nothing imported" in out
    code, out, err = cli(home, "seeds", "list", "--json")
    assert json.loads(out) == []


def test_cli_options_for_sheets_paths_and_label_names(tmp_path) -> None:
    home = tmp_path / "home"
    cli(home, "project", "create", "Chat")
    code, out, err = cli(home, "seeds", "import", str(FIXTURES / "oasst_trees.jsonl"), "--all-paths")
    assert code == 0 and "Imported 9 seeds" in out, (out, err)
    assert "every path of each tree" in out and "row 6 (line 2): the prompt has no reply" in out
    cli(home, "project", "create", "Sheets")
    code, out, err = cli(home, "seeds", "import", str(FIXTURES / "seeds_two_sheets.xlsx"), "--sheet", "Notes")
    assert code == 2 and "do not match a seed format" in err
    cli(home, "project", "create", "Tweets")
    code, out, err = cli(home, "seeds", "import", str(FIXTURES / "tweet_eval_like.csv"),
                         "--label-names", "negative,neutral,positive")
    assert code == 0 and "Imported 6 seeds" in out and "3 labels: negative, neutral, positive" in out
    code, out, err = cli(home, "seeds", "import", str(FIXTURES / "label_id_no_name.csv"), "--label-names", "0=a,x")
    assert code == 2 and "not both" in err


def test_column_file_lines_that_cancel_out_are_still_caught(ws, tmp_path) -> None:
    # One line a field short and the next a field long: the whole block still has 4 fields a line on average,
    # which a block-at-once reader could take for good rows. Double spaces go the line-by-line way and read fine.
    path = tmp_path / "shifted.conll"
    path.write_text("Ada NNP I-NP I-PER\nlives VBZ I-VP\nin IN I-PP O extra\nParis NNP I-NP I-LOC\n\n"
                    "Bob  NNP  I-NP  I-PER\nsleeps VBZ I-VP O\nat IN I-PP O\nnoon NN I-NP O\n")
    project = create_project(ws, "shifted")
    preview = preview_file(ws, path, project_id=project.id)
    assert [str(p) for p in preview.problems] == [
        "row 1 (line 1): line 2 has 3 fields, the file's lines have 4 (a missing space or an extra one?)"]
    (good,) = [r.record for r in preview.rows if r.record]
    assert good == {"tokens": ["Bob", "sleeps", "at", "noon"], "tags": ["I-PER", "O", "O", "O"]}
