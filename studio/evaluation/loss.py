"""Loss and perplexity of the base model or a fine-tuned side on held-out conversations.

The number is the one training reports as its validation loss: mean cross-entropy per assistant token
(the conversation in the model's chat template, prompt and role headers masked, exactly as
studio.train.data.tokenize_conversation builds the training labels), averaged over every scored token of
the split, not per conversation, so a long answer weighs as much as its tokens. Perplexity = exp(loss):
"as unsure as picking among N tokens", lower is better.

Each conversation goes through the model alone (no padding), with the side's adapter switched on, or all
adapters off for 'base', through SideBySide.activate. torch is imported inside the function.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from studio.errors import QualityError

if TYPE_CHECKING:
    from studio.evaluation.sidebyside import Side, SideBySide


@dataclass(frozen=True)
class SplitLoss:
    loss: float
    """Mean negative log-likelihood per assistant token (nats)."""
    perplexity: float
    tokens: int
    """Assistant tokens scored (after truncation to max_length)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def perplexity(loss: float) -> float:
    try:
        return math.exp(loss)
    except OverflowError:  # a loss above ~709 nats: no finite perplexity
        return math.inf


def split_loss(model: SideBySide, conversations: list[list[dict[str, str]]], side: Side, *,
               max_length: int = 1024) -> SplitLoss:
    """Assistant-token loss of one side on these conversations (each ends with the assistant's answer).

    Conversations cut before their answer at `max_length` tokens add nothing (as in training). Raises
    QualityError when no conversation has a scored token.
    """
    import torch

    from studio.train.data import IGNORE_INDEX, tokenize_conversation

    if max_length < 2:
        raise QualityError(f"The maximum length for the loss must be at least 2 tokens (got {max_length}).")
    encoded = [tokenize_conversation(model.tokenizer, list(msgs), max_length=max_length) for msgs in conversations]
    total, count = 0.0, 0
    with model.activate(side) as lm, torch.inference_mode():
        for tok in encoded:
            # token t is predicted at position t-1
            labels = torch.tensor(tok["labels"][1:], dtype=torch.long, device=lm.device)
            scored = int((labels != IGNORE_INDEX).sum())
            if scored == 0:
                continue
            ids = torch.tensor([tok["input_ids"]], dtype=torch.long, device=lm.device)
            logits = lm(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[0, :-1]
            total += float(torch.nn.functional.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX,
                                                             reduction="sum"))
            count += scored
    if count == 0:
        raise QualityError(
            f"None of the {len(conversations)} conversations has an assistant answer within {max_length} "
            "tokens, so there is nothing to compute a loss on. Raise the maximum length, or pick a split "
            "with answers."
        )
    loss = total / count
    return SplitLoss(loss=loss, perplexity=perplexity(loss), tokens=count)
