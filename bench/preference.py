"""DPO training throughput: the studio's preference path against TRL's DPOTrainer with its defaults, same pairs,
same model, same LoRA, same batches. The studio computes the reference log-probabilities once before training
(`precompute_ref_log_probs=True`); TRL's default runs the reference forward again in every step of every epoch.

    .venv/bin/python bench/preference.py [--model auto|smollm2|tiny] [--pairs 8] [--epochs 3] [--batch-size 4]
                                         [--max-length 512] [--rounds 1] [--baseline-checkpointing] [--split N]

The defaults (6 steps a side) take about 3 minutes on a quiet 2-core CPU with SmolLM2 (7 to 8 while tests ran
beside them). `--pairs 48 --batch-size 8` (18 steps) took 31 minutes there and 21 GiB of peak RSS a side: on CPU,
TRL scores every position of the padded batch through the 49,152-word output layer in fp32 tiles.

Pairs: the first `--pairs` of the 120 human-written seeds of /work/shared/data/self_instruct_seeds.jsonl as TRL
conversational rows (the user turn of studio.data.chat.to_messages as the prompt, the seed's answer as chosen);
the rejected answer is, alternately, another seed's answer (60 seeds further on) and the first half of the
seed's own answer's words (past 120 the seeds repeat). Deterministic. Model: the embedded SmolLM2-135M-Instruct
converted folder when it is there (SEED_STUDIO_MODELS_DIR picks the cache), else a random 4-layer Llama with
SmolLM2's tokenizer (both from bench/train_throughput.py).

(a) studio: `studio.train.preference.build_preference_trainer`, the function the worker uses (precompute_ref=True),
    objective dpo, LoRA, no held-out pairs.
(b) baseline: `trl.DPOTrainer` with `DPOConfig` defaults except what must match: output_dir, batch size, no
    gradient accumulation, learning rate, epochs, seed, use_cpu, report_to=[], logging_steps=1, no saving, no
    evaluation, bf16 off, max_length, and gradient checkpointing off (TRL turns it on by default; the studio
    turns it off on CPU; it is a memory-for-time trade, not what is measured here: --baseline-checkpointing
    keeps TRL's default). Same PEFT LoraConfig (`studio.train.worker.lora_config`), model loaded in float32.
Both: the same seed, hence the same sampler and the same pairs in each step (the per-step token counts are checked).

Time: TRL 1.16 precomputes in DPOTrainer.__init__ (a hash of the weights, then one no-grad reference forward over
the pairs), so the studio's time is that precompute plus the wall time of every optimizer step (on_step_begin to
on_step_end, no warm-up left out); the baseline's is its steps. Tokens: the non-padding tokens (prompt + chosen
and prompt + rejected) fed in each step, summed over all steps of all epochs. Each side runs in its own process
(so peak RSS is its own; OMP_WAIT_POLICY=PASSIVE unless set), `--rounds` times, alternating; the fastest round
counts. --split N adds a cross-check for a busy machine: one batch's step with the reference forward, without it
(precomputed) and the reference forward alone, N times alternating in one process, and the ratio their medians
predict (it leaves out first-call warm-up). Last line: `ratio: X.XX` (studio / baseline real tokens/s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_throughput import RESULT, Meter, conversations, model_folder, peak_rss  # noqa: E402


def preference_pairs(count: int) -> list[dict[str, Any]]:
    """`count` TRL conversational preference rows built from the seeds (see the module doc)."""
    convs = conversations(1)
    pairs = []
    for i in range(count):
        conv = convs[i % len(convs)]
        prompt, chosen = conv[:-1], conv[-1]["content"]
        words = chosen.split()
        half = " ".join(words[: len(words) // 2])
        other = convs[(i + len(convs) // 2) % len(convs)][-1]["content"]
        # One-word answers have no shorter half: another seed's answer is the rejected one then.
        rejected = half if i % 2 and half and half != chosen else other
        pairs.append({
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        })
    return pairs


class PrecomputeClock:
    """Wall time of what `precompute_ref_log_probs` adds to DPOTrainer.__init__: the weights' hash (the cache key)
    and the reference forward over the pairs."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.calls = 0
        self.parts: dict[str, float] = {}

    def install(self) -> None:
        import trl.trainer.dpo_trainer as dpo

        clock = self

        def timed(function: Any) -> Any:
            def run(*args: Any, **kwargs: Any) -> Any:
                started, cpu_started = time.perf_counter(), time.process_time()
                try:
                    return function(*args, **kwargs)
                finally:
                    seconds = time.perf_counter() - started
                    clock.seconds += seconds
                    clock.cpu_seconds += time.process_time() - cpu_started
                    clock.calls += 1
                    clock.parts[function.__name__] = clock.parts.get(function.__name__, 0.0) + seconds

            return run

        dpo.hash_module = timed(dpo.hash_module)
        dpo.DPOTrainer._precompute_ref_logps = timed(dpo.DPOTrainer._precompute_ref_logps)


def bench_config(args: argparse.Namespace) -> Any:
    from studio.train.settings import TrainConfig

    return TrainConfig(
        objective="dpo",
        method="lora",
        per_device_batch_size=args.batch_size,
        gradient_accumulation_steps=1,
        max_seq_length=args.max_length,
        num_epochs=args.epochs,
        max_steps=0,
        learning_rate=5e-5,  # the Balanced preset's rate scaled for preferences (PREFERENCE_LR_FACTOR)
        warmup_ratio=0.0,
        lr_scheduler="linear",  # DPOConfig's default, so the schedules are the same
        early_stopping_patience=0,
        save_every_steps=1_000_000,
        seed=42,
    )


def baseline_trainer(folder: Path, config: Any, pairs: list[dict[str, Any]], output_dir: Path,
                     args: argparse.Namespace) -> Any:
    """TRL's DPOTrainer with DPOConfig's defaults but for what must match the studio side (see the module doc)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from studio.train import worker

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    return DPOTrainer(
        model=model,
        args=DPOConfig(
            output_dir=str(output_dir),
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=1,
            learning_rate=config.learning_rate,
            num_train_epochs=args.epochs,
            seed=config.seed,
            use_cpu=True,
            report_to=[],
            logging_steps=1,
            save_strategy="no",
            eval_strategy="no",
            bf16=False,
            max_length=args.max_length,
            gradient_checkpointing=args.baseline_checkpointing,
            disable_tqdm=True,
        ),
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=worker.lora_config(config),
    )


def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    scratch = Path(tempfile.mkdtemp(prefix="preference-bench-"))
    folder, title = model_folder(args.model, scratch)
    config = bench_config(args)
    pairs = preference_pairs(args.pairs)
    clock = PrecomputeClock()
    clock.install()
    meter = Meter(warmup=0)
    started = time.perf_counter()
    if side == "studio":
        from studio.train.preference import build_preference_trainer

        setup = build_preference_trainer(folder, config, pairs, [], scratch / "studio", device="cpu",
                                         precompute_ref=True)
        trainer = setup.trainer
    else:
        trainer = baseline_trainer(folder, config, pairs, scratch / "baseline", args)
    build = time.perf_counter() - started
    meter.wrap(trainer)
    started = time.perf_counter()
    trainer.train()
    train = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)  # the studio's final checkpoint, the tiny model
    steps = sorted(meter.seconds)
    step_seconds = sum(meter.seconds.values())
    tokens = sum(meter.tokens[s] for s in steps)
    return {
        "side": side,
        "model": title,
        "steps": len(steps),
        "step_tokens": [meter.tokens[s] for s in steps],
        "tokens": tokens,
        "padded_tokens": sum(meter.padded[s] for s in steps),
        "step_seconds": step_seconds,
        "seconds_per_step": [round(meter.seconds[s], 2) for s in steps],
        "precompute_parts": clock.parts,
        "precompute_seconds": clock.seconds,
        "precompute_calls": clock.calls,
        "seconds": clock.seconds + step_seconds,
        "tokens_per_second": tokens / (clock.seconds + step_seconds),
        # CPU time of this process (all its threads): less sensitive to other work on a shared machine.
        "tokens_per_cpu_second": tokens / (clock.cpu_seconds + sum(meter.cpu_seconds.values())),
        "uses_precomputed": bool(trainer.precompute_ref_logps),
        "build_seconds": build,
        "train_call_seconds": train,
        "peak_rss_bytes": peak_rss(),
        "threads": torch.get_num_threads(),
        "gradient_checkpointing": bool(trainer.args.gradient_checkpointing),
    }


def run_split(args: argparse.Namespace) -> dict[str, Any]:
    """What a step costs with and without the reference forward, on one batch, alternating in one process: a slow
    drift of the machine's load hits the three timings alike, unlike two whole runs one after the other."""
    import statistics

    import torch

    scratch = Path(tempfile.mkdtemp(prefix="preference-split-"))
    folder, _ = model_folder(args.model, scratch)
    trainer = baseline_trainer(folder, bench_config(args), preference_pairs(args.pairs), scratch / "split", args)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; training_step divides by it
    trainer.model.train()
    batch = next(iter(trainer.get_train_dataloader()))
    halves = batch["input_ids"].shape[0] // 2
    precomputed = {**batch, "ref_chosen_logps": torch.zeros(halves), "ref_rejected_logps": torch.zeros(halves)}
    seconds: dict[str, list[float]] = {"reference": [], "with_reference": [], "precomputed": []}

    def timed(name: str, work: Any) -> None:
        started = time.perf_counter()
        work()
        seconds[name].append(time.perf_counter() - started)

    for _ in range(args.split):
        timed("reference", lambda: trainer.compute_ref_log_probs(trainer.model, batch))
        trainer.precompute_ref_logps = False
        timed("with_reference", lambda: trainer.training_step(trainer.model, batch))
        trainer.precompute_ref_logps = True
        timed("precomputed", lambda: trainer.training_step(trainer.model, precomputed))
    shutil.rmtree(scratch, ignore_errors=True)
    return {"tokens": int(batch["attention_mask"].sum()), "padded_tokens": int(batch["input_ids"].numel()),
            **{name: statistics.median(values) for name, values in seconds.items()}}


# --- driver ------------------------------------------------------------------------------------------------


def side_in_subprocess(side: str, argv: list[str]) -> dict[str, Any]:
    import subprocess

    proc = subprocess.run(
        [sys.executable, __file__, "--side", side, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        # OpenMP threads wait passively, as the studio's launcher sets for CPU runs: on a shared machine spinning
        # threads waste the cores the other side's measurement needs (bench/RESULTS.md, issue 17).
        env={"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "TQDM_DISABLE": "1"},
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise SystemExit(f"the {side} run failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("auto", "smollm2", "tiny"), default="auto")
    parser.add_argument("--pairs", type=int, default=8, help="preference pairs built from the seeds")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the pairs (Balanced preset: 3)")
    parser.add_argument("--batch-size", type=int, default=4, help="pairs per step (no gradient accumulation)")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per prompt + answer sequence")
    parser.add_argument("--rounds", type=int, default=1, help="runs per side, alternating; the fastest counts")
    parser.add_argument("--baseline-checkpointing", action="store_true",
                        help="keep TRL's default gradient checkpointing on the baseline side")
    parser.add_argument("--split", type=int, default=0, metavar="N",
                        help="also time one batch's steps with and without the reference forward, N times "
                             "alternating in one process (a cross-check on a busy machine)")
    parser.add_argument("--side", choices=("studio", "baseline", "split"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        result = run_split(args) if args.side == "split" else run_side(args.side, args)
        print(RESULT + json.dumps(result), flush=True)
        return
    measure(args)


def measure(args: argparse.Namespace) -> None:
    argv = sys.argv[1:]
    best: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for _ in range(args.rounds):
        for side in ("studio", "baseline"):
            result = side_in_subprocess(side, argv)
            if side not in best or result["tokens_per_second"] > best[side]["tokens_per_second"]:
                best[side] = result
    studio, baseline = best["studio"], best["baseline"]
    split = side_in_subprocess("split", argv) if args.split else None
    print(
        f"model: {studio['model']}; {args.pairs} pairs, {args.epochs} epochs, batch {args.batch_size} pairs, "
        f"max length {args.max_length}, {args.rounds} round(s), "
        f"torch threads {studio['threads']}; baseline gradient checkpointing {baseline['gradient_checkpointing']}"
    )
    for r in (studio, baseline):
        print(
            f"{r['side']:>8}: {r['tokens']} real tokens ({r['padded_tokens']} fed incl. padding) in "
            f"{r['seconds']:.1f} s (precompute {r['precompute_seconds']:.1f} s + {r['steps']} steps "
            f"{r['step_seconds']:.1f} s) "
            f"= {r['tokens_per_second']:.1f} real tokens/s; trainer built in {r['build_seconds']:.1f} s, "
            f"train() {r['train_call_seconds']:.1f} s; peak RSS {r['peak_rss_bytes'] / 2**30:.2f} GiB"
        )
    if studio["step_tokens"] != baseline["step_tokens"]:
        print(f"warning: the sides saw different batches ({studio['tokens']} vs {baseline['tokens']} tokens)")
    if not studio["uses_precomputed"] or baseline["uses_precomputed"] or baseline["precompute_calls"]:
        print("warning: the studio side should use precomputed reference log-probs and the baseline should not")
    steps_only = (studio["tokens"] / studio["step_seconds"]) / (baseline["tokens"] / baseline["step_seconds"])
    per_cpu = studio["tokens_per_cpu_second"] / baseline["tokens_per_cpu_second"]
    print(f"per CPU-second: {studio['tokens_per_cpu_second']:.1f} vs {baseline['tokens_per_cpu_second']:.1f} "
          f"real tokens ({per_cpu:.2f}x); steps alone (precompute left out): {steps_only:.2f}x")
    print(f"seconds per step, studio: {studio['seconds_per_step']}; baseline: {baseline['seconds_per_step']}")
    if split:
        print_split(split, args, studio["steps"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"wall time {time.perf_counter() - started:.0f} s; load average {load:.2f}")
    print(f"ratio: {studio['tokens_per_second'] / baseline['tokens_per_second']:.2f}")


def print_split(split: dict[str, Any], args: argparse.Namespace, steps: int) -> None:
    """The split's timings, and the ratio they predict for this run's steps and precompute."""
    batches = -(-args.pairs // args.batch_size)  # the precompute's batches: one pass over the pairs
    baseline = steps * split["with_reference"]
    studio = steps * split["precomputed"] + batches * split["reference"]
    print(
        f"split, one batch ({split['tokens']} real tokens) {args.split} times alternating, medians: reference forward "
        f"{split['reference']:.1f} s, step with it {split['with_reference']:.1f} s, step with precomputed "
        f"{split['precomputed']:.1f} s; steps alone {split['with_reference'] / split['precomputed']:.2f}x, this run "
        f"({steps} steps + {batches} precompute batches) {baseline / studio:.2f}x"
    )


if __name__ == "__main__":
    main()
