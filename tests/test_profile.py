"""Data profile of a batch and of a dataset version: exact counts, uniqueness, lengths, plan coverage and
novelty on crafted rows in a real workspace, the card's section, the CLI's JSON and the Review tab's plots.

The rows are built so every number can be worked out by hand: synthetic rows either copy a seed word for
word (ROUGE-L 1) or share no word with any seed (ROUGE-L 0). No model weights: novelty by meaning uses a
tiny deterministic bag-of-words embedding.
"""

from __future__ import annotations

import html
import itertools
import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from studio.config import load_settings
from studio.data.card import dataset_card
from studio.errors import QualityError
from studio.quality import profile as prof
from studio.quality.diversity import words
from studio.workspace import Workspace, utc_now
from studio.workspace.seeds import list_seeds
from tests.factories import add_batch, project_with_seeds

SEEDS = [
    {"instruction": "Describe the water cycle.", "input": "",
     "output": "Water evaporates, condenses into clouds and falls as rain."},
    {"instruction": "Translate hello into French.", "input": "", "output": "Bonjour."},
    {"instruction": "Summarise the text.", "input": "Cats sleep many hours daily.", "output": "Cats sleep much."},
]
# r0 copies seed 2; the others share no word with any seed. r4 fails to parse, r5 is marked partial.
ROWS = [
    SEEDS[1],
    {"instruction": "Name a fruit.", "input": "", "output": "Mango."},
    {"instruction": "name a fruit", "input": "", "output": "Kiwi is green."},
    {"instruction": "Pick a sport for kids.", "input": "Age nine.", "output": "Swimming builds strength."},
    None,
    {"instruction": "Plan a picnic menu.", "input": "", "output": "Sandwiches, grapes, lemonade."},
]
PLAN = {"topics": [{"value": "fruit", "weight": 2}, {"value": "sport", "weight": 1}, {"value": "space", "weight": 1}],
        "attributes": {"persona": [{"value": "child", "weight": 3}, {"value": "expert", "weight": 1}]}}
SAMPLED = [{"topic": "fruit", "persona": "child"}, {"topic": "fruit", "persona": "child"},
           {"topic": "fruit", "persona": "expert"}, {"topic": "sport"}, {"topic": "space", "persona": "child"},
           {"topic": "cooking", "persona": "child"}]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # A models folder of our own: a shared one (SEED_STUDIO_MODELS_DIR) may hold the real chat tokenizer.
    monkeypatch.delenv("SEED_STUDIO_MODELS_DIR", raising=False)
    return tmp_path / "home"


@pytest.fixture
def wsp(home: Path) -> Workspace:
    return Workspace(load_settings(home))


def _project(ws: Workspace, tmp_path: Path) -> int:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    return project_with_seeds(ws, path, name="profile")


def _plan(ws: Workspace, batch_id: int, plan: dict, version: int) -> None:
    with ws.write() as conn:
        params = json.loads(conn.execute("SELECT params FROM batch WHERE id=?", (batch_id,)).fetchone()[0])
        conn.execute("UPDATE batch SET params=? WHERE id=?",
                     (json.dumps({**params, "plan": plan, "plan_version": version}), batch_id))


def _planned_batch(ws: Workspace, pid: int) -> tuple[int, list[int]]:
    batch_id = add_batch(ws, pid, ROWS, metas=[{"style": "short", "plan": s} for s in SAMPLED])
    _plan(ws, batch_id, PLAN, 2)
    with ws.write() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM candidate WHERE batch_id=? ORDER BY unit_idx", (batch_id,))]
        conn.execute("UPDATE candidate SET parse_status='partial' WHERE id=?", (ids[5],))
        now = utc_now()
        for cid, name, passed in ((ids[0], "parse", 1), (ids[0], "seed_overlap", 0), (ids[1], "parse", 1)):
            conn.execute("INSERT INTO filter_result(candidate_id, filter, passed, created_at) VALUES (?, ?, ?, ?)",
                         (cid, name, passed, now))
        conn.execute("INSERT INTO selection(batch_id, candidate_id, data, created_at) VALUES (?, ?, ?, ?)",
                     (batch_id, ids[1], json.dumps(ROWS[1]), now))
    return batch_id, ids


def tiny_embed(texts: list[str]) -> np.ndarray:
    """Hashed bag of words, unit length: identical texts have cosine 1."""
    out = np.zeros((len(texts), 4096), dtype=np.float32)
    for i, text in enumerate(texts):
        for w in words(text):
            out[i, zlib.crc32(w.encode()) % 4096] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_batch_profile_counts_by_hand(wsp: Workspace, tmp_path: Path) -> None:
    pid = _project(wsp, tmp_path)
    batch_id, _ = _planned_batch(wsp, pid)
    p = prof.batch_profile(wsp, batch_id)

    assert (p.kind, p.name, p.project_id, p.rows, p.usable_rows) == ("batch", f"batch #{batch_id}", pid, 6, 5)
    assert p.by_strategy == {"instruction-expansion": 6}
    assert p.by_status == {"ok": 4, "failed": 1, "partial": 1}
    assert p.by_outcome == {"passed filters": 1, "marked by a filter": 1, "not filtered": 4, "selected": 1}
    assert p.by_format == {"alpaca": 5} and p.by_source == {} and p.by_split == {}

    assert [f.name for f in p.fields] == ["instruction", "input", "output"]
    instruction, given, output = p.fields
    # "Name a fruit." and "name a fruit" are the same instruction once normalised: 4 distinct of 5.
    assert (instruction.rows, instruction.empty, instruction.unique, instruction.unique_share) == (5, 0, 4, 0.8)
    assert instruction.words == {"min": 3, "median": 4, "p90": 5, "max": 5, "mean": 3.8}
    # Regex tokens: words plus punctuation marks ("Pick a sport for kids." is 6).
    assert p.tokenizer == prof.REGEX_TOKENIZER
    assert instruction.tokens == {"min": 3, "median": 5, "p90": 6, "max": 6, "mean": 4.6}
    assert instruction.histogram == {"unit": "words", "lo": 0, "hi": 20,
                                     "counts": [0, 0, 0, 2, 2, 1] + [0] * 14}
    assert (given.rows, given.empty, given.unique, given.unique_share, given.words["median"]) == (5, 4, 1, 1.0, 2)
    assert (output.unique, output.unique_share) == (5, 1.0)

    cov = p.coverage
    assert cov["planned"] and cov["note"] == "" and cov["plan_versions"] == [2]
    assert (cov["rows"], cov["unplanned_rows"]) == (5, 0)
    topic, persona = cov["dimensions"]
    assert topic["name"] == "topic" and topic["rows"] == 5 and (topic["covered"], topic["planned"]) == (2, 3)
    # The failed row drew "space": it is not usable, so space was never hit.
    assert topic["values"] == [
        {"value": "fruit", "weight": 2.0, "expected_share": 0.5, "count": 3, "share": 0.6},
        {"value": "sport", "weight": 1.0, "expected_share": 0.25, "count": 1, "share": 0.2},
        {"value": "space", "weight": 1.0, "expected_share": 0.25, "count": 0, "share": 0.0}]
    assert topic["never_hit"] == ["space"]
    assert topic["off_plan"] == [{"value": "cooking", "count": 1, "share": 0.2}]
    assert [(v["value"], v["expected_share"], v["count"]) for v in persona["values"]] == [
        ("child", 0.75, 3), ("expert", 0.25, 1)]
    assert persona["never_hit"] == [] and persona["off_plan"] == [
        {"value": prof.NOT_RECORDED, "count": 1, "share": 0.2}]

    # r0 copies a seed (ROUGE-L 1), the other four share no word with any seed (0).
    lex = p.novelty["lexical"]
    assert (p.novelty["rows"], p.novelty["seeds"], p.novelty["semantic"]) == (5, 3, None)
    assert (lex["mean"], lex["median"], lex["close_rows"], lex["share_close"]) == (0.2, 0.0, 1, 0.2)
    assert lex["histogram"]["counts"] == [4] + [0] * 8 + [1]

    data = json.loads(json.dumps(p.to_dict()))
    assert data["fields"][0]["unique_share"] == 0.8 and data["coverage"]["dimensions"][0]["never_hit"] == ["space"]
    lines = prof.summary_lines(p)
    assert lines[0] == "5 of 6 rows are usable (ok 4, failed 1, partial 1)."
    assert "instruction: 80% unique; median 4 words, 90% of rows at most 5." in lines
    assert any(line.startswith("topic: 2 of 3 planned values") and "never: space" in line for line in lines)
    assert any("20% of rows are at 0.7 or above" in line for line in lines)


def test_novelty_by_meaning_samples_rows(wsp: Workspace, tmp_path: Path) -> None:
    pid = _project(wsp, tmp_path)
    batch_id, _ = _planned_batch(wsp, pid)
    sem = prof.batch_profile(wsp, batch_id, embed=tiny_embed, count_tokens=False).novelty["semantic"]
    assert sem["embedded_rows"] == 5 and sem["close_rows"] == 1 and sem["threshold"] == prof.SEED_COSINE_THRESHOLD
    assert sem["histogram"]["counts"][-1] == 1 and sum(sem["histogram"]["counts"]) == 5

    calls: list[int] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return tiny_embed(texts)

    sampled = prof.batch_profile(wsp, batch_id, embed=counting, count_tokens=False, embed_sample=2)
    assert calls == [3 + 2] and sampled.novelty["semantic"]["embedded_rows"] == 2
    assert sampled.tokenizer == "" and sampled.fields[0].tokens is None
    assert sampled.novelty["lexical"]["close_rows"] == 1  # the lexical part always reads every row


def test_batch_without_plan_or_rows(wsp: Workspace, tmp_path: Path) -> None:
    pid = _project(wsp, tmp_path)
    plain = prof.batch_profile(wsp, add_batch(wsp, pid, [ROWS[1], ROWS[3]]))
    assert plain.coverage["planned"] is False and plain.coverage["dimensions"] == []
    assert plain.coverage["note"].startswith("no plan")
    assert prof.coverage_lines(plain.coverage)[0].startswith("no plan")
    assert plain.by_outcome["not filtered"] == 2 and plain.novelty["lexical"]["close_rows"] == 0

    empty = prof.batch_profile(wsp, add_batch(wsp, pid, [None]))
    assert (empty.rows, empty.usable_rows, empty.fields, empty.by_status) == (1, 0, [], {"failed": 1})
    assert empty.novelty["note"] == "no synthetic rows"
    assert prof.summary_lines(empty)[-1] == "Novelty: no synthetic rows."
    with pytest.raises(QualityError, match="no batch 999"):
        prof.batch_profile(wsp, 999)


def test_plan_parsing_is_tolerant() -> None:
    dims = prof.plan_dimensions({"topics": [{"value": "a"}, {"value": "b", "weight": "x"}, {"value": "a", "weight": 2},
                                            {"value": "c", "weight": -1}, "d", {"weight": 1}],
                                 "attributes": {"tone": [{"value": 1, "weight": 0}], "topic": [{"value": "z"}],
                                                "empty": []}})
    # Missing or unreadable weights count 1, negative 0; a repeated value adds up; bare strings are values.
    assert dims == {"topic": [("a", 3.0), ("b", 1.0), ("c", 0.0), ("d", 1.0)], "tone": [("1", 0.0)]}
    assert prof.plan_dimensions(None) == {} and prof.plan_dimensions({"topics": "not a list"}) == {}
    rows = [prof.ProfileRow("alpaca", ROWS[1], "few-shot", plan={"attributes": {"tone": [{"value": "x", "weight": 0}]}},
                            sampled={"tone": "x"})]
    tone = prof.plan_coverage(rows)["dimensions"][0]
    assert tone["values"][0]["expected_share"] == 1.0  # all weights zero: equal shares


def test_fields_of_every_format() -> None:
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                         {"role": "assistant", "content": "Bye."}]}
    assert prof.field_values("messages", chat) == {"system": "Be brief.", "user": "Hi\nBye",
                                                   "assistant": "Hello!\nBye."}
    assert prof.field_values("ner", {"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}) == {"tokens": "Ann ran",
                                                                                          "tags": "B-PER O"}
    fields = prof.profile_fields([("classification", {"text": "good", "label": "pos"}),
                                  ("classification", {"text": "bad", "label": "neg"}),
                                  ("classification", {"text": "fine", "label": "pos"})], prof.regex_token_counts)
    label = fields[1]
    assert (label.name, label.unique, label.top_values) == ("label", 2, [["pos", 2], ["neg", 1]])


def test_tokenizer_file_in_the_models_folder_is_used(wsp: Workspace) -> None:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    from studio.models.embedded import MARKER_NAME, converted_chat_dir

    assert prof.token_counter(wsp)[1] == prof.REGEX_TOKENIZER
    folder = converted_chat_dir(wsp.models_dir)
    folder.mkdir(parents=True)
    tok = Tokenizer(WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    tok.save(str(folder / "tokenizer.json"))
    assert prof.token_counter(wsp)[1] == prof.REGEX_TOKENIZER  # no marker yet: an unfinished conversion
    (folder / MARKER_NAME).write_text("{}")
    counts, label = prof.token_counter(wsp)
    assert label == prof.CHAT_TOKENIZER and counts(["hello world, again", ""]) == [4, 0]


def _version(ws: Workspace, pid: int, rows: list[tuple[str, str, int | None, dict]]) -> int:
    """A frozen version written as freeze writes one: (split, origin, source id, alpaca data)."""
    with ws.write() as conn:
        vid = conn.execute("INSERT INTO dataset_version(project_id, name, splits, created_at) VALUES (?, 'v1', ?, ?)",
                           (pid, json.dumps({"train": 7, "validation": 1}), utc_now())).lastrowid
        for pos, (split, origin, source, data) in enumerate(rows):
            conn.execute("INSERT INTO dataset_row(version_id, split, position, origin, source_id, format, data) "
                         "VALUES (?, ?, ?, ?, ?, 'alpaca', ?)", (vid, split, pos, origin, source, json.dumps(data)))
    return vid


def _two_plans(ws: Workspace, tmp_path: Path) -> tuple[int, int, list[int], int, int]:
    """Batch A (PLAN, v2), batch B (another plan, v3) whose row copies seed 1, batch C (no plan), and a version
    holding the 3 seeds, A's rows 1 and 3, B's row, C's row and one general row."""
    pid = _project(ws, tmp_path)
    a, ids = _planned_batch(ws, pid)
    b = add_batch(ws, pid, [SEEDS[0]], strategy="few-shot", metas=[{"plan": {"topic": "space"}}])
    _plan(ws, b, {"topics": [{"value": "fruit", "weight": 1}, {"value": "space", "weight": 1}]}, 3)
    c = add_batch(ws, pid, [{"instruction": "Fold a paper crane.", "input": "", "output": "Crease it."}])
    with ws.read() as conn:
        b_id, c_id = (conn.execute("SELECT id FROM candidate WHERE batch_id=?", (x,)).fetchone()[0] for x in (b, c))
    seeds = list_seeds(ws, pid)
    vid = _version(ws, pid, [
        ("train", "seed", seeds[0].id, seeds[0].data), ("train", "seed", seeds[1].id, seeds[1].data),
        ("validation", "seed", seeds[2].id, seeds[2].data),
        ("train", "synthetic", ids[1], ROWS[1]), ("train", "synthetic", ids[3], ROWS[3]),
        ("train", "synthetic", b_id, SEEDS[0]), ("train", "synthetic", c_id, {"instruction": "Fold a paper crane.",
                                                                             "input": "", "output": "Crease it."}),
        ("train", "general", 1, {"instruction": "Say hi.", "input": "", "output": "Hi."})])
    return pid, vid, ids, a, b


def test_version_profile_and_card(wsp: Workspace, tmp_path: Path) -> None:
    _, vid, _, a, b = _two_plans(wsp, tmp_path)
    c = b + 1
    p = prof.version_profile(wsp, vid)
    assert (p.kind, p.name, p.rows, p.usable_rows, p.by_status) == ("version", "v1", 8, 8, {})
    assert p.by_source == {"seed": 3, f"batch #{a} (instruction-expansion)": 2, f"batch #{b} (few-shot)": 1,
                           f"batch #{c} (instruction-expansion)": 1, "general": 1}
    assert p.by_split == {"train": 7, "validation": 1}
    assert p.by_strategy == {"seed": 3, "instruction-expansion": 3, "few-shot": 1, "general": 1}

    cov = p.coverage
    assert (cov["rows"], cov["unplanned_rows"], cov["plan_versions"]) == (3, 1, [2, 3])
    topic, persona = cov["dimensions"]
    # Expected rows: A's 2 rows x (1/2, 1/4, 1/4) + B's row x (1/2 fruit, 1/2 space) = 1.5, 0.5, 1 of 3.
    assert [(v["value"], v["weight"], v["count"]) for v in topic["values"]] == [
        ("fruit", None, 1), ("sport", None, 1), ("space", None, 1)]
    assert [v["expected_share"] for v in topic["values"]] == pytest.approx([0.5, 1 / 6, 1 / 3])
    assert persona["rows"] == 2 and persona["never_hit"] == ["expert"]  # only A planned personas

    # Novelty: the 4 synthetic rows against the version's own 3 seed rows; B's row copies seed 1.
    assert (p.novelty["rows"], p.novelty["seeds"], p.novelty["lexical"]["close_rows"]) == (4, 3, 1)

    card = dataset_card(wsp, vid)
    assert "## Data profile" in card and card.index("## Data profile") < card.index("## Filters")
    assert f"| batch #{b} (few-shot) | 1 |" in card
    # B's row repeats seed 1's instruction: 7 distinct of 8; words 2, 3, 3, 4, 4, 4, 4, 5.
    assert "| instruction | 8 | 0 | 88% | 4 | 5 |" in card
    assert "| topic | fruit | 50% | 33% | 1 |" in card and "| persona | expert | 25% | 0% | 0 |" in card
    assert "1 of 4 (25.0%) are at 0.7 or above" in card
    with wsp.write() as conn:  # the card comes from the rows: a version without plans says nothing of plans
        conn.execute("UPDATE batch SET params='{}'")
    unplanned = prof.version_profile(wsp, vid, count_tokens=False)
    assert unplanned.coverage["planned"] is False and unplanned.coverage["unplanned_rows"] == 4


def test_cli_profiles_as_json(home: Path, wsp: Workspace, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from studio.cli import app

    pid, _, _, a, _ = _two_plans(wsp, tmp_path)

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--home", str(home)])
        assert result.exit_code == 0, (result.stdout, result.exception)
        return result.stdout

    batch = json.loads(cli("batches", "profile", str(a), "--json"))
    assert batch["by_status"] == {"ok": 4, "failed": 1, "partial": 1}
    assert batch["coverage"]["dimensions"][0]["never_hit"] == ["space"]
    assert batch["fields"][0]["unique_share"] == 0.8
    version = json.loads(cli("dataset", "profile", "v1", "--json", "--project", str(pid)))
    assert version["rows"] == 8 and version["coverage"]["plan_versions"] == [2, 3]
    text = cli("batches", "profile", str(a + 2))
    assert "1 of 1 rows are usable" in text and "no plan" in text


def test_review_tab_plots(wsp: Workspace, tmp_path: Path) -> None:
    from studio.ui import profile_plots as review
    from studio.ui import texts

    pid = _project(wsp, tmp_path)
    batch_id, _ = _planned_batch(wsp, pid)
    summary, status, lengths, coverage, novelty = review.profile_views(prof.batch_profile(wsp, batch_id))
    assert "5 of 6 rows are usable" in summary
    assert "data-chart='bar'" in status and html.escape(texts.REV_PROFILE_STATUS_NOTE) in status
    assert lengths.count("data-chart='histogram'") == 3 and "Length in words: input" in lengths
    assert coverage.count("data-chart='bar'") == 2 and "data-series='planned'" in coverage
    assert "not in plan" in coverage and "topic (2 of 3 values appear)" in coverage
    assert "data-chart='histogram'" in novelty and "by words (ROUGE-L)" in novelty

    hostile = add_batch(wsp, pid, [ROWS[1]], metas=[{"plan": {"topic": "<img src=x onerror=alert(1)>"}}])
    _plan(wsp, hostile, {"topics": [{"value": "<img src=x onerror=alert(1)>", "weight": 1}]}, 1)
    views = "".join(review.profile_views(prof.batch_profile(wsp, hostile)))
    assert "<img" not in views and "&lt;img" in views
    plain = review.profile_views(prof.batch_profile(wsp, add_batch(wsp, pid, [ROWS[1]])))
    assert "data-chart='empty'" in plain[3] and texts.REV_PROFILE_NO_PLAN in plain[3]


def test_coverage_chart_labels_never_overlap() -> None:
    """12 planned topics: one readable label per row, long ones cut with "…" (full text as hover title), escaped."""
    import xml.etree.ElementTree as ET
    from types import SimpleNamespace

    from studio import charts
    from studio.ui import profile_plots

    long = "cancelling a subscription before the renewal date passes"
    topics = ["refund for a late order", long, "<script>alert(1)</script>", *(f"topic number {i}" for i in range(9))]
    dim = {"name": "topic", "covered": 3, "planned": 12, "off_plan": [],
           "values": [{"value": t, "expected_share": 1 / 12, "share": 1 / 3 if i < 3 else 0.0}
                      for i, t in enumerate(topics)]}
    page = profile_plots.profile_coverage_html(SimpleNamespace(coverage={"planned": True, "dimensions": [dim]}))
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "figure class='chart' data-chart='bar'" in page and page.count("data-series='observed'") == 12

    svg = ET.fromstring(f"<root>{page}</root>").find(".//svg")
    assert svg is not None
    labels = [t for t in svg.iter("text") if t.get("text-anchor") == "end"]  # the category labels, left
    shown = ["".join(t.itertext()).removeprefix(t.findtext("title") or "") for t in labels]
    assert len(labels) == 12 and shown[0] == "refund for a late order" and shown[2] == "<script>alert(1)</script>"
    cut = labels[1]
    assert shown[1].endswith("…") and long.startswith(shown[1][:-1]) and len(shown[1]) <= 33
    assert cut.findtext("title") == long
    ys = sorted(float(t.get("y", 0)) for t in labels)
    assert all(b - a >= 14 for a, b in itertools.pairwise(ys))  # an 11px label each, never overlapping
    height = float(svg.get("viewBox", "").split()[3])
    assert ys[-1] < height - 20  # the chart grew to hold every row, above the value axis
    few = charts.hbar_chart({"a": {"n": 1.0}, "b": {"n": 2.0}}, title="few")
    assert f"viewBox='0 0 {charts.W} " in few and "data-chart='bar' data-points='2'" in few
    assert float(few.split("viewBox='0 0 ")[1].split()[1].rstrip("'")) < height


def test_vertical_bar_labels_fit_their_slot() -> None:
    from studio import charts

    page = charts.bar_chart({f"a rather long category name {i}": {"v": float(i)} for i in range(10)}, title="t")
    slot = (charts.W - charts.PAD_L - charts.PAD_R) / 10
    lines = [s.split(">", 1)[1].split("<")[0] for s in page.split("<tspan ")[1:]]
    assert lines and all(charts._text_width(line) <= slot - 6 for line in lines)
    assert "<title>a rather long category name 3</title>" in page
