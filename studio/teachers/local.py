"""`LocalTeacher`: a chat model run by transformers in this process, batched with left padding.

torch and transformers are imported inside the methods that use them, so importing this module stays
cheap (the app starts without them). The model is loaded on the first `generate` call, through the
process-wide cache of `studio.models.loading`, so a teacher and other inference users share one copy.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.errors import TeacherError
from studio.models.loading import load_causal_lm
from studio.teachers.base import (
    STRUCTURED_GRAMMAR,
    STRUCTURED_PROMPT,
    ChatMessages,
    Completion,
    GenerationParams,
    JsonSchema,
    Schemas,
    schema_for,
)

log = logging.getLogger(__name__)

_UNBOUNDED = 1_000_000_000
"""Tokenizers without a known limit report model_max_length as a huge sentinel (about 1e30)."""

# One local generation at a time in this process: the cached model is shared, a seed has to own the
# process-wide RNG for the whole call to be reproducible, and on CPU one generation already keeps every
# core busy, so running two at once would only slow both down.
_generate_lock = threading.Lock()

STATIC_KV_CACHE = True
"""Preallocate the key/value cache for each chunk (see `_preallocated_cache`); False: transformers' default."""


class LocalTeacher:
    """Writes completions with a local (or downloaded) chat model; see `studio.teachers.base.Teacher`.

    `ref` is any chat model reference `studio.models.registry.resolve` understands. `batch_size` is
    how many conversations go through `model.generate` together; larger is faster per row until memory
    runs out. `device` and `dtype` are passed to `load_causal_lm` (None: pick automatically).

    Within one call conversations are sorted by prompt length before chunking (less padding), and the
    texts come back in the input order. Greedy decoding (temperature <= 0) gives the same text for a
    conversation whatever the batch it is in; sampled outputs are reproducible for the same seed, inputs
    and batch size.
    """

    kind = "local"

    def __init__(
        self,
        ref: str,
        models_dir: Path,
        *,
        batch_size: int = 16,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        if batch_size < 1:
            raise TeacherError(f"The batch size must be at least 1 (got {batch_size}).")
        self.ref = ref
        self.models_dir = Path(models_dir)
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._structured = ""
        """How the last constrained call was shaped (a STRUCTURED_* name; "" before any), for provenance."""

    # --- Teacher protocol -------------------------------------------------------------------------

    def generate(self, conversations: list[ChatMessages], params: GenerationParams, *,
                 schema: Schemas = None) -> list[str]:
        """One `Completion` per conversation, in order. Loads the model on first use.

        With a `schema`, decoding is constrained to JSON valid for it (`studio.teachers.grammar`), as
        long as xgrammar is installed; without it the answers are unconstrained and say so.

        Raises `ModelRefError` when the model cannot be loaded, `TeacherError` when generation fails
        (out of memory, a chat template that rejects the conversation, no room for the prompt).
        """
        if not conversations:
            return []
        if params.max_new_tokens < 1:
            raise TeacherError(f"Max new tokens must be at least 1 (got {params.max_new_tokens}).")
        model, tokenizer = self._load()
        limit = _prompt_token_limit(model, tokenizer, params.max_new_tokens)
        prompts = [self._encode(tokenizer, conversation, limit) for conversation in conversations]
        # Longest first: rows of similar length share a chunk (little padding), and an out-of-memory
        # error shows up on the first chunk instead of after minutes of work.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        texts: list[str] = [""] * len(prompts)
        grammars = [self._grammar(model, tokenizer, schema_for(schema, i)) for i in range(len(prompts))] \
            if schema is not None else [None] * len(prompts)
        reserves = [_reserve(schema_for(schema, i), params.max_new_tokens) for i in range(len(prompts))]

        import torch

        with _generate_lock, torch.inference_mode(), _seeded(params.seed, model.device):
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                outputs = self._generate_chunk(model, tokenizer, [prompts[i] for i in chunk], params,
                                               [grammars[i] for i in chunk], max(reserves[i] for i in chunk))
                for i, text in zip(chunk, outputs, strict=True):
                    texts[i] = text
        return texts

    def describe(self) -> dict[str, Any]:
        """Provenance for candidate rows; `device` is where the model runs (or was asked to) so far."""
        device = str(self._model.device) if self._model is not None else (self.device or "auto")
        out = {"kind": self.kind, "model": self.ref, "device": device, "batch_size": self.batch_size}
        if self._structured:
            out["structured"] = self._structured
        return out

    # --- internals --------------------------------------------------------------------------------

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            # ModelRefError propagates: it already says what is wrong with the ref and what to do.
            self._model, self._tokenizer = load_causal_lm(
                self.ref, self.models_dir, device=self.device, dtype=self.dtype
            )
        return self._model, self._tokenizer

    def _grammar(self, model: Any, tokenizer: Any, schema: JsonSchema | None) -> Any | None:
        """The compiled schema, or None (unconstrained) where xgrammar is missing or rejects the schema."""
        from studio.teachers import grammar

        if schema is None:
            return None
        if not grammar.available():
            self._structured = STRUCTURED_PROMPT
            return None
        vocab = int(getattr(model.config, "vocab_size", 0) or len(tokenizer))
        try:
            compiled = grammar.compiled_grammar(tokenizer, vocab, schema)
        except Exception as error:  # a schema xgrammar cannot compile: still answer, unconstrained
            log.warning("could not compile the answer schema, generating unconstrained: %s", error)
            self._structured = STRUCTURED_PROMPT
            return None
        self._structured = STRUCTURED_GRAMMAR
        return compiled

    def _encode(self, tokenizer: Any, conversation: ChatMessages, limit: int | None) -> list[int]:
        """Token ids of the prompt, cut from the left to `limit` tokens (the latest turns matter most)."""
        if getattr(tokenizer, "chat_template", None):
            try:
                text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
            except Exception as error:  # jinja2 errors, or a template raising on an unsupported role
                raise TeacherError(
                    f"The chat template of {self.ref} rejected a conversation: {error}. Some templates "
                    "accept no system message or need user and assistant turns to alternate; adjust the "
                    "prompt template or choose another teacher model."
                ) from error
            # The template already wrote the special tokens (BOS, turn markers): add none twice.
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = tokenizer(_plain_prompt(conversation), add_special_tokens=True)["input_ids"]
        if limit is not None and len(ids) > limit:
            ids = ids[-limit:]
        return list(ids)

    def _generate_chunk(
        self, model: Any, tokenizer: Any, prompts: list[list[int]], params: GenerationParams,
        grammars: list[Any] | None = None, reserve: int = 0
    ) -> list[Completion]:
        import torch

        width = max(len(ids) for ids in prompts)
        pad_id = tokenizer.pad_token_id
        # Left padding by hand, rather than flipping tokenizer.padding_side: the tokenizer object is
        # cached and shared with other callers (and threads), so it must not be mutated.
        input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(model.device),
            "attention_mask": attention_mask.to(model.device),
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": pad_id,
        }
        cache = _preallocated_cache(model, width + params.max_new_tokens) if STATIC_KV_CACHE else None
        if cache is not None:
            kwargs["past_key_values"] = cache
        constraint = None
        if grammars and any(g is not None for g in grammars):
            from studio.teachers.grammar import SchemaConstraint, closer_ids

            constraint = SchemaConstraint(grammars, close_after=params.max_new_tokens - reserve,
                                          closers=closer_ids(tokenizer))
            kwargs["logits_processor"] = [constraint]
        if params.greedy:
            kwargs["do_sample"] = False
        else:
            # top_k=0 turns off transformers' default top-k of 50, so the recorded temperature and top_p
            # are the whole sampling recipe, as they are on an OpenAI-compatible endpoint.
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        try:
            output = model.generate(**kwargs)
        except (MemoryError, RuntimeError) as error:  # torch.OutOfMemoryError is a RuntimeError
            if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
                raise TeacherError(
                    f"The local teacher {self.ref} ran out of memory generating {len(prompts)} rows at once. "
                    f"Lower the batch size (now {self.batch_size}) or the max new tokens "
                    f"(now {params.max_new_tokens}), or use a smaller model."
                ) from error
            raise TeacherError(
                f"The local teacher {self.ref} failed while generating: {error}. Try a smaller batch size "
                "or fewer max new tokens; if it keeps failing, choose another teacher model."
            ) from error
        new_tokens = output[:, width:].cpu()
        ended = _ended_rows(new_tokens, _stop_ids(model, tokenizer), params.max_new_tokens)
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        shaped = [g is not None for g in grammars] if grammars else [False] * len(texts)
        return [Completion(text.strip(), "stop" if done else "length",
                           STRUCTURED_GRAMMAR if grammar_used else STRUCTURED_PROMPT)
                for text, done, grammar_used in zip(texts, ended, shaped, strict=True)]


def _reserve(schema: JsonSchema | None, max_new_tokens: int) -> int:
    """Tokens kept at the end of a constrained answer to close its JSON (at most a third of the budget)."""
    if schema is None:
        return 0
    from studio.teachers.grammar import closing_reserve

    return min(max_new_tokens // 3, closing_reserve(schema))


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for value in (getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                  getattr(tokenizer, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def _ended_rows(new_tokens: Any, stop_ids: set[int], max_new_tokens: int) -> list[bool]:
    """Per row: did the model end it (a stop token, or fewer tokens than allowed), or was it cut off?"""
    ended = []
    for row in new_tokens.tolist():
        ended.append(len(row) < max_new_tokens or any(token in stop_ids for token in row))
    return ended


def _plain_prompt(conversation: ChatMessages) -> str:
    """For tokenizers without a chat template: one "role: content" line per turn, then "assistant:"."""
    lines = [f"{message.get('role', 'user')}: {message.get('content', '')}" for message in conversation]
    return "\n".join([*lines, "assistant:"])


def _prompt_token_limit(model: Any, tokenizer: Any, max_new_tokens: int) -> int | None:
    """How many prompt tokens fit beside `max_new_tokens` in the model's context; None if unknown."""
    known = [
        int(value)
        for value in (
            getattr(model.config, "max_position_embeddings", None),
            getattr(tokenizer, "model_max_length", None),
        )
        if isinstance(value, int | float) and 0 < value < _UNBOUNDED
    ]
    if not known:
        return None
    context = min(known)
    if max_new_tokens >= context:
        raise TeacherError(
            f"Max new tokens ({max_new_tokens}) leaves no room for the prompt: this model reads at most "
            f"{context} tokens in all. Lower the max new tokens well below {context}."
        )
    return context - max_new_tokens


def _preallocated_cache(model: Any, length: int) -> Any | None:
    """A StaticCache sized for exactly this chunk, or None where the model cannot use one.

    The default DynamicCache concatenates every layer's keys and values onto a new tensor at each
    step; profiling a 16-row chunk of SmolLM2 on CPU put that copying at about a fifth of the CPU time.
    A static cache writes in place (bench/generation.py: batched about 6% faster, one-at-a-time
    unchanged, same outputs). It is built here rather than asked for with cache_implementation="static", which
    sizes every later cache to the longest call ever made on the (shared, cached) model.
    """
    supports_cache = getattr(model, "_supports_default_dynamic_cache", None)
    config = getattr(model, "config", None)
    if supports_cache is None or config is None or getattr(config, "is_encoder_decoder", False):
        return None
    try:
        if not supports_cache():
            return None
        from transformers import StaticCache

        return StaticCache(config=config, max_cache_len=length)
    except Exception as error:  # an architecture the static cache does not know: the default still works
        log.debug("no static cache for %s: %s", type(model).__name__, error)
        return None


@contextlib.contextmanager
def _seeded(seed: int | None, device: Any) -> Iterator[None]:
    """Seed torch for the call without disturbing the process-wide RNG state other code relies on."""
    if seed is None:
        yield
        return
    import torch

    device_type = getattr(device, "type", str(device))
    fork = (
        torch.random.fork_rng(devices=[])
        if device_type == "cpu"
        else torch.random.fork_rng(device_type=device_type)
    )
    with fork:
        torch.manual_seed(seed)
        yield
