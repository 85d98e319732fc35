"""Models panel: what models the studio can use here and whether each is ready. Loads nothing."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from studio.models.registry import list_models
from studio.ui import texts
from studio.workspace import Workspace

COLUMNS = ["model", "role", "kind", "status", "where"]


def models_frame(ws: Workspace) -> pd.DataFrame:
    rows = [[m.ref, m.role, m.kind, m.status, m.location] for m in list_models(ws.models_dir)]
    return pd.DataFrame(rows, columns=COLUMNS)


def build(ws: Workspace, demo: gr.Blocks) -> None:
    with gr.Accordion(texts.MODELS_ACCORDION, open=False, elem_id="models-panel"):
        gr.Markdown(texts.MODELS_HELP)
        table = gr.Dataframe(models_frame(ws), interactive=False, wrap=True, elem_id="models-table")
        refresh = gr.Button(texts.MODELS_REFRESH, size="sm")
    refresh.click(lambda: models_frame(ws), outputs=[table], api_name=False)
    demo.load(lambda: models_frame(ws), outputs=[table], api_name=False, show_progress="hidden")
