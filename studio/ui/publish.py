"""Publish tab: push a run's adapter (optionally merged) and a dataset version to the Hub, each with its card.

Which token pushes: a token pasted here (kept in this browser session's state only), else, on a Space, the
visitor's "Sign in with Hugging Face" login (OAuth, so visitors push to their own account), else, off a Space,
HF_TOKEN or the saved huggingface_hub login. On a Space the owner's token is never used for a visitor's push.
The token is passed to studio.publish and dropped: never written to the workspace, a card or a log.
"""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
import pandas as pd

from studio.errors import StudioError
from studio.ui import export_panel, texts
from studio.ui.tab import TabHandle, fail, require_project
from studio.workspace import Workspace

PUB_COLUMNS = ["what", "repo", "commit", "private", "when", "link"]


def publishable_runs(ws: Workspace, pid: int | None) -> list[tuple[str, int]]:
    """Finished runs with something to publish (an adapter or a full model), newest first."""
    from studio.train.runs import list_runs

    if pid is None:
        return []
    return [(f"{r.title} · {r.method} on {r.base_model_ref} · {r.status}", r.id) for r in list_runs(ws, pid)
            if r.status in ("done", "stopped") and r.output_dir]


def publications_frame(ws: Workspace, pid: int | None) -> pd.DataFrame:
    from studio.publish.push import list_publications

    rows = []
    if pid is not None:
        for p in list_publications(ws, pid):
            what = f"dataset version {p.subject_id}" if p.kind == "dataset" else f"{p.kind} of run {p.subject_id}"
            rows.append([what, p.repo_id, p.revision[:10], "yes" if p.private else "no",
                         p.created_at.replace("T", " ")[:16], p.url])
    return pd.DataFrame(rows, columns=PUB_COLUMNS)


def _token(ws: Workspace, pasted: str | None, oauth: Any) -> str | None:
    """The token for this push; see the module docstring for the order."""
    if pasted and pasted.strip():
        return pasted.strip()
    if oauth is not None and getattr(oauth, "token", None):
        return oauth.token
    if ws.settings.on_space:
        raise gr.Error(texts.PUBLISH_NO_TOKEN_SPACE)
    from studio.publish.auth import resolve_token

    return resolve_token()  # None: push_* raises the plain "no token" message


def oauth_enabled() -> bool:
    """'Sign in with Hugging Face' works: a Space with `hf_oauth: true` (the Hub then sets OAUTH_CLIENT_ID).

    Elsewhere Gradio mocks the button with the local login, which is not what a visitor should see.
    """
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))


def build(ws: Workspace, current: gr.State) -> TabHandle:
    gr.Markdown(texts.PUBLISH_INTRO)
    with gr.Row():
        if oauth_enabled():
            gr.LoginButton(elem_id="publish-login")
        token_box = gr.Textbox(label=texts.PUBLISH_TOKEN, type="password", scale=3, elem_id="publish-token",
                               info=texts.PUBLISH_TOKEN_HELP_SPACE if ws.settings.on_space
                               else texts.PUBLISH_TOKEN_HELP)
        check = gr.Button(texts.PUBLISH_CHECK, scale=1, elem_id="publish-check")
    account_md = gr.Markdown("", elem_id="publish-account")

    gr.Markdown(texts.PUBLISH_MODEL_TITLE)
    with gr.Row():
        run = gr.Dropdown([], label=texts.PUBLISH_RUN, scale=3, elem_id="publish-run")
        repo = gr.Textbox(label=texts.PUBLISH_REPO, info=texts.PUBLISH_REPO_HELP, placeholder="support-replies-lora",
                          scale=2, elem_id="publish-repo")
    with gr.Row():
        private = gr.Checkbox(True, label=texts.PUBLISH_PRIVATE, elem_id="publish-private")
        merged = gr.Checkbox(False, label=texts.PUBLISH_MERGED, elem_id="publish-merged")
        with_exports = gr.Checkbox(True, label=texts.EXPORT_WITH_PUSH, elem_id="publish-exports")
        link = gr.Textbox(label=texts.PUBLISH_DATASET_LINK, placeholder="support-replies-data", elem_id="publish-link")
    model_go = gr.Button(texts.PUBLISH_MODEL_GO, variant="primary", elem_id="publish-model-go")
    with gr.Accordion(texts.PUBLISH_CARD, open=False):
        card_preview = gr.Markdown("", elem_id="publish-card")
    export_panel.build(ws, run)

    gr.Markdown(texts.PUBLISH_DATASET_TITLE)
    with gr.Row():
        version = gr.Dropdown([], label=texts.PUBLISH_VERSION, scale=3, elem_id="publish-version")
        ds_repo = gr.Textbox(label=texts.PUBLISH_DS_REPO, info=texts.PUBLISH_REPO_HELP,
                             placeholder="support-replies-data", scale=2, elem_id="publish-ds-repo")
        ds_private = gr.Checkbox(True, label=texts.PUBLISH_DS_PRIVATE, scale=1, elem_id="publish-ds-private")
    dataset_go = gr.Button(texts.PUBLISH_DATASET_GO, variant="primary", elem_id="publish-dataset-go")
    result = gr.Markdown("", elem_id="publish-result")

    gr.Markdown(texts.PUBLISH_DONE_TITLE)
    table = gr.Dataframe(pd.DataFrame(columns=PUB_COLUMNS), interactive=False, elem_id="publish-table")

    def card_text(run_id: Any, repo_name: str, dataset_repo: str) -> str:
        if run_id in (None, ""):
            return ""
        from studio.publish.model_card import model_card

        name = (repo_name or "").strip() or "your-name/your-model"
        if "/" not in name:
            name = f"your-name/{name}"
        try:
            return model_card(ws, int(run_id), name, dataset_repo=(dataset_repo or "").strip() or None)
        except StudioError as exc:
            return f"⚠️ {exc}"

    def refresh(pid: int | None) -> list:
        from studio.ui.train import version_choices

        runs = publishable_runs(ws, pid)
        versions = version_choices(ws, pid)
        first = runs[0][1] if runs else None
        return [gr.update(choices=runs, value=first), gr.update(choices=versions, value=versions[0][1] if versions
                                                                 else None),
                # A refresh (the page's load chain, a tab opened) can land after a push has answered: it must not
                # wipe that answer, so the result line is only ever replaced when there is nothing to publish.
                publications_frame(ws, pid), gr.update() if runs else ("" if pid is None else texts.PUBLISH_NO_RUN),
                card_text(first, "", "")]

    refresh_outputs = [run, version, table, result, card_preview]

    def on_check(pasted: str, oauth: gr.OAuthToken | None = None) -> str:
        from studio.publish.auth import account

        try:
            token = _token(ws, pasted, oauth)
            if not token:
                from studio.publish.auth import NO_TOKEN

                return f"⚠️ {NO_TOKEN}"
            acct = account(token)
        except StudioError as exc:
            return f"⚠️ {exc}"
        role = f" (token: {acct.role})" if acct.role else ""
        orgs = f"; organizations: {', '.join(acct.orgs)}" if acct.orgs else ""
        return f"✅ Signed in as **{acct.name}**{role}{orgs}. Bare repo names go under {acct.name}/."

    def on_model(pid: int | None, run_id: Any, repo_name: str, is_private: bool, with_merged: bool,
                 dataset_repo: str, exports: bool, pasted: str, oauth: gr.OAuthToken | None = None,
                 progress: gr.Progress = gr.Progress()) -> list:  # noqa: B008 - Gradio's own idiom
        pid = require_project(pid)
        if run_id in (None, ""):
            # Runs exist but none is picked (the page was still loading, or the choice was cleared).
            raise gr.Error(texts.PUBLISH_PICK_RUN if publishable_runs(ws, pid) else texts.PUBLISH_NO_RUN)
        from studio.publish.push import push_adapter

        token = _token(ws, pasted, oauth)
        try:
            pub = push_adapter(ws, int(run_id), repo_name, token=token, private=bool(is_private),
                               merged=bool(with_merged), dataset_repo=(dataset_repo or "").strip() or None,
                               exports=bool(exports), progress=lambda f, m: progress(f, desc=m))
        except StudioError as exc:
            raise fail(exc) from None
        lines = [f"✅ Pushed to [{pub.repo_id}]({pub.url}) ({'private' if pub.private else 'public'}), commit "
                 f"`{pub.revision[:10]}`: {', '.join(pub.files)}."]
        if pub.merged is not None:
            lines.append(f"✅ Merged model: [{pub.merged.repo_id}]({pub.merged.url}).")
        return ["\n\n".join(lines), publications_frame(ws, pid)]

    def on_dataset(pid: int | None, version_id: Any, repo_name: str, is_private: bool, pasted: str,
                   oauth: gr.OAuthToken | None = None,
                   progress: gr.Progress = gr.Progress()) -> list:  # noqa: B008 - Gradio's own idiom
        pid = require_project(pid)
        if version_id in (None, ""):
            raise gr.Error(texts.TRAIN_NEED_VERSION)
        from studio.publish.push import push_dataset

        token = _token(ws, pasted, oauth)
        try:
            pub = push_dataset(ws, int(version_id), repo_name, token=token, private=bool(is_private),
                               progress=lambda f, m: progress(f, desc=m))
        except StudioError as exc:
            raise fail(exc) from None
        return [f"✅ Pushed to [{pub.repo_id}]({pub.url}) ({'private' if pub.private else 'public'}), commit "
                f"`{pub.revision[:10]}`: {', '.join(pub.files)}.", publications_frame(ws, pid)]

    check.click(on_check, [token_box], [account_md])
    model_go.click(on_model, [current, run, repo, private, merged, link, with_exports, token_box], [result, table])
    dataset_go.click(on_dataset, [current, version, ds_repo, ds_private, token_box], [result, table])
    for trigger in (run.change, repo.blur, link.blur):
        trigger(card_text, [run, repo, link], [card_preview], show_progress="hidden")
    return TabHandle(refresh, refresh_outputs)
