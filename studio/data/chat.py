"""Every seed format as a chat conversation or a prompt/completion pair: what training and exports read.

Pure functions of (format, record); they never touch the workspace.

- alpaca:            user = instruction, plus "\\n\\n" + input when there is an input; assistant = output.
- prompt_completion: user = prompt; assistant = completion.
- messages:          the conversation as it is (only role and content are kept).
- classification:    user = text; assistant = label.
- ner:               user = the sentence (tokens joined by spaces); assistant = the entities as a JSON list
                     of {"text", "type"} objects in sentence order, `[]` when there is none. BIO, IO, BIOES and
                     BILOU tags are read (see `ner_entities`); json.loads(answer) gives the list back.

`system`, when given, is put first, unless the conversation already starts with its own system message.

to_prompt_completion: for every format but messages, prompt = the user turn and completion = the assistant
turn. A conversation whose only turn before the last assistant message is one user message gives that
message as the prompt. Anything longer (system message, several turns) is rendered plainly, one turn per
paragraph as "System: ...", "User: ...", "Assistant: ...", then a last paragraph "Assistant:" and a newline
(so prompt + completion reads as a transcript); the completion is the last assistant message. Turns after
the last assistant message (a valid record has none) are dropped.
"""

from __future__ import annotations

import json
from typing import Any

from studio.data.formats import SeedFormat

Message = dict[str, str]


def ner_entities(tokens: list[str], tags: list[str]) -> list[dict[str, str]]:
    """Entity spans from per-token tags: [{"text": "Ada Lovelace", "type": "PER"}, ...] in sentence order.

    B-X starts an entity; I-X, E-X and L-X continue an open X entity (or start one, as IO tagging does);
    S-X and U-X are one-token entities; E-X and L-X close theirs; O closes any. A bare tag without a prefix
    (PER) is read as I-PER, so plain IO tags work too.
    """
    entities: list[dict[str, str]] = []
    words: list[str] = []
    kind = ""

    def close() -> None:
        nonlocal words, kind
        if words:
            entities.append({"text": " ".join(words), "type": kind})
        words, kind = [], ""

    for token, tag in zip(tokens, tags, strict=False):
        tag = str(tag).strip()
        if not tag or tag.upper() == "O":
            close()
            continue
        prefix, sep, label = tag.partition("-")
        if not sep or len(prefix) != 1 or prefix.upper() not in "BIESUL":
            prefix, label = "I", tag  # a bare entity type: IO tagging
        prefix = prefix.upper()
        if prefix in ("B", "S", "U") or label != kind:
            close()
        words.append(str(token))
        kind = label
        if prefix in ("S", "U", "E", "L"):
            close()
    close()
    return entities


def _pair(fmt: SeedFormat, record: dict[str, Any]) -> tuple[str, str]:
    """(user, assistant) for the single-turn formats."""
    if fmt == SeedFormat.ALPACA:
        user = str(record["instruction"])
        extra = record.get("input") or ""
        if str(extra).strip():
            user += "\n\n" + str(extra)
        return user, str(record["output"])
    if fmt == SeedFormat.PROMPT_COMPLETION:
        return str(record["prompt"]), str(record["completion"])
    if fmt == SeedFormat.CLASSIFICATION:
        return str(record["text"]), str(record["label"])
    if fmt == SeedFormat.NER:
        tokens = [str(t) for t in record["tokens"]]
        entities = ner_entities(tokens, [str(t) for t in record["tags"]])
        return " ".join(tokens), json.dumps(entities, ensure_ascii=False)
    raise ValueError(f"{fmt} is not a single-turn format")


def to_messages(fmt: SeedFormat | str, record: dict[str, Any], *, system: str | None = None) -> list[Message]:
    """The record as a chat conversation: [{"role", "content"}, ...], ending with the assistant's answer."""
    fmt = SeedFormat(fmt)
    if fmt == SeedFormat.MESSAGES:
        msgs = [{"role": str(m["role"]), "content": str(m["content"])} for m in record["messages"]]
    else:
        user, assistant = _pair(fmt, record)
        msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    if system and not (msgs and msgs[0]["role"] == "system"):
        msgs.insert(0, {"role": "system", "content": system})
    return msgs


def render_turns(messages: list[Message]) -> str:
    """A conversation as plain text: one "Role: content" paragraph per turn."""
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def to_prompt_completion(fmt: SeedFormat | str, record: dict[str, Any], *,
                         system: str | None = None) -> dict[str, str]:
    """{"prompt", "completion"}: what the model is given and what it should write (see the module doc)."""
    msgs = to_messages(fmt, record, system=system)
    last = next((i for i in range(len(msgs) - 1, -1, -1) if msgs[i]["role"] == "assistant"), None)
    if last is None:
        raise ValueError("the conversation has no assistant message, so there is no completion to learn")
    before = msgs[:last]
    if len(before) == 1 and before[0]["role"] == "user":
        prompt = before[0]["content"]
    else:
        prompt = (render_turns(before) + "\n\n" if before else "") + "Assistant:\n"
    return {"prompt": prompt, "completion": msgs[last]["content"]}
