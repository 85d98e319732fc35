"""Export: GGUF written with the `gguf` package and read back by transformers (gguf_file=) and gguf's reader,
Ollama Modelfiles, vLLM / llama.cpp servability, the export folder's atomic files, and the CLI.

Real weights throughout: the embedded SmolLM2-135M with a LoRA on q/k/v/o (9 query heads, 3 key/value heads, so
the q and k permutations differ) and the tiny random Llama of the session. No mocks, except one injected failure
to prove an interrupted export leaves no half-written file (said where it is).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.config import Settings
from studio.errors import ExportError
from studio.export.ollama import parse_modelfile
from studio.export.run_export import ExportRequest, export_run, list_export, plan_export
from studio.export.servability import servability
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from tests.test_report import crafted_version, finished_run

PROMPTS = ["Write a short note to a customer whose parcel is late.", "What is the capital of France?",
           "List three fruits."]
TEXT = ("<|im_start|>user\nWrite a short note to a customer whose parcel is late, and say sorry.<|im_end|>\n"
        "<|im_start|>assistant\nDear customer, we are sorry that your parcel is late. It will arrive on Monday.")


def _adapter(base: Path, folder: Path, *, targets: list[str], scale: float = 0.05, **extra) -> Path:
    """A LoRA with small random B matrices (like a trained adapter: it moves outputs without wrecking them)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(r=extra.pop("r", 8), lora_alpha=16, target_modules=targets, init_lora_weights=False,
                        task_type="CAUSAL_LM", **extra)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.mul_(scale)
    peft_model.save_pretrained(str(folder))
    return folder


def _run(ws: Workspace, base: Path | str, adapter: Path) -> int:
    project = create_project(ws, f"export {adapter.name}", task_description="Answer customers kindly.")
    return finished_run(ws, project.id, crafted_version(ws, project.id), Path(base), adapter).id


def _greedy(model, tokenizer) -> list[list[int]]:
    out = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        tokens = model.generate(**ids, max_new_tokens=20, do_sample=False)
        out.append(tokens[0, ids["input_ids"].shape[1]:].tolist())
    return out


def _load_gguf(path: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, converted_chat_model: Path):
    """The embedded SmolLM2 with an adapter on q/k/v/o, exported as f16 and q8_0 GGUF, the LoRA GGUF and a
    Modelfile through the studio's own export of a run."""
    root = tmp_path_factory.mktemp("export-smol")
    ws = Workspace(Settings(home=root / "home", models_dir=models_dir, max_upload_mb=50))
    adapter = _adapter(converted_chat_model, root / "adapter", targets=["q_proj", "k_proj", "v_proj", "o_proj"])
    run_id = _run(ws, "embedded:smollm2-135m-instruct", adapter)
    plan = plan_export(ws, run_id, ExportRequest(quants=["q8_0", "f16"], adapter=True, ollama=True))
    result = export_run(ws, run_id, ExportRequest(quants=["q8_0", "f16"], adapter=True, ollama=True))
    return ws, run_id, plan, result


def test_merged_gguf_gives_the_same_greedy_tokens(smol) -> None:
    """f16: the same greedy tokens as the merged safetensors model. q8_0, the stated tolerance: at least 95% of
    next-token choices agree along a whole reply (measured: 100% on this model), and max |logit change| < 2."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, run_id, _, result = smol
    merged = result.folder.parent / "merged"
    reference = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(merged))
    expected = _greedy(reference, tokenizer)

    f16, f16_tokenizer = _load_gguf(result.folder / f"run{run_id}-f16.gguf")
    assert _greedy(f16, f16_tokenizer) == expected
    # The GGUF's tokenizer and chat template are the model's own.
    assert f16_tokenizer(TEXT)["input_ids"] == tokenizer(TEXT)["input_ids"]
    chat = [{"role": "user", "content": "hi"}]
    assert f16_tokenizer.apply_chat_template(chat, tokenize=False) == tokenizer.apply_chat_template(chat,
                                                                                                    tokenize=False)
    del f16

    q8, _ = _load_gguf(result.folder / f"run{run_id}-q8_0.gguf")
    ids = tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        want, got = reference(ids).logits[0], q8(ids).logits[0]
    assert (want.argmax(-1) == got.argmax(-1)).float().mean().item() >= 0.95
    assert (want - got).abs().max().item() < 2.0


def test_adapter_gguf_matches_the_peft_adapter(smol) -> None:
    """Every LoRA matrix and the alpha, read back with gguf's reader; the q/k B matrices un-permuted with
    transformers' own GGUF code (an implementation independent of ours)."""
    import numpy as np
    from gguf import GGUFReader
    from safetensors.numpy import load_file
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    _, run_id, _, result = smol
    adapter_dir = Path(result.folder.parent / "adapter")
    peft = load_file(str(adapter_dir / "adapter_model.safetensors"))
    reader = GGUFReader(str(result.folder / f"run{run_id}-lora-f32.gguf"))
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == pytest.approx(16.0)
    tensors = {t.name: np.array(t.data).reshape([int(d) for d in reversed(t.shape)]) for t in reader.tensors}
    assert len(tensors) == len(peft) == 30 * 4 * 2
    unpermute = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": 3})
    names = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output"}
    for layer in (0, 17, 29):
        for hf, gg in names.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{hf}"
            a, b = tensors[f"blk.{layer}.{gg}.weight.lora_a"], tensors[f"blk.{layer}.{gg}.weight.lora_b"]
            np.testing.assert_array_equal(a, peft[prefix + ".lora_A.weight"])
            if hf in ("q_proj", "k_proj"):
                b = unpermute.process(b, f"blk.{layer}.{gg}.weight").weights
            np.testing.assert_array_equal(b, peft[prefix + ".lora_B.weight"])
    # The base it applies to is the embedded model's own GGUF: the exact weights the adapter was trained on.
    base = result.manifest["files"]["base-SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert base["kind"] == "base" and base["quant"] == "as shipped"


def test_modelfile_parses_and_builds_the_models_own_prompt(smol) -> None:
    from transformers import AutoTokenizer

    ws, run_id, _, result = smol
    text = (result.folder / "Modelfile").read_text(encoding="utf-8")
    parsed = parse_modelfile(text)
    commands = dict(parsed[:2])
    assert commands["FROM"] == f"./run{run_id}-q8_0.gguf" and (result.folder / commands["FROM"]).is_file()
    params = [v for c, v in parsed if c == "PARAMETER"]
    assert "temperature 0" in params and 'stop "<|im_end|>"' in params and "num_predict 256" in params
    system = next(v for c, v in parsed if c == "SYSTEM")
    template = next(v for c, v in parsed if c == "TEMPLATE")
    # Render Ollama's Go template for one user turn by hand (its branches are if-System / range-Messages) and
    # compare with what transformers renders from the model's Jinja template.
    rendered = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert template.startswith("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}")
    tokenizer = AutoTokenizer.from_pretrained(str(result.folder.parent / "merged"))
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True) == rendered
    # The export's commands name real files, and vLLM gets the base model's Hub id.
    listed = list_export(ws, run_id)
    assert listed["commands"]["Ollama"].endswith(f"ollama create run{run_id} -f Modelfile && ollama run run{run_id}")
    assert listed["commands"]["vLLM"].startswith("vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --enable-lora ")
    vllm_config = json.loads((result.folder / "vllm-adapter" / "adapter_config.json").read_text())
    assert vllm_config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_estimate_comes_first_and_is_close(smol) -> None:
    _, _, plan, result = smol
    for planned in plan.files:
        actual = result.manifest["files"][planned.name]["bytes"]
        assert abs(planned.bytes - actual) <= max(0.05 * actual, 8192), planned
    assert "Will write" in plan.summary() and "free there" in plan.summary()


@pytest.mark.parametrize(("text", "says"), [
    ("FROM ./a.gguf\nFROM ./b.gguf\n", "exactly one FROM"),
    ("FROM ./a.gguf\nTEMPLAT x\n", "'TEMPLAT' is not an Ollama instruction"),
    ('FROM ./a.gguf\nTEMPLATE """{{ .Prompt }}\n', "never closed"),
    ("FROM ./a.gguf\nPARAMETER temperature\n", "a name and a value"),
])
def test_broken_modelfiles_are_named(text: str, says: str) -> None:
    with pytest.raises(ExportError, match=says):
        parse_modelfile(text)


def test_servability_rules() -> None:
    assert servability({"r": 8}).vllm_ok and not servability({"r": 8}).vllm_flags
    assert servability({"r": 64}).vllm_flags == ["--max-lora-rank", "64"]
    assert servability({"r": 300}).vllm_flags == ["--max-lora-rank", "320"]
    too_big = servability({"r": 1024})
    assert not too_big.vllm_ok and "above the largest vLLM accepts (512)" in too_big.summary()
    extra = servability({"r": 8, "modules_to_save": ["lm_head"]})
    assert not extra.vllm_ok and extra.llama_cpp_problems and "lm_head" in extra.summary()
    assert servability({"r": 8, "modules_to_save": ["score"]}).vllm_ok  # a classification head vLLM loads
    assert not servability({"r": 8, "bias": "lora_only"}).vllm_ok


def test_a_dora_adapter_is_refused_before_anything_is_written(ws: Workspace, tiny_chat_model: Path,
                                                              tmp_path: Path) -> None:
    dora = _adapter(tiny_chat_model, tmp_path / "dora", targets=["q_proj", "v_proj"], use_dora=True)
    run_id = _run(ws, tiny_chat_model, dora)
    with pytest.raises(ExportError, match=r"DoRA adapter, which llama\.cpp cannot apply"):
        plan_export(ws, run_id, ExportRequest(adapter=True))
    with pytest.raises(ExportError, match="DoRA"):
        export_run(ws, run_id, ExportRequest(adapter=True, ollama=True))
    assert not (Path(ws.runs_dir) / str(run_id) / "export").exists()
    # The merged model is fine (DoRA merges like LoRA); vLLM is named as unable to serve the adapter.
    plan = plan_export(ws, run_id, ExportRequest(quants=["f16"]))
    assert "vLLM cannot serve this adapter: it is a DoRA adapter" in " ".join(plan.notes)
    result = export_run(ws, run_id, ExportRequest(quants=["f16"]))
    assert "vLLM" not in result.manifest["commands"] and "llama.cpp" in result.manifest["commands"]


def test_trained_tiny_run_round_trip_and_an_interrupted_export(ws: Workspace, tiny_chat_model: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny run trained by the real worker (all-linear LoRA, tokenizer saved beside the adapter): its f16 GGUF
    gives the merged model's greedy tokens, q4_0 loads, its LoRA GGUF holds every adapted matrix (attention and
    MLP). Then a write that fails half-way (injected: a disk cannot be made to fill up here) leaves the earlier
    files and a manifest naming only them."""
    import time

    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.data.versions import FreezeConfig, freeze_version
    from studio.train import runs
    from studio.train.settings import TrainConfig
    from tests.conftest import SHARED_SEEDS
    from tests.factories import project_with_seeds

    project_id = project_with_seeds(ws, SHARED_SEEDS)
    version = freeze_version(ws, project_id, FreezeConfig(validation_fraction=0.05, test_fraction=0.05))
    run = runs.create_run(ws, project_id, dataset_version_id=version.id, base_model_ref=str(tiny_chat_model),
                          config=TrainConfig(max_steps=4, per_device_batch_size=2, max_seq_length=128,
                                             eval_every_steps=4, save_every_steps=4, early_stopping_patience=0,
                                             learning_rate=1e-3), device="cpu")
    runs.start(ws, run.id)
    deadline = time.monotonic() + 300
    while (run := runs.get_run(ws, run.id)).status not in ("done", "failed", "stopped", "interrupted"):
        assert time.monotonic() < deadline, "the tiny run did not finish in 5 minutes"
        time.sleep(0.5)
    assert run.status == "done", run.message
    run_id = run.id

    result = export_run(ws, run_id, ExportRequest(quants=["f16", "q4_0"], adapter=True))
    merged = result.folder.parent / "merged"
    reference = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32)
    want = _greedy(reference, AutoTokenizer.from_pretrained(str(merged)))
    f16, tokenizer = _load_gguf(result.folder / f"run{run_id}-f16.gguf")
    assert _greedy(f16, tokenizer) == want
    q4, _ = _load_gguf(result.folder / f"run{run_id}-q4_0.gguf")
    assert q4.config.num_hidden_layers == 2
    lora = {t.name for t in GGUFReader(str(result.folder / f"run{run_id}-lora-f32.gguf")).tensors}
    kinds = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
    assert lora == {f"blk.{i}.{k}.weight.lora_{ab}" for i in range(2) for k in kinds for ab in "ab"}

    from studio.export import gguf_model  # export_run imports the writer when it runs: patch it at the source

    def half_written(model_dir, out_path, quant, **kwargs):
        Path(out_path).write_bytes(b"GGUF" + b"\0" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_model, "write_model_gguf", half_written)
    with pytest.raises(OSError, match="No space left"):
        export_run(ws, run_id, ExportRequest(quants=["q8_0"]))
    names = sorted(p.name for p in result.folder.iterdir())
    assert f"run{run_id}-q8_0.gguf" not in names and not [n for n in names if n.endswith(".partial")]
    assert sorted(list_export(ws, run_id)["files"]) == ["base-f16.gguf", f"run{run_id}-f16.gguf",
                                                        f"run{run_id}-lora-f32.gguf", f"run{run_id}-q4_0.gguf"]


def test_export_refuses_what_it_cannot_do(ws: Workspace, tiny_chat_model: Path, tmp_path: Path) -> None:
    run_id = _run(ws, tiny_chat_model, _adapter(tiny_chat_model, tmp_path / "a", targets=["q_proj"]))
    with pytest.raises(ExportError, match="Pick at least one thing"):
        plan_export(ws, run_id, ExportRequest())
    with pytest.raises(ExportError, match="'q3_k' is not a GGUF type"):
        plan_export(ws, run_id, ExportRequest(quants=["q3_k"]))
    with pytest.raises(ExportError, match="Pick at least one thing"):  # a Modelfile alone points at nothing
        export_run(ws, run_id, ExportRequest(quants=[], adapter=False, ollama=True))
    assert not (Path(ws.runs_dir) / str(run_id) / "export").exists()


def test_cli_export(ws: Workspace, tiny_chat_model: Path, tmp_path: Path) -> None:
    run_id = _run(ws, tiny_chat_model, _adapter(tiny_chat_model, tmp_path / "a", targets=["q_proj", "v_proj"]))
    cli = [sys.executable, "-m", "studio.cli"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args, "--home", str(ws.home)], capture_output=True, text=True, timeout=300)

    estimate = run("export", "--run", str(run_id), "--gguf", "q8_0", "--ollama", "--estimate")
    assert estimate.returncode == 0, estimate.stderr
    assert "Will write run" in estimate.stdout and "Modelfile" in estimate.stdout
    assert not (Path(ws.runs_dir) / str(run_id) / "export").exists()
    done = run("export", "--run", str(run_id), "--gguf", "q8_0", "--ollama", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert sorted(data["files"]) == ["Modelfile", f"run{run_id}-q8_0.gguf"]
    assert "ollama create" in data["commands"]["Ollama"]
    bad = run("export", "--run", str(run_id), "--gguf", "q2")
    assert bad.returncode == 2 and "'q2' is not a GGUF type" in bad.stderr
