"""`seed-studio plan`: diversity plans (topics and attributes a batch samples from), the Generate tab's plan box."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, open_workspace, pick_project, print_json

plan_app = typer.Typer(help="Diversity plans: topics and attributes to cover, saved as versions.",
                       no_args_is_help=True)

TopicOption = Annotated[list[str] | None, typer.Option(
    "--topic", help="A topic to cover; repeat it. 'topic | 2' draws it twice as often.")]
TopicsFileOption = Annotated[Path | None, typer.Option(
    "--topics-file", help="Topics from a file: .txt (one per line), .csv/.tsv (a 'topic' column or the first, "
                          "'weight' optional) or .json/.jsonl.", exists=True, dir_okay=False)]
VaryOption = Annotated[list[str] | None, typer.Option(
    "--vary", help="An attribute to vary, as 'name: value, value' (e.g. 'difficulty: easy, hard | 2'); repeat it.")]


def typed_plan(topic: list[str] | None, topics_file: Path | None, vary: list[str] | None) -> Any:
    """The plan the options describe, or None when they describe nothing."""
    from studio.augment.plan import DiversityPlan, parse_attributes, parse_values, read_topic_file

    topics = parse_values("\n".join(topic or []))
    if topics_file is not None:
        have = {t.value.lower() for t in topics}
        topics += [t for t in read_topic_file(topics_file) if t.value.lower() not in have]
    plan = DiversityPlan(topics, parse_attributes("\n".join(vary or [])))
    return None if plan.empty else plan


def _plan_json(v: Any) -> dict[str, Any]:
    return {"id": v.id, "version": v.version, "note": v.note, "created_at": v.created_at, "plan": v.plan.to_dict()}


def _echo_plan(v: Any) -> None:
    from studio.augment.plan import format_attributes, format_values

    typer.echo(f"Plan {v.label} (id {v.id}), {v.created_at}")
    typer.echo("Topics:\n" + (format_values(v.plan.topics) or "(none)"))
    if v.plan.attributes:
        typer.echo("Varies:\n" + format_attributes(v.plan.attributes))


@plan_app.command("list")
def plan_list(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """The project's plan versions, newest first."""
    from studio.augment.plan import list_plans

    ws = open_workspace(home)
    saved = list_plans(ws, pick_project(ws, project).id)
    if as_json:
        print_json([_plan_json(v) for v in saved])
        return
    if not saved:
        typer.echo("No plan yet: `seed-studio plan save --topic ...` or `seed-studio plan suggest`.")
    for v in saved:
        typer.echo(f"id {v.id:<5} {v.label:<30} {len(v.plan.topics)} topics, "
                   f"{', '.join(v.plan.attributes) or 'no attributes'}  {v.created_at}")


@plan_app.command("show")
def plan_show(plan_id: int, as_json: JsonOption = False, home: HomeOption = None) -> None:
    """One plan version."""
    from studio.augment.plan import get_plan

    v = get_plan(open_workspace(home), plan_id)
    print_json(_plan_json(v)) if as_json else _echo_plan(v)


@plan_app.command("save")
def plan_save(topic: TopicOption = None, topics_file: TopicsFileOption = None, vary: VaryOption = None,
              note: Annotated[str, typer.Option(help="What this plan is for.")] = "",
              as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """Save topics and attributes as the project's next plan version."""
    from studio.augment.plan import DiversityPlan, save_plan

    ws = open_workspace(home)
    plan = typed_plan(topic, topics_file, vary) or DiversityPlan()
    v = save_plan(ws, pick_project(ws, project).id, plan, note=note)
    print_json(_plan_json(v)) if as_json else typer.echo(f"Saved plan {v.label} (id {v.id}).")


@plan_app.command("suggest")
def plan_suggest(
    n: Annotated[int, typer.Option("--count", "-n", help="How many topics to ask for.")] = 8,
    teacher: Annotated[str | None, typer.Option("--teacher", help="Teacher (default: the project's).")] = None,
    teacher_model: Annotated[str, typer.Option("--teacher-model", help="Model name at the endpoint URL.")] = "",
    save: Annotated[bool, typer.Option("--save", help="Save the suggestions as the next plan version.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None,
) -> None:
    """Ask the teacher for topics the seeds do not cover yet (answered under a JSON schema)."""
    from studio.augment.plan import DiversityPlan, PlanValue, propose_topics, save_plan
    from studio.models.registry import DEFAULT_TEACHER
    from studio.teachers.spec import build_teacher, parse_teacher

    ws = open_workspace(home)
    p = pick_project(ws, project)
    spec = parse_teacher(teacher or p.teacher_ref or DEFAULT_TEACHER, model=teacher_model)
    topics = propose_topics(ws, p.id, build_teacher(ws, spec), n=n, rng_seed=seed)
    saved = save_plan(ws, p.id, DiversityPlan([PlanValue(t) for t in topics]), note="suggested") if save else None
    if as_json:
        print_json({"topics": topics, "saved": _plan_json(saved) if saved else None})
        return
    typer.echo("\n".join(topics))
    if saved:
        typer.echo(f"Saved as plan {saved.label} (id {saved.id}).")


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")
