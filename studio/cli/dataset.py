"""`seed-studio dataset freeze|pairs|list|show|profile|export`: the Dataset tab's twin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, open_workspace, pick_project, print_json

dataset_app = typer.Typer(help="Frozen dataset versions: freeze, list, show, profile, export.",
                          no_args_is_help=True)


@dataset_app.command("freeze")
def dataset_freeze(
    name: Annotated[str | None, typer.Option(help="Version name (default v1, v2, ...).")] = None,
    validation: Annotated[float, typer.Option("--validation", help="Share of the human seeds held out for "
                                              "validation (human-written only).")] = 0.15,
    test: Annotated[float, typer.Option("--test", help="Share of the human seeds held out for the test "
                                        "split.")] = 0.15,
    synthetic_cap: Annotated[float, typer.Option("--synthetic-cap", help="Highest share of synthetic rows in "
                                                 "train (0-1).")] = 0.8,
    test_synthetic: Annotated[float, typer.Option("--test-synthetic", help="Share of accepted synthetic rows "
                                                  "kept unseen for the test split.")] = 0.1,
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="Use only these batches' selected "
                                                    "rows (repeatable; default: all).")] = None,
    general: Annotated[Path | None, typer.Option("--general", help="A general chat dataset file (JSONL, CSV, "
                                                 "Parquet...) mixed into train against forgetting.")] = None,
    general_fraction: Annotated[float, typer.Option("--general-fraction", help="With --general: general rows "
                                                    "as a share of train.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed of the split.")] = 0,
    preferences: Annotated[bool, typer.Option("--preferences", help="Also freeze preference pairs (kept vs "
                                              "rejected in review, edits, A/B votes) for DPO / ORPO.")] = False,
    machine_pairs: Annotated[bool, typer.Option("--machine-pairs", help="With --preferences: also pair answers by "
                                                "judge score (marked as machine pairs).")] = False,
    pairs_held_out: Annotated[float, typer.Option("--pairs-held-out", help="With --preferences: share of the "
                                                  "prompts whose pairs are held out.")] = 0.2,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the split sizes; write nothing.")] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Freeze the seeds and the accepted synthetic rows into an immutable dataset version."""
    from studio.data.preferences import PreferenceConfig
    from studio.data.versions import FreezeConfig, freeze_version, plan_version

    ws = open_workspace(home)
    p = pick_project(ws, project)
    cfg = FreezeConfig(name=name, validation_fraction=validation, test_fraction=test, synthetic_cap=synthetic_cap,
                       test_synthetic_fraction=test_synthetic, batch_ids=batch or None,
                       general_path=str(general) if general else None,
                       general_fraction=general_fraction if general else 0.0,
                       rng_seed=seed,
                       preferences=PreferenceConfig(machine_pairs=machine_pairs, validation_fraction=pairs_held_out)
                       if preferences else None)
    if dry_run:
        plan = plan_version(ws, p.id, cfg)
        if as_json:
            print_json(plan.to_dict())
            return
        _print_counts(plan.to_dict())
        return
    version = freeze_version(ws, p.id, cfg)
    if as_json:
        print_json(version.to_dict())
        return
    typer.echo(f"Froze dataset version {version.name} (id {version.id}).")
    _print_counts(version.to_dict())


def _print_counts(data: dict) -> None:
    counts = data.get("counts") or data.get("stats", {}).get("counts") or {}
    for split, by_origin in counts.items():
        if isinstance(by_origin, dict):
            typer.echo(f"  {split:<11} " + ", ".join(f"{k}: {v}" for k, v in by_origin.items()))
        else:
            typer.echo(f"  {split:<11} {by_origin}")
    for w in data.get("warnings", []):
        typer.echo(f"  ! {w}")
    prefs = data.get("preferences") or data.get("stats", {}).get("preferences")
    if prefs:
        from studio.data.versions import preference_summary

        typer.echo(preference_summary(prefs))


@dataset_app.command("pairs")
def dataset_pairs(
    machine_pairs: Annotated[bool, typer.Option("--machine-pairs", help="Also pair answers by judge score.")] = False,
    show: Annotated[int, typer.Option("--show", help="Print this many pairs.")] = 5,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Preview the preference pairs the project's reviews, edits and A/B votes make (nothing is written)."""
    from studio.data.preferences import PreferenceConfig, build_pairs

    ws = open_workspace(home)
    p = pick_project(ws, project)
    preview = build_pairs(ws, p.id, PreferenceConfig(machine_pairs=machine_pairs))
    if as_json:
        print_json(preview.to_dict())
        return
    typer.echo(preview.summary())
    for pair in preview.pairs[:max(0, show)]:
        typer.echo(f"\n[{pair.source}] {pair.prompt[-1]['content'][:200]}\n  + {pair.chosen[:200]}\n"
                   f"  - {pair.rejected[:200]}")


@dataset_app.command("list")
def dataset_list(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """The project's dataset versions."""
    from studio.data.versions import list_versions

    ws = open_workspace(home)
    versions = list_versions(ws, pick_project(ws, project).id)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    if not versions:
        typer.echo("No dataset version yet: `seed-studio dataset freeze` makes one.")
    for v in versions:
        d = v.to_dict()
        sizes = ", ".join(f"{k} {n}" for k, n in (d.get("sizes") or {}).items())
        typer.echo(f"{v.id:>4}  {v.name:<12} {sizes}  {v.created_at[:16].replace('T', ' ')}")


@dataset_app.command("show")
def dataset_show(version: Annotated[str, typer.Argument(help="Version id or name.")], as_json: JsonOption = False,
                 project: ProjectOption = None, home: HomeOption = None) -> None:
    """A version's splits, provenance and card."""
    from studio.data.card import dataset_card
    from studio.data.versions import get_version

    ws = open_workspace(home)
    v = get_version(ws, pick_project(ws, project).id, version)
    if as_json:
        print_json(v.to_dict())
        return
    typer.echo(dataset_card(ws, v.id))


@dataset_app.command("profile")
def dataset_profile(
    version: Annotated[str, typer.Argument(help="Version id or name.")],
    embed: Annotated[bool, typer.Option("--embed", help="Also measure closeness to the seeds by meaning (sentence "
                                        "embeddings of up to 1,000 rows; slower).")] = False,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Data profile of a version: rows by source and split, uniqueness and lengths per field, plan coverage,
    novelty against its seed rows."""
    from studio.data.versions import get_version
    from studio.quality.profile import available_embed, summary_lines, version_profile

    ws = open_workspace(home)
    v = get_version(ws, pick_project(ws, project).id, version)
    embed_fn = available_embed(ws) if embed else None
    if embed and embed_fn is None:
        typer.echo("The sentence embedder is not installed: closeness is measured by words only.", err=True)
    profile = version_profile(ws, v.id, embed=embed_fn)
    if as_json:
        print_json(profile.to_dict())
        return
    for line in summary_lines(profile):
        typer.echo(line)


@dataset_app.command("export")
def dataset_export(
    version: Annotated[str, typer.Argument(help="Version id or name.")],
    file_format: Annotated[str, typer.Option("--format", help="parquet, jsonl or csv (formula-safe, for "
                                             "spreadsheets).")] = "parquet",
    style: Annotated[str, typer.Option(help="messages (chat) or prompt_completion.")] = "messages",
    out: Annotated[Path | None, typer.Option(help="Parent folder; the export goes into a new subfolder "
                                             "VERSION-STYLE-FORMAT (default: the workspace's exports/).")] = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Write a version's splits (and its dataset card) as Parquet or JSONL files."""
    from studio.data.export import export_version
    from studio.data.versions import get_version

    ws = open_workspace(home)
    v = get_version(ws, pick_project(ws, project).id, version)
    result = export_version(ws, v.id, file_format=file_format, style=style, out_dir=out)
    if as_json:
        print_json({"folder": str(result.folder), "files": {k: str(p) for k, p in result.files.items()},
                    "card": str(result.card_path), "rows": result.rows})
        return
    typer.echo(f"Exported {v.name} to {result.folder}")
    for split, path in result.files.items():
        typer.echo(f"  {split:<11} {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
