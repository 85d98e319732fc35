"""The comparison report of one run: what the fine-tune changed, as Markdown and as a standalone HTML page.

    report = comparison_report(ws, run_id)          # .title, .markdown (tables only), .html (with SVG charts)
    path = export_report(ws, run_id, "html")        # exports/run-<id>-comparison.html, written atomically
    model_card_section(ws, run_id)                  # the Markdown the model card (Publish) embeds

Everything is read from what is stored: the run, its newest test and validation evaluations
(studio.evaluation.batch), the blind A/B votes, and any augmentation ablation the run is a side of. A piece
that is missing is not an error: the report says what to do to fill it in. Text that people or models wrote
(prompts, answers, names) is escaped in both formats (HTML entities; `|` inside Markdown tables), and local
paths and credentials never appear in the model card section.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio import charts
from studio.errors import QualityError
from studio.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from studio.evaluation.ablation import AblationReport
    from studio.evaluation.batch import Evaluation
    from studio.evaluation.votes import VoteSummary
    from studio.train.runs import Run

FORMATS = ("md", "html")
SAMPLES = 5
EVAL_SPLITS = ("test", "validation")
LABELS = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact": "Exact match"}
_FORMAT_ALIASES = {"md": "md", "markdown": "md", "html": "html", "htm": "html"}


@dataclass
class Report:
    title: str
    markdown: str
    html: str


@dataclass
class _Data:
    """Everything the report shows, read once."""

    run: Run
    project_name: str
    version: str
    version_sizes: dict[str, int]
    evals: dict[str, Evaluation | None]
    eval_versions: dict[str, str]
    """split -> the name of the dataset version its evaluation used ("v2 (#2)")."""
    votes: VoteSummary
    ablations: list[AblationReport]


# --- public API ------------------------------------------------------------------------------------------


def comparison_report(ws: Workspace, run_id: int) -> Report:
    """The run's comparison as Markdown (tables) and HTML (tables and inline SVG charts)."""
    data = _gather(ws, run_id)
    title = f"{data.run.title}: base vs fine-tuned"
    return Report(title, _markdown(data, title), _html(data, title))


def model_card_section(ws: Workspace, run_id: int) -> str:
    """A Markdown fragment for the model card: results tables, no local paths, no credentials."""
    data = _gather(ws, run_id)
    run = data.run
    lines = ["## Evaluation", ""]
    lines.append(f"Fine-tuned from {_md(_public_ref(run.base_model_ref))} with {_method(run.method)} on dataset "
                 f"version {_md(data.version)}{_sizes_text(data.version_sizes)}.")
    test = data.evals.get("test")
    if test is None:
        lines += ["", f"Not evaluated against the base model yet. Run a batch evaluation (Compare tab, or "
                      f"`seed-studio eval --run {run.id} --split test`) to fill in this section."]
    else:
        lines += ["", f"Base model vs this model on {test.metrics.get('n', 0)} held-out test rows "
                      f"({_settings_text(test)}):", "", *_metric_table_md(test)]
        judge = test.metrics.get("judge")
        if judge:
            lines += ["", f"LLM judge{_judge_name(judge, _md)}, answers shown in both orders to cancel position bias: "
                          f"{_md(_public(judge.get('message', '')))}"]
    if data.votes.n:
        lines += ["", f"Blind A/B votes by people: {_md(data.votes.message)}"]
    for ab in data.ablations:
        lines += ["", f"Augmentation ablation (same settings, seeds only vs seeds + synthetic rows): "
                      f"{_md(_public(ab.verdict))}"]
    return "\n".join(lines) + "\n"


def export_report(ws: Workspace, run_id: int, fmt: str = "md", dest: Path | str | None = None) -> Path:
    """Write the report (md or html) to `dest` (a file, or a folder for the default name) or
    exports/run-<id>-comparison.<fmt>; atomically: a temporary file in the same folder, then a rename."""
    kind = _FORMAT_ALIASES.get(str(fmt or "").strip().lower().lstrip("."))
    if kind is None:
        raise QualityError(f"'{fmt}' is not a report format; use md (Markdown) or html.")
    report = comparison_report(ws, run_id)  # TrainError names a missing run; nothing is written then
    name = f"run-{run_id}-comparison.{kind}"
    if dest is None:
        path = ws.exports_dir / name
    else:
        path = Path(dest).expanduser()
        if path.is_dir():
            path = path / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise QualityError(f"The report cannot be written to {path.parent}: {error.strerror or error}. Pick "
                           "another folder.") from None
    text = report.markdown if kind == "md" else report.html
    _atomic_write(path, text)
    return path


# --- gathering -------------------------------------------------------------------------------------------


def _gather(ws: Workspace, run_id: int) -> _Data:
    from studio.data.versions import get_version_by_id
    from studio.errors import DatasetVersionError, ProjectError
    from studio.evaluation.ab import vote_summary
    from studio.evaluation.ablation import ablation_report, ablations_of_run
    from studio.evaluation.batch import latest_eval
    from studio.train.runs import get_run
    from studio.workspace.projects import get_project

    run = get_run(ws, run_id)
    try:
        project_name = get_project(ws, run.project_id).name
    except ProjectError:
        project_name = f"#{run.project_id}"
    version, sizes = "(deleted)", {}
    if run.dataset_version_id is not None:
        try:
            v = get_version_by_id(ws, run.dataset_version_id)
            version, sizes = f"{v.name} (#{v.id})", dict(v.splits)
        except DatasetVersionError:
            pass
    evals = {split: latest_eval(ws, run_id, split) for split in EVAL_SPLITS}
    eval_versions = {}
    for split, ev in evals.items():
        if ev is not None:
            try:
                eval_versions[split] = f"{get_version_by_id(ws, ev.dataset_version_id).name} (#{ev.dataset_version_id})"
            except DatasetVersionError:
                eval_versions[split] = f"#{ev.dataset_version_id}"
    ablations = [ablation_report(ws, a.id) for a in ablations_of_run(ws, run_id)]
    return _Data(run, project_name, version, sizes, evals, eval_versions, vote_summary(ws, run_id), ablations)


# --- Markdown --------------------------------------------------------------------------------------------


def _markdown(data: _Data, title: str) -> str:
    run = data.run
    out = [f"# {_md(title)}", "", "## Run", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_md(v)} |" for k, v in _summary_rows(data)]
    for split in EVAL_SPLITS:
        out += ["", f"## {split.capitalize()} split", ""]
        ev = data.evals[split]
        if ev is None:
            out.append(_md(_no_eval_text(run.id, split)))
            continue
        out += [f"{ev.metrics.get('n', 0)} rows of the {split} split of dataset version "
                f"{_md(data.eval_versions[split])}, {_settings_text(ev)}.", "", *_metric_table_md(ev)]
        judge = ev.metrics.get("judge")
        if judge:
            out += ["", f"LLM judge{_judge_name(judge, _md)}, answers shown in both orders: "
                        f"{_md(_public(judge.get('message', '')))}"]
    out += ["", "## Blind A/B votes", ""]
    out += _votes_md(data.votes, run.id)
    for ab in data.ablations:
        out += ["", f"## Augmentation ablation #{ab.ablation.id}", "", ab.to_markdown()]
    out += ["", "## Sample pairs", ""]
    samples, split = _samples(data)
    if not samples:
        out.append("No sample pairs yet: they come from an evaluation. " + _md(_no_eval_text(run.id, "test")))
    else:
        out.append(f"The {len(samples)} {split} rows whose ROUGE-L changed most.")
        for k, ex in enumerate(samples, 1):
            out += ["", f"### Example {k} (ROUGE-L {_fmt(ex.get('change'), signed=True)})", ""]
            for label, key in (("Prompt", "prompt"), ("Reference", "reference"), ("Base model", "base_pred"),
                               ("Fine-tuned", "tuned_pred")):
                out += [f"**{label}:**", "", _quote(ex.get(key, "")), ""]
    return "\n".join(out).rstrip() + "\n"


def _summary_rows(data: _Data) -> list[tuple[str, str]]:
    run = data.run
    rows = [("Project", data.project_name), ("Base model", _public_ref(run.base_model_ref)),
            ("Method", _method(run.method)), ("Dataset version", data.version + _sizes_text(data.version_sizes)),
            ("Status", run.status),
            ("Steps", f"{run.step} / {run.max_steps}" if run.max_steps else str(run.step))]
    if run.best_validation_loss is not None:
        rows.append(("Best validation loss", f"{run.best_validation_loss:.4f}"))
    if run.train_loss is not None:
        rows.append(("Last training loss", f"{run.train_loss:.4f}"))
    return rows


def _metric_rows(ev: Evaluation) -> list[tuple[str, float, float, float, str]]:
    """(label, base, tuned, change, which way is better) for every stored number of an evaluation."""
    out = []
    for r in ev.metrics.get("rows", []):
        out.append((LABELS.get(r["metric"], str(r["metric"])), float(r["base"]), float(r["tuned"]),
                    float(r.get("delta", float(r["tuned"]) - float(r["base"]))), "higher"))
    for key, label in (("loss", "Loss"), ("perplexity", "Perplexity")):
        pair = ev.metrics.get(key) or {}
        if isinstance(pair.get("base"), int | float) and isinstance(pair.get("tuned"), int | float):
            out.append((label, float(pair["base"]), float(pair["tuned"]), float(pair["tuned"]) - float(pair["base"]),
                        "lower"))
    return out


def _metric_table_md(ev: Evaluation) -> list[str]:
    lines = ["| Metric | Base model | Fine-tuned | Change |", "|---|---:|---:|---:|"]
    for label, base, tuned, delta, better in _metric_rows(ev):
        lines.append(f"| {label} ({better} is better) | {_fmt(base)} | {_fmt(tuned)} | {_fmt(delta, signed=True)} |")
    return lines


def _votes_md(votes: VoteSummary, run_id: int) -> list[str]:
    if not votes.n:
        return [_no_votes_text(run_id)]
    return ["| Fine-tuned wins | Base wins | Ties | Win rate (decisive votes) | 95% interval |",
            "|---:|---:|---:|---:|---:|",
            f"| {votes.tuned_wins} | {votes.base_wins} | {votes.ties} | {votes.win_rate:.0%} | "
            f"{votes.low:.0%} – {votes.high:.0%} |", "", _md(votes.message)]


# --- HTML ------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:880px;margin:2rem auto;padding:0 1rem;
color:#0f172a;line-height:1.5}
h1{font-size:1.6rem}h2{margin-top:2rem;border-bottom:1px solid #e2e8f0;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #e2e8f0;padding:.3rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}.up{color:#059669}.down{color:#dc2626}
.note{color:#475569}.pair{display:grid;grid-template-columns:1fr 1fr;gap:.8rem}
.text{white-space:pre-wrap;background:#f8fafc;border:1px solid #e2e8f0;border-radius:6px;padding:.5rem;margin:.2rem 0}
figure.chart{margin:1rem 0}figure.chart svg{width:100%;height:auto}.chart-legend{font-size:.85rem}
.chart-key{margin-right:1rem}.chart-key i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem}
.chart-tick,.chart-label{font-size:11px;fill:#475569}
"""


def _html(data: _Data, title: str) -> str:

    run = data.run
    body = [f"<h1>{_esc(title)}</h1>", "<h2>Run</h2>", "<table>"]
    body += [f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in _summary_rows(data)]
    body.append("</table>")
    curves = {k: [(float(s), float(v)) for s, v in pts] for k, pts in run.curves.items() if pts}
    body.append(charts.line_chart(curves, title="Loss during training", x_label="step", y_label="loss",
                                  empty_message="No loss was logged for this run."))
    for split in EVAL_SPLITS:
        body.append(f"<h2>{split.capitalize()} split</h2>")
        ev = data.evals[split]
        if ev is None:
            body.append(f"<p class='note'>{_esc_code(_no_eval_text(run.id, split))}</p>")
            continue
        body.append(f"<p>{ev.metrics.get('n', 0)} rows of the {split} split of dataset version "
                    f"{_esc(data.eval_versions[split])}, {_esc(_settings_text(ev))}.</p>")
        body.append(_metric_table_html(ev))
        judge = ev.metrics.get("judge")
        if judge:
            body.append(f"<p>LLM judge{_judge_name(judge, _esc)}, answers shown in both orders: "
                        f"{_esc(_public(judge.get('message', '')))}</p>")
        body.append(charts.bar_chart({label: {"Base model": b, "Fine-tuned": t} for label, b, t, _, better
                               in _metric_rows(ev) if better == "higher" and label != "BLEU"}
                              | _bleu_group(ev), title=f"Base vs fine-tuned ({split} split)",
                              y_label="score (BLEU / 100)"))
        changes = [float(e["change"]) for e in ev.examples if isinstance(e.get("change"), int | float)]
        body.append(charts.histogram_chart({"ROUGE-L change per row": changes}, title="How much each row changed",
                                           lo=-1.0, hi=1.0, bins=10, x_label="ROUGE-L change (fine-tuned - base)",
                                           empty_message="No per-row results stored."))
    body.append("<h2>Blind A/B votes</h2>")
    body.append(_votes_html(data.votes, run.id))
    for ab in data.ablations:
        body.append(f"<h2>Augmentation ablation #{ab.ablation.id}</h2>")
        body.append(_ablation_html(ab))
    body.append("<h2>Sample pairs</h2>")
    samples, split = _samples(data)
    if not samples:
        body.append(f"<p class='note'>No sample pairs yet: they come from an evaluation. "
                    f"{_esc_code(_no_eval_text(run.id, 'test'))}</p>")
    else:
        body.append(f"<p>The {len(samples)} {split} rows whose ROUGE-L changed most.</p>")
        for k, ex in enumerate(samples, 1):
            body.append(f"<h3>Example {k} (ROUGE-L {_esc(_fmt(ex.get('change'), signed=True))})</h3>"
                        f"<div><b>Prompt</b><div class='text'>{_text_html(ex.get('prompt', ''))}</div>"
                        f"<b>Reference</b><div class='text'>{_text_html(ex.get('reference', ''))}</div></div>"
                        f"<div class='pair'><div><b>Base model</b><div class='text'>"
                        f"{_text_html(ex.get('base_pred', ''))}</div></div><div><b>Fine-tuned</b><div class='text'>"
                        f"{_text_html(ex.get('tuned_pred', ''))}</div></div></div>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _bleu_group(ev: Evaluation) -> dict[str, dict[str, float]]:
    row = next((r for r in ev.metrics.get("rows", []) if r.get("metric") == "bleu"), None)
    if row is None:
        return {}
    return {"BLEU / 100": {"Base model": float(row["base"]) / 100, "Fine-tuned": float(row["tuned"]) / 100}}


def _metric_table_html(ev: Evaluation) -> str:
    rows = ["<table><tr><th>Metric</th><th>Base model</th><th>Fine-tuned</th><th>Change</th></tr>"]
    for label, base, tuned, delta, better in _metric_rows(ev):
        good = (delta > 0) == (better == "higher")
        cls = "" if delta == 0 else (" up" if good else " down")
        rows.append(f"<tr><td>{_esc(label)} <span class='note'>({better} is better)</span></td>"
                    f"<td class='num'>{_fmt(base)}</td><td class='num'>{_fmt(tuned)}</td>"
                    f"<td class='num{cls}'>{_fmt(delta, signed=True)}</td></tr>")
    return "".join(rows) + "</table>"


def _votes_html(votes: VoteSummary, run_id: int) -> str:
    if not votes.n:
        return f"<p class='note'>{_esc(_no_votes_text(run_id))}</p>"
    return ("<table><tr><th>Fine-tuned wins</th><th>Base wins</th><th>Ties</th><th>Win rate (decisive votes)</th>"
            f"<th>95% interval</th></tr><tr><td class='num'>{votes.tuned_wins}</td><td class='num'>{votes.base_wins}"
            f"</td><td class='num'>{votes.ties}</td><td class='num'>{votes.win_rate:.0%}</td><td class='num'>"
            f"{votes.low:.0%} – {votes.high:.0%}</td></tr></table><p>{_esc(votes.message)}</p>")


def _ablation_html(ab: AblationReport) -> str:
    from studio.evaluation.ablation import AUGMENTED, SEEDS

    cfg = ab.ablation.config
    seeds_v, source_v = cfg.get("seeds_version", {}), cfg.get("source_version", {})
    rows = [f"<p>Same training settings and base model, two datasets: <b>seeds only</b> (version "
            f"{_esc(seeds_v.get('name', ab.ablation.seeds_version_id))}) and <b>seeds + synthetic</b> (version "
            f"{_esc(source_v.get('name', ab.ablation.source_version_id))}).</p>",
            "<table><tr><th></th><th>Seeds only</th><th>Seeds + synthetic</th><th>Change</th></tr>",
            f"<tr><td>Run</td><td>#{ab.seeds_run.id} ({_esc(ab.seeds_run.status)})</td><td>#{ab.augmented_run.id} "
            f"({_esc(ab.augmented_run.status)})</td><td></td></tr>",
            f"<tr><td>Validation loss (lower is better)</td><td class='num'>{_fmt(ab.val_loss.get(SEEDS))}</td>"
            f"<td class='num'>{_fmt(ab.val_loss.get(AUGMENTED))}</td><td class='num'>"
            f"{_fmt(ab.val_loss.get('delta'), signed=True)}</td></tr>"]
    for m in ab.metrics:
        rows.append(f"<tr><td>{_esc(m['label'])} ({_esc(m['better'])} is better)</td><td class='num'>"
                    f"{_fmt(m[SEEDS])}</td><td class='num'>{_fmt(m[AUGMENTED])}</td><td class='num'>"
                    f"{_fmt(m['delta'], signed=True)}</td></tr>")
    rows.append(f"</table><p><b>Verdict:</b> {_esc(ab.verdict)}</p>")
    losses = {"Validation loss": {"Seeds only": ab.val_loss.get(SEEDS),
                                  "Seeds + synthetic": ab.val_loss.get(AUGMENTED)}}
    if all(v is not None for v in losses["Validation loss"].values()):
        rows.append(charts.bar_chart(losses, title="Validation loss: seeds only vs seeds + synthetic",
                                     y_label="loss"))
    return "".join(rows)



# --- shared pieces ---------------------------------------------------------------------------------------


def _samples(data: _Data) -> tuple[list[dict[str, Any]], str]:
    """Up to 5 rows with the largest change (the examples are stored largest change first)."""
    for split in EVAL_SPLITS:
        ev = data.evals[split]
        if ev is not None and ev.examples:
            ranked = sorted(ev.examples, key=lambda e: -abs(float(e.get("change") or 0.0)))
            return ranked[:SAMPLES], split
    return [], "test"


def _settings_text(ev: Evaluation) -> str:
    cfg = ev.config
    decoding = "greedy decoding" if not cfg.temperature else f"temperature {cfg.temperature:g}"
    return f"{decoding}, at most {cfg.max_new_tokens} new tokens, seed {cfg.seed}, the same for both models"


def _judge_name(judge: dict[str, Any], escape: Any) -> str:
    """' (teacher)' after "LLM judge", escaped by `escape` (_md or _esc); '' when none is recorded."""
    name = str(judge.get("teacher") or "").strip()
    return f" ({escape(_public_ref(name))})" if name else ""


def _no_eval_text(run_id: int, split: str) -> str:
    return (f"No finished evaluation on the {split} split yet. Run one in the Compare tab (Batch evaluation), or "
            f"with `seed-studio eval --run {run_id} --split {split}`.")


def _no_votes_text(run_id: int) -> str:
    return (f"No blind A/B votes yet. Vote in the Compare tab (Blind A/B): answers of the base model and of run "
            f"{run_id} are shown as A and B in random order, and revealed after each vote.")


def _method(method: str) -> str:
    return {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}.get(method, method)


def _sizes_text(sizes: dict[str, int]) -> str:
    if not sizes:
        return ""
    return (f" ({sizes.get('train', 0)} train, {sizes.get('validation', 0)} validation, {sizes.get('test', 0)} "
            "test rows)")


def _public(text: str) -> str:
    from studio.data.versions import public_text

    return public_text(str(text))


def _public_ref(ref: str) -> str:
    """A model ref as it may be published: a local folder by its name only (a path tells about the machine)."""
    text = str(ref or "")
    looks_local = text.startswith(("/", "~", "./", "../", "\\")) or (len(text) > 2 and text[1] == ":") \
        or (os.sep in text.strip("/") and Path(text).expanduser().exists())
    if looks_local:
        return f"{Path(text).name or text} (a local model folder)"
    return _public(text)


def _fmt(value: Any, signed: bool = False) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _esc(text: object) -> str:
    return html.escape(str(text))


def _esc_code(text: str) -> str:
    """Our own advice text for HTML: escaped, with `command` spans shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _text_html(text: object) -> str:
    return _esc(text) if str(text).strip() else "<i class='note'>(empty)</i>"


def _md(text: object) -> str:
    """User text made safe in Markdown: HTML escaped (renders as the same characters), one line, `|` escaped."""
    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")


def _quote(text: object) -> str:
    """A block of user text as a Markdown blockquote, escaped, line breaks kept."""
    if not str(text).strip():
        return "> *(empty)*"
    lines = str(text).splitlines()
    return "\n".join("> " + (html.escape(line, quote=False).replace("|", "\\|") or "&nbsp;") for line in lines)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
