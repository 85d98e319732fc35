"""Review tab: automatic filters, judge scores, the diversity report, the data profile, the sample review and the gate.

Every verdict is written the moment it is given (studio.review.verdicts appends a row); this tab keeps
only the reviewer's place in the sample, so a reload, a second tab or a restart shows the same truth.
Generated text is always shown escaped: it is data, never markup.
"""

from __future__ import annotations

import html
import json
from typing import Any

import gradio as gr
import pandas as pd

from studio import charts
from studio.augment import batches
from studio.augment.candidates import Candidate, get_candidate
from studio.augment.strategies import get_strategy
from studio.data.formats import FORMATS, FieldValues, summary_text
from studio.errors import StudioError
from studio.ui import texts
from studio.ui.profile_plots import profile_views
from studio.ui.tab import TabHandle, fail, require_project
from studio.workspace import Workspace
from studio.workspace.projects import get_project
from studio.workspace.seeds import get_seed

MARKED_COLUMNS = ["row", "filter", "reason", "prompt / input"]
EDIT_SLOTS = 3  # the most fields a seed format has (alpaca: instruction, input, output)

# Keyboard shortcuts of the review card. Keys are ignored while typing in a field, and only act while
# the card is on screen, so they never fire from another tab.
SHORTCUTS_JS = """
() => {
  if (window.__seedStudioReviewKeys) return;
  window.__seedStudioReviewKeys = true;
  const buttons = {a: 'rev-accept', r: 'rev-reject', e: 'rev-edit', n: 'rev-next', p: 'rev-prev',
                   ArrowRight: 'rev-next', ArrowLeft: 'rev-prev'};
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    const tag = (t && t.tagName || '').toLowerCase();
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || (t && t.isContentEditable)) return;
    const card = document.querySelector('#rev-card .rev-card');
    if (!card || card.offsetParent === null) return;
    const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    if (/^[1-7]$/.test(key)) {
      const boxes = document.querySelectorAll('#rev-tags input[type=checkbox]');
      const box = boxes[Number(key) - 1];
      if (box) { ev.preventDefault(); box.click(); }
      return;
    }
    const id = buttons[key];
    const button = id && document.getElementById(id);
    if (button && !button.disabled) { ev.preventDefault(); button.click(); }
  });
}
"""


def _esc(text: Any) -> str:
    return html.escape(str(text or ""))


# --------------------------------------------------------------------------------------------- batches

def batch_choices(ws: Workspace, pid: int | None) -> list[tuple[str, int]]:
    if pid is None:
        return []
    out = []
    for b in batches.list_batches(ws, pid):
        out.append((f"#{b.id} · {get_strategy(b.strategy).title} · {b.rows_ok} rows · {b.state}", b.id))
    return out


def _batch(ws: Workspace, pid: int | None, batch_id: Any) -> batches.Batch | None:
    if pid is None or batch_id in (None, ""):
        return None
    try:
        b = batches.get_batch(ws, int(batch_id))
    except StudioError:
        return None
    return b if b.project_id == pid else None


# --------------------------------------------------------------------------------------------- filters

def _filter_choices() -> list[tuple[str, str]]:
    from studio.quality.filters import FILTERS

    return [(info.title, name) for name, info in FILTERS.items()]


def _filter_config(enabled: list[str] | None, near: float, semantic: float, seed: float, min_words: Any,
                   max_words: Any, fidelity: float | None = None) -> Any:
    from studio.quality.filters import FilterConfig

    config = FilterConfig()
    on = set(enabled or [])
    config.enabled = {name: name in on for name in config.enabled}
    config.near_duplicate_threshold = float(near)
    config.semantic_threshold = float(semantic)
    config.seed_overlap_threshold = float(seed)
    config.min_words = int(min_words or 0)
    config.max_words = int(max_words or 0)
    if fidelity is not None:
        config.fidelity_threshold = float(fidelity)
    config.check()
    return config


def _threshold_slider(field: str, low: float, high: float, **kwargs: Any) -> gr.Slider:
    """A slider for a filter threshold, titled, explained and defaulted from its ThresholdInfo."""
    from studio.quality.filters import THRESHOLDS, FilterConfig

    info = THRESHOLDS[field]
    return gr.Slider(low, high, value=getattr(FilterConfig(), field), step=0.01, label=info.title, info=info.help,
                     **kwargs)


def filter_summary_md(report: Any, *, applied: bool) -> str:
    from studio.quality.filters import FILTERS

    head = (f"**{'Applied' if applied else 'Preview — nothing saved yet'}:** {len(report.passed_ids)} of "
            f"{report.total} rows pass every filter.")
    lines = [head, "", "| filter | rows marked |", "| --- | ---: |"]
    for name, count in report.failed_by.items():
        title = FILTERS[name].title if name in FILTERS else name
        lines.append(f"| {title} | {count} |")
    return "\n".join(lines)


def marked_frame(ws: Workspace, report: Any, limit: int = 300) -> pd.DataFrame:
    rows = []
    for cid, outcome in list(report.first_failure.items())[:limit]:
        c = get_candidate(ws, cid)
        prompt = c.summary()[0] if c and c.usable else (c.raw_output[:200] if c else "")
        rows.append([cid, outcome.filter, outcome.reason, prompt])
    return pd.DataFrame(rows, columns=MARKED_COLUMNS)


def stored_filter_view(ws: Workspace, b: batches.Batch | None) -> list:
    """The batch's saved filter marks, as the summary and table (or a hint when it was never filtered)."""
    if b is None:
        return ["", pd.DataFrame(columns=MARKED_COLUMNS)]
    from studio.quality.filters import stored_report

    report = stored_report(ws, b.id)
    if report is None:
        return ["Not filtered yet: **Preview effect** shows what the filters would mark, **Apply filters** "
                "saves it.", pd.DataFrame(columns=MARKED_COLUMNS)]
    return [filter_summary_md(report, applied=True), marked_frame(ws, report)]


# --------------------------------------------------------------------------------------------- review card

def _seed_html(ws: Workspace, c: Candidate) -> str:
    parts = []
    for sid in c.seed_ids[:2]:
        try:
            s = get_seed(ws, sid)
        except StudioError:
            parts.append(f"<div class='rev-seed'><i>seed #{sid} was deleted</i></div>")
            continue
        prompt, answer = summary_text(s.format, s.data)
        parts.append(f"<div class='rev-seed'><div class='rev-label'>Seed #{sid}</div>"
                     f"<div class='rev-text'>{_esc(prompt)}</div><div class='rev-label'>Answer</div>"
                     f"<div class='rev-text'>{_esc(answer)}</div></div>")
    return "".join(parts) or "<div class='rev-seed'><i>no source seed recorded</i></div>"


def card_html(ws: Workspace, sample: Any, index: int, reviewer: str) -> str:
    from studio.review.verdicts import row_verdicts, sample_progress

    if sample is None or not sample.items:
        return f"<div class='rev-empty'>{_esc(texts.REV_NO_SAMPLE)}</div>"
    index = max(0, min(index, len(sample.items) - 1))
    item = sample.items[index]
    c = get_candidate(ws, item.candidate_id)
    if c is None:
        return "<div class='rev-empty'>This row no longer exists.</div>"
    prompt, answer = c.summary()
    reviewed, total = sample_progress(ws, sample.batch_id, reviewer or None)
    everyone = row_verdicts(ws, sample.batch_id).get(c.id)
    mine = _my_verdict(ws, c.id, reviewer)
    verdict_note = ""
    if mine is not None:
        verdict_note = f"<span class='rev-verdict rev-verdict-{mine['verdict']}'>you: {mine['verdict']}</span>"
    elif everyone is not None:
        verdict_note = f"<span class='rev-verdict rev-verdict-{everyone.verdict}'>others: {everyone.verdict}</span>"
    style = ", ".join(f"{k}: {v}" for k, v in c.meta.items() if k in ("style", "augmenter", "variant"))
    return (f"<div class='rev-card' data-position='{index + 1}' data-row='{c.id}' data-reviewed='{reviewed}' "
            f"data-total='{total}'>"
            f"<div class='rev-head'><span class='rev-progress'>{reviewed} / {total} reviewed</span> · "
            f"item {index + 1} of {len(sample.items)} · row #{c.id} · {_esc(get_strategy(c.strategy).title)}"
            f"{' · ' + _esc(style) if style else ''} {verdict_note}</div>"
            f"<div class='rev-columns'><div class='rev-row'><div class='rev-label'>Generated prompt</div>"
            f"<div class='rev-text'>{_esc(prompt)}</div><div class='rev-label'>Generated answer</div>"
            f"<div class='rev-text'>{_esc(answer)}</div></div>"
            f"<div class='rev-source'><div class='rev-label rev-source-title'>Made from</div>{_seed_html(ws, c)}"
            f"</div></div></div>")


def _my_verdict(ws: Workspace, candidate_id: int, reviewer: str) -> Any:
    with ws.read() as conn:
        r = conn.execute("SELECT * FROM review WHERE candidate_id=? AND reviewer=? ORDER BY id DESC LIMIT 1",
                         (candidate_id, reviewer or "")).fetchone()
    return r


def _edit_fields(c: Candidate | None) -> list:
    """Updates for the edit slots: one textbox per field of the row's format, prefilled."""
    if c is None or not c.usable:
        return [gr.update(visible=False, value="") for _ in range(EDIT_SLOTS)]
    values = FieldValues.from_record(c.format, c.data).values
    fields = FORMATS[c.format].fields
    out = []
    for i in range(EDIT_SLOTS):
        if i < len(fields):
            out.append(gr.update(visible=True, label=fields[i].name, value=values.get(fields[i].name, "")))
        else:
            out.append(gr.update(visible=False, value=""))
    return out


# --------------------------------------------------------------------------------------------- gate

def gate_html(result: Any) -> str:
    if result is None:
        return ""
    rate = "—" if result.rate is None else f"{result.rate:.1%}"
    low = 0 if result.low is None else result.low
    high = 0 if result.high is None else result.high
    bar = ""
    if result.reviewed:
        bar = (f"<div class='gate-bar' title='95% interval'><div class='gate-interval' "
               f"style='left:{low * 100:.1f}%;width:{max(0.5, (high - low) * 100):.1f}%'></div>"
               f"<div class='gate-threshold' style='left:{result.threshold * 100:.1f}%'></div>"
               f"<div class='gate-rate' style='left:{(result.rate or 0) * 100:.1f}%'></div></div>"
               f"<div class='gate-scale'><span>0%</span><span>threshold {result.threshold:.0%}</span>"
               f"<span>100%</span></div>")
    return (f"<div class='gate' data-decision='{result.decision}' data-rate='{result.rate}'>"
            f"<div class='gate-head'><span class='gate-badge gate-{result.decision}'>{result.decision}</span> "
            f"error rate <b>{rate}</b> · {result.errors} of {result.reviewed} reviewed rows</div>{bar}"
            f"<div class='gate-message'>{_esc(result.message)}</div></div>")


def _pct(e: Any) -> str:
    """A share with its interval: "85% (64–95%)"; "—" with the reason on hover when undefined."""
    if e is None or e.value is None:
        return f"<span title='{_esc(e.reason if e else '')}'>—</span>"
    interval = f" <span class='calib-ci'>({e.low:.0%}–{e.high:.0%})</span>" if e.low is not None else ""
    return f"{e.value:.0%}{interval}"


def _coef(e: Any) -> str:
    """A coefficient with its interval: "0.57 [0.21, 0.93]"; "—" with the reason on hover when undefined."""
    if e is None or e.value is None:
        return f"<span title='{_esc(e.reason if e else '')}'>—</span>"
    has_interval = e.low is not None and e.high is not None
    interval = f" <span class='calib-ci'>[{e.low:.2f}, {e.high:.2f}]</span>" if has_interval else ""
    return f"{e.value:.2f}{interval}"


def _check_row(check: Any, judge: bool = False) -> str:
    if check.n == 0:
        agrees = "<span title='no reviewed row has a score'>not scored</span>" if judge else "—"
    else:
        agrees = f"{check.agree} of {check.n} rows · {_pct(check.accuracy)}"
    cells = [_esc(check.title), str(check.n), agrees, _pct(check.recall), _pct(check.precision), _coef(check.kappa),
             f"ρ {_coef(check.spearman)}" if judge and check.spearman is not None else ""]
    return f"<tr data-check='{_esc(check.name)}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _reviewers_line(r: Any) -> str:
    if r.rows == 0:
        return _esc(texts.REV_CALIB_NO_PAIRS)
    names = ", ".join(_esc(n or "(no name)") for n in r.reviewers)
    line = (f"Reviewers ({names}) saw {r.rows} row{'s' if r.rows != 1 else ''} in common and all agreed on "
            f"{r.agreed}: {_pct(r.all_agree)}.")
    pairs = "; ".join(f"{_esc(a or '(no name)')}–{_esc(b or '(no name)')} {_coef(p.kappa)} on {p.n}"
                      for p in r.pairs for a, b in [p.reviewers])
    if pairs:
        line += f" Cohen's κ {pairs}."
    line += (f" Fleiss' κ {_coef(r.fleiss)} ({r.fleiss.n} rows with {r.fleiss_raters} reviewers each);"
             f" Krippendorff's α {_coef(r.alpha)}.")
    return line


def calibration_html(cal: Any, min_judge: Any = 0) -> str:
    """The calibration block beside the gate: the judge and each filter against the reviewers, then the
    reviewers against each other, and the warning when rows would be selected by an untrustworthy judge."""
    if cal is None:
        return ""
    usable = {True: "true", False: "false", None: "unknown"}[cal.judge_usable]
    warning = cal.judge_warning(float(min_judge or 0))
    head = "".join(f"<th>{_esc(c)}</th>" for c in texts.REV_CALIB_COLUMNS)
    rows = _check_row(cal.judge, judge=True) + "".join(_check_row(f) for f in cal.filters)
    kappa = cal.judge.kappa.value
    return (f"<div class='calib' data-judge-usable='{usable}' data-judge-n='{cal.judge.n}' "
            f"data-judge-agree='{cal.judge.agree}' data-judge-kappa='{'' if kappa is None else f'{kappa:.4f}'}' "
            f"data-reviewer-rows='{cal.reviewers.rows}' data-warning='{'true' if warning else 'false'}'>"
            f"<div class='calib-title'>{_esc(texts.REV_CALIBRATION)}</div>"
            # The warning says what the message says, and what to do about it.
            + (f"<div class='calib-warning' role='alert'>⚠️ {_esc(warning)}</div>" if warning else
               f"<div class='calib-judge calib-{usable}'>{_esc(cal.judge_message)}</div>")
            + f"<div class='calib-scroll'><table class='calib-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
            f"<div class='calib-reviewers'>{_reviewers_line(cal.reviewers)}</div>"
            f"<div class='calib-note'>{_esc(texts.REV_CALIBRATION_HELP)}"
            + (f" {_esc(texts.REV_CALIB_FILTER_NOTE)}" if cal.filters else "") + "</div></div>")


def _selection_config(cap: Any, min_judge: Any) -> Any:
    from studio.review.selection import SelectionConfig

    return SelectionConfig(per_seed_cap=int(cap) if cap else None,
                           min_judge_score=float(min_judge) if min_judge else None)


def _gate_config(threshold: float, min_reviews: Any) -> Any:
    from studio.review.gate import GateConfig

    config = GateConfig(threshold=float(threshold), min_reviews=int(min_reviews or 1))
    config.check()
    return config


# --------------------------------------------------------------------------------------------- plots

def map_html(report: Any) -> str:
    return charts.scatter_chart(report.map_points or [], title=texts.REV_MAP, x_label="first component",
                                y_label="second component")


def hist_html(report: Any) -> str:
    hists = {name.replace("_", " "): values for name, values in (report.histograms or {}).items()
             if name != "judge_overall"}
    return charts.histogram_chart(hists, title=texts.REV_HIST, lo=0.0, hi=1.0, x_label="cosine similarity")


def diversity_md(report: Any) -> str:
    from studio.quality.diversity import interpretations

    def fmt(v: Any, pct: bool = False) -> str:
        if v is None:
            return "—"
        return f"{v:.1%}" if pct else f"{v:.3f}" if isinstance(v, float) else str(v)

    d = report.to_dict()
    lines = ["| measure | new rows | seeds |", "| --- | ---: | ---: |",
             f"| rows | {d.get('rows')} | {d.get('seeds')} |",
             f"| distinct-1 | {fmt(d.get('distinct_1'))} | {fmt(d.get('seed_distinct_1'))} |",
             f"| distinct-2 | {fmt(d.get('distinct_2'))} | {fmt(d.get('seed_distinct_2'))} |",
             f"| self-BLEU (lower = more varied) | {fmt(d.get('self_bleu'))} | |",
             f"| mean nearest-neighbour similarity | {fmt(d.get('mean_nn_similarity'))} | |",
             f"| share too close to a seed | {fmt(d.get('share_close_to_seed'), True)} | |", ""]
    lines += [f"- {line}" for line in interpretations(report)]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- build

def build(ws: Workspace, current: gr.State, tab: gr.Tab) -> TabHandle:
    from studio.review.verdicts import REASON_TAGS

    position = gr.State(0)
    from studio.ui.project_bar import browser_secret

    reviewer_saved = gr.BrowserState("", storage_key="seed-studio-reviewer", secret=browser_secret(ws))

    gr.Markdown(texts.REV_INTRO)
    with gr.Row(equal_height=True):
        batch = gr.Dropdown([], label=texts.REV_BATCH, info=texts.REV_BATCH_HELP, scale=4, elem_id="rev-batch")
        reload_btn = gr.Button("↻ Reload", size="sm", scale=1, elem_id="rev-reload")
    batch_note = gr.Markdown("", elem_id="rev-batch-note")

    # 1 · filters
    gr.Markdown(f"### {texts.REV_FILTERS}")
    with gr.Row():
        with gr.Column(scale=2):
            enabled = gr.CheckboxGroup(_filter_choices(), value=[v for _, v in _filter_choices()],
                                       label=texts.REV_FILTERS_ON, info=texts.REV_FILTERS_ON_HELP,
                                       elem_id="rev-filters")
            with gr.Accordion(texts.REV_THRESHOLDS, open=False):
                near = gr.Slider(0.5, 1.0, value=0.8, step=0.01, label=texts.REV_NEAR, info=texts.REV_NEAR_HELP,
                                 elem_id="rev-near")
                semantic = gr.Slider(0.5, 1.0, value=0.9, step=0.01, label=texts.REV_SEMANTIC,
                                     info=texts.REV_SEMANTIC_HELP)
                seed_overlap = gr.Slider(0.3, 1.0, value=0.7, step=0.01, label=texts.REV_SEED,
                                         info=texts.REV_SEED_HELP)
                fidelity = _threshold_slider("fidelity_threshold", 0.1, 1.0, elem_id="rev-fidelity")
                with gr.Row():
                    min_words = gr.Number(3, label=texts.REV_MIN_WORDS, precision=0, minimum=1)
                    max_words = gr.Number(150, label=texts.REV_MAX_WORDS, precision=0, minimum=1)
            with gr.Row():
                preview_btn = gr.Button(texts.REV_FILTER_PREVIEW, elem_id="rev-filter-preview")
                apply_btn = gr.Button(texts.REV_FILTER_APPLY, variant="primary", elem_id="rev-filter-apply")
        with gr.Column(scale=3):
            filter_summary = gr.Markdown("", elem_id="rev-filter-summary")
            marked = gr.Dataframe(pd.DataFrame(columns=MARKED_COLUMNS), label=texts.REV_FILTER_ROWS,
                                  interactive=False, wrap=True, max_height=300, elem_id="rev-filter-rows")

    with gr.Accordion(texts.REV_JUDGE, open=False):
        gr.Markdown(texts.REV_JUDGE_HELP)
        judge_btn = gr.Button(texts.REV_JUDGE_RUN, elem_id="rev-judge")
        judge_summary = gr.Markdown("", elem_id="rev-judge-summary")
        scores_plot = gr.HTML("", elem_id="rev-scores-plot")

    with gr.Accordion(texts.REV_DIVERSITY, open=False):
        gr.Markdown(texts.REV_DIVERSITY_HELP)
        diversity_btn = gr.Button(texts.REV_DIVERSITY_RUN, elem_id="rev-diversity")
        diversity_summary = gr.Markdown("", elem_id="rev-diversity-summary")
        with gr.Row():
            map_plot = gr.HTML("", elem_id="rev-map")
            hist_plot = gr.HTML("", elem_id="rev-hist")

    # Drawn when opened and, while open, for each batch picked: never at app start.
    profile_open = gr.State(False)
    with gr.Accordion(texts.REV_PROFILE, open=False, elem_id="review-profile") as profile_box:
        gr.Markdown(texts.REV_PROFILE_HELP)
        with gr.Row(equal_height=True):
            profile_embed = gr.Checkbox(False, label=texts.REV_PROFILE_EMBED, elem_id="review-profile-embed")
            profile_btn = gr.Button(texts.REV_PROFILE_RUN, size="sm", elem_id="review-profile-run")
        profile_summary = gr.Markdown("", elem_id="review-profile-summary")
        with gr.Row():
            profile_status = gr.HTML("", elem_id="review-profile-status")
            profile_coverage = gr.HTML("", elem_id="review-profile-coverage")
        with gr.Row():
            profile_lengths = gr.HTML("", elem_id="review-profile-lengths")
            profile_novelty = gr.HTML("", elem_id="review-profile-novelty")

    # 2 · sample review
    gr.Markdown(f"### {texts.REV_SAMPLE}\n{texts.REV_SAMPLE_HELP}")
    with gr.Row(equal_height=True):
        reviewer = gr.Textbox(label=texts.REV_REVIEWER, info=texts.REV_REVIEWER_HELP, scale=2, elem_id="rev-reviewer")
        fraction = gr.Slider(0.02, 1.0, value=0.10, step=0.01, label=texts.REV_FRACTION, scale=2)
        min_size = gr.Number(20, label=texts.REV_MIN_SIZE, precision=0, minimum=1, scale=1)
        draw_btn = gr.Button(texts.REV_DRAW, variant="primary", scale=1, elem_id="rev-draw")
    card = gr.HTML(card_html(ws, None, 0, ""), elem_id="rev-card")
    with gr.Row():
        prev_btn = gr.Button(texts.REV_PREV, size="sm", elem_id="rev-prev")
        accept_btn = gr.Button(texts.REV_ACCEPT, variant="primary", elem_id="rev-accept")
        reject_btn = gr.Button(texts.REV_REJECT, variant="stop", elem_id="rev-reject")
        edit_btn = gr.Button(texts.REV_EDIT, elem_id="rev-edit")
        next_btn = gr.Button(texts.REV_NEXT, size="sm", elem_id="rev-next")
    with gr.Row():
        tags = gr.CheckboxGroup(list(REASON_TAGS), label=texts.REV_TAGS, scale=3, elem_id="rev-tags")
        accuracy = gr.Radio([1, 2, 3, 4, 5], label=texts.REV_ACCURACY, scale=1, elem_id="rev-accuracy")
        tone = gr.Radio([1, 2, 3, 4, 5], label=texts.REV_TONE, scale=1, elem_id="rev-tone")
    note = gr.Textbox(label=texts.REV_NOTE, lines=1, elem_id="rev-note")
    with gr.Group(visible=False, elem_id="rev-edit-box") as edit_box:
        gr.Markdown(texts.REV_EDIT_HELP)
        edit_slots = [gr.Textbox(lines=3, visible=False, elem_id=f"rev-edit-{i}") for i in range(EDIT_SLOTS)]
        edit_save = gr.Button(texts.REV_EDIT_SAVE, variant="primary", elem_id="rev-edit-save")

    # 3 · gate
    gr.Markdown(f"### {texts.REV_GATE}\n{texts.REV_GATE_HELP}")
    with gr.Row():
        with gr.Column(scale=2):
            threshold = gr.Slider(0.01, 0.5, value=0.10, step=0.01, label=texts.REV_THRESHOLD, elem_id="rev-threshold")
            min_reviews = gr.Number(20, label=texts.REV_MIN_REVIEWS, precision=0, minimum=1)
            with gr.Row():
                cap = gr.Number(0, label=texts.REV_CAP, info=texts.REV_CAP_HELP, precision=0, minimum=0)
                min_judge = gr.Slider(0, 5, value=0, step=0.5, label=texts.REV_MIN_JUDGE, elem_id="rev-min-judge")
        with gr.Column(scale=3):
            gate = gr.HTML("", elem_id="rev-gate")
            with gr.Row():
                gate_btn = gr.Button(texts.REV_APPLY_GATE, variant="primary", elem_id="rev-gate-apply")
                more_btn = gr.Button(texts.REV_MORE, elem_id="rev-more")
                reopen_btn = gr.Button(texts.REV_REOPEN, size="sm", elem_id="rev-reopen")
            # The answer to Apply / Reopen. Only those write it: a refresh of the tab that was already under
            # way when the button was pressed (a busy machine, a reload's cascade) may still redraw the gate
            # from before the decision, but it cannot take this line away (the gate is redrawn after it).
            gate_note = gr.Markdown("", elem_id="rev-gate-result")
            calibration = gr.HTML("", elem_id="rev-calibration")
    with gr.Group(visible=False) as revision_box:
        revision = gr.Code(language="jinja2", lines=14, label=texts.REV_REVISION, elem_id="rev-revision",
                           interactive=True)
        revision_note = gr.Markdown("", elem_id="rev-revision-note")
        with gr.Row():
            revision_save = gr.Button(texts.REV_REVISION_SAVE, variant="primary", elem_id="rev-revision-save")
            revision_redraft = gr.Button(texts.REV_REVISION_DRAFT, size="sm")

    # ------------------------------------------------------------------ views

    def sample_of(b: batches.Batch | None) -> Any:
        from studio.review.sampling import get_sample

        return get_sample(ws, b.id) if b else None

    def card_updates(b: batches.Batch | None, index: int, who: str) -> list:
        """The card and the reviewer's own previous answers for the item at `index` (so going back shows them)."""
        sample = sample_of(b)
        if sample is None or not sample.items:
            return [0, card_html(ws, None, 0, who), [], None, None, "", gr.update(visible=False),
                    *_edit_fields(None)]
        index = max(0, min(int(index or 0), len(sample.items) - 1))
        cid = sample.items[index].candidate_id
        mine = _my_verdict(ws, cid, who)
        c = get_candidate(ws, cid)
        return [index, card_html(ws, sample, index, who),
                json.loads(mine["reason_tags"]) if mine else [], mine["accuracy"] if mine else None,
                mine["tone"] if mine else None, mine["note"] if mine else "", gr.update(visible=False),
                *_edit_fields(c)]

    card_outputs = [position, card, tags, accuracy, tone, note, edit_box, *edit_slots]

    def calibration_of(b: batches.Batch, mjudge: Any) -> str:
        from studio.review.calibration import calibrate, threshold_for

        try:
            return calibration_html(calibrate(ws, b.id, judge_threshold=threshold_for(float(mjudge or 0))), mjudge)
        except StudioError as exc:
            return f"<div class='calib'>{_esc(exc)}</div>"

    def gate_updates(b: batches.Batch | None, thr: float, mrev: Any, mjudge: Any = 0) -> list:
        if b is None:
            return ["", gr.update(interactive=False), gr.update(interactive=False), gr.update(interactive=False), ""]
        from studio.review.gate import evaluate_gate

        try:
            result = evaluate_gate(ws, b.id, _gate_config(thr, mrev))
        except StudioError as exc:
            return [f"<div class='gate'>{_esc(exc)}</div>", gr.update(interactive=False),
                    gr.update(interactive=False), gr.update(interactive=b.status in batches.REVIEW_STATES), ""]
        decided = b.status in batches.REVIEW_STATES
        return [gate_html(result) + (f"<div class='gate-state'>Batch is <b>{b.status}</b>.</div>" if decided else ""),
                gr.update(interactive=not decided and result.decision in ("pass", "fail")),
                gr.update(interactive=not decided and result.decision == "inconclusive"),
                gr.update(interactive=decided), calibration_of(b, mjudge)]

    gate_outputs = [gate, gate_btn, more_btn, reopen_btn, calibration]

    def batch_note_md(b: batches.Batch | None) -> str:
        if b is None:
            return ""
        if b.job and b.job.active:
            return f"⏳ Batch #{b.id} is still generating ({b.job.progress_text()}); review it once it is done."
        return f"Batch #{b.id}: {b.rows_ok} usable rows, {b.rows_failed} failed to parse · state **{b.state}**."

    def view(pid: int | None, batch_id: Any, who: str, index: int, thr: float, mrev: Any, mjudge: Any = 0) -> list:
        b = _batch(ws, pid, batch_id)
        return [batch_note_md(b), *stored_filter_view(ws, b), *card_updates(b, index, who),
                *gate_updates(b, thr, mrev, mjudge)]

    view_outputs = [batch_note, filter_summary, marked, *card_outputs, *gate_outputs]

    def refresh(pid: int | None) -> list:
        # Sets the batch; its .change event then redraws the view for the reviewer in this browser.
        choices = batch_choices(ws, pid)
        chosen = choices[0][1] if choices else None
        out = view(pid, chosen, "", 0, 0.10, 20, 0)
        if pid is not None and not choices:
            out[0] = texts.REV_NO_BATCH
        return [gr.update(choices=choices, value=chosen), *out, gr.update(visible=False), ""]

    refresh_outputs = [batch, *view_outputs, revision_box, diversity_summary]

    # ------------------------------------------------------------------ handlers

    def resume_position(pid: int | None, batch_id: Any, who: str) -> int:
        from studio.review.verdicts import next_position

        b = _batch(ws, pid, batch_id)
        sample = sample_of(b)
        if sample is None or not sample.items:
            return 0
        pos = next_position(ws, b.id, who or "")
        if pos is None:
            return len(sample.items) - 1
        return next((i for i, it in enumerate(sample.items) if it.position == pos), 0)

    def on_batch(pid: int | None, batch_id: Any, who: str, thr: float, mrev: Any, mjudge: Any) -> list:
        return [*view(pid, batch_id, who, resume_position(pid, batch_id, who), thr, mrev, mjudge),
                gr.update(visible=False), ""]

    def on_filters(pid: int | None, batch_id: Any, apply: bool, *values: Any) -> list:
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.quality.filters import apply_filters, preview_filters

        try:
            config = _filter_config(*values)
            report = (apply_filters if apply else preview_filters)(ws, b.id, config)
        except StudioError as exc:
            raise fail(exc) from None
        if apply:
            gr.Info(f"Filters saved: {len(report.passed_ids)} of {report.total} rows pass.")
        return [filter_summary_md(report, applied=apply), marked_frame(ws, report)]

    def on_judge(pid: int | None, batch_id: Any, progress: gr.Progress = gr.Progress()) -> list:  # noqa: B008
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.models.registry import DEFAULT_TEACHER
        from studio.quality.judge import judge_batch, latest_judgements
        from studio.teachers.spec import parse_teacher

        project = get_project(ws, b.project_id)
        try:
            spec = parse_teacher(project.teacher_ref or DEFAULT_TEACHER)
            summary = judge_batch(ws, b.id, spec,
                                  on_progress=lambda done, total: progress(done / max(total, 1),
                                                                          desc=f"{done} / {total} rows scored"))
        except StudioError as exc:
            raise fail(exc) from None
        data = summary.to_dict() if hasattr(summary, "to_dict") else dict(summary.__dict__)
        lines = [f"- **{k.replace('_', ' ')}**: " + (f"{v:.2f}" if isinstance(v, float) else str(v))
                 for k, v in data.items() if not isinstance(v, list | dict)]
        judged = latest_judgements(ws, b.id).values()
        scores = {"accuracy": [j.accuracy for j in judged], "tone": [j.tone for j in judged],
                  "instruction following": [j.instruction_following for j in judged]}
        return ["\n".join(lines), charts.histogram_chart(scores, title=texts.REV_SCORES, lo=0.5, hi=5.5, bins=5,
                                                         x_label="score (1-5)")]

    def on_diversity(pid: int | None, batch_id: Any) -> list:
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.quality.diversity import batch_diversity

        try:
            report = batch_diversity(ws, b.id)
        except StudioError as exc:
            raise fail(exc) from None
        return [diversity_md(report), map_html(report), hist_html(report)]

    profile_outputs = [profile_summary, profile_status, profile_lengths, profile_coverage, profile_novelty]

    def on_profile(pid: int | None, batch_id: Any, semantic: bool) -> list:
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.quality.profile import available_embed, batch_profile

        try:
            return profile_views(batch_profile(ws, b.id, embed=available_embed(ws) if semantic else None))
        except StudioError as exc:
            raise fail(exc) from None

    def profile_if_open(pid: int | None, batch_id: Any, is_open: bool, semantic: bool) -> list:
        """After a batch is picked: redraw the profile if the section is open, else clear it (stale otherwise)."""
        if not is_open or _batch(ws, pid, batch_id) is None:
            return [""] * len(profile_outputs)
        return on_profile(pid, batch_id, semantic)

    def on_draw(pid: int | None, batch_id: Any, who: str, frac: float, msize: Any, thr: float, mrev: Any,
                mjudge: Any) -> list:
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.review.sampling import draw_sample

        try:
            draw_sample(ws, b.id, fraction=float(frac), min_size=int(msize or 1))
        except StudioError as exc:
            raise fail(exc) from None
        return [*card_updates(b, resume_position(pid, b.id, who), who), *gate_updates(b, thr, mrev, mjudge)]

    def record(pid: int | None, batch_id: Any, who: str, index: int, verdict: str, tag_list: list[str],
               acc: Any, tn: Any, note_text: str, thr: float, mrev: Any, mjudge: Any,
               edited: dict | None = None) -> list:
        from studio.review.verdicts import record_verdict

        b = _batch(ws, require_project(pid), batch_id)
        sample = sample_of(b)
        if sample is None or not sample.items:
            raise gr.Error("Draw a sample first.")
        if not (who or "").strip():
            raise gr.Error("Type your name first (top of the sample), so your verdicts are kept apart from "
                           "other reviewers'.")
        if verdict == "reject" and not tag_list:
            raise gr.Error("Pick at least one reason tag (keys 1–7) before rejecting: the prompt revision "
                           "learns from them.")
        item = sample.items[max(0, min(int(index or 0), len(sample.items) - 1))]
        try:
            record_verdict(ws, item.candidate_id, verdict=verdict, reviewer=who.strip(), reason_tags=tag_list or [],
                           edited_data=edited, accuracy=int(acc) if acc else None, tone=int(tn) if tn else None,
                           note=note_text or "", sample_id=sample.id)
        except StudioError as exc:
            raise fail(exc) from None
        nxt = resume_position(pid, b.id, who.strip())
        return [*card_updates(b, nxt, who.strip()), *gate_updates(b, thr, mrev, mjudge)]

    verdict_inputs = [current, batch, reviewer, position]
    gate_inputs = [threshold, min_reviews, min_judge]  # min_judge: the calibration's cut and its warning

    def on_accept(pid, batch_id, who, index, tag_list, acc, tn, note_text, thr, mrev, mjudge):
        return record(pid, batch_id, who, index, "accept", tag_list, acc, tn, note_text, thr, mrev, mjudge)

    def on_reject(pid, batch_id, who, index, tag_list, acc, tn, note_text, thr, mrev, mjudge):
        return record(pid, batch_id, who, index, "reject", tag_list, acc, tn, note_text, thr, mrev, mjudge)

    def on_edit_open(pid: int | None, batch_id: Any, index: int) -> list:
        b = _batch(ws, pid, batch_id)
        sample = sample_of(b)
        if sample is None or not sample.items:
            raise gr.Error("Draw a sample first.")
        c = get_candidate(ws, sample.items[max(0, min(int(index or 0), len(sample.items) - 1))].candidate_id)
        return [gr.update(visible=True), *_edit_fields(c)]

    def on_edit_save(pid, batch_id, who, index, tag_list, acc, tn, note_text, thr, mrev, mjudge, *slot_values):
        b = _batch(ws, pid, batch_id)
        sample = sample_of(b)
        if sample is None or not sample.items:
            raise gr.Error("Draw a sample first.")
        c = get_candidate(ws, sample.items[max(0, min(int(index or 0), len(sample.items) - 1))].candidate_id)
        fields = FORMATS[c.format].fields
        edited: dict[str, Any] = {}
        for f, value in zip(fields, slot_values, strict=False):
            text = value or ""
            try:
                edited[f.name] = json.loads(text) if text.strip()[:1] in ("[", "{") else text
            except json.JSONDecodeError:
                edited[f.name] = text
        return record(pid, batch_id, who, index, "edit", tag_list, acc, tn, note_text, thr, mrev, mjudge, edited)

    def on_move(pid: int | None, batch_id: Any, who: str, index: int, step: int) -> list:
        b = _batch(ws, pid, batch_id)
        return card_updates(b, int(index or 0) + step, who)

    def on_reviewer(name: str) -> str:
        return (name or "").strip()

    def on_gate_apply(pid, batch_id, thr, mrev, min_judge_value, cap_value):
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.review.gate import apply_gate

        try:
            result = apply_gate(ws, b.id, _gate_config(thr, mrev),
                                selection=_selection_config(cap_value, min_judge_value))
        except StudioError as exc:
            raise fail(exc) from None
        b = batches.get_batch(ws, b.id)
        draft_updates = [gr.update(visible=False), gr.update(), ""]
        note = f"Batch #{b.id} is {b.status}."
        if result.decision == "pass":
            from studio.review.selection import selected_rows

            note = f"✅ Batch #{b.id} passed: {len(selected_rows(ws, batch_id=b.id))} rows selected for datasets."
        elif result.decision == "fail":
            note = (f"⚠️ Batch #{b.id} failed the gate and is discarded (kept for the record). A revised prompt is "
                    "drafted below.")
            # The decision shows at once; the teacher's draft (a model call) follows in the next step.
            draft_updates = [gr.update(visible=True), gr.update(value=""), texts.REV_REVISION_DRAFTING]
        return [*gate_updates(b, thr, mrev, min_judge_value), gr.update(choices=batch_choices(ws, pid), value=b.id),
                *draft_updates, note]

    def draft(batch_id: int) -> list:
        from studio.models.registry import DEFAULT_TEACHER
        from studio.review.revision import draft_revision
        from studio.teachers.spec import parse_teacher

        b = batches.get_batch(ws, batch_id)
        spec = parse_teacher(get_project(ws, b.project_id).teacher_ref or DEFAULT_TEACHER)
        try:
            d = draft_revision(ws, batch_id, spec=spec)
        except StudioError as exc:
            return [gr.update(visible=True), gr.update(value=""), f"⚠️ {_esc(exc)}"]
        return [gr.update(visible=True), gr.update(value=d.template), d.rationale]

    def draft_if_discarded(pid, batch_id):
        b = _batch(ws, pid, batch_id)
        if b is None or b.status != "discarded":
            return [gr.update(), gr.update(), gr.update()]
        return draft(b.id)

    def on_redraft(pid, batch_id):
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        return draft(b.id)

    def on_revision_save(pid, batch_id, template_text):
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.review.revision import save_revision

        try:
            v = save_revision(ws, b.id, template_text or "", note=f"revised after batch #{b.id} failed review")
        except StudioError as exc:
            raise fail(exc) from None
        message = (f"Saved as prompt {v.label} of {get_strategy(b.strategy).title}. Open **Generate** and start a "
                   "new batch: it uses the newest prompt version.")
        gr.Info(message)
        return message

    def on_more(pid, batch_id, who, thr, mrev, mjudge):
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.review.gate import evaluate_gate
        from studio.review.sampling import extend_sample

        result = evaluate_gate(ws, b.id, _gate_config(thr, mrev))
        try:
            extend_sample(ws, b.id, max(int(result.more_reviews_needed or 0), 5))
        except StudioError as exc:
            raise fail(exc) from None
        return [*card_updates(b, resume_position(pid, b.id, who), who), *gate_updates(b, thr, mrev, mjudge)]

    def on_reopen(pid, batch_id, thr, mrev, mjudge):
        b = _batch(ws, require_project(pid), batch_id)
        if b is None:
            raise gr.Error("Pick a batch first.")
        from studio.review.gate import reopen_batch

        try:
            reopen_batch(ws, b.id)
        except StudioError as exc:
            raise fail(exc) from None
        b = batches.get_batch(ws, b.id)
        return [*gate_updates(b, thr, mrev, mjudge), gr.update(choices=batch_choices(ws, pid), value=b.id),
                gr.update(visible=False), f"Batch #{b.id} is open for review again."]

    # ------------------------------------------------------------------ wiring

    filter_values = [enabled, near, semantic, seed_overlap, min_words, max_words, fidelity]
    batch.change(on_batch, [current, batch, reviewer, *gate_inputs], [*view_outputs, revision_box, diversity_summary]
                 ).then(profile_if_open, [current, batch, profile_open, profile_embed], profile_outputs,
                        show_progress="minimal")
    profile_box.expand(lambda: True, None, profile_open, api_name=False, show_progress="hidden").then(
        profile_if_open, [current, batch, profile_open, profile_embed], profile_outputs, api_name=False)
    profile_box.collapse(lambda: False, None, profile_open, api_name=False, show_progress="hidden")
    profile_btn.click(on_profile, [current, batch, profile_embed], profile_outputs)
    reload_btn.click(view, [current, batch, reviewer, position, *gate_inputs], view_outputs)
    preview_btn.click(lambda pid, b, *v: on_filters(pid, b, False, *v), [current, batch, *filter_values],
                      [filter_summary, marked])
    def gate_updates_for(pid: int | None, batch_id: Any, thr: float, mrev: Any, mjudge: Any) -> list:
        return gate_updates(_batch(ws, pid, batch_id), thr, mrev, mjudge)

    apply_btn.click(lambda pid, b, *v: on_filters(pid, b, True, *v), [current, batch, *filter_values],
                    [filter_summary, marked]).then(gate_updates_for, [current, batch, *gate_inputs], gate_outputs)
    judge_btn.click(on_judge, [current, batch], [judge_summary, scores_plot]).then(
        gate_updates_for, [current, batch, *gate_inputs], gate_outputs, show_progress="hidden")  # new scores
    diversity_btn.click(on_diversity, [current, batch], [diversity_summary, map_plot, hist_plot])
    draw_btn.click(on_draw, [current, batch, reviewer, fraction, min_size, *gate_inputs],
                   [*card_outputs, *gate_outputs])
    verdict_extra = [tags, accuracy, tone, note, *gate_inputs]
    # A fast reviewer's next key press arrives while the last verdict is still being saved: run it right after
    # (with the card it then shows) instead of dropping it, which is what the default trigger mode does.
    accept_btn.click(on_accept, [*verdict_inputs, *verdict_extra], [*card_outputs, *gate_outputs],
                     trigger_mode="always_last")
    reject_btn.click(on_reject, [*verdict_inputs, *verdict_extra], [*card_outputs, *gate_outputs],
                     trigger_mode="always_last")
    edit_btn.click(on_edit_open, [current, batch, position], [edit_box, *edit_slots])
    edit_save.click(on_edit_save, [*verdict_inputs, *verdict_extra, *edit_slots], [*card_outputs, *gate_outputs])
    prev_btn.click(lambda pid, b, who, i: on_move(pid, b, who, i, -1), verdict_inputs, card_outputs,
                   trigger_mode="always_last")
    next_btn.click(lambda pid, b, who, i: on_move(pid, b, who, i, 1), verdict_inputs, card_outputs,
                   trigger_mode="always_last")
    reviewer.change(on_reviewer, reviewer, reviewer_saved, show_progress="hidden")
    reviewer.blur(lambda pid, b, who: card_updates(_batch(ws, pid, b), resume_position(pid, b, who), who),
                  [current, batch, reviewer], card_outputs)
    threshold.release(gate_updates_for, [current, batch, *gate_inputs], gate_outputs)
    min_reviews.blur(gate_updates_for, [current, batch, *gate_inputs], gate_outputs)
    min_judge.release(gate_updates_for, [current, batch, *gate_inputs], gate_outputs)
    # Then the gate again, from the database: it lands after any refresh that was under way before the click.
    applied = gate_btn.click(on_gate_apply, [current, batch, *gate_inputs, cap],
                             [*gate_outputs, batch, revision_box, revision, revision_note, gate_note])
    applied.then(gate_updates_for, [current, batch, *gate_inputs], gate_outputs, show_progress="hidden")
    applied.success(draft_if_discarded, [current, batch], [revision_box, revision, revision_note])
    revision_redraft.click(on_redraft, [current, batch], [revision_box, revision, revision_note])
    revision_save.click(on_revision_save, [current, batch, revision], revision_note)
    more_btn.click(on_more, [current, batch, reviewer, *gate_inputs], [*card_outputs, *gate_outputs])
    reopen_btn.click(on_reopen, [current, batch, *gate_inputs], [*gate_outputs, batch, revision_box, gate_note]).then(
        gate_updates_for, [current, batch, *gate_inputs], gate_outputs, show_progress="hidden")

    # The reviewer's name is remembered in this browser (filled in when the tab opens, as the tab's fields
    # are drawn only then); their place in the sample follows from it.
    tab.select(lambda saved, typed: typed or saved or "", [reviewer_saved, reviewer], reviewer, api_name=False,
               show_progress="hidden").then(
        lambda pid, b, who: card_updates(_batch(ws, pid, b), resume_position(pid, b, who), who),
        [current, batch, reviewer], card_outputs, api_name=False, show_progress="hidden")

    return TabHandle(refresh, refresh_outputs)
