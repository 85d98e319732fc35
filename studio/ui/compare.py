"""Compare tab: the base model and one or two fine-tuned runs answering the same prompt side by side (all
columns stream at once from one batched call on one base model), batch metrics on held-out rows, a blind
A/B vote, the seeds-only vs seeds + synthetic ablation, and the report export.

Evaluations, votes and ablations are rows in the workspace (studio.evaluation); this tab only starts them
and reads them back, so a reload or a restart shows the same numbers. The one thing held in memory is the
loaded model (one base with its adapters), kept between prompts so only the first one waits for it.
"""

from __future__ import annotations

import html
import re
import threading
from typing import Any

import gradio as gr
import pandas as pd

from studio import charts
from studio.data.readers import SUPPORTED_EXTENSIONS
from studio.errors import StudioError
from studio.ui import texts
from studio.ui.tab import TabHandle, fail, require_project
from studio.ui.visitors import concrete
from studio.workspace import Workspace

POLL_SECONDS = 2.0
EVAL_COLUMNS = ["metric", "base", "fine-tuned", "change"]
EXAMPLE_COLUMNS = ["#", "prompt", "reference", "base answer", "fine-tuned answer", "ROUGE-L change", "judge",
                   "seen in training"]
FILE_TYPES = list(SUPPORTED_EXTENSIONS)
METRIC_LABELS = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact": "Exact match"}


def _esc(text: Any) -> str:
    return html.escape(str(text or ""))


# ---------------------------------------------------------------------------------------- the loaded model

_MODEL: dict[str, Any] = {}
_MODEL_LOCK = threading.Lock()


def loaded_model(ws: Workspace, base_ref: str, run_ids: list[int]) -> Any:
    """The SideBySide for (base, runs), loaded once and kept; a different pick replaces it (one model in memory)."""
    from studio.evaluation.sidebyside import SideBySide

    key = (str(ws.home), base_ref, tuple(sorted(set(run_ids))))
    with _MODEL_LOCK:
        if _MODEL.get("key") != key:
            _MODEL.clear()  # drop the old model before loading the next, so two never sit in memory
            _MODEL["model"] = SideBySide.load(ws, base_ref, list(key[2]))
            _MODEL["key"] = key
        return _MODEL["model"]


def model_for_run(ws: Workspace, run_id: int) -> Any:
    """The loaded model if it already holds this run; else load base + this run (replacing the old one)."""
    from studio.train.runs import get_run

    with _MODEL_LOCK:
        key = _MODEL.get("key")
        if key and key[0] == str(ws.home) and run_id in key[2]:
            return _MODEL["model"]
    return loaded_model(ws, get_run(ws, run_id).base_model_ref, [run_id])


def start_eval(ws: Workspace, run_id: int, cfg: Any) -> Any:
    """Create an evaluation (every check first) and run it in a thread of the app; the row shows progress."""
    from studio.evaluation.batch import create_eval, get_eval, run_eval, stop_eval

    ws = concrete(ws)  # the thread outlives the event: it needs the visitor's real workspace
    ev = create_eval(ws, run_id, cfg)

    def work() -> None:
        try:
            model = model_for_run(ws, run_id)
        except Exception:  # run_eval then loads the model itself and records why that fails
            model = None
        try:
            if get_eval(ws, ev.id).status == "queued":
                run_eval(ws, ev.id, model=model)
        except StudioError:
            pass  # run_eval records the failure on the evaluation row; the poll shows it
        except Exception:
            stop_eval(ws, ev.id)  # never left "queued" for ever

    threading.Thread(target=work, name=f"eval-{ev.id}", daemon=True).start()
    return ev


# ---------------------------------------------------------------------------------------- choices

def run_choices(ws: Workspace, pid: int | None) -> list[tuple[str, int]]:
    """Finished (or stopped) LoRA / QLoRA runs with a saved adapter, newest first."""
    from studio.train.runs import list_runs

    if pid is None:
        return []
    out = []
    for r in list_runs(ws, pid):
        if r.method not in ("lora", "qlora") or r.status not in ("done", "stopped") or not r.output_dir:
            continue
        from pathlib import Path

        if not (Path(r.output_dir) / "adapter" / "adapter_config.json").is_file():
            continue
        out.append((f"{r.title} · {r.method} on {r.base_model_ref} · {r.status}", r.id))
    return out


def test_prompts(ws: Workspace, run_id: int | None, split: str = "test") -> list[str]:
    if run_id is None:
        return []
    from studio.evaluation.ab import ab_prompts

    try:
        return ab_prompts(ws, int(run_id), split)
    except StudioError:
        return []


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def prompt_choices(prompts: list[str]) -> list[tuple[str, str]]:
    return [(_short(p), p) for p in prompts]


# ---------------------------------------------------------------------------------------- evaluation view

def eval_progress_html(ev: Any) -> str:
    if ev is None:
        return f"<div class='eval-progress' data-status='none'><p>{_esc(texts.EVAL_NONE)}</p></div>"
    done, total = ev.progress
    pct = round(100 * done / total) if total else (100 if ev.status == "done" else 0)
    return (f"<div class='gen-progress eval-progress' data-status='{_esc(ev.status)}' data-eval='{ev.id}'>"
            f"<div class='gen-progress-head'><b>Evaluation {ev.id}</b> · run {ev.run_id} · {_esc(ev.where)} · "
            f"<span class='gen-state gen-state-{_esc(ev.status)}'>{_esc(ev.status)}</span></div>"
            f"<div class='gen-bar'><div class='gen-bar-fill' style='width:{pct}%'></div></div>"
            f"<div class='gen-progress-text'>{done} / {total} rows</div>"
            f"<div class='gen-progress-message'>{_esc(ev.message)}</div></div>")


def eval_note(ev: Any) -> str:
    """Above the table: a held-out file's name, format and rows, and the warning when rows repeat training."""
    if ev is None or ev.status != "done":
        return ""
    lines = [_esc(line) for line in ev.notes()]
    failed = [e for e in (ev.metrics or {}).get("extra") or [] if e.get("error")]
    lines += [f"⚠️ {_esc(e['error'])}" for e in failed]
    return "\n\n".join(lines)


def eval_frames(ev: Any) -> tuple[pd.DataFrame, str, pd.DataFrame, str]:
    """(metric table, chart html, per-example table, judge line) of a finished evaluation."""
    empty = (pd.DataFrame(columns=EVAL_COLUMNS), charts.empty(texts.EVAL_CHART, texts.EVAL_NONE),
             pd.DataFrame(columns=EXAMPLE_COLUMNS), "")
    if ev is None or ev.status != "done" or not ev.metrics:
        return empty
    m = ev.metrics
    rows = [[METRIC_LABELS.get(r["metric"], r["metric"]), round(r["base"], 4), round(r["tuned"], 4),
             f"{r['delta']:+.4f}"] for r in m.get("rows", [])]
    for name, label in (("loss", "Loss (lower is better)"), ("perplexity", "Perplexity (lower is better)")):
        pair = m.get(name) or {}
        if pair.get("base") is not None and pair.get("tuned") is not None:
            rows.append([label, round(pair["base"], 4), round(pair["tuned"], 4),
                         f"{pair['tuned'] - pair['base']:+.4f}"])
    for e in m.get("extra") or []:
        if not e.get("error"):
            rows.append([e.get("title", e["metric"]), round(e["base"], 4), round(e["tuned"], 4), f"{e['delta']:+.4f}"])
    groups: dict[str, dict[str, float]] = {}
    for r in m.get("rows", []):
        scale = 100.0 if r["metric"] == "bleu" else 1.0  # BLEU is 0..100; the chart shows 0..1
        label = METRIC_LABELS.get(r["metric"], r["metric"]) + (" / 100" if scale != 1 else "")
        groups[label] = {"base": r["base"] / scale, "fine-tuned": r["tuned"] / scale}
    chart = charts.bar_chart(groups, title=texts.EVAL_CHART, y_label="score (0-1)", lo=0.0, hi=1.0)
    examples = [[e["index"], _short(e.get("prompt", ""), 160), _short(e.get("reference", ""), 160),
                 _short(e.get("base_pred", ""), 200), _short(e.get("tuned_pred", ""), 200),
                 f"{e.get('change', 0.0):+.3f}", e.get("judge") or "", e.get("overlap") or ""] for e in ev.examples]
    judge = m.get("judge")
    judge_line = f"**Judge:** {judge['message']}" if judge else ""
    return (pd.DataFrame(rows, columns=EVAL_COLUMNS), chart, pd.DataFrame(examples, columns=EXAMPLE_COLUMNS),
            judge_line)


def metric_names(text: str | None) -> list[str]:
    """The extra metrics typed in the box: separated by commas or new lines."""
    return [name.strip() for name in re.split(r"[,\n]", text or "") if name.strip()]


def _ab_tally(ws: Workspace, run_id: Any) -> str:
    if run_id in (None, ""):
        return ""
    from studio.evaluation.ab import vote_summary

    try:
        s = vote_summary(ws, int(run_id))
    except StudioError:
        return ""
    if s.n == 0:
        return "No votes yet for this run."
    return f"**{s.n} votes.** {s.message}"


def _ablation_md(ws: Workspace, pid: int | None, *, evaluate: bool = False) -> str:
    if pid is None:
        return texts.ABL_NONE
    from studio.evaluation.ablation import ablation_report, list_ablations

    found = list_ablations(ws, pid)
    if not found:
        return texts.ABL_NONE
    report = ablation_report(ws, found[0].id, evaluate_missing=evaluate)
    return report.to_markdown()


# ---------------------------------------------------------------------------------------- the tab

def build(ws: Workspace, current: gr.State) -> TabHandle:
    from studio.train.presets import PRESETS

    gr.Markdown(texts.COMPARE_INTRO)

    # --- side by side
    gr.Markdown(texts.COMPARE_SIDE_TITLE)
    with gr.Row():
        runs = gr.Dropdown([], multiselect=True, max_choices=2, label=texts.COMPARE_RUNS, info=texts.COMPARE_RUNS_HELP,
                           scale=3, elem_id="compare-runs")
        base = gr.Dropdown([], label=texts.COMPARE_BASE, info=texts.COMPARE_BASE_HELP, allow_custom_value=True,
                           scale=2, elem_id="compare-base")
    with gr.Row():
        prompt = gr.Textbox(label=texts.COMPARE_PROMPT, placeholder=texts.COMPARE_PROMPT_PLACEHOLDER, lines=3,
                            scale=3, elem_id="compare-prompt")
        pick = gr.Dropdown([], label=texts.COMPARE_PICK, info=texts.COMPARE_PICK_HELP, scale=2,
                           elem_id="compare-pick")
    with gr.Accordion(texts.COMPARE_DECODING, open=False), gr.Row():
        max_tokens = gr.Slider(8, 512, value=128, step=8, label=texts.COMPARE_MAX_TOKENS,
                               elem_id="compare-max-tokens")
        temperature = gr.Slider(0.0, 1.5, value=0.0, step=0.05, label=texts.COMPARE_TEMPERATURE,
                                elem_id="compare-temperature")
        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label=texts.COMPARE_TOP_P, elem_id="compare-top-p")
        seed = gr.Number(0, precision=0, label=texts.COMPARE_SEED, elem_id="compare-seed")
    go = gr.Button(texts.COMPARE_GO, variant="primary", elem_id="compare-go")
    status = gr.Markdown("", elem_id="compare-status")
    with gr.Row(equal_height=True):
        out_base = gr.Textbox(label=texts.COMPARE_OUT_BASE, lines=8, interactive=False, elem_id="compare-out-base")
        out_1 = gr.Textbox(label="Fine-tuned", lines=8, interactive=False, elem_id="compare-out-1")
        out_2 = gr.Textbox(label="Fine-tuned (second run)", lines=8, interactive=False, visible=False,
                           elem_id="compare-out-2")

    # --- numbers
    gr.Markdown(texts.EVAL_TITLE)
    gr.Markdown(texts.EVAL_INTRO)
    with gr.Row():
        eval_run = gr.Dropdown([], label=texts.EVAL_RUN, scale=3, elem_id="eval-run")
        split = gr.Radio(texts.EVAL_SOURCES, value="test", label=texts.EVAL_SPLIT, scale=2, elem_id="eval-split")
        limit = gr.Number(0, precision=0, minimum=0, label=texts.EVAL_LIMIT, scale=1, elem_id="eval-limit")
    eval_file = gr.File(label=texts.EVAL_FILE, file_types=FILE_TYPES, type="filepath", visible=False,
                        elem_id="eval-file")
    with gr.Row():
        extra_metrics = gr.Textbox(label=texts.EVAL_METRICS, info=texts.EVAL_METRICS_HELP, scale=3,
                                   placeholder=texts.EVAL_METRICS_PLACEHOLDER, elem_id="eval-metrics")
        judge = gr.Checkbox(False, label=texts.EVAL_JUDGE, scale=2, elem_id="eval-judge")
    with gr.Row():
        eval_go = gr.Button(texts.EVAL_GO, variant="primary", elem_id="eval-go")
        eval_stop = gr.Button(texts.EVAL_STOP, variant="stop", size="sm", interactive=False, elem_id="eval-stop")
    eval_progress = gr.HTML(eval_progress_html(None), elem_id="eval-progress")
    note_box = gr.Markdown("", elem_id="eval-note")
    eval_table = gr.Dataframe(pd.DataFrame(columns=EVAL_COLUMNS), label=texts.EVAL_TABLE, interactive=False,
                              elem_id="eval-table")
    judge_line = gr.Markdown("", elem_id="eval-judge-line")
    eval_chart = gr.HTML(charts.empty(texts.EVAL_CHART, texts.EVAL_NONE), elem_id="eval-chart")
    eval_examples = gr.Dataframe(pd.DataFrame(columns=EXAMPLE_COLUMNS), label=texts.EVAL_EXAMPLES, interactive=False,
                                 max_height=360, wrap=True, elem_id="eval-examples",
                                 column_widths=["4%", "20%", "17%", "17%", "17%", "8%", "6%", "11%"])
    eval_id = gr.State(None)
    eval_timer = gr.Timer(POLL_SECONDS, active=False)

    # --- blind A/B
    gr.Markdown(texts.AB_TITLE)
    gr.Markdown(texts.AB_INTRO)
    with gr.Row():
        ab_prompt = gr.Textbox(label=texts.AB_PROMPT, lines=2, scale=3, elem_id="ab-prompt")
        voter = gr.Textbox(label=texts.AB_VOTER, scale=1, elem_id="ab-voter")
    ab_next = gr.Button(texts.AB_NEXT, elem_id="ab-next")
    ab_shown = gr.Markdown("", elem_id="ab-shown-prompt")
    with gr.Row(equal_height=True):
        ab_a = gr.Textbox(label=texts.AB_A, lines=8, interactive=False, elem_id="ab-a")
        ab_b = gr.Textbox(label=texts.AB_B, lines=8, interactive=False, elem_id="ab-b")
    with gr.Row():
        vote_a = gr.Button(texts.AB_VOTE_A, interactive=False, elem_id="ab-vote-a")
        vote_tie = gr.Button(texts.AB_VOTE_TIE, interactive=False, elem_id="ab-vote-tie")
        vote_b = gr.Button(texts.AB_VOTE_B, interactive=False, elem_id="ab-vote-b")
    reveal = gr.Markdown("", elem_id="ab-reveal")
    tally = gr.Markdown("", elem_id="ab-tally")
    pair_state = gr.State(None)

    # --- ablation
    gr.Markdown(texts.ABL_TITLE)
    gr.Markdown(texts.ABL_INTRO)
    with gr.Row():
        abl_version = gr.Dropdown([], label=texts.ABL_VERSION, scale=3, elem_id="ablation-version")
        abl_preset = gr.Radio([(p.title, n) for n, p in PRESETS.items()], value="quick", label=texts.ABL_PRESET,
                              scale=2, elem_id="ablation-preset")
        abl_steps = gr.Number(0, precision=0, minimum=0, label=texts.ABL_STEPS, scale=1, elem_id="ablation-steps")
    with gr.Row():
        abl_go = gr.Button(texts.ABL_GO, elem_id="ablation-go")
        abl_check = gr.Button(texts.ABL_CHECK, elem_id="ablation-check")
    abl_view = gr.Markdown(texts.ABL_NONE, elem_id="ablation-view")

    # --- report
    gr.Markdown(texts.REPORT_TITLE)
    gr.Markdown(texts.REPORT_INTRO)
    with gr.Row():
        report_md = gr.Button(texts.REPORT_MD, size="sm", elem_id="report-md")
        report_html = gr.Button(texts.REPORT_HTML, size="sm", elem_id="report-html")
    report_file = gr.File(label=texts.REPORT_FILE, interactive=False, elem_id="report-file")

    # ------------------------------------------------------------------------------------ handlers

    def eval_view(pid: int | None, eid: Any) -> list:
        from studio.evaluation.batch import get_eval

        ev = None
        if eid not in (None, ""):
            try:
                ev = get_eval(ws, int(eid))
            except StudioError:
                ev = None
        if ev is not None and ev.project_id != pid:
            ev = None
        table, chart, examples, judge_text = eval_frames(ev)
        running = bool(ev and ev.status in ("queued", "running"))
        return [eval_progress_html(ev), eval_note(ev), table, judge_text, chart, examples,
                gr.update(interactive=running), gr.Timer(active=running)]

    eval_outputs = [eval_progress, note_box, eval_table, judge_line, eval_chart, eval_examples, eval_stop,
                    eval_timer]

    def latest_eval_id(run_id: Any, split_value: str = "test") -> int | None:
        if run_id in (None, ""):
            return None
        from studio.evaluation.batch import list_evals

        for ev in list_evals(ws, run_id=int(run_id)):
            if ev.split == (split_value or "test"):
                return ev.id
        return None

    def refresh(pid: int | None) -> list:
        from studio.models.registry import DEFAULT_BASE_MODEL
        from studio.train.runs import get_run
        from studio.ui.train import model_choices, version_choices
        from studio.workspace.projects import get_project

        if pid is None:
            return [gr.update(choices=[], value=[]), gr.update(choices=[], value=None),
                    gr.update(choices=[], value=None), gr.update(choices=[], value=None),
                    gr.update(choices=[], value=None), texts.COMPARE_NO_RUNS, None, "", texts.ABL_NONE,
                    *eval_view(None, None)]
        choices = run_choices(ws, pid)
        first = choices[0][1] if choices else None
        ref = (get_run(ws, first).base_model_ref if first
               else get_project(ws, pid).base_model_ref or DEFAULT_BASE_MODEL)
        prompts = prompt_choices(test_prompts(ws, first))
        eid = latest_eval_id(first)
        try:
            ablation = _ablation_md(ws, pid)
        except StudioError as exc:
            ablation = f"⚠️ {exc}"
        return [gr.update(choices=choices, value=[first] if first else []),
                gr.update(choices=model_choices(ws, ref), value=ref),
                gr.update(choices=prompts, value=None),
                gr.update(choices=choices, value=first),
                gr.update(choices=version_choices(ws, pid), value=(version_choices(ws, pid) or [(None, None)])[0][1]),
                "" if choices else texts.COMPARE_NO_RUNS, eid, _ab_tally(ws, first), ablation,
                *eval_view(pid, eid)]

    refresh_outputs = [runs, base, pick, eval_run, abl_version, status, eval_id, tally, abl_view, *eval_outputs]

    def on_runs(pid: int | None, run_ids: list | None) -> list:
        from studio.train.runs import get_run

        ids = [int(i) for i in run_ids or []]
        if not ids:
            return [gr.update(), gr.update(choices=[], value=None)]
        run = get_run(ws, ids[0])
        return [gr.update(value=run.base_model_ref), gr.update(choices=prompt_choices(test_prompts(ws, ids[0])),
                                                                value=None)]

    def on_compare(pid: int | None, run_ids: list | None, base_ref: str, text: str, tokens: float, temp: float,
                   p: float, seed_value: float):
        require_project(pid)
        from studio.evaluation.sidebyside import BASE
        from studio.evaluation.together import stream_together
        from studio.train.runs import get_run

        ids = [int(i) for i in run_ids or []]
        if not ids:
            raise gr.Error(texts.COMPARE_NEED_RUN)
        if not (text or "").strip():
            raise gr.Error(texts.COMPARE_NEED_PROMPT)
        try:
            titles = {i: get_run(ws, i).title for i in ids}
        except StudioError as exc:
            raise fail(exc) from None
        labels = [gr.update(label=f"Fine-tuned: {titles[ids[0]]}", value=""),
                  gr.update(label=f"Fine-tuned: {titles[ids[1]]}" if len(ids) > 1 else "Fine-tuned (second run)",
                            value="", visible=len(ids) > 1)]
        yield [texts.COMPARE_LOADING, gr.update(label=f"Base model: {base_ref}", value=""), *labels]
        try:
            model = loaded_model(ws, base_ref, ids)
        except StudioError as exc:
            raise fail(exc) from None
        settings = {"max_new_tokens": int(tokens or 128), "temperature": float(temp or 0.0),
                    "top_p": float(p or 1.0), "seed": int(seed_value or 0)}
        sides = [BASE, *ids]
        answers: dict[Any, str] = {}
        try:
            for answers in stream_together(model, text.strip(), sides, **settings):
                yield [texts.COMPARE_WRITING, answers.get(BASE, ""), answers.get(ids[0], ""),
                       answers.get(ids[1], "") if len(ids) > 1 else gr.update()]
        except StudioError as exc:
            raise fail(exc) from None
        mode = "greedy" if settings["temperature"] == 0 else (f"temperature {settings['temperature']}, "
                                                               f"top-p {settings['top_p']}")
        done = texts.COMPARE_DONE.format(tokens=f"{mode}, up to {settings['max_new_tokens']} new tokens",
                                         seed=settings["seed"])
        yield [done, answers.get(BASE, ""), answers.get(ids[0], ""),
               answers.get(ids[1], "") if len(ids) > 1 else gr.update()]

    def on_eval(pid: int | None, run_id: Any, split_value: str, limit_value: float, use_judge: bool, tokens: float,
                seed_value: float, file_path: str | None, metric_text: str) -> list:
        pid = require_project(pid)
        if run_id in (None, ""):
            raise gr.Error(texts.COMPARE_NEED_RUN)
        on_file = split_value == "file"
        if on_file and not file_path:
            raise gr.Error(texts.EVAL_NEED_FILE)
        from studio.evaluation.batch import EvalConfig

        try:
            # The decoding settings of the side-by-side view (greedy unless changed there) apply here too.
            cfg = EvalConfig(split=split_value or "test", limit=int(limit_value) if limit_value else None,
                             judge=bool(use_judge), max_new_tokens=int(tokens or 128), seed=int(seed_value or 0),
                             file=str(file_path) if on_file else None, metrics=metric_names(metric_text))
            ev = start_eval(ws, int(run_id), cfg)
        except StudioError as exc:
            raise fail(exc) from None
        return [ev.id, *eval_view(pid, ev.id)]

    def on_eval_stop(pid: int | None, eid: Any) -> list:
        from studio.evaluation.batch import stop_eval

        if eid not in (None, ""):
            try:
                stop_eval(ws, int(eid))
            except StudioError as exc:
                raise fail(exc) from None
        return eval_view(pid, eid)

    def on_eval_run(pid: int | None, run_id: Any, split_value: str) -> list:
        eid = latest_eval_id(run_id, split_value)
        return [eid, *eval_view(pid, eid), _ab_tally(ws, run_id)]

    def on_ab_next(pid: int | None, run_id: Any, text: str, voter_name: str, tokens: float, seed_value: float) -> list:
        require_project(pid)
        if run_id in (None, ""):
            raise gr.Error(texts.COMPARE_NEED_RUN)
        from studio.evaluation.ab import list_votes, make_pair
        from studio.train.runs import get_run

        prompt_text = (text or "").strip()
        if not prompt_text:
            seen = {v.prompt for v in list_votes(ws, int(run_id)) if v.voter == (voter_name or "").strip()}
            remaining = [p for p in test_prompts(ws, int(run_id)) if p not in seen]
            if not remaining:
                raise gr.Error(texts.AB_NO_PROMPTS)
            prompt_text = remaining[0]
        try:
            run = get_run(ws, int(run_id))
            model = model_for_run(ws, int(run_id))
            pair = make_pair(model, int(run_id), prompt_text, base_model_ref=run.base_model_ref,
                             max_new_tokens=int(tokens or 128), seed=int(seed_value or 0))
        except StudioError as exc:
            raise fail(exc) from None
        on = gr.update(interactive=True)
        return [pair, f"**Prompt:** {_esc(prompt_text)}", pair.a_text, pair.b_text, on, on, on, ""]

    def on_vote(pick_value: str):
        def handler(pid: int | None, pair: Any, voter_name: str) -> list:
            require_project(pid)
            if pair is None:
                raise gr.Error(texts.AB_NEED_PAIR)
            from studio.evaluation.ab import record_vote

            try:
                record = record_vote(ws, pair, pick_value, voter=(voter_name or "").strip())
            except StudioError as exc:
                raise fail(exc) from None
            off = gr.update(interactive=False)
            return [None, f"✅ {record.reveal()}", _ab_tally(ws, pair.run_id), off, off, off]
        return handler

    def on_ablation(pid: int | None, version_id: Any, base_ref: str, preset_value: str, steps: float) -> str:
        pid = require_project(pid)
        if version_id in (None, ""):
            raise gr.Error(texts.TRAIN_NEED_VERSION)
        from studio.evaluation.ablation import start_ablation
        from studio.train.settings import TrainConfig

        try:
            cfg = TrainConfig().with_preset(preset_value or "quick")
            if steps:
                cfg = TrainConfig.from_dict({**cfg.to_dict(), "max_steps": int(steps)})
            start_ablation(ws, pid, version_id=int(version_id), base_model_ref=base_ref, config=cfg)
            return _ablation_md(ws, pid)
        except StudioError as exc:
            raise fail(exc) from None

    def on_ablation_check(pid: int | None) -> str:
        pid = require_project(pid)
        try:
            return _ablation_md(ws, pid, evaluate=True)
        except StudioError as exc:
            raise fail(exc) from None

    def on_report(fmt: str):
        def handler(pid: int | None, run_id: Any) -> str:
            require_project(pid)
            if run_id in (None, ""):
                raise gr.Error(texts.COMPARE_NEED_RUN)
            from studio.evaluation.report import export_report

            try:
                return str(export_report(ws, int(run_id), fmt))
            except StudioError as exc:
                raise fail(exc) from None
        return handler

    runs.change(on_runs, [current, runs], [base, pick])
    pick.change(lambda value: value or gr.update(), [pick], [prompt])
    compare_inputs = [current, runs, base, prompt, max_tokens, temperature, top_p, seed]
    go.click(on_compare, compare_inputs, [status, out_base, out_1, out_2], concurrency_limit=1,
             concurrency_id="compare-model")
    prompt.submit(on_compare, compare_inputs, [status, out_base, out_1, out_2], concurrency_limit=1,
                  concurrency_id="compare-model")
    eval_go.click(on_eval, [current, eval_run, split, limit, judge, max_tokens, seed, eval_file, extra_metrics],
                  [eval_id, *eval_outputs])
    eval_stop.click(on_eval_stop, [current, eval_id], eval_outputs)
    eval_timer.tick(eval_view, [current, eval_id], eval_outputs, show_progress="hidden")
    for trigger in (eval_run.change, split.change):
        trigger(on_eval_run, [current, eval_run, split], [eval_id, *eval_outputs, tally])
    split.change(lambda value: gr.update(visible=value == "file"), [split], [eval_file])
    ab_next.click(on_ab_next, [current, eval_run, ab_prompt, voter, max_tokens, seed],
                  [pair_state, ab_shown, ab_a, ab_b, vote_a, vote_tie, vote_b, reveal], concurrency_limit=1,
                  concurrency_id="compare-model")
    for button, value in ((vote_a, "A"), (vote_b, "B"), (vote_tie, "tie")):
        button.click(on_vote(value), [current, pair_state, voter],
                     [pair_state, reveal, tally, vote_a, vote_tie, vote_b])
    abl_go.click(on_ablation, [current, abl_version, base, abl_preset, abl_steps], [abl_view])
    abl_check.click(on_ablation_check, [current], [abl_view])
    report_md.click(on_report("md"), [current, eval_run], [report_file])
    report_html.click(on_report("html"), [current, eval_run], [report_file])
    return TabHandle(refresh, refresh_outputs)
