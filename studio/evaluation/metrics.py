"""Reference-based metrics (ROUGE-L, BLEU, exact match) and a base-vs-tuned comparison table.

Everything runs offline: rouge_score and sacrebleu compute locally, nothing is fetched from the Hub.
They are imported inside the functions so importing this module stays cheap for the UI and CLI.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from studio.errors import QualityError

METRICS = ("rouge_l", "bleu", "exact")
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


def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F-measure over the pairs, 0..1."""
    _check(predictions, references)
    scorer = _scorer()
    # rouge_score's signature is score(target, prediction): the reference goes first.
    scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]
    return sum(scores) / len(scores)


def bleu(predictions: list[str], references: list[str]) -> float:
    """Corpus BLEU (sacrebleu defaults), 0..100."""
    _check(predictions, references)
    import sacrebleu

    return float(sacrebleu.corpus_bleu(predictions, [references]).score)


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Share of pairs that are equal after normalisation, 0..1."""
    _check(predictions, references)
    hits = sum(normalize(p) == normalize(r) for p, r in zip(predictions, references, strict=True))
    return hits / len(predictions)


def per_example(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """Scores per pair: rouge_l (0..1), bleu (sentence BLEU, 0..100), exact (0 or 1)."""
    _check(predictions, references)
    import sacrebleu

    scorer = _scorer()
    rows = []
    for pred, ref in zip(predictions, references, strict=True):
        rows.append({
            "rouge_l": scorer.score(ref, pred)["rougeL"].fmeasure,
            "bleu": float(sacrebleu.sentence_bleu(pred, [ref]).score),
            "exact": float(normalize(pred) == normalize(ref)),
        })
    return rows


@dataclass
class MetricRow:
    metric: str
    base: float
    tuned: float

    @property
    def delta(self) -> float:
        return self.tuned - self.base


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [{"metric": r.metric, "base": r.base, "tuned": r.tuned, "delta": r.delta} for r in self.rows],
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
        return "\n".join(lines)


_LABELS = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact": "Exact match"}


def compare(base_preds: list[str], tuned_preds: list[str], references: list[str]) -> MetricTable:
    """Score both models on the same references; rows are rouge_l, bleu, exact (tuned - base = delta)."""
    _check(base_preds, references)
    _check(tuned_preds, references)
    rows = [
        MetricRow("rouge_l", rouge_l(base_preds, references), rouge_l(tuned_preds, references)),
        MetricRow("bleu", bleu(base_preds, references), bleu(tuned_preds, references)),
        MetricRow("exact", exact_match(base_preds, references), exact_match(tuned_preds, references)),
    ]
    base_ex, tuned_ex = per_example(base_preds, references), per_example(tuned_preds, references)
    examples = []
    for i, (b, t) in enumerate(zip(base_ex, tuned_ex, strict=True)):
        delta = {m: t[m] - b[m] for m in METRICS}
        examples.append(ExampleDelta(i, references[i], base_preds[i], tuned_preds[i], b, t, delta, delta["rouge_l"]))
    # Largest change either way first; ties keep input order (sort is stable) so the view is reproducible.
    examples.sort(key=lambda e: -abs(e.change))
    return MetricTable(rows, examples)
