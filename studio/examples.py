"""The team's example project: a precise task and seeds written by the team (assets/examples), so a newcomer
can try the whole flow in minutes before they have a file of their own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.data.importer import ImportResult, build_preview, commit_import
from studio.data.readers import read_table
from studio.workspace import Workspace
from studio.workspace.projects import MAX_NAME_LENGTH, Project, create_project, list_projects

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "assets" / "examples"


@dataclass(frozen=True)
class Example:
    name: str
    task: str
    seeds: Path
    topics: tuple[str, ...] = ()
    """A starting diversity plan (studio.augment.plan): what the generated rows should cover."""
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()


SUPPORT_REPLIES = Example(
    name="Example: support replies",
    task=("Write short, friendly replies to customer emails about deliveries (late, lost, damaged or wrong "
          "items, changes of address, cancellations): at most 5 sentences, apologise once when something "
          "went wrong, use the order number from the email, and end with one concrete next step and when "
          "it will happen."),
    seeds=EXAMPLES_DIR / "support_replies.jsonl",
    topics=("late delivery", "lost parcel", "damaged item", "wrong item delivered", "change of delivery address",
            "order cancellation", "missing part of an order", "delivery to a neighbour"),
    attributes=(("tone", ("polite", "worried", "frustrated")),),
)


def _free_name(ws: Workspace, wanted: str) -> str:
    """`wanted`, or `wanted (2)`, `(3)`, … : trying the example twice gives a second fresh project."""
    taken = {p.name.casefold() for p in list_projects(ws)}
    if wanted.casefold() not in taken:
        return wanted
    n = 2
    while f"{wanted} ({n})".casefold() in taken:
        n += 1
    return f"{wanted} ({n})"[:MAX_NAME_LENGTH]


def create_example_project(ws: Workspace, example: Example = SUPPORT_REPLIES) -> tuple[Project, ImportResult]:
    """A new project holding the example's task and its seeds, imported like an upload. The seed file is read
    and checked before the project is created, so a broken install leaves no empty project behind."""
    from studio.models.registry import DEFAULT_BASE_MODEL, DEFAULT_TEACHER
    from studio.workspace.projects import get_project

    preview = build_preview(read_table(example.seeds, max_bytes=ws.settings.max_upload_bytes), known_keys={})
    project = create_project(ws, _free_name(ws, example.name), task_description=example.task,
                             base_model_ref=DEFAULT_BASE_MODEL, teacher_ref=DEFAULT_TEACHER)
    result = commit_import(ws, project.id, preview)
    if example.topics or example.attributes:
        from studio.augment.plan import DiversityPlan, PlanValue, save_plan

        save_plan(ws, project.id, DiversityPlan([PlanValue(t) for t in example.topics],
                                                {k: [PlanValue(v) for v in vs] for k, vs in example.attributes}),
                  note="example plan")
    return get_project(ws, project.id), result
