"""The Teacher protocol and the decoding parameters every teacher accepts.

A teacher turns a batch of chat conversations into one completion text each. Two kinds exist:
`LocalTeacher` (transformers in this process, batched with left padding) and `EndpointTeacher`
(an OpenAI-compatible chat-completions server). Strategies never care which one they talk to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

ChatMessages = list[dict[str, str]]
"""One conversation: [{"role": "system"|"user"|"assistant", "content": "..."}, ...]."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings. Recorded on every candidate row, so they must stay plain JSON values."""

    max_new_tokens: int = 256
    temperature: float = 0.8
    """0 means greedy decoding."""
    top_p: float = 0.95
    seed: int | None = None
    """Sampling seed; the same seed and inputs give the same outputs on a local teacher."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        known = {k: data[k] for k in ("max_new_tokens", "temperature", "top_p", "seed") if k in data}
        return cls(**known)

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@runtime_checkable
class Teacher(Protocol):
    """Anything that writes completions for chat conversations."""

    def generate(self, conversations: list[ChatMessages], params: GenerationParams) -> list[str]:
        """One completion text per conversation, in order.

        Raises `studio.errors.TeacherError` when the whole call cannot be served (unreachable,
        refused, misconfigured). A teacher never returns fewer texts than conversations.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance for candidate rows: kind, model id, endpoint URL. Never contains a secret."""
        ...
