"""Export benchmark: writing the merged model as GGUF (studio.export.gguf_model) against `save_pretrained` of the
same merged model (safetensors, what Publish's merged push writes), in one process, on the same weights.

    .venv/bin/python bench/export.py [--rounds 3] [--quants f16 q8_0 q4_0]

The model: the embedded SmolLM2-135M-Instruct with a random LoRA (r=16 on q/k/v/o, small B) merged in, as
float32 (the studio's CPU dtype). Each round times save_pretrained (safe_serialization, one shard) and the GGUF
writer for every type, each to a fresh folder, and prints the median seconds, the MB written and MB/s. Also
prints the f16 file's fidelity (greedy tokens vs the merged model on 3 prompts, loaded back by transformers).

Last line: `ratio: X` = median f16 GGUF seconds / median save_pretrained seconds (below 1: the GGUF of a model
takes less time than saving it as safetensors; it also quantises and writes the tokenizer).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def merged_model(work: Path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.config import load_settings
    from studio.models.embedded import ensure_converted_chat_model

    base = ensure_converted_chat_model(load_settings().models_dir)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, init_lora_weights=False,
                                                  target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.05)
    merged = peft_model.merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    folder = work / "merged"
    merged.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return merged, tokenizer, folder


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quants", nargs="+", default=["f16", "q8_0", "q4_0"])
    args = parser.parse_args()

    import torch

    from studio.export.gguf_model import write_model_gguf

    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        model, tokenizer, folder = merged_model(work)
        times: dict[str, list[float]] = {"save_pretrained": [], **{q: [] for q in args.quants}}
        sizes: dict[str, float] = {}
        for r in range(args.rounds):
            out = work / f"st{r}"
            t = time.perf_counter()
            model.save_pretrained(str(out))
            os.sync()
            times["save_pretrained"].append(time.perf_counter() - t)
            sizes["save_pretrained"] = size_mb(out)
            shutil.rmtree(out)
            for q in args.quants:
                path = work / f"m{r}-{q}.gguf"
                t = time.perf_counter()
                write_model_gguf(folder, path, q)
                os.sync()
                times[q].append(time.perf_counter() - t)
                sizes[q] = size_mb(path)
                if not (r == 0 and q == "f16"):
                    path.unlink()
        print(f"{'what':<16} {'median s':>9} {'MB':>8} {'MB/s':>8}")
        for what, values in times.items():
            med = statistics.median(values)
            print(f"{what:<16} {med:>9.2f} {sizes[what]:>8.1f} {sizes[what] / med:>8.1f}")

        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf_model = AutoModelForCausalLM.from_pretrained(str(work), gguf_file="m0-f16.gguf", dtype=torch.float32)
        gguf_tok = AutoTokenizer.from_pretrained(str(work), gguf_file="m0-f16.gguf")
        same = 0
        prompts = ["Write a short note to a customer whose parcel is late.", "What is the capital of France?",
                   "List three fruits."]
        for prompt in prompts:
            outs = []
            for m, tok in ((model, tokenizer), (gguf_model, gguf_tok)):
                ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                              return_tensors="pt", return_dict=True)
                outs.append(m.generate(**ids, max_new_tokens=24, do_sample=False)[0].tolist())
            same += outs[0] == outs[1]
        print(f"f16 GGUF greedy tokens equal to the merged model: {same} of {len(prompts)} prompts")
        ratio = statistics.median(times["f16"]) / statistics.median(times["save_pretrained"])
        print(f"ratio: {ratio:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
