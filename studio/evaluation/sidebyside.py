"""Base vs fine-tuned, side by side, with ONE copy of the base model in memory.

    sbs = SideBySide.load(ws, base_ref, [run_id])            # or SideBySide(base_folder, {run_id: adapter_folder})
    sbs.generate("Hello", which="base"); sbs.generate("Hello", which=run_id)
    sbs.generate([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                  {"role": "user", "content": "And you?"}], which=run_id)   # a conversation's next turn
    with sbs.activate(run_id) as model: ...                  # score text with that side (the eval's loss)
    for side, text in sbs.stream("Hello", ["base", run_id]): ...

Each run's LoRA adapter is attached to the same base model as a named PEFT adapter (`run<ID>`); the base
side runs with the adapters switched off. Every side gets the same prompt, decoding settings and seed, so
the only difference between columns is the adapter. torch/transformers/peft are imported inside functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from studio.errors import ModelRefError, TrainError
from studio.workspace import Workspace

BASE = "base"
Side = str | int
"""'base' or a run id."""
Prompt = str | Sequence[Mapping[str, str]]
"""One user turn as text, or a conversation ([{"role", "content"}, ...]) to answer the last turn of."""

MAX_RUNS = 2


def adapter_name(run_id: int) -> str:
    return f"run{run_id}"


class SideBySide:
    """One base model (float32 on the CPU, or 16-bit on a GPU) with 0..2 run adapters attached; see the module
    docstring."""

    def __init__(self, base_path: Path, adapters: Mapping[int, Path] | None = None, *,
                 base_aliases: Sequence[str] = (), device: str | None = None) -> None:
        """Load the base folder and attach each run's adapter folder (keys: run ids).

        `base_aliases`: other names the base goes by (its ref) that an adapter_config.json may record.
        `device`: 'cpu' (float32) or 'cuda' (bfloat16 where supported, else float16); None: $STUDIO_COMPARE_DEVICE,
        else the CPU (a GPU here is usually busy training; set it to cuda to compare on the GPU).
        Raises TrainError when an adapter is missing or was trained on another base model.
        """
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.base_path = Path(base_path)
        adapters = dict(adapters or {})
        if len(adapters) > MAX_RUNS:
            raise TrainError(
                f"Compare at most {MAX_RUNS} runs with the base model at once; {len(adapters)} were picked."
            )
        # Check every adapter before the (slow) model load, so a wrong pick fails fast.
        for run_id, folder in adapters.items():
            _check_adapter(run_id, Path(folder), self.base_path, base_aliases)

        self.tokenizer = AutoTokenizer.from_pretrained(str(self.base_path))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        device = (device or os.environ.get("STUDIO_COMPARE_DEVICE", "").strip() or "cpu").lower()
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise TrainError(f"Comparing on {device} needs a GPU, and torch sees none here. Compare on the CPU.")
        dtype = torch.float32
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # A private copy, not the shared cache of studio.models.loading: PEFT injects layers into it.
        model: Any = AutoModelForCausalLM.from_pretrained(str(self.base_path), dtype=dtype).to(device)
        if adapters:
            from peft import PeftModel

            first, *rest = adapters.items()
            model = PeftModel.from_pretrained(model, str(first[1]), adapter_name=adapter_name(first[0]))
            for run_id, folder in rest:
                model.load_adapter(str(folder), adapter_name=adapter_name(run_id))
        self.model = model.eval()
        self.run_ids: list[int] = list(adapters)
        # One generation at a time: the adapter switch and the seeded RNG are process-wide state.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, ws: Workspace, base_ref: str, run_ids: list[int]) -> SideBySide:
        """The base model `base_ref` with the adapters of 1 or 2 finished LoRA/QLoRA runs trained on it."""
        from studio.models.loading import local_model_path
        from studio.train.runs import get_run

        ids = list(dict.fromkeys(int(i) for i in run_ids))
        if not 1 <= len(ids) <= MAX_RUNS:
            raise TrainError(f"Pick 1 or {MAX_RUNS} runs to compare with the base model (got {len(ids)}).")
        base_path = local_model_path(base_ref, ws.models_dir)  # ModelRefError has its own message
        adapters: dict[int, Path] = {}
        for run_id in ids:
            run = get_run(ws, run_id)
            if run.method not in ("lora", "qlora"):
                raise TrainError(
                    f"{run.title} used {run.method} fine-tuning, so it has no adapter to attach to the base "
                    "model. Only LoRA and QLoRA runs can be compared side by side here."
                )
            if not _same_base(run.base_model_ref, base_ref, base_path, ws.models_dir):
                raise TrainError(
                    f"{run.title} was trained on {run.base_model_ref}, not on {base_ref}. Pick runs trained "
                    f"on {base_ref}, or choose {run.base_model_ref} as the base model."
                )
            adapters[run_id] = Path(run.output_dir) / "adapter"
        return cls(base_path, adapters, base_aliases=[base_ref])

    # --- generation -------------------------------------------------------------------------------

    def generate(self, prompt: Prompt, *, which: Side, max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0) -> str:
        """The reply of one side to one user turn, or to a conversation (greedy when temperature == 0)."""
        kwargs = self._generate_kwargs(prompt, max_new_tokens, temperature, top_p)
        with self._lock:
            return self._run_side(which, kwargs, seed)

    def stream(self, prompt: Prompt, sides: Sequence[Side], *, max_new_tokens: int = 128,
               temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> Iterator[tuple[Side, str]]:
        """(side, text so far) events as the replies grow; the sides run one after another.

        Same settings and seed per side as `generate`, and each side's last event is exactly what
        `generate` returns. Generation runs in a background thread (one model: not truly parallel).
        """
        from transformers import TextIteratorStreamer

        sides = list(sides)
        for side in sides:
            self._check_side(side)
        kwargs = self._generate_kwargs(prompt, max_new_tokens, temperature, top_p)
        handoff: queue.Queue[tuple[Any, dict[str, Any]]] = queue.Queue()

        def work() -> None:
            with self._lock:
                for side in sides:
                    streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
                    result: dict[str, Any] = {"done": threading.Event()}
                    handoff.put((streamer, result))
                    try:
                        result["text"] = self._run_side(side, {**kwargs, "streamer": streamer}, seed)
                    except BaseException as error:  # handed to the consumer, which raises it
                        result["error"] = error
                        streamer.end()  # unblock the consumer's iteration
                        return
                    finally:
                        result["done"].set()

        threading.Thread(target=work, name="sidebyside-stream", daemon=True).start()
        for side in sides:
            streamer, result = handoff.get()
            yield side, ""
            text = ""
            for piece in streamer:
                if piece:
                    text += piece
                    yield side, text.strip()
            # The streamer ends inside model.generate, a moment before the worker records the text.
            result["done"].wait()
            if "error" in result:
                raise result["error"]
            # The streamer's pieces can differ from the one-shot decode in whitespace: end on the exact text.
            if result["text"] != text.strip():
                yield side, result["text"]

    @contextlib.contextmanager
    def activate(self, side: Side) -> Iterator[Any]:
        """`with sbs.activate(side) as model:` the model with that side's adapter on (or all off for 'base').

        Holds the generation lock for the block, so nothing else switches adapters meanwhile (the
        evaluation's loss pass uses it to score text with one side).
        """
        self._check_side(side)
        with self._lock, self._switch(side):
            yield self.model

    def memory_bytes(self) -> int:
        """Bytes of the loaded weights and buffers: one base model plus the small adapters."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    # --- internals --------------------------------------------------------------------------------

    def _check_side(self, side: Side) -> None:
        if side == BASE:
            return
        if isinstance(side, int) and side in self.run_ids:
            return
        loaded = ", ".join(f"run {i}" for i in self.run_ids) or "no runs"
        raise TrainError(f"{side!r} is not loaded for comparison (loaded: base and {loaded}).")

    def _generate_kwargs(self, prompt: Prompt, max_new_tokens: int, temperature: float, top_p: float) -> dict[str, Any]:
        import torch

        if max_new_tokens < 1:
            raise TrainError(f"Max new tokens must be at least 1 (got {max_new_tokens}).")
        if temperature < 0:
            raise TrainError(f"The temperature cannot be negative (got {temperature}).")
        if not 0 < top_p <= 1:
            raise TrainError(f"Top-p must be above 0 and at most 1 (got {top_p}).")
        messages = _messages(prompt)
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]  # the template wrote them
        else:
            plain = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
            ids = self.tokenizer(f"{plain}assistant:", add_special_tokens=True)["input_ids"]
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if temperature == 0:
            kwargs["do_sample"] = False
        else:
            # top_k=0 switches off transformers' default top-k, so temperature and top_p are the recipe.
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        return kwargs

    def _run_side(self, side: Side, kwargs: dict[str, Any], seed: int) -> str:
        """Generate for one side; the caller holds the lock."""
        import torch

        self._check_side(side)
        torch.manual_seed(seed)
        with self._switch(side), torch.inference_mode():
            output = self.model.generate(**kwargs)
        width = kwargs["input_ids"].shape[1]
        return self.tokenizer.decode(output[0, width:], skip_special_tokens=True).strip()

    def _switch(self, side: Side) -> contextlib.AbstractContextManager[Any]:
        """Turn `side`'s adapter on for the block; the caller holds the lock."""
        if side == BASE:
            # The plain base model when no adapter is attached; else the adapters switched off.
            return self.model.disable_adapter() if self.run_ids else contextlib.nullcontext()
        self.model.set_adapter(adapter_name(int(side)))
        return contextlib.nullcontext()


def _messages(prompt: Prompt) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    if not messages or messages[-1]["role"] == "assistant":
        raise TrainError("A conversation to answer must end with a user (or system) turn, not an assistant one.")
    return messages


def _check_adapter(run_id: int, folder: Path, base_path: Path, aliases: Sequence[str]) -> None:
    config_path = folder / "adapter_config.json"
    if not config_path.is_file():
        raise TrainError(
            f"Run {run_id} has no saved adapter in {folder}. Compare a LoRA or QLoRA run once it is done "
            "(or stopped after saving a checkpoint)."
        )
    try:
        recorded = str(json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path") or "")
    except (OSError, ValueError, AttributeError):
        raise TrainError(f"The adapter of run {run_id} cannot be read ({config_path} is damaged).") from None
    if recorded and recorded not in aliases and not _same_folder(recorded, base_path):
        raise TrainError(
            f"Run {run_id}'s adapter was trained on {recorded}, not on {base_path}. An adapter only works "
            "on the base model it was trained on: pick that base model, or runs trained on this one."
        )


def _same_folder(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def _same_base(run_ref: str, base_ref: str, base_path: Path, models_dir: Path) -> bool:
    if run_ref == base_ref or _same_folder(run_ref, base_path):
        return True
    from studio.models.loading import local_model_path

    try:
        return _same_folder(local_model_path(run_ref, models_dir), base_path)
    except ModelRefError:  # the run's model is gone or unreachable: the refs already differ
        return False
