"""`seed-studio seeds import|list|delete`: import, list and delete seed examples."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, clip, open_workspace, pick_project, print_json
from studio.errors import MappingError

seeds_app = typer.Typer(help="Import, list and delete seed examples.", no_args_is_help=True)


@seeds_app.command("import")
def seeds_import(
    source: Annotated[str, typer.Argument(help="A CSV/TSV/XLSX/JSON/JSONL/Parquet/Arrow/CoNLL file, or a Hub "
                                               "dataset id with --hub.")],
    fmt: Annotated[str | None, typer.Option("--format", help="alpaca, prompt_completion, messages, "
                                                             "classification or ner (default: detected).")] = None,
    maps: Annotated[list[str] | None, typer.Option("--map", help="column=field, e.g. --map question=instruction; "
                                                                 "repeat for each field.")] = None,
    sheet: Annotated[str | None, typer.Option(help="Sheet of an .xlsx workbook (default: the first).")] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header",
                                                help="Whether the first row of a CSV/TSV/sheet names the columns "
                                                     "(default: decided from the row).")] = None,
    all_paths: Annotated[bool, typer.Option("--all-paths", help="Chat trees (OpenAssistant): one conversation per "
                                                                "path, not only the best-ranked one.")] = False,
    label_names: Annotated[str | None, typer.Option(
        "--label-names", help="Names of integer label ids: 'negative,positive' (ids 0, 1, ...) or "
                              "'1=World,2=Sports'.")] = None,
    hub: Annotated[bool, typer.Option("--hub", help="SOURCE is a Hugging Face Hub dataset id.")] = False,
    split: Annotated[str, typer.Option(help="Split of a Hub dataset.")] = "train",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show problems; import nothing.")] = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Validate seed examples and import the usable rows into the project, all at once or not at all."""
    from studio.data.formats import FORMATS, SeedFormat, parse_label_names, parse_mapping_args
    from studio.data.importer import commit_import, preview_file, preview_hub
    from studio.data.readers import ReadOptions
    from studio.workspace.projects import get_project

    ws = open_workspace(home)
    p = pick_project(ws, project)
    if fmt is not None and fmt not in {f.value for f in SeedFormat}:
        raise MappingError(f"--format '{fmt}' is not a seed format. Use one of: "
                           f"{', '.join(f.value for f in SeedFormat)}.")
    mapping = parse_mapping_args(maps) if maps else None
    names = parse_label_names(label_names) if label_names else None
    if hub:
        preview = preview_hub(ws, source, split=split, project_id=p.id, fmt=fmt, mapping=mapping)
        if names:
            preview = preview.remap(preview.format, preview.mapping, label_names=names)
    else:
        options = ReadOptions(sheet=sheet, header=header, chat_paths="all" if all_paths else "best")
        preview = preview_file(ws, source, project_id=p.id, fmt=fmt, mapping=mapping, options=options,
                               label_names=names)
    given = [f"--{k}" if v is True else f"--{k} {shlex.quote(str(v))}" for k, v in (
        ("sheet", sheet), ("all-paths", all_paths or None), ("label-names", label_names)) if v]
    if header is not None:
        given.append("--header" if header else "--no-header")
    if preview.mapping_problem:
        raise MappingError(preview.mapping_problem + _map_hint(source, preview, given))
    if preview.detection.needs_mapping and fmt is None and mapping is None:
        raise MappingError(preview.detection.message + _notes(preview) + "\nConfirm it by running:\n  "
                           + _map_hint(source, preview, given, command_only=True))
    typer.echo(preview.summary())
    if preview.table.layout:
        typer.echo(f"Read as: {preview.table.layout}")
    for note in preview.extra_notes:
        typer.echo(f"  {note}")
    for problem in preview.problems[:20]:
        typer.echo(f"  {problem.severity}: {problem}")
    if len(preview.problems) > 20:
        typer.echo(f"  ... and {len(preview.problems) - 20} more")
    if dry_run:
        typer.echo(f"Dry run: nothing imported ({FORMATS[preview.format].title if preview.format else '?'}).")
        return
    result = commit_import(ws, p.id, preview)
    total = get_project(ws, p.id).seed_count
    typer.echo(result.message(preview.source) + f" Project '{p.name}' now has {total} seeds.")


def _notes(preview) -> str:
    return "".join(f"\n  {n}" for n in preview.extra_notes)


def _map_hint(source: str, preview, given: list[str], command_only: bool = False) -> str:
    best = preview.detection.best
    if best is None:
        return "" if command_only else (" Pass --format and --map column=field for each field, e.g. "
                                        "--format alpaca --map question=instruction --map answer=output.")
    maps = " ".join(f"--map {shlex.quote(f'{col}={fld}')}" for fld, col in best.mapping.items())
    cmd = " ".join(["seed-studio seeds import", shlex.quote(source), *given, "--format", best.format.value, maps])
    return cmd if command_only else f" For example: {cmd}"


@seeds_app.command("list")
def seeds_list(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """List the project's seeds."""
    from studio.data.formats import summary_text
    from studio.workspace.seeds import list_seeds

    ws = open_workspace(home)
    p = pick_project(ws, project)
    seeds = list_seeds(ws, p.id)
    if as_json:
        print_json([{"id": s.id, "format": s.format.value, "data": s.data, "meta": s.meta, "source": s.source,
                      "source_row": s.source_row, "created_at": s.created_at, "updated_at": s.updated_at}
                     for s in seeds])
        return
    typer.echo(f"Project '{p.name}': {len(seeds)} seeds")
    for s in seeds:
        prompt, answer = summary_text(s.format, s.data)
        typer.echo(f"#{s.id:<5} {clip(prompt, 60):<60}  →  {clip(answer, 40)}")


@seeds_app.command("delete")
def seeds_delete(ids: list[int], project: ProjectOption = None, home: HomeOption = None) -> None:
    """Delete seeds by id."""
    from studio.workspace.seeds import delete_seeds

    ws = open_workspace(home)
    p = pick_project(ws, project)
    n = delete_seeds(ws, p.id, ids)
    typer.echo(f"Deleted {n} seeds from '{p.name}'.")


def register(app: typer.Typer) -> None:
    app.add_typer(seeds_app, name="seeds")
