"""JSON-schema constrained decoding for local teachers, with xgrammar.

Why constrain at all: the embedded SmolLM2-135M almost never writes "a JSON array and nothing else" when
asked (0 of 8 few-shot answers parsed), yet with a schema mask on its logits 8 of 8 were valid
(`bench/structured.py`). Why xgrammar (measured on CPU with transformers 5, SmolLM2, 8 calls): xgrammar
7-8/8 schema-valid at about 0.5 ms per step, 1.7 s to compile a schema; outlines-core 8/8 but a 6 s
index build per schema and about 4 ms per row per step; llguidance 7/8 but needs a hand-written
processor and its torch.compile'd mask misbehaves on CPU; lm-format-enforcer has no transformers-5
release. xgrammar is also what vLLM and SGLang use on GPU, and it applies its mask on CPU or CUDA.

Its wheel declares triton (hundreds of MB, GPU only), so it is installed with --no-deps beside its one
missing dependency, apache-tvm-ffi (requirements-nodeps.txt).

Compiled grammars are cached per (tokenizer, schema); a `SchemaConstraint` is made for each
`model.generate` call, because a grammar matcher carries the state of one generation.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

LIBRARY = "xgrammar"
SEPARATORS = (",", ":")
"""Compact JSON: every token goes to content, none to indentation, so more of the answer fits."""

_lock = threading.Lock()
_compilers: dict[int, tuple[Any, Any]] = {}
"""id(tokenizer) -> (tokenizer, GrammarCompiler). The tokenizer is held so its id is never reused."""
_grammars: dict[tuple[int, str], Any] = {}
_closers: dict[int, list[int]] = {}
"""id(tokenizer) -> ids of tokens made only of JSON closing characters (see `SchemaConstraint`)."""
CLOSING_BIAS = 100.0


def available() -> bool:
    """Whether constrained decoding can run here (xgrammar imports)."""
    try:
        import xgrammar  # noqa: F401
    except Exception as error:  # ImportError, or a broken native library
        log.info("xgrammar unavailable, local teachers run unconstrained: %s", error)
        return False
    return True


def compiled_grammar(tokenizer: Any, vocab_size: int, schema: dict[str, Any]) -> Any:
    """The schema compiled for this tokenizer (cached: compiling takes a second or two)."""
    import xgrammar as xgr

    key_text = json.dumps(schema)  # not sorted: property order is the order the model writes them in
    with _lock:
        entry = _compilers.get(id(tokenizer))
        if entry is None:
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size,
                                                      stop_token_ids=_stop_ids(tokenizer))
            entry = (tokenizer, xgr.GrammarCompiler(info, max_threads=2))
            _compilers[id(tokenizer)] = entry
        key = (id(tokenizer), key_text)
        if key not in _grammars:
            _grammars[key] = entry[1].compile_json_schema(key_text, any_whitespace=False,
                                                          separators=SEPARATORS)
        return _grammars[key]


def closer_ids(tokenizer: Any) -> list[int]:
    """Tokens that close a JSON string (a quote, then maybe brackets, braces, commas), and the end-of-turn
    token. Only quote-initial ones: inside a string a bracket, a brace or a comma is text, and a biased one
    would fill the string with it. Outside strings the grammar forces the structure anyway."""
    with _lock:
        if id(tokenizer) not in _closers:
            vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
            ids = [i for i, piece in enumerate(vocab)
                   if piece and (text := tokenizer.convert_tokens_to_string([piece]).strip())
                   and set(text) <= set('"]},') and text[0] == '"']
            ids += [i for i in (_stop_ids(tokenizer) or []) if i not in ids]
            _closers[id(tokenizer)] = ids
        return _closers[id(tokenizer)]


def closing_reserve(schema: dict[str, Any]) -> int:
    """Tokens to keep for closing an answer of this schema: a few for each string it may still have to
    open and close (an array's items count maxItems times), a few for the brackets."""
    return 4 + 6 * _strings(schema)


def _strings(schema: dict[str, Any] | bool) -> int:
    if not isinstance(schema, dict):  # `items: false` after prefixItems, `true` for anything
        return 0
    kind = schema.get("type")
    if kind == "array":
        prefix = schema.get("prefixItems", [])
        rest = max(0, int(schema.get("maxItems", len(prefix) or 1)) - len(prefix))
        return sum(_strings(p) for p in prefix) + rest * _strings(schema.get("items", {}))
    if kind == "object":
        return sum(_strings(p) for p in schema.get("properties", {}).values())
    return 1


def _stop_ids(tokenizer: Any) -> list[int] | None:
    """The end-of-turn token the grammar allows once the JSON is complete (the tokenizer's EOS)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    return [int(eos)] if isinstance(eos, int) else None


class SchemaConstraint:
    """A transformers logits processor that lets each row write only JSON valid for the schema.

    Rows are independent matchers. A row whose matcher is done may only end (its stop token); a row
    whose sampled token the matcher refuses (a token transformers forced, such as padding after the
    row ended) is left alone from then on. Masking runs on the scores' own device.

    The grammar keeps a row inside the JSON but not inside max_new_tokens: a small model can fill a
    string with digits, one token each, and run out mid-value. So from step `close_after` on, tokens
    that close the JSON (`closers`) get CLOSING_BIAS among the allowed ones: the row finishes its strings
    and brackets with the tokens it has left instead of being cut off.
    """

    def __init__(self, grammars: list[Any], *, close_after: int | None = None,
                 closers: list[int] | None = None) -> None:
        """One compiled grammar per row (None: that row is free)."""
        import xgrammar as xgr

        self._xgr = xgr
        self.close_after = close_after
        self.closers = closers or []
        self.step = 0
        self.matchers = [xgr.GrammarMatcher(g) if g is not None else None for g in grammars]
        self.vocab_size = next(g for g in grammars if g is not None).tokenizer_info.vocab_size
        self.bitmask = xgr.allocate_token_bitmask(len(grammars), self.vocab_size)
        self.live = [g is not None for g in grammars]
        self._started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.step += 1
        if self._started:
            last = input_ids[:, -1].tolist()
            for row, matcher in enumerate(self.matchers):
                if self.live[row] and not matcher.is_terminated() and not matcher.accept_token(last[row]):
                    self.live[row] = False
        self._started = True
        rows = [row for row, matcher in enumerate(self.matchers)
                if self.live[row] and matcher is not None and not matcher.is_terminated()]
        if not rows:
            return scores
        for row in rows:
            self.matchers[row].fill_next_token_bitmask(self.bitmask, row)  # type: ignore[union-attr]
        device = scores.device
        if device.type == "cuda":
            self._xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(device), vocab_size=self.vocab_size,
                                                  indices=rows)
        else:
            # xgrammar masks on CUDA or CPU only: other devices (mps, xpu) go through the CPU.
            on_cpu = scores if device.type == "cpu" else scores.cpu()
            self._xgr.apply_token_bitmask_inplace(on_cpu, self.bitmask, vocab_size=self.vocab_size, indices=rows)
            scores = on_cpu if device.type == "cpu" else on_cpu.to(device)
        if self.close_after is not None and self.step > self.close_after and self.closers:
            import torch

            index = torch.tensor(rows, device=scores.device)
            columns = torch.tensor(self.closers, device=scores.device)
            # -inf (not allowed) stays -inf; among the allowed tokens the closers win.
            scores[index.unsqueeze(1), columns.unsqueeze(0)] += CLOSING_BIAS
        return scores



_validators: dict[str, Any] = {}


def schema_valid(schema: dict[str, Any], text: str) -> bool:
    """Whether `text` is exactly one JSON value valid for `schema`, in the compact form the grammar writes.

    Used to measure teachers (tests, bench/structured.py), not to read answers: the lenient parser
    reads those, whatever their whitespace.
    """
    import xgrammar as xgr

    key = json.dumps(schema)
    with _lock:
        if key not in _validators:
            # The grammar is checked on characters, so a one-token vocabulary is all it needs.
            compiler = xgr.GrammarCompiler(xgr.TokenizerInfo(["a"]), max_threads=1)
            _validators[key] = compiler.compile_json_schema(key, any_whitespace=True, any_order=True)
        compiled = _validators[key]
    matcher = xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)
    return bool(text.strip()) and matcher.accept_string(text.strip()) and matcher.is_terminated()
