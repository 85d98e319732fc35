"""Small inline-SVG charts: loss curves, the seeds-vs-synthetic map, histograms, vertical and horizontal bars.

Why not gr.LinePlot / ScatterPlot / BarPlot: in Gradio 6.31 their marks are not drawn at all once a
`color` column is set (axes only, in Chromium), and a chart whose lines are missing is worse than none.
SVG drawn here is plain markup: it renders everywhere, prints, and a browser test can count its points.
Every text is escaped; generated rows are data, never markup.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence

PALETTE = ("#059669", "#2563eb", "#d97706", "#db2777", "#7c3aed", "#0891b2")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 260, 56, 16, 16, 36
CHAR_W = 6.4  # a generous guess at one narrow character of an 11px tick label, in viewBox units
LABEL_CHARS = 32  # a horizontal bar chart's category labels are cut (with "…") beyond about this many characters


def _esc(text: object) -> str:
    return html.escape(str(text))


def _text_width(text: str) -> float:
    """Estimated width of a tick label: wide (CJK) characters count twice."""
    return sum(CHAR_W * (2 if unicodedata.east_asian_width(c) in "WF" else 1) for c in text)


def _cut(text: str, width: float) -> str:
    """`text`, cut with "…" so that it fits `width` (estimated)."""
    if _text_width(text) <= width:
        return text
    out, used = "", _text_width("…")
    for c in text:
        used += _text_width(c)
        if used > width:
            break
        out += c
    return out.rstrip() + "…"


def _fit_lines(text: str, width: float, lines: int = 2) -> list[str]:
    """`text` wrapped at spaces into at most `lines` lines of `width`; the last one cut with "…" if need be."""
    if _text_width(text) <= width:
        return [text]
    out: list[str] = []
    words = text.split()
    while words and len(out) < lines - 1:
        line = words.pop(0)
        while words and _text_width(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        if _text_width(line) > width:  # one word longer than the line: cut it, drop the rest
            return [*out, _cut(line + (" " + " ".join(words) if words else ""), width)]
        out.append(line)
    return out + ([_cut(" ".join(words), width)] if words else [])


def _label(x: float, y: float, text: str, lines: list[str], anchor: str) -> str:
    """A category label (one or more lines); when shortened, the full text is its hover title."""
    shortened = " ".join(lines) != " ".join(text.split())
    tip = f"<title>{_esc(text)}</title>" if shortened else ""
    if len(lines) == 1:
        return f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' class='chart-tick'>{tip}{_esc(lines[0])}</text>"
    spans = "".join(f"<tspan x='{x:.1f}' dy='{0 if i == 0 else 12}'>{_esc(line)}</tspan>"
                    for i, line in enumerate(lines))
    return f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' class='chart-tick'>{tip}{spans}</text>"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _fmt(v: float, span: float | None = None) -> str:
    """Enough decimals to tell neighbouring ticks apart (a loss axis from 10.79 to 10.83 needs three)."""
    import math

    if span is not None and span > 0:
        decimals = max(0, min(6, 1 - math.floor(math.log10(span / 4))))
        return f"{v:.{decimals}f}"
    return f"{v:.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def _frame(x_lo: float, x_hi: float, y_lo: float, y_hi: float, x_label: str, y_label: str) -> list[str]:
    out = [f"<rect x='{PAD_L}' y='{PAD_T}' width='{W - PAD_L - PAD_R}' height='{H - PAD_T - PAD_B}' "
           "fill='none' stroke='#cbd5e1'/>"]
    for t in _ticks(y_lo, y_hi):
        y = _sy(t, y_lo, y_hi)
        out.append(f"<line x1='{PAD_L}' x2='{W - PAD_R}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eef2f7'/>"
                   f"<text x='{PAD_L - 6}' y='{y + 4:.1f}' text-anchor='end' class='chart-tick'>{_fmt(t, y_hi - y_lo)}"
                   "</text>")
    for t in _ticks(x_lo, x_hi):
        x = _sx(t, x_lo, x_hi)
        out.append(f"<text x='{x:.1f}' y='{H - PAD_B + 16}' text-anchor='middle' class='chart-tick'>"
                   f"{_fmt(t, x_hi - x_lo)}</text>")
    out.append(f"<text x='{(PAD_L + W - PAD_R) / 2}' y='{H - 4}' text-anchor='middle' class='chart-label'>"
               f"{_esc(x_label)}</text>")
    out.append(f"<text x='12' y='{(PAD_T + H - PAD_B) / 2}' text-anchor='middle' class='chart-label' "
               f"transform='rotate(-90 12 {(PAD_T + H - PAD_B) / 2})'>{_esc(y_label)}</text>")
    return out


def _sx(v: float, lo: float, hi: float) -> float:
    return PAD_L + (v - lo) / ((hi - lo) or 1) * (W - PAD_L - PAD_R)


def _sy(v: float, lo: float, hi: float) -> float:
    return H - PAD_B - (v - lo) / ((hi - lo) or 1) * (H - PAD_T - PAD_B)


def _legend(names: Sequence[str]) -> str:
    items = "".join(f"<span class='chart-key'><i style='background:{PALETTE[i % len(PALETTE)]}'></i>{_esc(n)}</span>"
                    for i, n in enumerate(names))
    return f"<div class='chart-legend'>{items}</div>"


def _wrap(kind: str, title: str, body: list[str], names: Sequence[str], points: int, *, height: float = H,
          svg_class: str = "") -> str:
    css = f" class='{svg_class}'" if svg_class else ""
    return (f"<figure class='chart' data-chart='{kind}' data-points='{points}'>"
            f"<figcaption>{_esc(title)}</figcaption>{_legend(names)}"
            f"<svg{css} viewBox='0 0 {W} {height:g}' role='img' aria-label='{_esc(title)}'>{''.join(body)}</svg>"
            "</figure>")


def empty(title: str, message: str) -> str:
    return (f"<figure class='chart chart-empty' data-chart='empty' data-points='0'><figcaption>{_esc(title)}"
            f"</figcaption><p>{_esc(message)}</p></figure>")


def line_chart(series: dict[str, list[tuple[float, float]]], *, title: str, x_label: str, y_label: str,
               empty_message: str = "No points yet.") -> str:
    """One polyline (with dots) per named series, on shared axes."""
    pts = [p for values in series.values() for p in values]
    if not pts:
        return empty(title, empty_message)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    margin = (y_hi - y_lo) * 0.08 or abs(y_hi) * 0.05 or 1.0
    y_lo, y_hi = y_lo - margin, y_hi + margin
    body = _frame(x_lo, x_hi, y_lo, y_hi, x_label, y_label)
    names = list(series)
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        coords = [(_sx(x, x_lo, x_hi), _sy(y, y_lo, y_hi), x, y) for x, y in sorted(series[name])]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _, _ in coords)
            body.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='2' "
                        f"data-series='{_esc(name)}'/>")
        body += [f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='3' fill='{color}'><title>{_esc(name)} · {_fmt(x)}: "
                 f"{y:.4g}</title></circle>" for cx, cy, x, y in coords]
    return _wrap("line", title, body, names, len(pts))


def scatter_chart(points: list[dict], *, title: str, x_label: str = "", y_label: str = "",
                  empty_message: str = "Nothing to map yet.") -> str:
    """Dots coloured by their `kind`, each with its text as a hover title."""
    if not points:
        return empty(title, empty_message)
    xs, ys = [float(p["x"]) for p in points], [float(p["y"]) for p in points]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    body = _frame(x_lo, x_hi, y_lo, y_hi, x_label, y_label)
    names = sorted({str(p["kind"]) for p in points}, key=lambda k: (k != "seed", k))
    for p in points:
        color = PALETTE[names.index(str(p["kind"])) % len(PALETTE)]
        body.append(f"<circle cx='{_sx(float(p['x']), x_lo, x_hi):.1f}' cy='{_sy(float(p['y']), y_lo, y_hi):.1f}' "
                    f"r='3.5' fill='{color}' fill-opacity='0.7'><title>{_esc(p['kind'])}: "
                    f"{_esc(p.get('text', ''))}</title></circle>")
    return _wrap("scatter", title, body, names, len(points))


def histogram_chart(series: dict[str, list[float]], *, title: str, lo: float, hi: float, bins: int = 10,
                    x_label: str = "", empty_message: str = "No values yet.") -> str:
    """Side-by-side bars per bin, one colour per named series (counts of values in [lo, hi])."""
    series = {k: [min(max(float(v), lo), hi) for v in vals if v is not None] for k, vals in series.items()}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return empty(title, empty_message)
    width = (hi - lo) / bins
    counts = {k: [0] * bins for k in series}
    for k, vals in series.items():
        for v in vals:
            counts[k][min(bins - 1, int((v - lo) / width))] += 1
    return binned_chart(counts, title=title, lo=lo, hi=hi, x_label=x_label, empty_message=empty_message)


def binned_chart(counts: dict[str, list[int]], *, title: str, lo: float, hi: float, x_label: str = "",
                 empty_message: str = "No values yet.") -> str:
    """A histogram whose values were already counted: equal-width bins over [lo, hi], one count list per named
    series (all of one length). Why: a data profile keeps 20 counts per field, not 10,000 lengths."""
    counts = {k: list(c) for k, c in counts.items() if sum(c)}
    if not counts:
        return empty(title, empty_message)
    bins = len(next(iter(counts.values())))
    width = (hi - lo) / bins
    top = max(max(c) for c in counts.values()) or 1
    body = _frame(lo, hi, 0, top, x_label, "rows")
    names = list(counts)
    slot = (W - PAD_L - PAD_R) / bins
    bar = slot * 0.8 / len(names)
    for i, name in enumerate(names):
        for b, n in enumerate(counts[name]):
            x = PAD_L + b * slot + slot * 0.1 + i * bar
            y = _sy(n, 0, top)
            body.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar:.1f}' height='{H - PAD_B - y:.1f}' "
                        f"fill='{PALETTE[i % len(PALETTE)]}'><title>{_esc(name)} · {lo + b * width:.2f}–"
                        f"{lo + (b + 1) * width:.2f}: {n}</title></rect>")
    return _wrap("histogram", title, body, names, sum(sum(c) for c in counts.values()))


def _bar_axis(groups: dict[str, dict[str, float | None]], lo: float | None,
              hi: float | None) -> tuple[list[str], float, float] | None:
    """Series names (first-seen order) and the value axis of grouped bars; None when there is no value."""
    values = [float(v) for g in groups.values() for v in g.values() if v is not None]
    if not values:
        return None
    names = list(dict.fromkeys(n for g in groups.values() for n, v in g.items() if v is not None))
    bottom = min(min(values), 0.0) if lo is None else lo
    top = (max(max(values), 0.0) or 1.0) if hi is None else hi
    return names, bottom, (top if top > bottom else bottom + 1.0)


def bar_chart(groups: dict[str, dict[str, float | None]], *, title: str, y_label: str = "",
              lo: float | None = None, hi: float | None = None, empty_message: str = "Nothing to chart yet.") -> str:
    """Grouped bars: one group per category (e.g. a metric), one coloured bar per series inside it.

    `groups` maps category -> {series: value}; series keep their first-seen order and colour. Bars start at
    zero, so negative values (a change) hang below the line. `lo` / `hi` fix the axis (default: the values
    and zero).
    """
    axis = _bar_axis(groups, lo, hi)
    if axis is None:
        return empty(title, empty_message)
    names, bottom, top = axis
    body = [f"<rect x='{PAD_L}' y='{PAD_T}' width='{W - PAD_L - PAD_R}' height='{H - PAD_T - PAD_B}' "
            "fill='none' stroke='#cbd5e1'/>"]
    for t in _ticks(bottom, top):
        y = _sy(t, bottom, top)
        body.append(f"<line x1='{PAD_L}' x2='{W - PAD_R}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eef2f7'/>"
                    f"<text x='{PAD_L - 6}' y='{y + 4:.1f}' text-anchor='end' class='chart-tick'>"
                    f"{_fmt(t, top - bottom)}</text>")
    slot = (W - PAD_L - PAD_R) / len(groups)
    bar = slot * 0.7 / len(names)
    zero = _sy(min(max(0.0, bottom), top), bottom, top)
    count = 0
    for g_index, (group, vals) in enumerate(groups.items()):
        # Each label keeps to its own slot (two lines at most, then "…"), so neighbours never overlap.
        body.append(_label(PAD_L + (g_index + 0.5) * slot, H - PAD_B + 14, str(group),
                           _fit_lines(str(group), slot - 6), "middle"))
        for s_index, name in enumerate(names):
            value = vals.get(name)
            if value is None:
                continue
            y = _sy(min(max(float(value), bottom), top), bottom, top)
            x = PAD_L + g_index * slot + slot * 0.15 + s_index * bar
            body.append(f"<rect x='{x:.1f}' y='{min(y, zero):.1f}' width='{bar:.1f}' height='{abs(zero - y):.1f}' "
                        f"fill='{PALETTE[s_index % len(PALETTE)]}' data-series='{_esc(name)}'><title>{_esc(group)} · "
                        f"{_esc(name)}: {float(value):.4g}</title></rect>")
            count += 1
    body.append(f"<text x='12' y='{(PAD_T + H - PAD_B) / 2}' text-anchor='middle' class='chart-label' "
                f"transform='rotate(-90 12 {(PAD_T + H - PAD_B) / 2})'>{_esc(y_label)}</text>")
    return _wrap("bar", title, body, names, count)


def hbar_chart(groups: dict[str, dict[str, float | None]], *, title: str, x_label: str = "",
               lo: float | None = None, hi: float | None = None, empty_message: str = "Nothing to chart yet.") -> str:
    """Grouped horizontal bars: one row per category, its label on the left, one coloured bar per series.

    For many or long category names (plan topics are user text): a label gets up to ~32 characters (cut with
    "…", the full text in its hover title) and the chart grows one row per category, so labels never overlap.
    Same input as `bar_chart` (category -> {series: value}); bars start at zero, `lo` / `hi` fix the axis.
    """
    axis = _bar_axis(groups, lo, hi)
    if axis is None:
        return empty(title, empty_message)
    names, bottom, top = axis
    labels = {g: _cut(str(g), LABEL_CHARS * CHAR_W) for g in groups}
    left = min(max(max(_text_width(t) for t in labels.values()) + 14, 48.0), W / 2)
    right = W - PAD_R
    bar = 10.0 if len(names) > 1 else 14.0
    slot = bar * len(names) + 10
    plot_bottom = PAD_T + slot * len(groups)
    height = plot_bottom + PAD_B

    def sx(v: float) -> float:
        return left + (min(max(v, bottom), top) - bottom) / (top - bottom) * (right - left)

    body = [f"<rect x='{left:.1f}' y='{PAD_T}' width='{right - left:.1f}' height='{plot_bottom - PAD_T:g}' "
            "fill='none' stroke='#cbd5e1'/>"]
    for t in _ticks(bottom, top):
        x = sx(t)
        body.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{PAD_T}' y2='{plot_bottom:g}' stroke='#eef2f7'/>"
                    f"<text x='{x:.1f}' y='{plot_bottom + 16:g}' text-anchor='middle' class='chart-tick'>"
                    f"{_fmt(t, top - bottom)}</text>")
    zero = sx(0.0)
    count = 0
    for g_index, (group, vals) in enumerate(groups.items()):
        y0 = PAD_T + g_index * slot
        body.append(_label(left - 6, y0 + slot / 2 + 4, str(group), [labels[group]], "end"))
        for s_index, name in enumerate(names):
            value = vals.get(name)
            if value is None:
                continue
            x = sx(float(value))
            body.append(f"<rect x='{min(x, zero):.1f}' y='{y0 + 5 + s_index * bar:.1f}' width='{abs(x - zero):.1f}' "
                        f"height='{bar:g}' fill='{PALETTE[s_index % len(PALETTE)]}' data-series='{_esc(name)}'>"
                        f"<title>{_esc(group)} · {_esc(name)}: {float(value):.4g}</title></rect>")
            count += 1
    body.append(f"<text x='{(left + right) / 2:.1f}' y='{height - 4:g}' text-anchor='middle' class='chart-label'>"
                f"{_esc(x_label)}</text>")
    return _wrap("bar", title, body, names, count, height=height, svg_class="chart-hbar")
