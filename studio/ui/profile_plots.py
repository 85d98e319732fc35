"""The Review tab's data-profile panel as HTML: rows by status, lengths per field, plan coverage, novelty.

Plain functions of a `studio.quality.profile.DataProfile` (no Gradio here, so tests draw them without the UI).
Every chart goes through `studio.charts`, which escapes all text; each comes after a one-line note in plain words.
"""

from __future__ import annotations

import html
from typing import Any

from studio import charts
from studio.ui import texts


def _esc(text: Any) -> str:
    return html.escape(str(text or ""))


PROFILE_MAX_BARS = 12  # plan values per coverage chart; the rest share one "other" group


def _with_note(note: str, chart: str) -> str:
    return f"<p class='profile-note'>{_esc(note)}</p>{chart}"


def profile_status_html(p: Any) -> str:
    groups: dict[str, dict[str, float | None]] = {k: {"rows": float(p.by_status.get(k, 0))}
                                                 for k in ("ok", "partial", "failed")}
    groups.update({k: {"rows": float(v)} for k, v in p.by_outcome.items()})
    # Horizontal bars: under vertical ones, "passed filters", "marked by a filter", "not filtered" overlapped.
    chart = charts.hbar_chart(groups, title=texts.REV_PROFILE_STATUS, x_label="rows",
                              empty_message="No rows yet.") if p.rows else charts.empty(texts.REV_PROFILE_STATUS,
                                                                                       "No rows yet.")
    return _with_note(texts.REV_PROFILE_STATUS_NOTE, chart)


def profile_lengths_html(p: Any) -> str:
    figures = [charts.binned_chart({f.name: f.histogram["counts"]}, title=f"{texts.REV_PROFILE_LENGTHS}: {f.name}",
                                   lo=f.histogram["lo"], hi=f.histogram["hi"], x_label="words",
                                   empty_message="Always empty.")
               for f in p.fields if f.histogram]
    return _with_note(texts.REV_PROFILE_LENGTHS_NOTE, "".join(figures) or charts.empty(
        texts.REV_PROFILE_LENGTHS, "No usable rows to measure."))


def _coverage_groups(dim: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Planned vs observed share (%) per planned value, the largest planned first; overflow in one group.

    Keys are the full values (the chart cuts long labels and keeps the full text as their hover title)."""
    values = sorted(dim["values"], key=lambda v: -v["expected_share"])
    shown, rest = values[:PROFILE_MAX_BARS], values[PROFILE_MAX_BARS:]
    groups = {str(v["value"]): {"planned": 100 * v["expected_share"], "observed": 100 * v["share"]}
              for v in shown}
    if rest:
        groups[f"{len(rest)} more"] = {"planned": 100 * sum(v["expected_share"] for v in rest),
                                       "observed": 100 * sum(v["share"] for v in rest)}
    off = sum(v["share"] for v in dim["off_plan"])
    if off:
        groups["not in plan"] = {"planned": 0.0, "observed": 100 * off}
    return groups


def profile_coverage_html(p: Any) -> str:
    coverage = p.coverage
    if not coverage.get("planned"):
        return _with_note(texts.REV_PROFILE_COVERAGE_NOTE, charts.empty(texts.REV_PROFILE_COVERAGE,
                                                                       texts.REV_PROFILE_NO_PLAN))
    figures = [charts.hbar_chart(_coverage_groups(d), title=f"{texts.REV_PROFILE_COVERAGE}: {d['name']} "
                                 f"({d['covered']} of {d['planned']} values appear)", x_label="% of rows", lo=0)
               for d in coverage["dimensions"]]
    return _with_note(texts.REV_PROFILE_COVERAGE_NOTE, "".join(figures))


def profile_novelty_html(p: Any) -> str:
    series = {}
    for key, label in (("lexical", "by words (ROUGE-L)"), ("semantic", "by meaning (cosine)")):
        part = p.novelty.get(key)
        if part:
            series[label] = part["histogram"]["counts"]
    chart = (charts.binned_chart(series, title=texts.REV_PROFILE_NOVELTY, lo=0.0, hi=1.0,
                                 x_label="closeness to the nearest seed") if series else
             charts.empty(texts.REV_PROFILE_NOVELTY, f"Not measured: {p.novelty.get('note') or 'no rows'}."))
    return _with_note(texts.REV_PROFILE_NOVELTY_NOTE, chart)


def profile_md(p: Any) -> str:
    from studio.quality.profile import summary_lines

    return "\n".join(f"- {html.escape(line, quote=False)}" for line in summary_lines(p))


def profile_views(p: Any) -> list[str]:
    """[summary, status, lengths, coverage, novelty] for the profile panel."""
    return [profile_md(p), profile_status_html(p), profile_lengths_html(p), profile_coverage_html(p),
            profile_novelty_html(p)]
