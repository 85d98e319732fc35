"""Projects: create, rename, switch, task/model settings."""

from __future__ import annotations

import pytest

from studio.errors import ProjectError
from studio.workspace.projects import (
    cli_current_project,
    create_project,
    find_project,
    list_projects,
    rename_project,
    update_project,
    use_project,
)


def test_create_list_rename_update(ws) -> None:
    a = create_project(ws, "  Support   replies ", task_description="Reply to customers",
                       base_model_ref="embedded:smollm2-135m-instruct", teacher_ref="owner/teacher")
    assert a.name == "Support replies"
    b = create_project(ws, "Pandas helper")
    assert {p.name for p in list_projects(ws)} == {"Support replies", "Pandas helper"}
    renamed = rename_project(ws, a.id, "Support email replies")
    assert renamed.name == "Support email replies" and renamed.task_description == "Reply to customers"
    updated = update_project(ws, b.id, task_description="Write pandas functions", teacher_ref="x/y")
    assert (updated.task_description, updated.teacher_ref) == ("Write pandas functions", "x/y")
    assert find_project(ws, "pandas HELPER").id == b.id
    assert find_project(ws, str(a.id)).id == a.id


@pytest.mark.parametrize("bad", ["", "   ", "x" * 81])
def test_bad_names_are_refused_with_a_reason(ws, bad) -> None:
    with pytest.raises(ProjectError, match="name"):
        create_project(ws, bad)
    assert list_projects(ws) == []


def test_duplicate_names_are_refused(ws) -> None:
    create_project(ws, "Demo")
    with pytest.raises(ProjectError, match="already exists"):
        create_project(ws, "demo")
    other = create_project(ws, "Other")
    with pytest.raises(ProjectError, match="already exists"):
        rename_project(ws, other.id, "DEMO")
    assert find_project(ws, "Other").name == "Other"


def test_current_project_for_the_cli(ws) -> None:
    with pytest.raises(ProjectError, match="no project yet"):
        cli_current_project(ws)
    a = create_project(ws, "A")
    create_project(ws, "B")
    use_project(ws, "A")
    assert cli_current_project(ws).id == a.id
    with pytest.raises(ProjectError, match="No project is called 'Nope'"):
        use_project(ws, "Nope")
