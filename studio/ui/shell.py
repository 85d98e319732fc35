"""Assemble the studio page: header, project bar, the tabs of the flow, the models panel.

Tabs are added in the order of the flow (Task & Seeds · Generate · Review · Dataset · Train · Compare ·
Publish) by the issue that builds each one; no placeholder tabs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from studio.ui import (
    api,
    compare,
    dataset,
    generate,
    models_panel,
    project_bar,
    publish,
    review,
    task_seeds,
    texts,
    train,
)
from studio.ui.accessibility import DECORATIVE_ICONS_HEAD
from studio.ui.review import SHORTCUTS_JS as REVIEW_SHORTCUTS_JS
from studio.ui.visitors import HEAD as VISITOR_HEAD
from studio.ui.visitors import VISITORS_DIR, VisitorWorkspaces, per_visitor, visitor_homes
from studio.workspace import Workspace

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CSS_PATH = ASSETS / "studio.css"


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue="emerald", secondary_hue="sky", neutral_hue="slate")


def build_app(root: Workspace | None = None) -> gr.Blocks:
    """The page. Tabs get `ws`: the workspace itself, or, hosted for many people, a stand-in that resolves to
    each visitor's own workspace on every event (studio.ui.visitors)."""
    root = root or Workspace.open()
    ws: Any = VisitorWorkspaces(root) if per_visitor(root) else root
    with gr.Blocks(title=texts.TITLE, analytics_enabled=False) as demo:
        with gr.Row(elem_id="studio-header", equal_height=False):
            with gr.Column(scale=5, min_width=300):
                gr.Markdown(f"# 🌱 {texts.TITLE}\n{texts.TAGLINE}\n\n{texts.FIRST_STEP}", elem_id="studio-intro")
            # On the first screen, beside the sentence that names it; wraps under it on a phone.
            try_example = gr.Button(texts.TRY_EXAMPLE, variant="secondary", scale=1, min_width=180,
                                    elem_id="try-example")
        bar = project_bar.build(ws, try_example)
        with gr.Tabs():
            with gr.Tab(texts.TASK_TAB, id="task-seeds"):
                seeds_tab = task_seeds.build(ws, bar.current)
            with gr.Tab(texts.GENERATE_TAB, id="generate"):
                generate_tab = generate.build(ws, bar.current)
            with gr.Tab(texts.REVIEW_TAB, id="review") as review_tab_item:
                review_tab = review.build(ws, bar.current, review_tab_item)
            with gr.Tab(texts.DATASET_TAB, id="dataset") as dataset_tab_item:
                dataset_tab = dataset.build(ws, bar.current)
            with gr.Tab(texts.TRAIN_TAB, id="train") as train_tab_item:
                train_tab = train.build(ws, bar.current)
            with gr.Tab(texts.COMPARE_TAB, id="compare") as compare_tab_item:
                compare_tab = compare.build(ws, bar.current)
            with gr.Tab(texts.PUBLISH_TAB, id="publish") as publish_tab_item:
                publish_tab = publish.build(ws, bar.current)
        models_panel.build(ws, demo)
        api.register(ws)
        project_bar.wire(ws, bar, demo, [(seeds_tab.refresh, seeds_tab.refresh_outputs),
                                         (generate_tab.refresh, generate_tab.refresh_outputs),
                                         (review_tab.refresh, review_tab.refresh_outputs),
                                         (dataset_tab.refresh, dataset_tab.refresh_outputs),
                                         (train_tab.refresh, train_tab.refresh_outputs),
                                         (compare_tab.refresh, compare_tab.refresh_outputs),
                                         (publish_tab.refresh, publish_tab.refresh_outputs)])
        # "Support replies · 0 seeds" must not stay in the picker after an import.
        for handle in (seeds_tab, generate_tab, review_tab, dataset_tab, train_tab, compare_tab, publish_tab):
            if handle.summary_changed is not None:
                handle.summary_changed.change(lambda: project_bar.refresh_labels(ws), None, bar.picker,
                                              show_progress="hidden", api_name=False)
        # A tab shows what the earlier steps made since it was last drawn (a batch just generated, a run
        # just finished) as soon as it is opened, without a reload.
        for item, handle in ((review_tab_item, review_tab), (dataset_tab_item, dataset_tab),
                             (train_tab_item, train_tab), (compare_tab_item, compare_tab),
                             (publish_tab_item, publish_tab)):
            item.select(handle.refresh, [bar.current], handle.refresh_outputs, show_progress="hidden",
                        api_name=False)
    return demo


def launch(host: str | None = None, port: int | None = None) -> None:
    """Open the workspace, build the page and serve it (blocks). No model is loaded here."""
    ws = Workspace.open()
    for each in [ws, *(Workspace(replace(ws.settings, home=home)) for home in visitor_homes(ws))]:
        recover(each)
    demo = build_app(ws)
    _patient_start_check()
    # None lets Gradio read GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860).
    demo.queue(default_concurrency_limit=8).launch(server_name=host, server_port=port, **launch_kwargs(ws))


def _patient_start_check(seconds: float = 30.0) -> None:
    """Gradio checks its own server with one HEAD request and a 3 s timeout, and on a timeout exits ("a
    shareable link must be created"). On a busy machine (2 cores and a training worker) that timeout is
    normal: keep asking for up to `seconds` instead of dying at start."""
    import time

    from gradio import networking

    original = networking.url_ok
    if getattr(original, "patient", False):
        return

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if original(url):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)

    url_ok.patient = True  # type: ignore[attr-defined]
    networking.url_ok = url_ok


def recover(ws: Workspace) -> None:
    """After a restart: what was cut off shows as interrupted (ready to resume), queued runs start."""
    from studio import jobs
    from studio.evaluation.batch import reconcile_evals
    from studio.train import runs

    jobs.reconcile(ws)  # generation jobs left "running" by a killed studio
    runs.reconcile(ws)  # training runs whose process is gone
    runs.launch_next(ws)  # queued runs start when their device is free
    reconcile_evals(ws)  # evaluations cut off by the restart


def launch_kwargs(ws: Workspace) -> dict:
    """Arguments for demo.launch(): look, upload limit. Host/port come from GRADIO_SERVER_NAME/PORT."""
    shared = per_visitor(ws)
    return {
        "theme": theme(),
        "css_paths": [CSS_PATH] if CSS_PATH.exists() else None,
        "max_file_size": ws.settings.max_upload_bytes,
        # Exported files (datasets, reports) are offered for download from the workspaces' exports/ folders.
        "allowed_paths": [str(ws.exports_dir), *([str(ws.home / VISITORS_DIR)] if shared else [])],
        "js": REVIEW_SHORTCUTS_JS,
        # The visitor cookie must exist before the app's first event: a script in the head, not `js`.
        "head": DECORATIVE_ICONS_HEAD + (VISITOR_HEAD if shared else ""),
        "favicon_path": ASSETS / "logo.svg" if (ASSETS / "logo.svg").exists() else None,
    }
