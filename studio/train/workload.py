"""What a run of a dataset version would train on, as the estimate needs it: how many examples (or preference
pairs), how long their sequences are, how many validation ones. The Train tab and `seed-studio train` read it
from here, so both estimate the same run the worker will train.

Lengths are counted at about 4 characters a token plus the chat template's role markers: close enough to say
whether a run fits and how long it takes, without loading a tokenizer (the worker logs the exact numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.train.settings import TrainConfig

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 6
"""Role markers and separators the chat template adds around each message."""


@dataclass(frozen=True)
class Workload:
    rows: int
    """Training examples; for a preference run, training pairs (each trains a chosen and a rejected sequence)."""
    mean_tokens: float
    """Per sequence: an example, or a pair's prompt with one of its answers."""
    max_tokens: int
    validation_rows: int
    """Validation examples, or held-out pairs."""

    def estimate_kwargs(self) -> dict[str, Any]:
        return {"rows": self.rows, "mean_tokens": self.mean_tokens, "max_tokens": self.max_tokens,
                "validation_rows": self.validation_rows}


def rough_tokens(messages: list[dict[str, Any]]) -> float:
    characters = sum(len(str(m.get("content") or "")) for m in messages)
    return characters / CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * len(messages)


def version_workload(ws: Any, version_id: int, config: TrainConfig) -> Workload:
    """The workload of training `config` on dataset version `version_id`."""
    if config.learns_preferences:
        from studio.data.preferences import preference_pairs

        pairs = preference_pairs(ws, int(version_id))
        train = [p for p in pairs if p["split"] == "train"]
        sequences = [p["prompt"] + p[answer] for p in train for answer in ("chosen", "rejected")]
        validation = sum(p["split"] == "validation" for p in pairs)
        rows = len(train)
    else:
        from studio.data.chat import to_messages
        from studio.data.versions import get_version_by_id, version_rows

        sequences = [to_messages(r.format, r.data) for r in version_rows(ws, int(version_id), "train")]
        validation = get_version_by_id(ws, int(version_id)).splits.get("validation", 0)  # counted at freeze
        rows = len(sequences)
    lengths = [rough_tokens(s) for s in sequences]
    return Workload(rows=rows, mean_tokens=sum(lengths) / len(lengths) if lengths else 0.0,
                    max_tokens=int(max(lengths, default=1)), validation_rows=validation)
