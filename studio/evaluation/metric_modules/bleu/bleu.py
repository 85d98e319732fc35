"""BLEU, Seed Studio's way: sacrebleu's corpus BLEU with its defaults (0..100).

An `evaluate` module shipped with the studio and loaded by its path (offline). `per_example=True` adds each
pair's sentence BLEU under "per_example".
"""

import datasets
import evaluate
import sacrebleu


class Bleu(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="Corpus BLEU with sacrebleu's defaults (13a tokenisation, exp smoothing, cased), 0..100.",
            citation="Post, A Call for Clarity in Reporting BLEU Scores (2018).",
            inputs_description="predictions: list of texts; references: one text per prediction; "
                               "per_example: also return each pair's sentence BLEU.",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions: list[str], references: list[str], per_example: bool = False) -> dict:
        # One reference stream: sacrebleu takes a list of reference lists, one entry per prediction.
        out: dict = {"bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score)}
        if per_example:
            out["per_example"] = [float(sacrebleu.sentence_bleu(pred, [ref]).score)
                                  for pred, ref in zip(predictions, references, strict=True)]
        return out
