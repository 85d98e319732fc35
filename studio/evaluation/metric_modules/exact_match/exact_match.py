"""Exact match, Seed Studio's way: the share of pairs equal after SQuAD-style normalisation (0..1).

An `evaluate` module shipped with the studio and loaded by its path (offline). The normalisation has one
owner, studio.evaluation.metrics.normalize (lower case, no punctuation, no articles, single spaces).
`per_example=True` adds each pair's 0 or 1 under "per_example".
"""

import datasets
import evaluate

from studio.evaluation.metrics import normalize


class ExactMatch(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Share of predictions equal to their reference after SQuAD-style normalisation.",
            citation="Rajpurkar et al., SQuAD: 100,000+ Questions for Machine Comprehension of Text (2016).",
            inputs_description="predictions: list of texts; references: one text per prediction; "
                               "per_example: also return 1.0 or 0.0 per pair.",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions: list[str], references: list[str], per_example: bool = False) -> dict:
        hits = [float(normalize(p) == normalize(r)) for p, r in zip(predictions, references, strict=True)]
        out: dict = {"exact_match": sum(hits) / len(hits)}
        if per_example:
            out["per_example"] = hits
        return out
