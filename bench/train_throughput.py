"""Training throughput: Seed Studio's trainer path against a plain transformers Trainer + PEFT, same data,
same model, same LoRA, same batches. Target: studio >= 1.5x the baseline's real tokens/s on a 2-core CPU.

    .venv/bin/python bench/train_throughput.py [--model auto|smollm2|tiny] [--steps 3] [--warmup 1]
                                               [--batch-size 8] [--max-length 512] [--repeat 1] [--rounds 1]
                                               [--whole-run [--whole-steps N]] [--busy N]

Data: the 120 human-written seeds of /work/shared/data/self_instruct_seeds.jsonl as chat conversations
(studio.data.chat.to_messages), `--repeat` times, tokenised once by studio.train.data in the model's chat
template with labels on the assistant tokens only; both sides get this same dataset, so the loss is the same
(assistant-only) objective on both. Model: the embedded SmolLM2-135M-Instruct converted folder when it is
there (SEED_STUDIO_MODELS_DIR picks the cache), else a random 4-layer Llama with SmolLM2's tokenizer.

(a) studio: `studio.train.worker.build_trainer`, the function the worker uses: TRL SFTTrainer, padding-free
    batches (one flattened row per batch, position_ids restarting per example), fused LM head over the
    trained positions only, fp32 LoRA on CPU.
(b) baseline: transformers.Trainer on a PEFT model with the same LoraConfig, DataCollatorForSeq2Seq padding
    each batch to its longest row, no length grouping, the model's own forward (full logits + cross-entropy).
Both: per-device batch `--batch-size`, no gradient accumulation, fp32, no gradient checkpointing, the same
seed, hence the same random sampler and the same examples in each step (the token totals printed match).

--whole-run also times the product path: `seed-studio train --preset quick` on the 84 train rows of a 70/15/15
split of the same seeds, in a fresh workspace, from the command to 'done' (model load, evaluation and saving
included), with the worker's OpenMP threads waiting passively (what the launcher sets) and with libgomp's default
spin-waiting; it prints the run's reported tokens/s next to the real tokens/s of its steps. --busy N keeps N other
processes doing torch work throughout (a shared machine). The last line stays the function-level ratio.

Each side runs in its own process (so peak memory is its own), `--rounds` times, alternating; the fastest
round counts. The first `--warmup` steps are not timed. Real tokens = non-padding tokens fed to the model;
time = the optimizer steps' wall time (on_step_begin to on_step_end). Last line: `ratio: X.XX` (studio /
baseline real tokens/s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
RESULT = "RESULT "


def conversations(repeat: int) -> list[list[dict[str, str]]]:
    from studio.data.chat import to_messages

    rows = [json.loads(line) for line in SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    convs = [
        to_messages("alpaca", {"instruction": r["instruction"], "input": r.get("input") or "", "output": r["output"]})
        for r in rows
    ]
    return convs * repeat


def model_folder(choice: str, scratch: Path) -> tuple[Path, str]:
    from studio.config import load_settings
    from studio.models import embedded

    converted = embedded.converted_chat_dir(load_settings().models_dir)
    if choice in ("auto", "smollm2") and embedded.is_complete(converted):
        return converted, "SmolLM2-135M-Instruct (embedded, converted fp32)"
    if choice == "smollm2":
        return embedded.ensure_converted_chat_model(load_settings().models_dir), "SmolLM2-135M-Instruct (embedded)"
    return tiny_model(scratch / "tiny", converted), "random 4-layer Llama (hidden 64) with SmolLM2's tokenizer"


def tiny_model(folder: Path, tokenizer_source: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from studio.models import embedded

    if not embedded.is_complete(tokenizer_source):
        from studio.config import load_settings

        tokenizer_source = embedded.ensure_converted_chat_model(load_settings().models_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


# --- one side, in its own process --------------------------------------------------------------------------


class Meter:
    """Real and padded tokens per training micro-step, and the wall time of each optimizer step."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.tokens: dict[int, int] = {}
        self.padded: dict[int, int] = {}
        self.seconds: dict[int, float] = {}
        self.cpu_seconds: dict[int, float] = {}
        self._start = 0.0
        self._cpu_start = 0.0

    def wrap(self, trainer: Any) -> None:
        original = trainer.training_step

        def counted(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            step = trainer.state.global_step + 1
            # Padded batches have an attention mask; a padding-free batch is one flattened row with no padding.
            real = int(inputs["attention_mask"].sum()) if "attention_mask" in inputs else inputs["input_ids"].numel()
            self.tokens[step] = self.tokens.get(step, 0) + real
            self.padded[step] = self.padded.get(step, 0) + int(inputs["input_ids"].numel())
            return original(model, inputs, num_items_in_batch)

        trainer.training_step = counted
        meter = self

        from transformers import TrainerCallback

        class Clock(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                meter._start, meter._cpu_start = time.perf_counter(), time.process_time()

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                meter.seconds[state.global_step] = time.perf_counter() - meter._start
                meter.cpu_seconds[state.global_step] = time.process_time() - meter._cpu_start

        trainer.add_callback(Clock())

    def result(self) -> dict[str, Any]:
        steps = [s for s in sorted(self.seconds) if s > self.warmup]
        tokens = sum(self.tokens[s] for s in steps)
        padded = sum(self.padded[s] for s in steps)
        seconds = sum(self.seconds[s] for s in steps)
        cpu = sum(self.cpu_seconds[s] for s in steps)
        return {
            "steps": len(steps),
            "tokens": tokens,
            "padded_tokens": padded,
            "seconds": seconds,
            "tokens_per_second": tokens / seconds,
            "tokens_per_cpu_second": tokens / cpu,
        }


def peak_rss() -> int:
    from studio.train.callbacks import peak_memory_bytes

    return peak_memory_bytes("cpu")


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from studio.train import data as train_data
    from studio.train import worker
    from studio.train.settings import TrainConfig

    scratch = Path(tempfile.mkdtemp(prefix="train-bench-"))
    folder, title = model_folder(args.model, scratch)
    config = TrainConfig(
        method="lora",
        per_device_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_seq_length=args.max_length,
        max_steps=args.warmup + args.steps,
        learning_rate=2e-4,
        warmup_ratio=0.0,
        lr_scheduler="constant",
        early_stopping_patience=0,
        save_every_steps=1_000_000,
        seed=42,
    )
    convs = conversations(args.repeat)
    meter = Meter(args.warmup)
    if side == "studio":
        setup = worker.build_trainer(folder, config, convs, [], scratch / "studio", device="cpu")
        trainer = setup.trainer
    else:
        from peft import get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        dataset = train_data.tokenize_conversations(tokenizer, convs, max_length=config.max_seq_length)
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32), worker.lora_config(config)
        )
        trainer = Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=str(scratch / "baseline"),
                per_device_train_batch_size=args.batch_size,
                max_steps=config.max_steps,
                learning_rate=config.learning_rate,
                lr_scheduler_type="constant",
                logging_steps=1,
                save_strategy="no",
                report_to=[],
                use_cpu=True,
                seed=config.seed,
                data_seed=config.seed,
                disable_tqdm=True,
            ),
            train_dataset=dataset,
            data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100),
        )
    meter.wrap(trainer)
    trainer.train()
    return {
        "side": side,
        "model": title,
        **meter.result(),
        "peak_rss_bytes": peak_rss(),
        "threads": torch.get_num_threads(),
    }


# --- a whole run, as a person starts it -------------------------------------------------------------------


def hogs(count: int) -> list[subprocess.Popen]:
    """`count` other processes doing torch matrix products (a machine shared with other work or tests)."""
    code = "import torch\na = torch.randn(512, 512)\nwhile True:\n    a @ a"
    return [subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_WAIT_POLICY": ""})
            for _ in range(count)]


def whole_run(max_steps: int, omp_wait: str) -> dict[str, Any]:
    """`seed-studio train` on the shared seeds (70/15/15 split: 84 train rows), Quick preset, in a fresh
    workspace: the wall time from the command to 'done', the run's own tokens/s, the estimate, and the real
    tokens/s (tokens trained / seconds from the worker's first to last logged step)."""
    from studio.data.importer import commit_import, preview_file
    from studio.data.versions import FreezeConfig, freeze_version
    from studio.train.runs import get_run, list_runs
    from studio.workspace import Workspace
    from studio.workspace.projects import create_project

    home = Path(tempfile.mkdtemp(prefix="train-bench-home-"))
    os.environ["STUDIO_HOME"] = str(home)
    ws = Workspace.open(home)
    project = create_project(ws, "bench", task_description="Follow the instruction")
    commit_import(ws, project.id, preview_file(ws, SEEDS, project_id=project.id))
    freeze_version(ws, project.id, FreezeConfig(name="v1", validation_fraction=0.15, test_fraction=0.15))
    # OMP_WAIT_POLICY "" = libgomp's default (spin, then sleep); the studio's launcher sets PASSIVE when unset.
    env = {**os.environ, "STUDIO_HOME": str(home)}
    if omp_wait == "default":
        env["OMP_WAIT_POLICY"] = ""
    else:
        env.pop("OMP_WAIT_POLICY", None)
    command = [sys.executable, "-m", "studio.cli", "train", "-p", "bench", "-v", "v1", "--preset", "quick",
               "--devices", "cpu", "--force", "--json"]
    if max_steps:
        command += ["--max-steps", str(max_steps)]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"seed-studio train failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    estimate = next((line for line in proc.stderr.splitlines() if line.startswith("Estimate:")), "")
    run = get_run(ws, list_runs(ws, project.id)[0].id)
    with ws.read() as conn:
        times = conn.execute(
            "SELECT MIN(created_at) AS a, MAX(created_at) AS b, COUNT(*) AS n FROM run_metric WHERE run_id = ? "
            "AND name = 'loss' AND split = 'train'", (run.id,)).fetchone()
    from datetime import datetime

    from studio.train.settings import TrainConfig

    stats = run.provenance.get("token_stats") or {}
    # A step reads on average a pass's tokens over a pass's steps (the batches differ; their mean does not).
    per_pass = TrainConfig.from_dict(run.config).steps_per_epoch(stats.get("rows", 0))
    per_step = stats.get("total_tokens", 0) / per_pass if stats else 0
    span = (datetime.fromisoformat(times["b"]) - datetime.fromisoformat(times["a"])).total_seconds()
    return {
        "wall_seconds": wall,
        "steps": run.step,
        "estimate": estimate,
        "reported_tokens_per_second": run.tokens_per_second,
        "seconds_per_step": span / max(1, times["n"] - 1),
        "real_tokens_per_second": per_step * (times["n"] - 1) / span if span > 0 else None,
        "omp_wait": omp_wait,
    }


def print_whole(r: dict[str, Any]) -> None:
    real = r["real_tokens_per_second"]
    print(f"whole run (OMP wait {r['omp_wait']}): {r['steps']} steps in {r['wall_seconds']:.0f} s from the command "
          f"to done, {r['seconds_per_step']:.1f} s/step; reported {r['reported_tokens_per_second'] or 0:.0f} "
          f"tokens/s, real {real or 0:.0f} tokens/s; {r['estimate']}")


# --- driver ------------------------------------------------------------------------------------------------


def side_in_subprocess(side: str, argv: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--side", side, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise SystemExit(f"the {side} run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("auto", "smollm2", "tiny"), default="auto")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1, help="how many times the seeds are repeated")
    parser.add_argument("--rounds", type=int, default=1, help="runs per side, alternating; the fastest counts")
    parser.add_argument("--whole-run", action="store_true",
                        help="also time `seed-studio train` end to end (Quick preset, 84 train rows), with the "
                             "launcher's OpenMP passive waiting and with libgomp's default")
    parser.add_argument("--whole-steps", type=int, default=0, help="--max-steps for the whole runs (0: all 11)")
    parser.add_argument("--busy", type=int, default=0, help="other processes doing torch work meanwhile")
    parser.add_argument("--side", choices=("studio", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(RESULT + json.dumps(run_side(args.side, args)), flush=True)
        return

    others = hogs(args.busy)
    try:
        measure(args)
    finally:
        for proc in others:
            proc.kill()
            proc.wait()


def measure(args: argparse.Namespace) -> None:
    argv = [a for a in sys.argv[1:]]
    wholes = [whole_run(args.whole_steps, wait) for wait in ("passive", "default")] if args.whole_run else []
    best: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for side in ("studio", "baseline"):
            result = side_in_subprocess(side, argv)
            if side not in best or result["tokens_per_second"] > best[side]["tokens_per_second"]:
                best[side] = result
    studio, baseline = best["studio"], best["baseline"]
    print(
        f"model: {studio['model']}; batch {args.batch_size}, max length {args.max_length}, "
        f"{args.steps} timed steps after {args.warmup} warm-up, {args.rounds} round(s), "
        f"torch threads {studio['threads']}"
    )
    for r in (studio, baseline):
        print(
            f"{r['side']:>8}: {r['tokens']} real tokens ({r['padded_tokens']} fed incl. padding) in "
            f"{r['seconds']:.1f} s = {r['tokens_per_second']:.1f} real tokens/s "
            f"({r['tokens_per_cpu_second']:.1f} per CPU-second); peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB"
        )
    if studio["tokens"] != baseline["tokens"]:
        print(f"warning: the sides saw different tokens ({studio['tokens']} vs {baseline['tokens']})")
    for whole in wholes:
        print_whole(whole)
    if args.busy:
        print(f"busy machine: {args.busy} other processes doing torch matrix products throughout")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"wall time {time.perf_counter() - started:.0f} s; load average {load:.2f}")
    print(f"ratio: {studio['tokens_per_second'] / baseline['tokens_per_second']:.2f}")


if __name__ == "__main__":
    main()
