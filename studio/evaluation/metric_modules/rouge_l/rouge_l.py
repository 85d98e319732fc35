"""ROUGE-L F-measure, Seed Studio's way: rouge_score with the Porter stemmer, the mean over the pairs (0..1).

An `evaluate` module shipped with the studio and loaded by its path (offline). `per_example=True` adds the
score of each pair under "per_example".
"""

import datasets
import evaluate
from rouge_score import rouge_scorer


class RougeL(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="ROUGE-L F-measure (longest common subsequence of words, Porter stemmer), mean over pairs.",
            citation="Lin, ROUGE: A Package for Automatic Evaluation of Summaries (2004).",
            inputs_description="predictions: list of texts; references: one text per prediction; "
                               "per_example: also return each pair's score.",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions: list[str], references: list[str], per_example: bool = False) -> dict:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        # rouge_score's signature is score(target, prediction): the reference goes first.
        scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]
        out: dict = {"rouge_l": sum(scores) / len(scores)}
        if per_example:
            out["per_example"] = scores
        return out
