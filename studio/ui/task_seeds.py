"""Task & Seeds tab: describe the task precisely, upload seed examples, map columns, import, edit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.data.formats import FORMATS, FieldValues, SeedFormat, parse_label_names, summary_text
from studio.data.importer import ImportPreview, build_preview, commit_import, preview_rows
from studio.data.readers import SUPPORTED_EXTENSIONS, RawTable, ReadOptions, read_table
from studio.errors import StudioError
from studio.models.registry import list_models, resolve
from studio.task_advice import advice_markdown
from studio.ui import texts
from studio.ui.tab import TabHandle, fail, require_project
from studio.workspace import Workspace
from studio.workspace.projects import get_project, update_project
from studio.workspace.seeds import delete_seeds, existing_keys, get_seed, list_seeds, update_seed

# Every canonical field of every format, in a stable order: one mapping dropdown and one editor box each.
ALL_FIELDS: list[str] = list(dict.fromkeys(f.name for spec in FORMATS.values() for f in spec.fields))
SEED_COLUMNS = ["id", "format", "prompt / input", "response / label", "source"]
PREVIEW_COLUMNS = ["row", "status", "prompt", "response", "problems"]
PROBLEM_COLUMNS = ["row", "in the file", "column", "severity", "what is wrong"]
FILE_TYPES = list(SUPPORTED_EXTENSIONS)
EXAMPLE_SEEDS = Path(__file__).resolve().parents[2] / "assets" / "examples" / "support_replies.jsonl"


def _chat_model_choices(ws: Workspace, *current: str) -> list[str]:
    refs = [m.ref for m in list_models(ws.models_dir) if m.role == "chat"]
    return list(dict.fromkeys([*refs, *(c for c in current if c)]))


def seeds_frame(ws: Workspace, pid: int | None) -> pd.DataFrame:
    rows = []
    if pid is not None:
        for s in list_seeds(ws, pid):
            prompt, answer = summary_text(s.format, s.data)
            source = f"{s.source} row {s.source_row}" if s.source_row else s.source
            rows.append([s.id, s.format.value, prompt, answer, source])
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def _format_choices() -> list[tuple[str, str]]:
    return [(spec.title, fmt.value) for fmt, spec in FORMATS.items()]


def _mapping_updates(preview: ImportPreview | None) -> list[dict]:
    """One dropdown update per canonical field: visible for the chosen format, choices = file columns."""
    updates = []
    fmt = preview.format if preview else None
    fields = {f.name: f for f in FORMATS[fmt].fields} if fmt else {}
    columns = [texts.NOT_MAPPED, *(preview.table.columns if preview else [])]
    for name in ALL_FIELDS:
        spec = fields.get(name)
        updates.append(gr.update(
            visible=spec is not None, choices=columns,
            value=(preview.mapping.get(name) if preview else None) or texts.NOT_MAPPED,
            label=f"{name}{'' if spec is None or spec.required else ' (optional)'}",
            info=spec.help if spec else texts.MAPPING_FIELD_HELP))
    return updates


def _read_option_updates(table: RawTable | None, preview: ImportPreview | None) -> list[dict]:
    """Sheet picker, header tick, chat-tree paths and label names: each shown only where it applies."""
    if table is None:
        return [gr.update(visible=False, choices=[], value=None), gr.update(visible=False, value=True),
                gr.update(visible=False, value=texts.PATHS_BEST), gr.update(visible=False, value="")]
    names = preview.label_names if preview else None
    names_text = ", ".join(f"{k}={v}" for k, v in names.items()) if names else ""
    show_names = preview is not None and preview.format == SeedFormat.CLASSIFICATION
    return [gr.update(visible=len(table.sheets) > 1, choices=table.sheets, value=table.sheet or None),
            gr.update(visible=table.has_header is not None, value=bool(table.has_header)),
            gr.update(visible=table.chat_tree,
                      value=texts.PATHS_ALL if table.options.chat_paths == "all" else texts.PATHS_BEST),
            gr.update(visible=show_names, value=names_text)]


def _preview_outputs(preview: ImportPreview | None, table: RawTable | None, keep_open: bool = False) -> list:
    """Every output of a preview. `keep_open`: the person is working in the mapping step (a column, a sheet,
    label names): it stays open even when the result needs nothing more from them."""
    if preview is None:
        return [table, gr.update(value=texts.NOTHING_UPLOADED), gr.update(value=None, interactive=False),
                *_mapping_updates(None), gr.update(open=False), *_read_option_updates(None, None),
                pd.DataFrame(columns=PREVIEW_COLUMNS),
                gr.update(value=pd.DataFrame(columns=PROBLEM_COLUMNS), visible=False),
                gr.update(interactive=False, value=texts.IMPORT_BUTTON)]
    c = preview.counts
    lines = [f"**{preview.summary()}**"]
    if preview.detection.needs_mapping or preview.mapping_problem:
        lines.append(f"⚠️ {preview.mapping_problem or preview.detection.message}")
    else:
        lines.append(f"✅ {preview.detection.message}")
    if preview.table.layout:
        lines.append(f"Read as: **{preview.table.layout}**")
    if preview.extra_notes:
        lines.append("\n".join(f"- {n}" for n in preview.extra_notes))
    problems = pd.DataFrame([[p.row, p.origin, p.column, p.severity, p.message] for p in preview.problems],
                            columns=PROBLEM_COLUMNS)
    rows = pd.DataFrame(preview_rows(preview), columns=PREVIEW_COLUMNS)
    n = c["usable"] if not preview.mapping_problem else 0
    return [table, "\n\n".join(lines),
            gr.update(value=preview.format.value if preview.format else None, interactive=True),
            *_mapping_updates(preview),
            gr.update(open=True) if preview.detection.needs_mapping or preview.mapping_problem else (
                gr.update() if keep_open else gr.update(open=False)),
            *_read_option_updates(table, preview),
            rows, gr.update(value=problems, visible=not problems.empty),
            gr.update(interactive=n > 0, value=f"Import {n} seed{'' if n == 1 else 's'}" if n else texts.IMPORT_BUTTON)]


def build(ws: Workspace, current: gr.State) -> TabHandle:
    table_state = gr.State(None)  # the uploaded RawTable, kept only until imported (nothing saved yet)

    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown(texts.TASK_HEADER)
            task = gr.Textbox(label=texts.TASK_LABEL, info=texts.TASK_HELP, placeholder=texts.TASK_PLACEHOLDER,
                              lines=3, elem_id="task-description")
            advice = gr.Markdown(advice_markdown(""), elem_id="task-advice")
        with gr.Column(scale=2):
            base = gr.Dropdown(label=texts.BASE_MODEL, info=texts.BASE_MODEL_HELP, allow_custom_value=True,
                               choices=[], elem_id="base-model")
            teacher = gr.Dropdown(label=texts.TEACHER, info=texts.TEACHER_HELP, allow_custom_value=True,
                                  choices=[], elem_id="teacher-model")

    gr.Markdown(texts.SEEDS_HEADER)
    gr.Markdown(texts.SEEDS_HELP)
    with gr.Row():
        upload = gr.File(label=texts.UPLOAD_LABEL, file_types=FILE_TYPES, type="filepath", elem_id="seed-upload",
                         scale=2)
        with gr.Column(scale=3):
            summary = gr.Markdown(texts.NOTHING_UPLOADED, elem_id="import-summary")
            example = gr.Button(texts.EXAMPLE_BUTTON, size="sm", variant="secondary", elem_id="use-example",
                                visible=EXAMPLE_SEEDS.exists())
            with gr.Accordion(texts.HUB_ACCORDION, open=False), gr.Row(equal_height=True):
                hub_id = gr.Textbox(label=texts.HUB_ID, placeholder=texts.HUB_ID_PLACEHOLDER, scale=3)
                hub_split = gr.Textbox(label=texts.HUB_SPLIT, value="train", scale=1)
                hub_load = gr.Button(texts.HUB_LOAD, scale=1)
    with gr.Accordion(texts.MAPPING_ACCORDION, open=False) as mapping_box:
        with gr.Row():
            sheet = gr.Dropdown(label=texts.SHEET_LABEL, info=texts.SHEET_HELP, choices=[], visible=False,
                                elem_id="seed-sheet")
            header = gr.Checkbox(label=texts.HEADER_LABEL, info=texts.HEADER_HELP, value=True, visible=False,
                                 elem_id="seed-header")
            paths = gr.Radio([texts.PATHS_BEST, texts.PATHS_ALL], value=texts.PATHS_BEST, label=texts.PATHS_LABEL,
                             visible=False, elem_id="seed-paths")
        fmt = gr.Dropdown(label=texts.FORMAT_LABEL, info=texts.FORMAT_HELP, choices=_format_choices(),
                          value=None, interactive=False, elem_id="seed-format")
        with gr.Row():
            field_maps = [gr.Dropdown(label=name, choices=[texts.NOT_MAPPED], value=texts.NOT_MAPPED,
                                      visible=False, interactive=True, elem_id=f"map-{name}")
                          for name in ALL_FIELDS]
        label_names = gr.Textbox(label=texts.LABEL_NAMES_LABEL, info=texts.LABEL_NAMES_HELP, visible=False,
                                 placeholder="negative, positive", elem_id="seed-label-names")
    source_state = gr.State(None)  # the upload's path, to read it again with other ReadOptions
    preview_table = gr.Dataframe(pd.DataFrame(columns=PREVIEW_COLUMNS), label=texts.PREVIEW_LABEL,
                                 interactive=False, wrap=True, max_height=420, elem_id="seed-preview",
                                 column_widths=["6%", "10%", "37%", "30%", "17%"])
    problems_table = gr.Dataframe(pd.DataFrame(columns=PROBLEM_COLUMNS), label=texts.PROBLEMS_LABEL,
                                  interactive=False, wrap=True, max_height=240, elem_id="seed-problems",
                                  visible=False, column_widths=["7%", "14%", "12%", "10%", "57%"])
    import_btn = gr.Button(texts.IMPORT_BUTTON, variant="primary", interactive=False, elem_id="import-seeds")

    gr.Markdown(texts.LIBRARY_HEADER)
    seed_count = gr.Markdown("", elem_id="seed-count")
    seeds = gr.Dataframe(seeds_frame(ws, None), label=texts.LIBRARY_HELP, interactive=False, wrap=True,
                         max_height=480, elem_id="seed-library", column_widths=["7%", "13%", "40%", "25%", "15%"])
    with gr.Accordion(texts.EDITOR_ACCORDION, open=False) as editor_box:
        selected = gr.State(None)
        editor_note = gr.Markdown(texts.EDIT_NONE)
        editors = [gr.Textbox(label=name, visible=False, lines=2, max_lines=12, elem_id=f"edit-{name}")
                   for name in ALL_FIELDS]
        with gr.Row():
            save = gr.Button(texts.EDIT_SAVE, variant="primary", interactive=False)
            delete = gr.Button(texts.EDIT_DELETE, variant="stop", interactive=False)

    read_options = [sheet, header, paths, label_names]
    preview_outputs = [table_state, summary, fmt, *field_maps, mapping_box, *read_options, preview_table,
                       problems_table, import_btn]
    editor_outputs = [selected, editor_note, *editors, save, delete]

    # ------------------------------------------------------------------ handlers

    def refresh(pid: int | None) -> list:
        if pid is None:
            return [gr.update(value="", interactive=False), advice_markdown(""), gr.update(value=None),
                    gr.update(value=None), seeds_frame(ws, None), "", *_editor_updates(None)]
        p = get_project(ws, pid)
        choices = _chat_model_choices(ws, p.base_model_ref, p.teacher_ref)
        return [gr.update(value=p.task_description, interactive=True), advice_markdown(p.task_description),
                gr.update(choices=choices, value=p.base_model_ref or None),
                gr.update(choices=choices, value=p.teacher_ref or None),
                seeds_frame(ws, pid), _count_text(p.seed_count), *_editor_updates(None)]

    def _count_text(n: int) -> str:
        hint = " Aim for 50–100 varied, carefully checked examples." if n < 50 else ""
        return f"**{n} seed{'' if n == 1 else 's'}** in this project.{hint}"

    def save_task(pid: int | None, text: str) -> str:
        if pid is not None:
            update_project(ws, pid, task_description=text)
        return advice_markdown(text)

    def save_model(pid: int | None, ref: str | None, which: str) -> None:
        if pid is None or not ref:
            return
        try:
            resolve(ref, ws.models_dir)
        except StudioError as exc:
            raise fail(exc) from None
        update_project(ws, pid, **{which: ref})
        gr.Info(f"{'Base model' if which == 'base_model_ref' else 'Teacher'} set to {ref}.")

    def _known(pid: int | None) -> dict[str, int]:
        if pid is None:
            return {}
        with ws.read() as conn:
            return existing_keys(conn, pid)

    def show_table(pid: int | None, load: Callable[[], RawTable], keep_open: bool = False) -> list:
        """Read a source and preview it; a source that cannot be read says why, in place of the preview."""
        try:
            table = load()
        except StudioError as exc:
            gr.Warning(str(exc), duration=None)
            out = _preview_outputs(None, None)
            out[1] = f"❌ {exc}"
            return out
        return _preview_outputs(build_preview(table, known_keys=_known(pid)), table, keep_open)

    def read_upload(path: str, options: ReadOptions | None = None) -> RawTable:
        return read_table(path, display_name=Path(path).name, max_bytes=ws.settings.max_upload_bytes,
                          options=options)

    def on_upload(pid: int | None, path: str | None) -> list:
        if not path:
            return [None, *_preview_outputs(None, None)]
        return [path, *show_table(pid, lambda: read_upload(path))]

    def on_read_option(pid: int | None, path: str | None, table: RawTable | None, sheet_name: str | None,
                       has_header: bool, paths_choice: str) -> list:
        """The sheet, header or chat-path choice changed: read the same upload again with it."""
        if not path or table is None:
            return _preview_outputs(None, None)
        options = ReadOptions(sheet=sheet_name or None if table.sheets else None,
                              header=bool(has_header) if table.has_header is not None else None,
                              chat_paths="all" if paths_choice == texts.PATHS_ALL else "best")
        return show_table(pid, lambda: read_upload(path, options), keep_open=True)

    def on_example(pid: int | None) -> list:
        return [None, *show_table(pid, lambda: read_table(EXAMPLE_SEEDS, max_bytes=ws.settings.max_upload_bytes))]

    def on_hub(pid: int | None, repo: str, split: str) -> list:
        from studio.data.hub_source import read_hub_dataset

        return [None, *show_table(pid, lambda: read_hub_dataset(repo.strip(), split=(split or "train").strip(),
                                                                max_bytes=ws.settings.max_upload_bytes))]

    def on_remap(pid: int | None, table: RawTable | None, fmt_value: str | None, names: str, *maps: str) -> list:
        if table is None:
            return _preview_outputs(None, None)
        try:
            return _preview_outputs(remapped(pid, table, fmt_value, names, maps), table, keep_open=True)
        except StudioError as exc:
            raise fail(exc) from None

    def on_format(pid: int | None, table: RawTable | None, fmt_value: str | None) -> list:
        # A new format starts from its detected mapping (if any) instead of the old format's fields.
        if table is None:
            return _preview_outputs(None, None)
        return _preview_outputs(build_preview(table, fmt=fmt_value or None, known_keys=_known(pid)), table,
                                keep_open=True)

    def on_import(pid: int | None, table: RawTable | None, fmt_value: str | None, names: str, *maps: str) -> list:
        pid = require_project(pid)
        if table is None:
            raise gr.Error("Upload a seed file first.")
        try:
            preview = remapped(pid, table, fmt_value, names, maps)
            result = commit_import(ws, pid, preview)
        except StudioError as exc:
            raise fail(exc) from None
        gr.Info(result.message(preview.source))
        p = get_project(ws, pid)
        return [None, *_preview_outputs(None, None), None, seeds_frame(ws, pid), _count_text(p.seed_count)]

    def remapped(pid: int | None, table: RawTable, fmt_value: str | None, names: str,
                 maps: tuple[str, ...]) -> ImportPreview:
        chosen = SeedFormat(fmt_value) if fmt_value else None
        allowed = {f.name for f in FORMATS[chosen].fields} if chosen else set()
        mapping = {name: col for name, col in zip(ALL_FIELDS, maps, strict=True)
                   if col and col != texts.NOT_MAPPED and name in allowed}
        label_ids = parse_label_names(names) if chosen == SeedFormat.CLASSIFICATION else None
        return build_preview(table, fmt=chosen, mapping=mapping, known_keys=_known(pid), label_names=label_ids)

    def _editor_updates(seed_id: int | None) -> list:
        if seed_id is None:
            return [None, texts.EDIT_NONE, *[gr.update(visible=False, value="") for _ in ALL_FIELDS],
                    gr.update(interactive=False), gr.update(interactive=False)]
        s = get_seed(ws, seed_id)
        values = FieldValues.from_record(s.format, s.data).values
        return [s.id, f"Editing seed **#{s.id}** ({FORMATS[s.format].title}, from {s.source or 'manual entry'})",
                *[gr.update(visible=name in values, value=values.get(name, "")) for name in ALL_FIELDS],
                gr.update(interactive=True), gr.update(interactive=True)]

    def on_select(frame: pd.DataFrame, evt: gr.SelectData) -> list:
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        try:
            seed_id = int(frame.iloc[int(row)]["id"])
            return [*_editor_updates(seed_id), gr.update(open=True)]
        except (StudioError, KeyError, IndexError, ValueError):
            return [*_editor_updates(None), gr.update()]

    def on_save(pid: int | None, seed_id: int | None, *values: str) -> list:
        pid = require_project(pid)
        if seed_id is None:
            raise gr.Error("Click a seed in the table first.")
        try:
            update_seed(ws, seed_id, dict(zip(ALL_FIELDS, values, strict=True)))
        except StudioError as exc:
            raise fail(exc) from None
        gr.Info(f"Seed #{seed_id} saved.")
        return [seeds_frame(ws, pid), *_editor_updates(seed_id)]

    def on_delete(pid: int | None, seed_id: int | None) -> list:
        pid = require_project(pid)
        if seed_id is None:
            raise gr.Error("Click a seed in the table first.")
        n = delete_seeds(ws, pid, [seed_id])
        gr.Info(f"Seed #{seed_id} deleted." if n else f"Seed #{seed_id} was already gone.")
        return [seeds_frame(ws, pid), _count_text(get_project(ws, pid).seed_count), *_editor_updates(None)]

    # ------------------------------------------------------------------ wiring

    task.input(advice_markdown, inputs=[task], outputs=[advice], show_progress="hidden", api_name=False,
               trigger_mode="always_last")
    task.blur(save_task, inputs=[current, task], outputs=[advice], show_progress="hidden", api_name=False)
    base.input(lambda pid, ref: save_model(pid, ref, "base_model_ref"), inputs=[current, base], api_name=False)
    teacher.input(lambda pid, ref: save_model(pid, ref, "teacher_ref"), inputs=[current, teacher], api_name=False)

    sourced_outputs = [source_state, *preview_outputs]
    upload.upload(on_upload, inputs=[current, upload], outputs=sourced_outputs, api_name=False)
    upload.clear(lambda: [None, *_preview_outputs(None, None)], outputs=sourced_outputs, api_name=False)
    example.click(on_example, inputs=[current], outputs=sourced_outputs, api_name=False)
    hub_load.click(on_hub, inputs=[current, hub_id, hub_split], outputs=sourced_outputs, api_name=False)
    hub_id.submit(on_hub, inputs=[current, hub_id, hub_split], outputs=sourced_outputs, api_name=False)
    for option in (sheet, header, paths):
        option.input(on_read_option, inputs=[current, source_state, table_state, sheet, header, paths],
                     outputs=preview_outputs, api_name=False)
    fmt.input(on_format, inputs=[current, table_state, fmt], outputs=preview_outputs, api_name=False)
    remap_inputs = [current, table_state, fmt, label_names, *field_maps]
    for dd in field_maps:
        dd.input(on_remap, inputs=remap_inputs, outputs=preview_outputs, api_name=False)
    label_names.submit(on_remap, inputs=remap_inputs, outputs=preview_outputs, api_name=False)
    label_names.blur(on_remap, inputs=remap_inputs, outputs=preview_outputs, api_name=False)
    import_btn.click(on_import, inputs=remap_inputs,
                     outputs=[*sourced_outputs, upload, seeds, seed_count], api_name=False)

    seeds.select(on_select, inputs=[seeds], outputs=[*editor_outputs, editor_box], api_name=False)
    save.click(on_save, inputs=[current, selected, *editors], outputs=[seeds, *editor_outputs], api_name=False)
    delete.click(on_delete, inputs=[current, selected], outputs=[seeds, seed_count, *editor_outputs],
                 api_name=False)

    refresh_outputs = [task, advice, base, teacher, seeds, seed_count, *editor_outputs]
    return TabHandle(refresh, refresh_outputs, summary_changed=seed_count)
