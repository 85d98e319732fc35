"""Stream the base model and its fine-tuned versions at once: one batched generate call, one row per side.

PEFT's mixed-adapter batches (`adapter_names=["__base__", "run3", ...]`) let each row of one batch use a
different adapter (or none) on the same base weights. So the answers grow token by token together, with
one model in memory, in about the time of one answer. Every row gets the same prompt tokens (no padding)
and the same decoding settings; with greedy decoding each row's text equals `SideBySide.generate` for
that side (tests check it). With sampling, the rows draw from one seeded generator: the pair is
reproducible for a seed, though not equal to generating each side alone.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from studio.evaluation.sidebyside import BASE, Side, SideBySide, adapter_name

PEFT_BASE = "__base__"
"""PEFT's name for 'no adapter' in a mixed batch."""


class _RowStreamer:
    """A transformers streamer for a batch: collects tokens per row and hands (row, text) events over.

    transformers' TextIteratorStreamer takes batch size 1 only. Rows that have ended (end-of-text) are
    padded by generate; those tokens are ignored here.
    """

    def __init__(self, tokenizer: Any, rows: int, stop_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[list[int]] = [[] for _ in range(rows)]
        self.done = [False] * rows
        self.stop_ids = stop_ids
        self.events: queue.Queue[tuple[int, str] | None] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate first hands over the prompt ids
            self._prompt_seen = True
            return
        ids = value.reshape(-1).tolist()
        for row, token in enumerate(ids):
            if self.done[row]:
                continue
            if token in self.stop_ids:
                self.done[row] = True
                continue
            self.tokens[row].append(int(token))
            self.events.put((row, self.text(row)))

    def text(self, row: int) -> str:
        return self.tokenizer.decode(self.tokens[row], skip_special_tokens=True).strip()

    def end(self) -> None:
        self.events.put(None)


def stream_together(model: SideBySide, prompt: str, sides: Sequence[Side], *, max_new_tokens: int = 128,
                    temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> Iterator[dict[Side, str]]:
    """Yield {side: text so far} for every side, each time any answer grows; the last event is final."""
    import torch

    sides = list(dict.fromkeys(sides))
    for side in sides:
        model._check_side(side)
    kwargs = model._generate_kwargs(prompt, max_new_tokens, temperature, top_p)
    rows = len(sides)
    kwargs["input_ids"] = kwargs["input_ids"].repeat(rows, 1)
    kwargs["attention_mask"] = torch.ones_like(kwargs["input_ids"])
    if model.run_ids:
        kwargs["adapter_names"] = [PEFT_BASE if s == BASE else adapter_name(int(s)) for s in sides]
    streamer = _RowStreamer(model.tokenizer, rows, _stop_ids(model))
    kwargs["streamer"] = streamer
    failure: list[BaseException] = []

    def work() -> None:
        with model._lock:
            torch.manual_seed(seed)
            try:
                with torch.inference_mode():
                    model.model.generate(**kwargs)
            except BaseException as error:  # handed to the consumer, which raises it
                failure.append(error)
                streamer.end()

    texts: dict[Side, str] = dict.fromkeys(sides, "")
    yield dict(texts)
    thread = threading.Thread(target=work, name="sidebyside-together", daemon=True)
    thread.start()
    while True:
        event = streamer.events.get()
        if event is None:
            break
        row, text = event
        texts[sides[row]] = text
        # Drain what is already queued so one yield carries every row's newest text.
        while True:
            try:
                more = streamer.events.get_nowait()
            except queue.Empty:
                break
            if more is None:
                streamer.events.put(None)
                break
            texts[sides[more[0]]] = more[1]
        yield dict(texts)
    thread.join()
    if failure:
        raise failure[0]
    yield {side: streamer.text(row) for row, side in enumerate(sides)}


def generate_together(model: SideBySide, prompt: str, sides: Sequence[Side], **settings: Any) -> dict[Side, str]:
    """The final answers of `stream_together`."""
    final: dict[Side, str] = {}
    for event in stream_together(model, prompt, sides, **settings):
        final = event
    return final


def _stop_ids(model: SideBySide) -> set[int]:
    config = getattr(model.model, "generation_config", None)
    eos = getattr(config, "eos_token_id", None)
    if eos is None:
        eos = model.tokenizer.eos_token_id
    ids = set(eos if isinstance(eos, list | tuple) else [eos]) if eos is not None else set()
    return {int(i) for i in ids}
