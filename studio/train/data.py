"""Training data: a frozen dataset version as chat conversations, tokenised with the loss on assistant turns only.

    convs = conversations(ws, version_id, "train")           # [[{"role", "content"}, ...], ...]
    ds = chat_dataset(ws, version_id, "train")                 # datasets.Dataset of {"messages": [...]}
    tok = tokenize_conversation(tokenizer, convs[0], max_length=1024)   # {"input_ids", "labels"}
    stats = token_stats(tokenizer, convs, max_length=1024)   # mean / max tokens, for estimates and the log

Why the masks are built here rather than by TRL's `assistant_only_loss`: that option needs a chat template with
`{% generation %}` markers. SmolLM2's template (and most templates of small chat models) has none, and TRL's
patched training templates cover only a fixed list of model families. So every assistant turn is located
template-agnostically: the conversation is rendered with the model's own template up to just before the turn
(with the generation prompt) and up to just after it; the characters in between are the assistant's reply plus
its end-of-turn token. The full rendering is tokenised once with offsets, and a token is trained (label = its
id) when it starts inside one of those spans; every other token (system, user, role headers, padding) gets -100.
When a template renders a prefix differently from the full conversation, the reply is found by its text instead
(and the end-of-turn token right after it). The trailing newline after an end-of-turn token is not trained.

Heavy imports (datasets) happen inside functions.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from studio.data.chat import Message, to_messages
from studio.data.versions import version_rows
from studio.errors import TrainError
from studio.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    from datasets import Dataset

IGNORE_INDEX = -100
"""The label PyTorch's cross-entropy (and TRL) skip: tokens that are not learned."""


# --- rows -> conversations ----------------------------------------------------------------------------


def conversations(ws: Workspace, version_id: int, split: str) -> list[list[Message]]:
    """The split's rows of a dataset version as chat conversations (each ends with the assistant's answer)."""
    return [to_messages(row.format, row.data) for row in version_rows(ws, version_id, split)]


def chat_dataset(ws: Workspace, version_id: int, split: str) -> Dataset:
    """A `datasets.Dataset` of {"messages": [...]}: the shape TRL calls conversational."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": msgs} for msgs in conversations(ws, version_id, split)])


def load_splits(ws: Workspace, version_id: int) -> tuple[list[list[Message]], list[list[Message]]]:
    """(train, validation) conversations; TrainError when there is nothing to train on."""
    train = conversations(ws, version_id, "train")
    validation = conversations(ws, version_id, "validation")
    if not train:
        raise TrainError(
            f"Dataset version #{version_id} has no train rows, so there is nothing to learn from. "
            "Freeze a version with more seeds or accepted synthetic rows."
        )
    return train, validation


# --- conversations -> tokens ---------------------------------------------------------------------------


def _render(
    tokenizer: Any, messages: list[Message], chat_template: str | None, *, add_generation_prompt: bool = False
) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=chat_template
    )


def assistant_spans(
    tokenizer: Any, messages: list[Message], *, chat_template: str | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """(rendered conversation, [(start, end) character spans of each assistant reply + its end-of-turn])."""
    if tokenizer.chat_template is None and chat_template is None:
        raise TrainError(
            "This model's tokenizer has no chat template, so the studio cannot tell the assistant's "
            "answers apart from the prompts. Pick a chat (instruct) model."
        )
    full = _render(tokenizer, messages, chat_template)
    eos = tokenizer.eos_token or ""
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], chat_template, add_generation_prompt=True)
        through = _render(tokenizer, messages[: i + 1], chat_template)
        if before and full.startswith(before) and full.startswith(through) and len(through) > len(before):
            start, end = len(before), len(through)
        else:
            # The template renders prefixes differently (e.g. it drops earlier reasoning): find the reply's text.
            start = full.find(msg["content"], cursor)
            if start < 0:
                continue
            end = start + len(msg["content"])
            if eos and full.startswith(eos, end):
                end += len(eos)
        while end > start and full[end - 1].isspace():
            end -= 1  # the newline after <|im_end|> belongs to the layout, not to the answer
        spans.append((start, end))
        cursor = end
    return full, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[Message], *, max_length: int | None = None, chat_template: str | None = None
) -> dict[str, list[int]]:
    """{"input_ids", "labels"}: the conversation in the model's chat template, labels -100 outside assistant turns.

    Truncated to `max_length` tokens from the end (the start is kept, as TRL does).
    """
    text, spans = assistant_spans(tokenizer, messages, chat_template=chat_template)
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        labels = [
            tid if any(s <= off[0] < e for s, e in spans) else IGNORE_INDEX
            for tid, off in zip(ids, enc["offset_mapping"], strict=True)
        ]
    else:  # slow tokenizers have no offsets: tokenise piece by piece
        ids, labels, pos = [], [], 0
        for s, e in [*spans, (len(text), len(text))]:
            for a, b, trained in ((pos, s, False), (s, e, True)):
                if b > a:
                    piece = tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
                    ids += piece
                    labels += piece if trained else [IGNORE_INDEX] * len(piece)
            pos = e
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels}


def tokenize_conversations(
    tokenizer: Any, convs: list[list[Message]], *, max_length: int | None = None, chat_template: str | None = None
) -> Dataset:
    """A pre-tokenised `datasets.Dataset` (input_ids, labels) that SFTTrainer takes as is.

    Rows left with no trained token (a prompt longer than max_length) are dropped: they would teach nothing.
    """
    from datasets import Dataset

    rows = [
        tokenize_conversation(tokenizer, msgs, max_length=max_length, chat_template=chat_template) for msgs in convs
    ]
    rows = [r for r in rows if any(label != IGNORE_INDEX for label in r["labels"])]
    if not rows and convs:
        raise TrainError(
            f"Every example is cut before the assistant's answer at a maximum length of {max_length} "
            "tokens, so nothing would be learned. Raise 'Maximum length'."
        )
    return Dataset.from_list(rows)


# --- statistics ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenStats:
    rows: int
    mean_tokens: float
    """Mean tokens per example in the model's chat template (before truncation)."""
    max_tokens: int
    total_tokens: int
    """Tokens after truncation to max_length: what a pass over the split reads."""
    trained_tokens: int
    """Assistant tokens after truncation: what the loss is computed on."""
    truncated_rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        text = (
            f"{self.rows} examples, {self.mean_tokens:.0f} tokens on average (longest {self.max_tokens}); "
            f"{self.trained_tokens} of {self.total_tokens} tokens are the assistant's and are learned"
        )
        if self.truncated_rows:
            text += f"; {self.truncated_rows} examples are cut at the maximum length"
        return text + "."


def version_token_stats(
    ws: Workspace, version_id: int, model_ref: str, *, split: str = "train", max_length: int | None = None
) -> TokenStats:
    """Token counts of a version's split in a model's chat template (loads the tokenizer only, no weights)."""
    from transformers import AutoTokenizer

    from studio.models.loading import local_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(local_model_path(model_ref, ws.models_dir)))
    return token_stats(tokenizer, conversations(ws, version_id, split), max_length=max_length)


def token_stats(
    tokenizer: Any, convs: list[list[Message]], *, max_length: int | None = None, chat_template: str | None = None
) -> TokenStats:
    """Token counts of conversations in the model's chat template (for estimates and for the run's log)."""
    lengths, total, trained, cut = [], 0, 0, 0
    for msgs in convs:
        tok = tokenize_conversation(tokenizer, msgs, chat_template=chat_template)
        n = len(tok["input_ids"])
        lengths.append(n)
        kept = tok["labels"][:max_length] if max_length is not None else tok["labels"]
        total += len(kept)
        trained += sum(1 for label in kept if label != IGNORE_INDEX)
        cut += int(max_length is not None and n > max_length)
    return TokenStats(
        rows=len(convs),
        mean_tokens=float(statistics.fmean(lengths)) if lengths else 0.0,
        max_tokens=max(lengths, default=0),
        total_tokens=total,
        trained_tokens=trained,
        truncated_rows=cut,
    )
