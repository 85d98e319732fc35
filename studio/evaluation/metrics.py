"""Reference-based metrics (ROUGE-L, BLEU, exact match), extra `evaluate` metrics, and a base-vs-tuned table.

Every score comes from an `evaluate` module: the three shipped with the studio (studio/evaluation/metric_modules,
loaded by path, offline; rouge_score and sacrebleu underneath) and any extra one a person names by hub id or
path. Modules load on first use and stay loaded (metric_modules), so importing this module stays cheap for the
UI and CLI. `normalize` lives here, its one owner; the exact_match module imports it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from studio.errors import QualityError

METRICS = ("rouge_l", "bleu", "exact")
_MODULES = {"rouge_l": "rouge_l", "bleu": "bleu", "exact": "exact_match"}
"""Row name -> shipped module (its result holds the score under the module's name)."""
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def _check(predictions: list[str], references: list[str]) -> None:
    if len(predictions) == 0 or len(references) == 0:
        raise QualityError("There is nothing to score: give at least one prediction and one reference.")
    if len(predictions) != len(references):
        raise QualityError(f"Each prediction needs exactly one reference, but there are {len(predictions)} "
                           f"predictions and {len(references)} references.")
    for text in (*predictions, *references):
        if not isinstance(text, str):
            raise QualityError(f"Predictions and references must be text, got {type(text).__name__}.")


def normalize(text: str) -> str:
    """SQuAD-style normalisation, so 'The cat.' and 'cat' count as the same answer."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _run(name: str, predictions: list[str], references: list[str], *, per_example: bool = False) -> dict[str, Any]:
    from studio.evaluation import metric_modules

    return metric_modules.compute(metric_modules.shipped(_MODULES[name]), predictions, references,
                                  per_example=per_example)


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F-measure over the pairs, 0..1 (Porter stemmer)."""
    _check(predictions, references)
    return float(_run("rouge_l", predictions, references)["rouge_l"])


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu defaults), 0..100."""
    _check(predictions, references)
    return float(_run("bleu", predictions, references)["bleu"])


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Share of pairs that are equal after normalisation, 0..1."""
    _check(predictions, references)
    return float(_run("exact", predictions, references)["exact_match"])


def score(predictions: list[str], references: list[str]) -> tuple[dict[str, float], list[dict[str, float]]]:
    """({rouge_l, bleu, exact} over all pairs, the same per pair): one call of each module."""
    _check(predictions, references)
    totals: dict[str, float] = {}
    rows: list[dict[str, float]] = [{} for _ in predictions]
    for name, module in _MODULES.items():
        result = _run(name, predictions, references, per_example=True)
        totals[name] = float(result[module])
        for row, value in zip(rows, result["per_example"], strict=True):
            row[name] = float(value)
    return totals, rows


def per_example(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """Scores per pair: rouge_l (0..1), bleu (sentence BLEU, 0..100), exact (0 or 1)."""
    return score(predictions, references)[1]


def check_extra(names: Sequence[str], references: list[str], *, hosted: bool = False) -> list[str]:
    """Resolve and load each extra metric, and try it on `references` against themselves, so a name that
    cannot work fails here, before any answer is generated. Returns the refs to store (duplicates dropped).
    `hosted`: the studio serves others (a Space): only the evaluate team's own modules (metric_modules.resolve)."""
    from studio.evaluation import metric_modules

    refs = list(dict.fromkeys(metric_modules.resolve(n, hosted=hosted) for n in names))
    sample = references[:2]
    for ref in refs:
        if sample and not metric_modules.numbers(metric_modules.compute(ref, sample, sample)):
            raise QualityError(f"Metric '{metric_modules.label(ref)}' gives no single number to compare (its "
                               "result holds lists or texts only). Name a metric that returns scores.")
    return refs


def extra_scores(refs: Sequence[str], base_preds: list[str], tuned_preds: list[str],
                 references: list[str]) -> list[ExtraRow]:
    """Each extra metric on both sides: one row per number it returns; a metric that fails gets a row with
    its error instead of ending the evaluation (the answers are already paid for)."""
    from studio.evaluation import metric_modules

    out: list[ExtraRow] = []
    for ref in refs:
        name = metric_modules.label(ref)
        try:
            base = metric_modules.numbers(metric_modules.compute(ref, base_preds, references))
            tuned = metric_modules.numbers(metric_modules.compute(ref, tuned_preds, references))
        except QualityError as error:
            out.append(ExtraRow(name, ref, "", None, None, str(error)))
            continue
        keys = [k for k in base if k in tuned]
        if not keys:
            out.append(ExtraRow(name, ref, "", None, None, f"Metric '{name}' returned no number for both sides."))
        out += [ExtraRow(name, ref, k, base[k], tuned[k]) for k in keys]
    return out


@dataclass
class MetricRow:
    metric: str
    base: float
    tuned: float

    @property
    def delta(self) -> float:
        return self.tuned - self.base


@dataclass
class ExtraRow:
    """One number of an extra metric, base vs tuned; or the metric's error (base and tuned None)."""

    metric: str
    ref: str
    key: str
    base: float | None
    tuned: float | None
    error: str = ""

    @property
    def title(self) -> str:
        """'meteor', or 'rouge · rougeL' when the number's key is not the metric's own name."""
        return self.metric if self.key in ("", self.metric) else f"{self.metric} · {self.key}"

    def to_dict(self) -> dict[str, Any]:
        if self.error:
            return {"metric": self.metric, "ref": self.ref, "error": self.error}
        assert self.base is not None and self.tuned is not None
        return {"metric": self.metric, "ref": self.ref, "key": self.key, "title": self.title, "base": self.base,
                "tuned": self.tuned, "delta": self.tuned - self.base}


@dataclass
class ExampleDelta:
    index: int
    reference: str
    base_pred: str
    tuned_pred: str
    base: dict[str, float]
    tuned: dict[str, float]
    delta: dict[str, float]
    change: float
    """The ROUGE-L delta: the per-example view sorts by its absolute size."""


@dataclass
class MetricTable:
    rows: list[MetricRow]
    examples: list[ExampleDelta] = field(default_factory=list)
    extra: list[ExtraRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [{"metric": r.metric, "base": r.base, "tuned": r.tuned, "delta": r.delta} for r in self.rows],
            "extra": [e.to_dict() for e in self.extra],
            "examples": [
                {"index": e.index, "reference": e.reference, "base_pred": e.base_pred, "tuned_pred": e.tuned_pred,
                 "base": e.base, "tuned": e.tuned, "delta": e.delta, "change": e.change}
                for e in self.examples
            ],
        }

    def to_markdown(self) -> str:
        lines = ["| Metric | Base | Fine-tuned | Change |", "|---|---:|---:|---:|"]
        for r in self.rows:
            lines.append(f"| {_LABELS.get(r.metric, r.metric)} | {r.base:.3f} | {r.tuned:.3f} | {r.delta:+.3f} |")
        lines += extra_markdown([e.to_dict() for e in self.extra])
        return "\n".join(lines)


def extra_markdown(extra: list[dict[str, Any]]) -> list[str]:
    """Table lines of stored extra-metric rows (an error as a row that says it)."""
    lines = []
    for e in extra:
        if e.get("error"):
            lines.append(f"| {e['metric']} | – | – | failed: {' '.join(str(e['error']).split())} |")
        else:
            lines.append(f"| {e.get('title', e['metric'])} | {e['base']:.3f} | {e['tuned']:.3f} | {e['delta']:+.3f} |")
    return lines


_LABELS = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact": "Exact match"}


def compare(base_preds: list[str], tuned_preds: list[str], references: list[str],
            extra: Sequence[str] = ()) -> MetricTable:
    """Score both models on the same references; rows are rouge_l, bleu, exact (tuned - base = delta); `extra`:
    refs of extra metrics (check_extra's), scored on both sides as well."""
    _check(base_preds, references)
    _check(tuned_preds, references)
    base_all, base_ex = score(base_preds, references)
    tuned_all, tuned_ex = score(tuned_preds, references)
    rows = [MetricRow(m, base_all[m], tuned_all[m]) for m in METRICS]
    examples = []
    for i, (b, t) in enumerate(zip(base_ex, tuned_ex, strict=True)):
        delta = {m: t[m] - b[m] for m in METRICS}
        examples.append(ExampleDelta(i, references[i], base_preds[i], tuned_preds[i], b, t, delta, delta["rouge_l"]))
    # Largest change either way first; ties keep input order (sort is stable) so the view is reproducible.
    examples.sort(key=lambda e: -abs(e.change))
    return MetricTable(rows, examples, extra_scores(extra, base_preds, tuned_preds, references) if extra else [])
