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


JsonSchema = dict[str, Any]
"""A JSON schema (draft 2020-12 subset: object, array, string, enum, min/maxItems, maxLength)."""
Schemas = JsonSchema | list[JsonSchema] | None
"""One schema for every conversation of a call, or one per conversation (same order), or none."""


def schema_for(schema: Schemas, index: int) -> JsonSchema | None:
    """The schema conversation `index` of a call answers under."""
    return schema[index] if isinstance(schema, list) else schema

STRUCTURED_GRAMMAR = "grammar"
"""How a teacher's answer was shaped: decoded under a JSON-schema grammar (local teachers)."""
STRUCTURED_RESPONSE_FORMAT = "response_format"
"""Sent to an endpoint as an OpenAI `response_format` JSON schema, which the server honoured."""
STRUCTURED_PROMPT = "prompt"
"""Asked for in the prompt only: no schema was given, or the teacher cannot enforce one."""


class Completion(str):
    """A completion text that also says how it ended and how it was shaped.

    `finish_reason` is "stop" (the model ended it) or "length" (cut off at max_new_tokens): a cut-off
    answer is recorded as such, never mistaken for a teacher that cannot write JSON. `structured` is one
    of the STRUCTURED_* names. A plain `str` from a teacher reads as finish_reason "stop", "prompt".
    """

    finish_reason: str
    structured: str

    def __new__(cls, text: str, finish_reason: str = "stop", structured: str = STRUCTURED_PROMPT) -> Completion:
        value = super().__new__(cls, text)
        value.finish_reason = finish_reason
        value.structured = structured
        return value


def finish_reason(text: str) -> str:
    return getattr(text, "finish_reason", "stop")


def structured_by(text: str) -> str:
    return getattr(text, "structured", STRUCTURED_PROMPT)


@runtime_checkable
class Teacher(Protocol):
    """Anything that writes completions for chat conversations."""

    def generate(self, conversations: list[ChatMessages], params: GenerationParams, *,
                 schema: Schemas = None) -> list[str]:
        """One completion text per conversation, in order (a `Completion` where the teacher knows more).

        `schema`: the JSON schema every answer should follow (or a list: one per conversation). A teacher
        that can enforce it does (local: grammar-constrained decoding; endpoint: `response_format`); one
        that cannot ignores it, and the prompt, which always asks for the shape too, is all there is.

        Raises `studio.errors.TeacherError` when the whole call cannot be served (unreachable,
        refused, misconfigured). A teacher never returns fewer texts than conversations.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance for candidate rows: kind, model id, endpoint URL. Never contains a secret."""
        ...
