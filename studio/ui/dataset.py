"""Dataset tab: preview and freeze dataset versions, read their card and diversity, export files."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from studio.errors import StudioError
from studio.ui import texts
from studio.ui.review import diversity_md, hist_html, map_html
from studio.ui.tab import TabHandle, fail, require_project
from studio.workspace import Workspace

VERSION_COLUMNS = ["id", "name", "train", "validation", "test", "synthetic share of train", "preference pairs",
                   "created"]
PAIR_COLUMNS = ["prompt", "chosen (better)", "rejected", "from"]


def counts_md(data: dict[str, Any]) -> str:
    """Split sizes by origin as a table, then warnings and what was left out (plan or frozen version)."""
    counts = data.get("counts") or {}
    origins = sorted({o for by in counts.values() if isinstance(by, dict) for o in by})
    lines = ["| split | " + " | ".join(origins) + " | total |", "| --- |" + " ---: |" * (len(origins) + 1)]
    for split, by in counts.items():
        by = by if isinstance(by, dict) else {"rows": by}
        lines.append(f"| {split} | " + " | ".join(str(by.get(o, 0)) for o in origins) + f" | {sum(by.values())} |")
    from studio.data.versions import DROP_REASONS

    notes = [f"- left out: {n} rows — {DROP_REASONS.get(reason, reason)}"
             for reason, n in (data.get("dropped") or {}).items() if n]
    notes += [f"- ⚠️ {w}" for w in data.get("warnings") or []]
    prefs = data.get("preferences") or (data.get("stats") or {}).get("preferences")
    if prefs:
        from studio.data.versions import preference_summary

        notes += ["- " + line.strip() for line in preference_summary(prefs).splitlines()]
    return "\n".join(lines + (["", *notes] if notes else []))


def pairs_frame(preview: Any, limit: int = 50) -> pd.DataFrame:
    """The first pairs of a preview, one row each, for people to read before freezing."""
    from studio.data.preferences import SOURCE_TITLES

    rows = [[p.prompt[-1]["content"], p.chosen, p.rejected, SOURCE_TITLES[p.source]] for p in preview.pairs[:limit]]
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def versions_frame(ws: Workspace, pid: int | None) -> pd.DataFrame:
    from studio.data.versions import list_versions

    rows = []
    if pid is not None:
        for v in list_versions(ws, pid):
            d = v.to_dict()
            sizes = d.get("sizes") or {}
            share = (d.get("stats") or {}).get("train_synthetic_share")
            pairs = ((d.get("stats") or {}).get("preferences") or {}).get("sizes")
            rows.append([v.id, v.name, sizes.get("train", 0), sizes.get("validation", 0), sizes.get("test", 0),
                         "—" if share is None else f"{share:.0%}", "—" if pairs is None else sum(pairs.values()),
                         v.created_at.replace("T", " ")[:16]])
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


def version_choices(ws: Workspace, pid: int | None) -> list[tuple[str, int]]:
    from studio.data.versions import list_versions

    return [(f"{v.name} (#{v.id})", v.id) for v in list_versions(ws, pid)] if pid is not None else []


def build(ws: Workspace, current: gr.State) -> TabHandle:
    gr.Markdown(texts.DS_INTRO)
    with gr.Row():
        with gr.Column(scale=2):
            name = gr.Textbox(label=texts.DS_NAME, info=texts.DS_NAME_HELP, elem_id="ds-name")
            with gr.Row():
                validation = gr.Slider(0.05, 0.4, value=0.15, step=0.01, label=texts.DS_VALIDATION,
                                       info=texts.DS_VALIDATION_HELP, elem_id="ds-validation")
                test = gr.Slider(0.0, 0.4, value=0.15, step=0.01, label=texts.DS_TEST, info=texts.DS_TEST_HELP,
                                 elem_id="ds-test")
            with gr.Row():
                cap = gr.Slider(0.0, 1.0, value=0.8, step=0.05, label=texts.DS_CAP, info=texts.DS_CAP_HELP,
                                elem_id="ds-cap")
                test_synthetic = gr.Slider(0.0, 0.5, value=0.1, step=0.05, label=texts.DS_TEST_SYNTHETIC)
            with gr.Accordion(texts.DS_GENERAL, open=False):
                gr.Markdown(texts.DS_GENERAL_HELP)
                general = gr.File(label=texts.DS_GENERAL, file_types=[".jsonl", ".json", ".csv", ".tsv", ".parquet"],
                                  elem_id="ds-general")
                general_fraction = gr.Slider(0.0, 0.5, value=0.1, step=0.05, label=texts.DS_GENERAL_FRACTION)
            with gr.Accordion(texts.DS_PAIRS, open=False, elem_id="ds-pairs-box"):
                gr.Markdown(texts.DS_PAIRS_HELP)
                with gr.Row():
                    pairs_on = gr.Checkbox(False, label=texts.DS_PAIRS_ON, elem_id="ds-pairs-on")
                    machine = gr.Checkbox(False, label=texts.DS_PAIRS_MACHINE, info=texts.DS_PAIRS_MACHINE_HELP,
                                          elem_id="ds-pairs-machine")
                pairs_held = gr.Slider(0.0, 0.5, value=0.2, step=0.05, label=texts.DS_PAIRS_HELD,
                                       info=texts.DS_PAIRS_HELD_HELP, elem_id="ds-pairs-held")
                pairs_btn = gr.Button(texts.DS_PAIRS_BUILD, size="sm", elem_id="ds-pairs-build")
                pairs_out = gr.Markdown("", elem_id="ds-pairs-out")
                pairs_table = gr.Dataframe(pd.DataFrame(columns=PAIR_COLUMNS), interactive=False, wrap=True,
                                           max_height=320, visible=False, elem_id="ds-pairs-table",
                                           column_widths=["24%", "33%", "30%", "13%"])
            seed = gr.Number(0, label=texts.DS_SEED, precision=0)
            with gr.Row():
                plan_btn = gr.Button(texts.DS_PLAN, elem_id="ds-plan")
                freeze_btn = gr.Button(texts.DS_FREEZE, variant="primary", elem_id="ds-freeze")
        with gr.Column(scale=3):
            plan_out = gr.Markdown("", elem_id="ds-plan-out")
            versions = gr.Dataframe(pd.DataFrame(columns=VERSION_COLUMNS), label=texts.DS_VERSIONS, interactive=False,
                                    max_height=260, elem_id="ds-versions")
    version = gr.Dropdown([], label="Version", elem_id="ds-version")
    with gr.Tabs():
        with gr.Tab("Card"):
            card = gr.Markdown(texts.DS_NO_VERSION, elem_id="ds-card")
        with gr.Tab("Diversity"):
            diversity_btn = gr.Button(texts.REV_DIVERSITY_RUN, elem_id="ds-diversity")
            diversity_summary = gr.Markdown("")
            with gr.Row():
                map_plot = gr.HTML("", elem_id="ds-map")
                hist_plot = gr.HTML("", elem_id="ds-hist")
        with gr.Tab(texts.DS_EXPORT):
            with gr.Row():
                file_format = gr.Radio(["parquet", "jsonl", "csv"], value="parquet", label=texts.DS_FORMAT,
                                       elem_id="ds-format")
                style = gr.Radio([("chat messages", "messages"), ("prompt / completion", "prompt_completion")],
                                 value="messages", label=texts.DS_STYLE, info=texts.DS_STYLE_HELP, elem_id="ds-style")
            export_btn = gr.Button(texts.DS_EXPORT_RUN, variant="primary", elem_id="ds-export")
            files = gr.File(label="Files", file_count="multiple", interactive=False, elem_id="ds-files")

    def preference_config(machine_value: bool, held: float) -> Any:
        from studio.data.preferences import PreferenceConfig

        return PreferenceConfig(machine_pairs=bool(machine_value), validation_fraction=float(held))

    def config(name_value: str, val: float, tst: float, cap_value: float, tsyn: float, general_file: Any,
               gfrac: float, seed_value: Any, pairs_value: bool = False, machine_value: bool = False,
               held: float = 0.2) -> Any:
        from studio.data.versions import FreezeConfig

        path = None
        if general_file:
            path = general_file if isinstance(general_file, str) else getattr(general_file, "name", None)
        return FreezeConfig(name=(name_value or "").strip() or None, validation_fraction=float(val),
                            test_fraction=float(tst), synthetic_cap=float(cap_value),
                            test_synthetic_fraction=float(tsyn),
                            general_path=path, general_fraction=float(gfrac) if path else 0.0,
                            rng_seed=int(seed_value or 0),
                            preferences=preference_config(machine_value, held) if pairs_value else None)

    def card_for(version_id: Any) -> str:
        if version_id in (None, ""):
            return texts.DS_NO_VERSION
        from studio.data.card import dataset_card

        text = dataset_card(ws, int(version_id))
        # The YAML front matter is for the Hub; people read the rest.
        if text.startswith("---"):
            end = text.find("\n---", 3)
            text = text[end + 4:] if end != -1 else text
        return text

    def refresh(pid: int | None) -> list:
        choices = version_choices(ws, pid)
        chosen = choices[0][1] if choices else None
        return [versions_frame(ws, pid), gr.update(choices=choices, value=chosen), card_for(chosen), ""]

    refresh_outputs = [versions, version, card, plan_out]

    def on_plan(pid: int | None, *values: Any) -> str:
        pid = require_project(pid)
        from studio.data.versions import plan_version

        try:
            plan = plan_version(ws, pid, config(*values))
        except StudioError as exc:
            raise fail(exc) from None
        return "**Preview — nothing saved yet.**\n\n" + counts_md(plan.to_dict())

    def on_freeze(pid: int | None, *values: Any) -> list:
        pid = require_project(pid)
        from studio.data.versions import freeze_version

        try:
            v = freeze_version(ws, pid, config(*values))
        except StudioError as exc:
            raise fail(exc) from None
        gr.Info(f"Froze dataset version {v.name}.")
        choices = version_choices(ws, pid)
        return [f"**Frozen as {v.name}.**\n\n" + counts_md(v.to_dict()), versions_frame(ws, pid),
                gr.update(choices=choices, value=v.id), card_for(v.id), ""]

    def on_pairs(pid: int | None, machine_value: bool, held: float) -> list:
        pid = require_project(pid)
        from studio.data.preferences import build_pairs

        try:
            preview = build_pairs(ws, pid, preference_config(machine_value, held))
        except StudioError as exc:
            raise fail(exc) from None
        text = preview.summary().replace("\n  ", "\n- ")
        if preview.pairs:
            text += "\n\n" + texts.DS_PAIRS_NEXT
        return [text, gr.update(value=pairs_frame(preview), visible=bool(preview.pairs)),
                gr.update(value=True) if preview.pairs else gr.update()]

    def on_diversity(pid: int | None, version_id: Any) -> list:
        require_project(pid)
        if version_id in (None, ""):
            raise gr.Error("Freeze or pick a dataset version first.")
        from studio.quality.diversity import version_diversity

        try:
            report = version_diversity(ws, int(version_id))
        except StudioError as exc:
            raise fail(exc) from None
        return [diversity_md(report), map_html(report), hist_html(report)]

    def on_export(pid: int | None, version_id: Any, fmt: str, style_value: str) -> list[str]:
        require_project(pid)
        if version_id in (None, ""):
            raise gr.Error("Freeze or pick a dataset version first.")
        from studio.data.export import export_version

        try:
            result = export_version(ws, int(version_id), file_format=fmt, style=style_value)
        except StudioError as exc:
            raise fail(exc) from None
        gr.Info(f"Exported {sum(result.rows.values())} rows to {result.folder}.")
        return [str(p) for p in result.files.values()] + [str(result.card_path)]

    form = [name, validation, test, cap, test_synthetic, general, general_fraction, seed, pairs_on, machine, pairs_held]
    pairs_btn.click(on_pairs, [current, machine, pairs_held], [pairs_out, pairs_table, pairs_on])
    plan_btn.click(on_plan, [current, *form], plan_out)
    freeze_btn.click(on_freeze, [current, *form], [plan_out, versions, version, card, name])
    version.change(card_for, version, card)
    diversity_btn.click(on_diversity, [current, version], [diversity_summary, map_plot, hist_plot])
    export_btn.click(on_export, [current, version, file_format, style], files)

    return TabHandle(refresh, refresh_outputs)
