"""Compare benchmark: memory and time of side-by-side generation (base model vs fine-tuned) with ONE base model
and its LoRA adapter switched on and off (studio.evaluation.sidebyside.SideBySide, what the Compare tab uses)
against TWO separately loaded models (the base model, and a second full model carrying the adapter).
Target: peak memory of one base + adapter <= 0.6x the two models' on the embedded SmolLM2-135M-Instruct.

    .venv/bin/python bench/compare.py [--prompts 8] [--max-new-tokens 64] [--rank 16] [--rounds 1]
                                      [--baseline copy|merged] [--quick]

Model: the embedded SmolLM2-135M-Instruct, converted to float32 (SEED_STUDIO_MODELS_DIR picks the cache).
Adapter: a real PEFT LoRA adapter, rank `--rank` (alpha 2x rank) on every linear projection ('all-linear',
as the studio trains by default), with random non-zero weights (init_lora_weights=False, as
tests/test_sidebyside.py does) so the fine-tuned side really differs from the base.
Prompts: the first `--prompts` human-written seeds of /work/shared/data/self_instruct_seeds.jsonl
(instruction, plus input when there is one). Both modes answer every prompt on both sides, greedy, the
same max new tokens, one prompt at a time, and their answers must be identical per side (checked).

(a) one: SideBySide(base, {1: adapter}); the base side runs with the adapter disabled.
(b) two: SideBySide(base) for the base side plus SideBySide(second checkpoint, {1: adapter}) for the tuned
    side. The second checkpoint is its own folder: `copy` (default) is a byte copy of the base weights, so
    both sides compute exactly what (a) computes; `merged` is the adapter merged into the weights and saved
    (what exporting a fine-tune gives), whose tuned answers can differ from (a) in float rounding.
    A separate folder matters: transformers maps safetensors files into memory, and ONE file loaded twice
    is held once by the kernel while RSS counts it twice (measured: the second load of the embedded model
    added 500 MiB of RSS and nothing to PSS after a forward pass), which would overstate the second
    model's cost; two different checkpoints (the real case) share nothing.

Each mode runs in its own fresh process (so peaks do not mix), `--rounds` times, alternating. Memory: peak
RSS (resource.getrusage ru_maxrss) minus the peak right after importing torch/transformers/peft and before
loading anything; also the bytes of the loaded weights (parameters + buffers) and the proportional set size
(PSS, shared pages split between their mappers) at the end. Time: loading, and generation of all answers
(after an untimed 2-token warm-up per model), as new tokens per second of wall time and of CPU time (the
latter moves less when other processes share the cores). The fastest round counts.
Last line: `ratio: X.XX` (peak memory of one base + adapter / peak memory of two models).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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
MODES = ("one", "two")
TITLES = {"one": "one base + adapter", "two": "two models"}
MIB = 2**20


def prompts(count: int) -> list[str]:
    found = []
    with SEEDS.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            seed = json.loads(line)
            content = seed["instruction"].strip()
            if str(seed.get("input") or "").strip():
                content += "\n\n" + seed["input"].strip()
            found.append(content)
            if len(found) == count:
                break
    return found


def max_rss() -> int:
    """This process's resident-set high-water mark in bytes (ru_maxrss is in kB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def pss() -> int | None:
    """Proportional set size now: pages shared by several mappings count once in total."""
    try:
        with open("/proc/self/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --- preparation (own process: the driver stays small, see run_mode) -----------------------------------------


def prepare(scratch: Path, rank: int, baseline: str) -> dict[str, Any]:
    """Resolve the embedded model, write the LoRA adapter and the second checkpoint of the two-model mode."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.config import load_settings
    from studio.models.loading import local_model_path
    from studio.models.registry import EMBEDDED_CHAT

    base = local_model_path(EMBEDDED_CHAT, load_settings().models_dir)
    adapter = scratch / "adapter"
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, config)
    adapter_params = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    targets = sorted({n.split(".")[-1] for n, m in peft_model.named_modules() if hasattr(m, "lora_A")})
    peft_model.save_pretrained(str(adapter))
    del peft_model, model

    second = scratch / f"second-{baseline}"
    if baseline == "copy":
        shutil.copytree(base, second)  # a real copy (own inode), not a link: see the module docstring
    else:
        merged = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32), str(adapter)
        ).merge_and_unload()
        merged.save_pretrained(str(second))
        AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(second))
    return {
        "base": str(base),
        "adapter": str(adapter),
        "second": str(second),
        "adapter_params": adapter_params,
        "targets": targets,
        "adapter_file_bytes": sum(f.stat().st_size for f in adapter.iterdir() if f.is_file()),
    }


# --- one mode, in its own process ----------------------------------------------------------------------------


def count_tokens(sbs: Any, counter: list[int]) -> None:
    """Add each generate call's new-token count to counter[0] (the text alone does not give it exactly)."""
    original = sbs.model.generate

    def counted(**kwargs: Any) -> Any:
        output = original(**kwargs)
        counter[0] += int(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    sbs.model.generate = counted


def run_mode(mode: str, args: argparse.Namespace, prep: dict[str, Any]) -> dict[str, Any]:
    # Import everything the loading and generation use first, so the baseline peak holds the libraries and
    # the measured rise is the models alone. The driver imports no torch: a child's ru_maxrss starts from
    # the parent's peak (Linux carries it over exec), which is far below this point's.
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401
    from peft import PeftModel  # noqa: F401
    from transformers import AutoModelForCausalLM, TextIteratorStreamer  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401

    from studio.evaluation.sidebyside import BASE, SideBySide

    after_imports = max_rss()
    base, adapter, second = Path(prep["base"]), {1: Path(prep["adapter"])}, Path(prep["second"])
    started = time.perf_counter()
    if mode == "one":
        one = SideBySide(base, adapter)
        models: dict[Any, tuple[Any, Any]] = {BASE: (one, BASE), 1: (one, 1)}
        loaded = [one]
    elif args.baseline == "copy":
        plain = SideBySide(base)
        tuned = SideBySide(second, adapter, base_aliases=[str(base)])
        models, loaded = {BASE: (plain, BASE), 1: (tuned, 1)}, [plain, tuned]
    else:
        plain, tuned = SideBySide(base), SideBySide(second)  # the adapter is in the merged weights
        models, loaded = {BASE: (plain, BASE), 1: (tuned, BASE)}, [plain, tuned]
    load_seconds = time.perf_counter() - started
    after_load = max_rss()

    settings = {"max_new_tokens": args.max_new_tokens, "temperature": 0.0, "seed": 0}
    for sbs, which in models.values():  # warm-up, untimed
        sbs.generate("Hello", which=which, max_new_tokens=2)
    counter = [0]
    for sbs in loaded:
        count_tokens(sbs, counter)
    answers: dict[str, list[str]] = {"base": [], "tuned": []}
    started, cpu_started = time.perf_counter(), time.process_time()
    for prompt in prompts(args.prompts):
        for side, (sbs, which) in models.items():
            answers["base" if side == BASE else "tuned"].append(sbs.generate(prompt, which=which, **settings))
    generate_seconds = time.perf_counter() - started
    generate_cpu_seconds = time.process_time() - cpu_started
    new_tokens = counter[0]  # before the batched run below, which goes through the same counted generate
    together: dict[str, Any] = {}
    if mode == "one":
        # What the Compare tab does: both sides in one batched call (PEFT mixed adapters), columns together.
        from studio.evaluation.together import generate_together

        started = time.perf_counter()
        pairs = [generate_together(one, p, [BASE, 1], **settings) for p in prompts(args.prompts)]
        together = {"seconds": time.perf_counter() - started,
                    "answers": {"base": [a[BASE] for a in pairs], "tuned": [a[1] for a in pairs]}}
    peak = max_rss()
    return {
        "mode": mode,
        "load_seconds": load_seconds,
        "generate_seconds": generate_seconds,
        "new_tokens": new_tokens,
        "tokens_per_second": new_tokens / generate_seconds,
        "tokens_per_cpu_second": new_tokens / generate_cpu_seconds,
        "after_imports_bytes": after_imports,
        "load_rise_bytes": after_load - after_imports,
        "peak_rise_bytes": peak - after_imports,
        "peak_bytes": peak,
        "pss_bytes": pss(),
        "weight_bytes": sum(sbs.memory_bytes() for sbs in loaded),
        "answers": answers,
        "threads": torch.get_num_threads(),
        "together": together,
    }


# --- driver --------------------------------------------------------------------------------------------------


def in_subprocess(argv: list[str], what: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def agreement(one: list[str], two: list[str]) -> str:
    same = sum(a == b for a, b in zip(one, two, strict=True))
    if same == len(one):
        return f"identical ({same}/{len(one)})"
    first = next(i for i, (a, b) in enumerate(zip(one, two, strict=True)) if a != b)
    return f"DIFFERENT: {same}/{len(one)} identical, first difference at prompt {first + 1}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=8, help="prompts answered on both sides")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank of the adapter (alpha is twice it)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per mode, alternating; the fastest counts")
    parser.add_argument(
        "--baseline",
        choices=("copy", "merged"),
        default="copy",
        help="the two-model mode's second checkpoint: a copy of the base + the adapter, or merged",
    )
    parser.add_argument("--quick", action="store_true", help="2 prompts, 16 new tokens (a smoke run)")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--prep", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.max_new_tokens = 2, 16
    if args.prepare:
        print(RESULT + json.dumps(prepare(Path(args.prepare), args.rank, args.baseline)), flush=True)
        return
    if args.mode:
        print(RESULT + json.dumps(run_mode(args.mode, args, json.loads(args.prep))), flush=True)
        return

    options = [
        "--prompts",
        str(args.prompts),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--rank",
        str(args.rank),
        "--baseline",
        args.baseline,
    ]
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="compare-bench-"))
    try:
        prep = in_subprocess([*options, "--prepare", str(scratch)], "preparing the adapter")
        best: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for mode in MODES:
                result = in_subprocess([*options, "--mode", mode, "--prep", json.dumps(prep)], f"the {mode} mode")
                if mode not in best or result["generate_seconds"] < best[mode]["generate_seconds"]:
                    best[mode] = result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    one, two = best["one"], best["two"]
    print(
        f"model: SmolLM2-135M-Instruct (embedded, float32) + LoRA r{args.rank} on "
        f"{', '.join(prep['targets'])} ({prep['adapter_params']:,} parameters, "
        f"{prep['adapter_file_bytes'] / MIB:.1f} MiB on disk); two-model baseline: {args.baseline}"
    )
    print(
        f"{args.prompts} prompts x 2 sides, greedy, max {args.max_new_tokens} new tokens, {args.rounds} round(s), "
        f"torch threads {one['threads']}; RSS after imports {one['after_imports_bytes'] / MIB:.0f} MiB"
    )
    header = (
        "mode",
        "weights",
        "load rise",
        "peak rise",
        "PSS at end",
        "load",
        "generate",
        "tokens",
        "tokens/s",
        "per CPU-s",
    )
    rows = [header]
    for r in (one, two):
        rows.append(
            (
                TITLES[r["mode"]],
                f"{r['weight_bytes'] / MIB:.0f} MiB",
                f"{r['load_rise_bytes'] / MIB:.0f} MiB",
                f"{r['peak_rise_bytes'] / MIB:.0f} MiB",
                f"{r['pss_bytes'] / MIB:.0f} MiB" if r["pss_bytes"] else "n/a",
                f"{r['load_seconds']:.2f} s",
                f"{r['generate_seconds']:.1f} s",
                str(r["new_tokens"]),
                f"{r['tokens_per_second']:.1f}",
                f"{r['tokens_per_cpu_second']:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    for side in ("base", "tuned"):
        print(f"{side} answers, one vs two: {agreement(one['answers'][side], two['answers'][side])}")
    differs = sum(a != b for a, b in zip(one["answers"]["base"], one["answers"]["tuned"], strict=True))
    print(f"tuned answer differs from the base answer on {differs}/{args.prompts} prompts")
    print(
        f"weights ratio {one['weight_bytes'] / two['weight_bytes']:.2f}; "
        f"generation speed one/two {one['tokens_per_second'] / two['tokens_per_second']:.2f}x"
    )
    tog = one.get("together") or {}
    if tog:
        same = all(agreement(tog["answers"][s], one["answers"][s]).startswith("identical") for s in ("base", "tuned"))
        print(f"both sides in one batched call (the Compare tab): {tog['seconds']:.1f} s vs "
              f"{one['generate_seconds']:.1f} s one side after the other "
              f"({one['generate_seconds'] / tog['seconds']:.2f}x); answers "
              f"{'identical' if same else 'DIFFERENT'} to one side at a time")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"wall time {time.perf_counter() - started:.0f} s; load average {load:.2f}")
    print(f"ratio: {one['peak_rise_bytes'] / two['peak_rise_bytes']:.2f}")


if __name__ == "__main__":
    main()
