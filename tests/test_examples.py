"""The team's example project: its seeds are clean, it can be tried twice, and it goes through the flow."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from studio.data.importer import build_preview
from studio.data.readers import read_table
from studio.data.versions import freeze_version
from studio.errors import StudioError
from studio.examples import SUPPORT_REPLIES, create_example_project
from studio.models.registry import DEFAULT_BASE_MODEL, DEFAULT_TEACHER
from studio.task_advice import advise
from studio.workspace.projects import list_projects
from studio.workspace.seeds import list_seeds
from tests.test_cli import run


def test_the_example_seeds_import_without_a_single_problem() -> None:
    preview = build_preview(read_table(SUPPORT_REPLIES.seeds, max_bytes=10_000_000), known_keys={})
    assert not preview.mapping_problem
    assert preview.counts["rows"] == preview.counts["usable"] >= 16
    assert preview.counts["with_errors"] == preview.counts["duplicates"] == preview.counts["warnings"] == 0
    assert [p for r in preview.rows for p in r.problems] == []


def test_the_example_task_passes_the_studios_own_advice() -> None:
    assert [a.level for a in advise(SUPPORT_REPLIES.task)] == ["good"]


def test_trying_the_example_twice_gives_two_fresh_projects(ws) -> None:
    first, result = create_example_project(ws)
    second, _ = create_example_project(ws)
    assert (first.name, second.name) == ("Example: support replies", "Example: support replies (2)")
    lines = SUPPORT_REPLIES.seeds.read_text().splitlines()
    assert result.imported == first.seed_count == second.seed_count == len(lines)
    assert first.task_description == SUPPORT_REPLIES.task
    assert (first.base_model_ref, first.teacher_ref) == (DEFAULT_BASE_MODEL, DEFAULT_TEACHER)
    # The seeds are the file's rows, verbatim, with their provenance.
    seeds = list_seeds(ws, first.id)
    assert [s.data["output"] for s in seeds] == [json.loads(line)["output"] for line in lines]
    assert {s.source for s in seeds} == {"support_replies.jsonl"}


def test_the_example_freezes_into_a_version_with_every_split(ws) -> None:
    project, _ = create_example_project(ws)
    version = freeze_version(ws, project.id)
    assert all(version.splits[name] > 0 for name in ("train", "validation", "test")), version.splits


def test_a_broken_example_file_leaves_no_empty_project_behind(ws, tmp_path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"instruction": "Say hi", "output": "Hello"}\n{"instruction": \n')
    with pytest.raises(StudioError, match=r"broken\.jsonl"):
        create_example_project(ws, replace(SUPPORT_REPLIES, seeds=broken))
    with pytest.raises(StudioError, match=r"missing\.jsonl"):
        create_example_project(ws, replace(SUPPORT_REPLIES, seeds=tmp_path / "missing.jsonl"))
    assert list_projects(ws) == []


def test_cli_creates_the_example_and_makes_it_current(tmp_path) -> None:
    home = tmp_path / "home"
    out = run(home, "project", "example").stdout
    assert "'Example: support replies' (now current) with 16 example seeds" in out
    assert "seed-studio generate" in out
    listed = json.loads(run(home, "project", "list", "--json").stdout)
    assert [(p["name"], p["seed_count"], p["current"]) for p in listed] == [
        ("Example: support replies", 16, True)]
