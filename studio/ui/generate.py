"""Generate tab: pick a strategy and a teacher, preview rows, run batches that stream into a table.

Batches run in a background thread of this process (studio.augment.batches); this tab only reads the
workspace: a timer polls the selected batch's job row and rows while it runs, and a reload or a second
browser tab shows the same state. The API key typed here stays in the browser session's state.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from studio.augment import batches
from studio.augment import plan as plans
from studio.augment.candidates import list_candidates
from studio.augment.prompt_versions import get_version, list_versions, reset_to_default, save_version
from studio.augment.strategies import DEFAULT_STYLES, STRATEGIES, STYLES, StrategyOptions, get_strategy
from studio.data.formats import summary_text
from studio.errors import GenerationError, StudioError
from studio.models.registry import DEFAULT_TEACHER, list_models
from studio.teachers.base import GenerationParams
from studio.teachers.spec import finished_runs, parse_teacher, try_teacher
from studio.ui import texts
from studio.ui.tab import TabHandle, fail, require_project
from studio.ui.visitors import concrete
from studio.workspace import Workspace
from studio.workspace.projects import get_project, update_project

BATCH_COLUMNS = ["batch", "strategy", "state", "rows", "failed", "teacher", "prompt", "started"]
ROW_COLUMNS = ["id", "status", "prompt / input", "response / label", "note", "seeds"]
PREVIEW_COLUMNS = ["status", "prompt / input", "response / label", "note", "seeds"]
POLL_SECONDS = 1.0
DEFAULT_STRATEGY = "few-shot"
DEFAULT_PER_CALL = 3
"""Few-shot rows per call: what the embedded teacher fits, with room to spare, in the default 256 tokens."""
COMMON_LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "ja_JP", "zh_CN"]


def _teacher_choices(ws: Workspace, pid: int | None, *current: str) -> list[tuple[str, str]]:
    choices = [(m.ref, m.ref) for m in list_models(ws.models_dir) if m.role == "chat"]
    if pid is not None:
        choices += [(title, ref) for ref, title in finished_runs(ws, pid)]
    seen = {v for _, v in choices}
    choices += [(c, c) for c in current if c and c not in seen]
    return choices


def _strategy_choices() -> list[tuple[str, str]]:
    return [(s.title, s.name) for s in STRATEGIES.values()]


def _augmenter_choices(checked: bool = True) -> list[tuple[str, str]]:
    """The augmenters, each marked when it cannot run here. Unchecked at start-up: WordNet's check imports nltk
    (over a second of every start); the list is checked when the person picks classic augmentation."""
    from studio.augment.classic import AUGMENTERS, available_augmenters

    if not checked:
        return [(spec.title, spec.name) for spec in AUGMENTERS.values()]
    return [(a.title if a.available else f"{a.title} (unavailable)", a.name) for a in available_augmenters()]


def _augmenter_help(name: str | None) -> str:
    from studio.augment.classic import AUGMENTERS, augmenter_info

    if name not in AUGMENTERS:
        return ""
    info = augmenter_info(name)
    return info.help if info.available else f"⚠️ {info.reason}"


def _parse_lines(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        kind, colon, values = line.partition(":")
        if not colon or not kind.strip():
            raise GenerationError(f"Line {n} of your own values should read TYPE: value, value (got '{line}').")
        out.setdefault(kind.strip().upper(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return out


def batches_frame(ws: Workspace, pid: int | None) -> pd.DataFrame:
    rows = []
    if pid is not None:
        for b in batches.list_batches(ws, pid):
            rows.append([b.id, get_strategy(b.strategy).title, b.state, f"{b.rows_ok} / {b.target_count}",
                         b.rows_failed, b.teacher_label if b.teacher else "—",
                         f"v{b.prompt_version}" if b.prompt_version else "—", b.created_at.replace("T", " ")[:16]])
    return pd.DataFrame(rows, columns=BATCH_COLUMNS)


def _note(status: str, error: str, meta: dict[str, Any]) -> str:
    parts = [f"{k}: {v}" for k, v in meta.items() if k in ("style", "augmenter", "variant", "locale")]
    parts += [f"{k}: {v}" for k, v in (meta.get("plan") or {}).items()]
    if error:
        parts.append(error)
    return "; ".join(parts)


def rows_frame(ws: Workspace, batch_id: int | None, limit: int = 500) -> pd.DataFrame:
    rows = []
    if batch_id is not None:
        for c in list_candidates(ws, batch_id=batch_id, limit=limit, newest_first=True):
            prompt, answer = c.summary() if c.usable else ("", c.raw_output[:300])
            status = "✓ ok" if c.parse_status == "ok" else ("~ partial" if c.usable else "✗ failed")
            rows.append([c.id, status, prompt, answer, _note(c.parse_status, c.parse_error, c.meta),
                         ", ".join(map(str, c.seed_ids))])
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def preview_frame(rows: list[batches.PreviewRow]) -> pd.DataFrame:
    out = []
    for p in rows:
        r = p.row
        prompt, answer = summary_text(r.format, r.data) if r.usable else ("", r.raw_output[:300])
        status = "✓ ok" if r.parse_status == "ok" else ("~ partial" if r.usable else "✗ failed")
        out.append([status, prompt, answer, _note(r.parse_status, r.parse_error, r.meta),
                    ", ".join(str(e.ref) for e in p.examples if not e.synthetic)])
    return pd.DataFrame(out, columns=PREVIEW_COLUMNS)


def progress_html(b: batches.Batch | None) -> str:
    if b is None:
        return f"<div class='gen-progress'><p>{texts.GEN_NO_BATCH}</p></div>"
    job = b.job
    pct = round(100 * min(1.0, b.rows_ok / b.target_count)) if b.target_count else 100
    detail = job.progress_text() if job else f"{b.rows_ok} rows (kept from a preview)"
    message = job.message if job else b.note
    state = b.state
    return (f"<div class='gen-progress' data-state='{state}' data-done='{b.rows_ok}' data-total='{b.target_count}'>"
            f"<div class='gen-progress-head'><b>Batch #{b.id}</b> · {get_strategy(b.strategy).title} · "
            f"<span class='gen-state gen-state-{state}'>{state}</span></div>"
            f"<div class='gen-bar'><div class='gen-bar-fill' style='width:{pct}%'></div></div>"
            f"<div class='gen-progress-text'>{detail} · {b.rows_failed} failed to parse</div>"
            f"<div class='gen-progress-message'>{gr_escape(message)}</div></div>")


def gr_escape(text: str) -> str:
    import html

    return html.escape(text or "")


def build(ws: Workspace, current: gr.State) -> TabHandle:
    selected_batch = gr.State(None)
    preview_state = gr.State(None)  # (BatchRequest, [PreviewRow]) until kept or discarded: never saved
    api_key = gr.State("")  # session only; never written anywhere

    gr.Markdown(texts.GEN_INTRO)
    with gr.Row():
        with gr.Column(scale=3):
            strategy = gr.Radio(_strategy_choices(), value=DEFAULT_STRATEGY, label=texts.GEN_STRATEGY,
                                info=texts.GEN_STRATEGY_HELP, elem_id="gen-strategy")
            strategy_help = gr.Markdown(get_strategy(DEFAULT_STRATEGY).help, elem_id="gen-strategy-help")
            with gr.Group():
                per_call = gr.Slider(1, 20, value=DEFAULT_PER_CALL, step=1, label=texts.GEN_PER_CALL,
                                     info=texts.GEN_PER_CALL_HELP, elem_id="gen-per-call")
                shots = gr.Slider(1, 10, value=5, step=1, label=texts.GEN_SHOTS, info=texts.GEN_SHOTS_HELP,
                                  elem_id="gen-shots")
                include_synthetic = gr.Checkbox(False, label=texts.GEN_SYNTHETIC, info=texts.GEN_SYNTHETIC_HELP)
                hint = gr.Textbox(label=texts.GEN_HINT, info=texts.GEN_HINT_HELP,
                                  placeholder=texts.GEN_HINT_PLACEHOLDER, elem_id="gen-hint")
                styles = gr.CheckboxGroup([(f"{k} — {v}", k) for k, v in STYLES.items()], value=list(DEFAULT_STYLES),
                                          label=texts.GEN_STYLES, info=texts.GEN_STYLES_HELP, visible=False,
                                          elem_id="gen-styles")
                custom_styles = gr.Textbox(label=texts.GEN_CUSTOM_STYLES, info=texts.GEN_CUSTOM_STYLES_HELP, lines=2,
                                           visible=False)
                augmenter = gr.Dropdown(_augmenter_choices(checked=False), value="keyboard", label=texts.GEN_AUGMENTER,
                                        info=texts.GEN_AUGMENTER_HELP, visible=False, elem_id="gen-augmenter")
                augmenter_help = gr.Markdown(_augmenter_help("keyboard"), visible=False)
                copies = gr.Slider(1, 10, value=2, step=1, label=texts.GEN_COPIES, visible=False, elem_id="gen-copies")
                strength = gr.Slider(0.05, 0.5, value=0.1, step=0.05, label=texts.GEN_STRENGTH,
                                     info=texts.GEN_STRENGTH_HELP, visible=False)
                locale = gr.Dropdown(COMMON_LOCALES, value="en_US", allow_custom_value=True, label=texts.GEN_LOCALE,
                                     visible=False)
                user_values = gr.Textbox(label=texts.GEN_VALUES, info=texts.GEN_VALUES_HELP, lines=2, visible=False)
        with gr.Column(scale=2) as teacher_box:
            teacher = gr.Dropdown([], label=texts.GEN_TEACHER, info=texts.GEN_TEACHER_HELP, allow_custom_value=True,
                                  elem_id="gen-teacher")
            test_btn = gr.Button(texts.GEN_TEST, size="sm", elem_id="gen-test")
            test_result = gr.Markdown("", elem_id="gen-test-result")
            teacher_note = gr.Markdown(texts.GEN_TEACHER_SMALL, elem_id="gen-teacher-note")
            with gr.Accordion(texts.GEN_ADVANCED, open=False):
                endpoint_model = gr.Textbox(label=texts.GEN_ENDPOINT_MODEL, info=texts.GEN_ENDPOINT_MODEL_HELP)
                key_box = gr.Textbox(label=texts.GEN_API_KEY, info=texts.GEN_API_KEY_HELP, type="password")
                with gr.Row():
                    concurrency = gr.Number(4, label=texts.GEN_CONCURRENCY, precision=0, minimum=1, maximum=64)
                    timeout = gr.Number(60, label=texts.GEN_TIMEOUT, minimum=1, maximum=3600)
                    batch_size = gr.Number(16, label=texts.GEN_BATCH_SIZE, precision=0, minimum=1, maximum=256)
                temperature = gr.Slider(0, 1.5, value=0.8, step=0.05, label=texts.GEN_TEMPERATURE,
                                        info=texts.GEN_TEMPERATURE_HELP)
                top_p = gr.Slider(0.05, 1, value=0.95, step=0.05, label=texts.GEN_TOP_P)
                max_tokens = gr.Slider(16, 2048, value=256, step=16, label=texts.GEN_MAX_TOKENS,
                                       elem_id="gen-max-tokens")
                rng_seed = gr.Number(None, label=texts.GEN_SEED, info=texts.GEN_SEED_HELP, precision=0, minimum=0,
                                     elem_id="gen-seed")

    with gr.Accordion(texts.GEN_PLAN, open=False, elem_id="gen-plan") as plan_box:
        gr.Markdown(texts.GEN_PLAN_HELP)
        with gr.Row(equal_height=True):
            use_plan = gr.Checkbox(False, label=texts.GEN_PLAN_USE, elem_id="gen-plan-use", scale=1)
            plan_version = gr.Dropdown([], label=texts.GEN_PLAN_VERSION, elem_id="gen-plan-version", scale=2)
        with gr.Row():
            topics = gr.Textbox(label=texts.GEN_PLAN_TOPICS, info=texts.GEN_PLAN_TOPICS_HELP, lines=6, max_lines=20,
                                placeholder=texts.GEN_PLAN_TOPICS_PLACEHOLDER, elem_id="gen-plan-topics", scale=3)
            attributes = gr.Textbox(label=texts.GEN_PLAN_ATTRIBUTES, info=texts.GEN_PLAN_ATTRIBUTES_HELP, lines=6,
                                    placeholder=plans.format_attributes(plans.DiversityPlan.from_dict(
                                        {"attributes": {k: [{"value": v} for v in vs]
                                                        for k, vs in plans.SUGGESTED_ATTRIBUTES.items()}}).attributes),
                                    elem_id="gen-plan-attributes", scale=2)
        with gr.Row():
            suggest_btn = gr.Button(texts.GEN_PLAN_SUGGEST, size="sm", elem_id="gen-plan-suggest")
            upload_btn = gr.UploadButton(texts.GEN_PLAN_UPLOAD, file_types=[".txt", ".csv", ".tsv", ".json", ".jsonl"],
                                         size="sm", elem_id="gen-plan-upload")
            save_plan_btn = gr.Button(texts.GEN_PLAN_SAVE, size="sm", variant="secondary", elem_id="gen-plan-save")
        plan_status = gr.Markdown("", elem_id="gen-plan-status")

    with gr.Accordion(texts.GEN_PROMPT, open=False) as prompt_box:
        gr.Markdown(texts.GEN_PROMPT_HELP)
        with gr.Row():
            version = gr.Dropdown([], label=texts.GEN_PROMPT_VERSION, scale=2, elem_id="gen-prompt-version")
            prompt_note = gr.Textbox(label=texts.GEN_PROMPT_NOTE, scale=3)
        template = gr.Code(language="jinja2", lines=14, label=texts.GEN_PROMPT, elem_id="gen-template")
        with gr.Row():
            save_prompt = gr.Button(texts.GEN_PROMPT_SAVE, variant="secondary", elem_id="gen-prompt-save")
            reset_prompt = gr.Button(texts.GEN_PROMPT_RESET, size="sm")

    with gr.Row(equal_height=True):
        count = gr.Number(20, label=texts.GEN_COUNT, info=texts.GEN_COUNT_HELP, precision=0, minimum=1,
                          elem_id="gen-count", scale=2)
        preview_btn = gr.Button(texts.GEN_PREVIEW, scale=1, elem_id="gen-preview")
        start_btn = gr.Button(texts.GEN_START, variant="primary", scale=1, elem_id="gen-start")
    with gr.Group(visible=False) as preview_box:
        gr.Markdown(texts.GEN_PREVIEW_NOTE)
        preview_table = gr.Dataframe(pd.DataFrame(columns=PREVIEW_COLUMNS), interactive=False, wrap=True,
                                     max_height=360, elem_id="gen-preview-table")
        with gr.Row():
            keep_btn = gr.Button(texts.GEN_KEEP, variant="primary", elem_id="gen-keep")
            discard_btn = gr.Button(texts.GEN_DISCARD, elem_id="gen-discard")

    progress = gr.HTML(progress_html(None), elem_id="gen-progress")
    with gr.Row():
        stop_btn = gr.Button(texts.GEN_STOP, variant="stop", interactive=False, elem_id="gen-stop", size="sm")
        resume_btn = gr.Button(texts.GEN_RESUME, interactive=False, elem_id="gen-resume", size="sm")
    rows_table = gr.Dataframe(pd.DataFrame(columns=ROW_COLUMNS), label=texts.GEN_ROWS, interactive=False, wrap=True,
                              max_height=480, elem_id="gen-rows", column_widths=["7%", "9%", "32%", "32%", "12%", "8%"])
    with gr.Accordion(texts.GEN_PROVENANCE, open=False) as provenance_box:
        provenance = gr.Code(language="json", label=texts.GEN_PROVENANCE_HELP, elem_id="gen-provenance")
    batches_table = gr.Dataframe(batches_frame(ws, None), label=f"{texts.GEN_BATCHES} · {texts.GEN_BATCHES_HELP}",
                                 interactive=False, wrap=True, max_height=300, elem_id="gen-batches")
    timer = gr.Timer(POLL_SECONDS, active=False)

    option_inputs = [strategy, per_call, shots, include_synthetic, hint, styles, custom_styles, augmenter, copies,
                     strength, locale, user_values]
    teacher_inputs = [teacher, endpoint_model, concurrency, timeout, batch_size]
    decoding_inputs = [temperature, top_p, max_tokens, rng_seed]
    plan_inputs = [use_plan, topics, attributes]

    # ------------------------------------------------------------------ building requests

    def make_request(pid: int, count_value: Any, version_id: Any, *values: Any) -> batches.BatchRequest:
        (strat_name, n, k, synth, hint_text, style_names, custom, aug, n_copies, strength_value, loc,
         values_text, teacher_ref, ep_model, conc, tmo, bsize, temp, topp, maxtok, seed_value,
         plan_on, topics_text, attributes_text) = values
        strat = get_strategy(strat_name)
        custom_list = [line.strip() for line in (custom or "").splitlines() if line.strip()]
        options = StrategyOptions(n=int(n), k=int(k), include_synthetic=bool(synth), diversity_hint=hint_text or "",
                                  styles=[*(style_names or []), *custom_list], augmenter=aug or "keyboard",
                                  copies=int(n_copies), strength=float(strength_value), locale=loc or "en_US",
                                  user_values=_parse_lines(values_text))
        spec = None
        if strat.uses_teacher:
            spec = parse_teacher(teacher_ref or DEFAULT_TEACHER, model=ep_model or "",
                                 batch_size=int(bsize or 16), concurrency=int(conc or 4), timeout=float(tmo or 60))
        # Like the CLI's --seed: one number picks the seeds shown and seeds the sampling.
        seed = int(seed_value) if seed_value not in (None, "") else None
        diversity = None
        if plan_on and strat.uses_plan:
            diversity = typed_plan(topics_text, attributes_text)
            if diversity.empty:
                raise GenerationError("The diversity plan is on but empty: add topics, or untick 'Use this plan'.")
        return batches.BatchRequest(pid, strat.name, int(count_value or 0), spec,
                                    int(version_id) if version_id and strat.uses_teacher else None, options,
                                    GenerationParams(int(maxtok), float(temp), float(topp), seed), seed,
                                    plan=diversity)

    # ------------------------------------------------------------------ handlers

    def prompt_updates(pid: int | None, strat_name: str, version_id: int | None = None) -> list:
        strat = get_strategy(strat_name)
        if pid is None or not strat.uses_teacher:
            return [gr.update(choices=[], value=None, interactive=False),
                    gr.update(value=texts.GEN_NO_PROMPT if pid is not None else "", interactive=False)]
        versions = list_versions(ws, pid, strat.name)
        chosen = next((v for v in versions if v.id == version_id), versions[0])
        return [gr.update(choices=[(v.label, v.id) for v in versions], value=chosen.id, interactive=True),
                gr.update(value=chosen.template, interactive=True)]

    def on_strategy(pid: int | None, strat_name: str, augmenter_name: str | None) -> list:
        strat = get_strategy(strat_name)
        name = strat.name
        show = {
            "per_call": name in ("instruction-expansion", "few-shot"),
            "shots": name == "few-shot",
            "hint": name in ("instruction-expansion", "few-shot"),
            "styles": name == "response-expansion",
            "nlpaug": name == "nlpaug",
            "copies": name in ("nlpaug", "entity-swap"),
            "swap": name == "entity-swap",
        }
        return [strat.help, gr.update(visible=show["per_call"]), gr.update(visible=show["shots"]),
                gr.update(visible=show["shots"]), gr.update(visible=show["hint"]), gr.update(visible=show["styles"]),
                gr.update(visible=show["styles"]),
                gr.update(visible=True, choices=_augmenter_choices()) if show["nlpaug"] else gr.update(visible=False),
                gr.update(visible=True, value=_augmenter_help(augmenter_name)) if show["nlpaug"]
                else gr.update(visible=False), gr.update(visible=show["copies"]),
                gr.update(visible=show["nlpaug"]), gr.update(visible=show["swap"]), gr.update(visible=show["swap"]),
                gr.update(visible=strat.uses_teacher), gr.update(visible=strat.uses_teacher),
                *prompt_updates(pid, name), gr.update(visible=strat.uses_plan)]

    strategy_outputs = [strategy_help, per_call, shots, include_synthetic, hint, styles, custom_styles, augmenter,
                        augmenter_help, copies, strength, locale, user_values, teacher_box, prompt_box, version,
                        template, plan_box]

    def plan_updates(pid: int | None, plan_id: int | None = None) -> list:
        """use_plan, plan_version, topics, attributes for the project's newest (or the chosen) plan."""
        saved = plans.list_plans(ws, pid) if pid is not None else []
        if not saved:
            return [False, gr.update(choices=[], value=None), "", ""]
        chosen = next((v for v in saved if v.id == plan_id), saved[0])
        return [True, gr.update(choices=[(v.label, v.id) for v in saved], value=chosen.id),
                plans.format_values(chosen.plan.topics), plans.format_attributes(chosen.plan.attributes)]

    plan_outputs = [use_plan, plan_version, topics, attributes]

    def batch_view(pid: int | None, batch_id: int | None) -> list:
        b = None
        if batch_id is not None:
            try:
                b = batches.get_batch(ws, batch_id)
            except GenerationError:
                b = None
        if b is not None and b.project_id != pid:
            b = None
        active = bool(b and b.job and b.job.active)
        return [progress_html(b), rows_frame(ws, b.id if b else None), batches_frame(ws, pid),
                gr.update(interactive=active), gr.update(interactive=bool(b and b.resumable)),
                gr.Timer(active=active)]

    view_outputs = [progress, rows_table, batches_table, stop_btn, resume_btn, timer]

    def refresh(pid: int | None) -> list:
        if pid is None:
            return [None, None, gr.update(choices=[], value=None), *prompt_updates(None, DEFAULT_STRATEGY),
                    *batch_view(None, None), gr.update(visible=False), DEFAULT_STRATEGY, *plan_updates(None)]
        p = get_project(ws, pid)
        ref = p.teacher_ref or DEFAULT_TEACHER
        newest = batches.list_batches(ws, pid)
        selected = newest[0].id if newest else None
        # The strategy goes back to the default with the project, so the prompt shown is always its own.
        return [selected, None, gr.update(choices=_teacher_choices(ws, pid, ref), value=ref),
                *prompt_updates(pid, DEFAULT_STRATEGY), *batch_view(pid, selected), gr.update(visible=False),
                DEFAULT_STRATEGY, *plan_updates(pid)]

    refresh_outputs = [selected_batch, preview_state, teacher, version, template, *view_outputs, preview_box,
                       strategy, *plan_outputs]

    def on_plan_version(pid: int | None, plan_id: int | None) -> list:
        if pid is None or plan_id is None:
            return [gr.update()] * 2
        chosen = plans.get_plan(ws, int(plan_id))
        return [plans.format_values(chosen.plan.topics), plans.format_attributes(chosen.plan.attributes)]

    def on_save_plan(pid: int | None, topics_text: str, attributes_text: str) -> list:
        pid = require_project(pid)
        try:
            v = plans.save_plan(ws, pid, typed_plan(topics_text, attributes_text))
        except StudioError as exc:
            raise fail(exc) from None
        return [*plan_updates(pid, v.id), f"Saved plan {v.label}: {len(v.plan.topics)} topics, "
                f"{len(v.plan.attributes)} things to vary."]

    def on_upload_topics(file: Any, topics_text: str) -> list:
        if file is None:
            return [gr.update(), ""]
        path = getattr(file, "name", file)
        try:
            found = plans.read_topic_file(path)
            merged = merge_topics(topics_text, [plans.format_values([v]) for v in found])
        except StudioError as exc:
            raise fail(exc) from None
        return [merged, f"Added {len(found)} topics from the file."]

    def on_suggest(pid: int | None, key: str, topics_text: str, *teacher_values: Any) -> list:
        pid = require_project(pid)
        ref, ep_model, conc, tmo, bsize = teacher_values
        try:
            spec = parse_teacher(ref or DEFAULT_TEACHER, model=ep_model or "", batch_size=int(bsize or 16),
                                 concurrency=int(conc or 4), timeout=float(tmo or 60))
            from studio.teachers.spec import build_teacher

            found = plans.propose_topics(ws, pid, build_teacher(ws, spec, api_key=key or None))
        except StudioError as exc:
            raise fail(exc) from None
        return [merge_topics(topics_text, found), True,
                f"The teacher suggested {len(found)} topics; edit or delete any, then save or start a batch."]

    def on_teacher(pid: int | None, ref: str | None, ep_model: str) -> str:
        if pid is None or not ref:
            return ""
        try:
            spec = parse_teacher(ref, model=ep_model or "")
            if spec.kind == "local" and not spec.ref.startswith("run:"):
                from studio.models.registry import resolve

                resolve(spec.ref, ws.models_dir)
        except StudioError as exc:
            return f"⚠️ {exc}"
        update_project(ws, pid, teacher_ref=spec.label)
        return ""

    def on_test(pid: int | None, key: str, *teacher_values: Any) -> str:
        ref, ep_model, conc, tmo, bsize = teacher_values
        try:
            spec = parse_teacher(ref or DEFAULT_TEACHER, model=ep_model or "", batch_size=int(bsize or 16),
                                 concurrency=int(conc or 4), timeout=float(tmo or 60))
            return "✅ " + try_teacher(ws, spec, api_key=key or None)
        except StudioError as exc:
            return f"❌ {exc}"

    def on_version(pid: int | None, strat_name: str, version_id: int | None) -> str:
        if pid is None or version_id is None or not get_strategy(strat_name).uses_teacher:
            return gr.update()
        return get_version(ws, int(version_id)).template

    def on_save_prompt(pid: int | None, strat_name: str, source: str, note: str, version_id: int | None) -> list:
        pid = require_project(pid)
        try:
            v = save_version(ws, pid, strat_name, source or "", note=note or "",
                             parent_id=int(version_id) if version_id else None)
        except StudioError as exc:
            raise fail(exc) from None
        gr.Info(f"Saved prompt {v.label}.")
        return [*prompt_updates(pid, strat_name, v.id), ""]

    def on_reset_prompt(pid: int | None, strat_name: str) -> list:
        pid = require_project(pid)
        v = reset_to_default(ws, pid, strat_name)
        return [*prompt_updates(pid, strat_name, v.id), ""]

    def on_preview(pid: int | None, key: str, version_id: Any, *values: Any) -> list:
        pid = require_project(pid)
        try:
            req = make_request(pid, batches.PREVIEW_ROWS, version_id, *values)
            rows = batches.preview(ws, req, api_key=key or None)
        except StudioError as exc:
            raise fail(exc) from None
        return [(req, rows), gr.update(visible=True), preview_frame(rows),
                gr.update(interactive=any(r.row.usable for r in rows))]

    def on_keep(pid: int | None, state: Any) -> list:
        pid = require_project(pid)
        if not state:
            raise gr.Error("There is no preview to keep. Press Preview first.")
        req, rows = state
        try:
            b = batches.keep_preview(ws, req, rows)
        except StudioError as exc:
            raise fail(exc) from None
        gr.Info(f"Kept {b.rows_ok} rows as batch #{b.id}.")
        return [None, gr.update(visible=False), b.id, *batch_view(pid, b.id)]

    def on_discard() -> list:
        return [None, gr.update(visible=False)]

    def on_start(pid: int | None, key: str, count_value: Any, version_id: Any, *values: Any) -> list:
        pid = require_project(pid)
        try:
            req = make_request(pid, count_value, version_id, *values)
            b = batches.plan_batch(ws, req)
            batches.start_in_background(concrete(ws), b.id, api_key=key or None)
        except StudioError as exc:
            raise fail(exc) from None
        return [b.id, *batch_view(pid, b.id)]

    def on_stop(pid: int | None, batch_id: int | None) -> list:
        if batch_id is not None:
            batches.stop_batch(ws, batch_id)
        return batch_view(pid, batch_id)

    def on_resume(pid: int | None, key: str, batch_id: int | None) -> list:
        if batch_id is None:
            raise gr.Error("Pick a batch in the table first.")
        try:
            batches.start_in_background(concrete(ws), batch_id, api_key=key or None)
        except StudioError as exc:
            raise fail(exc) from None
        return batch_view(pid, batch_id)

    def on_select(pid: int | None, frame: pd.DataFrame, evt: gr.SelectData) -> list:
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        try:
            batch_id = int(frame.iloc[row]["batch"])
        except (IndexError, KeyError, ValueError, TypeError):
            return [gr.update(), *[gr.update()] * len(view_outputs)]
        return [batch_id, *batch_view(pid, batch_id)]

    def on_row(frame: pd.DataFrame, evt: gr.SelectData) -> list:
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        try:
            return [candidate_json(ws, int(frame.iloc[row]["id"])), gr.update(open=True)]
        except (IndexError, KeyError, ValueError, TypeError):
            return [gr.update(), gr.update()]

    # ------------------------------------------------------------------ wiring

    strategy.change(on_strategy, [current, strategy, augmenter], strategy_outputs)
    augmenter.change(_augmenter_help, augmenter, augmenter_help)
    key_box.change(lambda k: k, key_box, api_key)
    # Saved on a person's choice only (.input): .change also fires when the tab's refresh fills the box, and a
    # refresh that lands late would write back the teacher it read before someone changed it elsewhere.
    teacher.input(on_teacher, [current, teacher, endpoint_model], test_result)
    test_btn.click(on_test, [current, api_key, *teacher_inputs], test_result)
    version.input(on_version, [current, strategy, version], template)
    save_prompt.click(on_save_prompt, [current, strategy, template, prompt_note, version],
                      [version, template, prompt_note])
    reset_prompt.click(on_reset_prompt, [current, strategy], [version, template, prompt_note])
    all_values = [*option_inputs, *teacher_inputs, *decoding_inputs, *plan_inputs]
    plan_version.input(on_plan_version, [current, plan_version], [topics, attributes])
    save_plan_btn.click(on_save_plan, [current, topics, attributes], [*plan_outputs, plan_status])
    upload_btn.upload(on_upload_topics, [upload_btn, topics], [topics, plan_status])
    suggest_btn.click(on_suggest, [current, api_key, topics, *teacher_inputs], [topics, use_plan, plan_status])
    teacher.change(lambda ref: gr.update(visible=(ref or DEFAULT_TEACHER) == DEFAULT_TEACHER), teacher, teacher_note)
    preview_btn.click(on_preview, [current, api_key, version, *all_values],
                      [preview_state, preview_box, preview_table, keep_btn])
    keep_btn.click(on_keep, [current, preview_state], [preview_state, preview_box, selected_batch, *view_outputs])
    discard_btn.click(on_discard, None, [preview_state, preview_box])
    start_btn.click(on_start, [current, api_key, count, version, *all_values], [selected_batch, *view_outputs])
    stop_btn.click(on_stop, [current, selected_batch], view_outputs)
    resume_btn.click(on_resume, [current, api_key, selected_batch], view_outputs)
    rows_table.select(on_row, rows_table, [provenance, provenance_box])
    batches_table.select(on_select, [current, batches_table], [selected_batch, *view_outputs])
    timer.tick(batch_view, [current, selected_batch], view_outputs)

    return TabHandle(refresh, refresh_outputs)


def typed_plan(topics_text: str, attributes_text: str) -> plans.DiversityPlan:
    """The plan as typed in the two boxes (GenerationError naming the line when a line cannot be read)."""
    return plans.DiversityPlan(plans.parse_values(topics_text or ""), plans.parse_attributes(attributes_text or ""))


def merge_topics(current: str, new: list[str]) -> str:
    """The box's topics, then the new ones it does not hold yet (compared without case and weight)."""
    lines = [line for line in (current or "").splitlines() if line.strip()]
    have = {line.split("|")[0].strip().lower() for line in lines}
    for topic in new:
        if topic.split("|")[0].strip().lower() not in have:
            lines.append(topic)
            have.add(topic.split("|")[0].strip().lower())
    return "\n".join(lines)


def candidate_json(ws: Workspace, candidate_id: int) -> str:
    """One row's provenance as pretty JSON (for a details view)."""
    from studio.augment.candidates import get_candidate

    c = get_candidate(ws, candidate_id)
    return json.dumps(c.to_json() if c else {}, ensure_ascii=False, indent=2)
