"""The GPU bench: what the studio's GPU path does on the GPU it finds. `bash bench/gpu.sh` runs it (see there).

    python3 bench/gpu.py [--tokenizer DIR] [--steps 10] [--warmup 3] [--batch-size 16]
    python3 bench/gpu.py --smoke          # the same code on a CPU with a tiny model: checks the script, not speed

No Hub model: random-weight Llamas built from configs, one of SmolLM2-135M's shape and one of about 1.1 B
parameters (Llama-3.2-1B's layers with SmolLM2's 49k vocabulary) for the FLOPs figure, with SmolLM2's tokenizer
and chat template (carried in bench/wheels/tokenizer). Data: the example project's 16 support replies
(assets/examples), as 256 four-turn conversations (seeded), about 600 tokens each.

Measured, each side after `--warmup` untimed steps, the GPU synchronised at every step's end:
- train tokens/s (real, non-padding tokens) of the studio trainer (studio.train.worker.build_trainer: what a run
  uses: bf16, padding-free batches, gradient checkpointing, flash attention when installed, TRL's fused LM head)
  vs a plain transformers Trainer + PEFT (padded batches, the model's own loss) vs TRL's SFTTrainer with its
  defaults on the same conversations: LoRA and QLoRA on the 135M shape, LoRA on the 1.1 B shape;
- model FLOPs utilisation of each 1.1 B side: tokens/s x 6 x parameters / the GPU's peak bf16 FLOP/s (datasheet
  where the name is known, and a measured 8192^3 bf16 matrix product); peak GPU memory of every side;
- batched generation rows/min of the local teacher (studio.teachers.local) at batch 32 vs one at a time;
- side-by-side memory: Compare's one base + two adapters (studio.evaluation.sidebyside) vs three model copies.
Last line: `ratio: <studio / TRL defaults train tokens/s, LoRA, 135M shape>`.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXAMPLES = ROOT / "assets" / "examples" / "support_replies.jsonl"
CARRIED_TOKENIZER = ROOT / "bench" / "wheels" / "tokenizer"
SHAPES: dict[str, dict[str, Any]] = {
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, rope_theta=100000.0),
    "1.1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                 num_key_value_heads=8, rope_theta=500000.0),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
}
# Dense bf16 peak FLOP/s from the datasheets (no sparsity); the first name found in the device name wins.
PEAK_BF16 = (("h200", 989e12), ("h100 pcie", 756e12), ("h100", 989e12), ("a100", 312e12), ("l40s", 362e12),
             ("l4", 121e12), ("a10", 125e12))


# --- inputs ----------------------------------------------------------------------------------------------


def tokenizer_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if (CARRIED_TOKENIZER / "tokenizer.json").is_file():
        return CARRIED_TOKENIZER
    from studio.config import load_settings
    from studio.models import embedded

    return embedded.ensure_converted_chat_model(load_settings().models_dir)


def conversations(count: int = 256, turns: int = 4) -> list[list[dict[str, str]]]:
    from studio.data.chat import to_messages

    rows = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(0)
    convs = []
    for _ in range(count):
        messages: list[dict[str, str]] = []
        for row in rng.sample(rows, turns):
            messages += to_messages("alpaca", row)
        convs.append(messages)
    return convs


def build_model(shape: str, tokenizer_source: Path, folder: Path) -> tuple[Path, int]:
    """A random-weight Llama of `shape` saved in bf16 with the tokenizer; returns (folder, parameters)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **SHAPES[shape])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.to(torch.bfloat16).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    del model
    return folder, params


# --- timing ----------------------------------------------------------------------------------------------


class Meter:
    """Real tokens per optimizer step and its wall time (GPU synchronised), after the warm-up steps."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.tokens: dict[int, int] = {}
        self.seconds: dict[int, float] = {}
        self._start = 0.0

    def _sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()

    def wrap(self, trainer: Any) -> None:
        from transformers import TrainerCallback

        original = trainer.training_step
        meter = self

        def counted(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            step = trainer.state.global_step + 1
            mask = inputs.get("attention_mask")
            real = int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
            meter.tokens[step] = meter.tokens.get(step, 0) + real
            return original(model, inputs, num_items_in_batch)

        class Clock(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                meter._sync()
                meter._start = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                meter._sync()
                meter.seconds[state.global_step] = time.perf_counter() - meter._start

        trainer.training_step = counted
        trainer.add_callback(Clock())

    def tokens_per_second(self) -> float:
        steps = [s for s in self.seconds if s > self.warmup]
        return sum(self.tokens[s] for s in steps) / max(1e-9, sum(self.seconds[s] for s in steps))


def _reset(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> int:
    if device != "cuda":
        from studio.train.callbacks import peak_memory_bytes

        return peak_memory_bytes("cpu")
    import torch

    return int(torch.cuda.max_memory_allocated())


# --- the three trainers ----------------------------------------------------------------------------------


def train_side(side: str, method: str, folder: Path, convs: list, args: argparse.Namespace, device: str,
               scratch: Path) -> dict[str, Any]:
    import torch

    from studio.train import data as train_data
    from studio.train import worker
    from studio.train.settings import TrainConfig

    config = TrainConfig(method=method, per_device_batch_size=args.batch_size, gradient_accumulation_steps=1,
                         max_seq_length=args.max_length, max_steps=args.warmup + args.steps, learning_rate=2e-4,
                         warmup_ratio=0.0, lr_scheduler="constant", early_stopping_patience=0,
                         save_every_steps=1_000_000, seed=42)
    _reset(device)
    meter = Meter(args.warmup, device)
    out = scratch / f"{side}-{method}-{folder.name}"
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    kernels = ""
    if side == "studio":
        setup = worker.build_trainer(folder, config, convs, [], out, device=device)
        trainer, kernels = setup.trainer, setup.kernels
    elif side == "transformers":
        from peft import get_peft_model, prepare_model_for_kbit_training
        from transformers import (
            AutoModelForCausalLM,
            AutoTokenizer,
            BitsAndBytesConfig,
            DataCollatorForSeq2Seq,
            Trainer,
            TrainingArguments,
        )

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        dataset = train_data.tokenize_conversations(tokenizer, convs, max_length=config.max_seq_length)
        kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 else torch.float32}
        if method == "qlora":
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                               bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        if method == "qlora":
            model = prepare_model_for_kbit_training(model)
        model = get_peft_model(model, worker.lora_config(config)).to(device)
        trainer = Trainer(
            model=model,
            args=TrainingArguments(output_dir=str(out), per_device_train_batch_size=args.batch_size,
                                   max_steps=config.max_steps, learning_rate=config.learning_rate,
                                   lr_scheduler_type="constant", logging_steps=1, save_strategy="no", report_to=[],
                                   bf16=bf16, use_cpu=device == "cpu", seed=42, disable_tqdm=True),
            train_dataset=dataset,
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100),
        )
    else:  # TRL's SFTTrainer with its defaults: it tokenizes the conversations itself
        from datasets import Dataset
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig
        from trl import SFTConfig, SFTTrainer

        kwargs = {"dtype": torch.bfloat16 if bf16 else torch.float32}
        if method == "qlora":
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                               bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(output_dir=str(out), per_device_train_batch_size=args.batch_size,
                           max_steps=config.max_steps, max_length=args.max_length, logging_steps=1,
                           save_strategy="no", report_to=[], use_cpu=device == "cpu", seed=42, disable_tqdm=True),
            train_dataset=Dataset.from_list([{"messages": c} for c in convs]),
            peft_config=worker.lora_config(config),
        )
    meter.wrap(trainer)
    trainer.train()
    result = {"side": side, "method": method, "tokens_per_second": meter.tokens_per_second(),
              "peak_memory_bytes": _peak(device), "kernels": kernels}
    if side == "studio":
        trainer.save_model(str(out / "adapter"))
        result["adapter"] = str(out / "adapter")
    del trainer
    _reset(device)
    return result


# --- generation and side by side -------------------------------------------------------------------------


def generation(folder: Path, convs: list, device: str, rows: int) -> dict[str, float]:
    from studio.teachers.base import GenerationParams
    from studio.teachers.local import LocalTeacher

    prompts = [c[:1] for c in convs[:rows]]
    params = GenerationParams(max_new_tokens=64, temperature=0.8, top_p=0.95, seed=1)
    out = {}
    for batch in (32, 1):
        teacher = LocalTeacher(str(folder), folder.parent, batch_size=batch, device=device)
        teacher.generate(prompts[:2], params)  # load and warm up
        count = rows if batch > 1 else max(2, rows // 8)
        started = time.perf_counter()
        teacher.generate(prompts[:count], params)
        out[f"batch {batch}"] = count / (time.perf_counter() - started) * 60
        del teacher
        _reset(device)
    return out


def side_by_side_memory(folder: Path, adapter: Path, device: str) -> dict[str, float]:
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    from studio.evaluation.sidebyside import SideBySide

    second = adapter.parent / "adapter-copy"
    shutil.copytree(adapter, second, dirs_exist_ok=True)
    _reset(device)
    if device == "cuda":
        before = torch.cuda.memory_allocated()
        sbs = SideBySide(folder, {1: adapter, 2: second}, device="cuda")
        ours = torch.cuda.memory_allocated() - before
        del sbs
        _reset(device)
        before = torch.cuda.memory_allocated()
        one = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16).to("cuda")
        copy = torch.cuda.memory_allocated() - before
        del one
    else:
        sbs = SideBySide(folder, {1: adapter, 2: second}, device="cpu")
        ours = sbs.memory_bytes()
        copy = sum(p.numel() * p.element_size() for p in AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch.float32).parameters())
        del sbs
    _reset(device)
    return {"side_by_side_bytes": ours, "three_copies_bytes": 3 * copy, "ratio": ours / (3 * copy)}


def matmul_peak(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - started)


# --- driver ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", help="a folder with SmolLM2's tokenizer (default: bench/wheels/tokenizer)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--smoke", action="store_true", help="a CPU and a tiny model: check the script runs")
    args = parser.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if device == "cpu" and not args.smoke:
        raise SystemExit("No GPU is visible to torch here. Run with --smoke to check the script on a CPU.")
    if args.smoke:
        args.steps, args.warmup, args.batch_size, args.max_length = 2, 1, 4, 256
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (smoke run)"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    tokenizer = tokenizer_dir(args.tokenizer)
    convs = conversations(64 if args.smoke else 256)
    small_shape, big_shape = ("tiny", "tiny") if args.smoke else ("135m", "1.1b")
    small, small_params = build_model(small_shape, tokenizer, scratch / f"llama-{small_shape}")
    results: list[dict[str, Any]] = []
    sides = ("studio", "transformers", "trl")
    methods = ("lora",) if args.smoke else ("lora", "qlora")

    def attempt(label: str, fn: Any, *fn_args: Any) -> Any:
        try:
            return fn(*fn_args)
        except Exception as error:  # one side that cannot run here must not hide the others
            traceback.print_exc()
            print(f"{label}: not measured ({type(error).__name__}: {str(error)[:200]})", flush=True)
            return None

    for method in methods:
        for side in sides:
            r = attempt(f"{side} {method} {small_shape}", train_side, side, method, small, convs, args, device,
                        scratch)
            if r:
                r.update(shape=small_shape, params=small_params)
                results.append(r)
                print(json.dumps({k: v for k, v in r.items() if k != "adapter"}), flush=True)
    big, big_params = (small, small_params) if args.smoke else build_model(big_shape, tokenizer,
                                                                           scratch / f"llama-{big_shape}")
    for side in sides:
        r = attempt(f"{side} lora {big_shape}", train_side, side, "lora", big, convs, args, device, scratch)
        if r:
            r.update(shape=big_shape, params=big_params, big=True)
            results.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "adapter"}), flush=True)

    measured_peak = attempt("matmul peak", matmul_peak, device)
    datasheet = next((flops for key, flops in PEAK_BF16 if key in name.lower()), None)
    gen = attempt("generation", generation, small, convs, device, 8 if args.smoke else 256)
    adapter = next((Path(r["adapter"]) for r in results if r["side"] == "studio" and r["method"] == "lora"), None)
    sbs = attempt("side by side", side_by_side_memory, small, adapter, device) if adapter else None

    print()
    print(f"GPU: {name}; {args.steps} timed steps after {args.warmup} warm-up, batch {args.batch_size}, "
          f"max length {args.max_length}; conversations of ~600 tokens")
    by = {(r["side"], r["method"], r["shape"]): r for r in results}
    for r in results:
        trl = by.get(("trl", r["method"], r["shape"]))
        line = (f"{r['method']:>5} {r['shape']:>5} {r['side']:>12}: {r['tokens_per_second']:9.0f} tokens/s, "
                f"peak memory {r['peak_memory_bytes'] / 2**30:6.2f} GiB")
        if r.get("kernels"):
            line += f" ({r['kernels']})"
        if trl and r["side"] != "trl":
            line += f", {r['tokens_per_second'] / trl['tokens_per_second']:.2f}x TRL defaults"
        if r.get("big"):
            flops = 6 * r["params"] * r["tokens_per_second"]
            if datasheet:
                line += f", MFU {flops / datasheet:.1%} of the datasheet's bf16 peak"
            if measured_peak:
                line += f" ({flops / measured_peak:.1%} of a measured bf16 matmul)"
        print(line)
    if measured_peak:
        print(f"measured 8192^3 bf16 matmul: {measured_peak / 1e12:.0f} TFLOP/s; datasheet "
              f"{(datasheet or 0) / 1e12:.0f} TFLOP/s")
    if gen:
        print(f"generation ({small_shape}, 64 new tokens): {gen['batch 32']:.0f} rows/min at batch 32, "
              f"{gen['batch 1']:.0f} one at a time ({gen['batch 32'] / gen['batch 1']:.1f}x)")
    if sbs:
        print(f"side by side (base + 2 adapters): {sbs['side_by_side_bytes'] / 2**20:.0f} MiB vs three copies "
              f"{sbs['three_copies_bytes'] / 2**20:.0f} MiB: memory ratio {sbs['ratio']:.2f}")
    studio, trl = by.get(("studio", "lora", small_shape)), by.get(("trl", "lora", small_shape))
    if studio and trl:
        print(f"ratio: {studio['tokens_per_second'] / trl['tokens_per_second']:.2f}")
    else:
        print("ratio: not measured (a side failed; see above)")


if __name__ == "__main__":
    main()
