"""Publish tab's export section: GGUF files, an Ollama Modelfile and the commands to run them (studio.export).

Shown under the model push, for the run picked there. The size estimate and anything that blocks an export
(a DoRA adapter for the adapter GGUF, a model family the writer does not support, too little disk) show as soon
as a run or an option is picked, before anything is written; the export itself reports progress per tensor.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from studio.errors import StudioError
from studio.ui import texts
from studio.ui.tab import fail
from studio.workspace import Workspace


def _quant_choices() -> list[tuple[str, str]]:
    from studio.export.gguf_model import QUANT_HELP, QUANTS

    return [(f"{q} — {QUANT_HELP[q].split(':')[0]}", q) for q in QUANTS]


def _request(quants: list[str] | None, adapter: bool, ollama: bool) -> Any:
    from studio.export.run_export import ExportRequest

    return ExportRequest(quants=list(quants or []), adapter=bool(adapter), ollama=bool(ollama))


def estimate_text(ws: Workspace, run_id: Any, quants: list[str] | None, adapter: bool, ollama: bool) -> str:
    if run_id in (None, ""):
        return texts.EXPORT_PICK_RUN
    from studio.export.run_export import plan_export

    try:
        plan = plan_export(ws, int(run_id), _request(quants, adapter, ollama))
    except StudioError as exc:
        return f"⚠️ {exc}"
    lines = [plan.summary(), *plan.notes]
    if plan.servability.vllm_ok:
        lines.append(plan.servability.summary())
    return "\n\n".join(lines)


def export_view(ws: Workspace, run_id: Any) -> str:
    """What the run's export folder holds, and the commands that run it."""
    if run_id in (None, ""):
        return ""
    from studio.export.run_export import human_size, list_export

    try:
        listed = list_export(ws, int(run_id))
    except StudioError as exc:
        return f"⚠️ {exc}"
    files = listed.get("files") or {}
    if not files:
        return texts.EXPORT_NOTHING
    lines = [f"**In {listed['folder']}:**", "", "| file | type | size |", "|---|---|---:|"]
    for name, f in sorted(files.items()):
        lines.append(f"| {name} | {f['kind']} {f['quant']} | {human_size(f['bytes'])} |")
    lines += ["", "**Run it:**", ""]
    for label, command in (listed.get("commands") or {}).items():
        lines += [f"*{label}*", "", "```bash", command, "```", ""]
    lines += [f"ℹ️ {note}" for note in listed.get("notes") or []]
    return "\n".join(lines)


def build(ws: Workspace, run: gr.Dropdown) -> None:
    """The section's components, following `run` (a refresh that sets it fires its change)."""
    gr.Markdown(texts.EXPORT_TITLE)
    gr.Markdown(texts.EXPORT_INTRO)
    with gr.Row():
        quants = gr.CheckboxGroup(_quant_choices(), value=["q8_0"], label=texts.EXPORT_QUANTS, scale=3,
                                  elem_id="export-quants")
        with gr.Column(scale=2):
            adapter = gr.Checkbox(False, label=texts.EXPORT_ADAPTER, elem_id="export-adapter")
            ollama = gr.Checkbox(True, label=texts.EXPORT_OLLAMA, elem_id="export-ollama")
    estimate = gr.Markdown("", elem_id="export-estimate")
    go = gr.Button(texts.EXPORT_GO, variant="primary", elem_id="export-go")
    view = gr.Markdown("", elem_id="export-result")

    def on_export(run_id: Any, qs: list[str], with_adapter: bool, with_ollama: bool,
                  progress: gr.Progress = gr.Progress()) -> list:  # noqa: B008 - Gradio's own idiom
        if run_id in (None, ""):
            raise gr.Error(texts.PUBLISH_PICK_RUN)
        from studio.export.run_export import export_run

        try:
            result = export_run(ws, int(run_id), _request(qs, with_adapter, with_ollama),
                                progress=lambda f, m: progress(f, desc=m))
        except StudioError as exc:
            raise fail(exc) from None
        return [f"✅ {result.summary()}", export_view(ws, run_id)]

    go.click(on_export, [run, quants, adapter, ollama], [estimate, view])
    for trigger in (quants.change, adapter.change, ollama.change):
        trigger(lambda r, q, a, o: estimate_text(ws, r, q, a, o), [run, quants, adapter, ollama], [estimate],
                show_progress="hidden")
    run.change(lambda r, q, a, o: [estimate_text(ws, r, q, a, o), export_view(ws, r)],
               [run, quants, adapter, ollama], [estimate, view], show_progress="hidden")
