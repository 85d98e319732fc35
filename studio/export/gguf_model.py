"""A Hugging Face Llama-family model folder written as one GGUF file, with the `gguf` package.

    estimate = model_gguf_bytes(model_dir, "q8_0")          # before anything is written
    write_model_gguf(model_dir, out_path, "q8_0", progress=..., name="run 3 of support")

What llama.cpp, Ollama and LM Studio load: the same layout llama.cpp's own `convert_hf_to_gguf.py` writes for
LlamaForCausalLM (tensor names from gguf's TensorNameMap, the architecture's keys, the GPT-2/BPE tokenizer with
its merges, special tokens and chat template through gguf.SpecialVocab), quantised by gguf's own quantisers.
The one transformation of the weights: q_proj and k_proj rows are permuted into GGML's rotary layout
(`permute_qk`), which llama.cpp expects and transformers' GGUF loader undoes.

Streaming: tensor shapes and sizes come from the safetensors headers, so the header is written first and then
one tensor at a time is read, converted and appended (memory: the largest tensor, not the model). The caller
writes to a temporary name and renames it (studio.export.runs), so a file that exists is complete.

Quantisations: f16, bf16 (exact for bf16-trained weights), q8_0, q5_0, q4_0 — every type gguf's Python
quantiser writes. 1-D tensors (norms) stay float32 as llama.cpp keeps them; a matrix whose rows do not divide
into the type's blocks is written f16; with q5_0/q4_0 the token embeddings are written q8_0, because the
embeddings (and the tied output layer) lose the most at 4-5 bits (what llama-quantize does with its own types).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from studio.errors import ExportError

Progress = Callable[[float, str], None]

QUANTS = ("f16", "bf16", "q8_0", "q5_0", "q4_0")
"""Every type the merged-model export writes, best fidelity first."""
QUANT_HELP = {
    "f16": "16-bit floats: the model as trained, for GPUs and further quantising (about 2 bytes a weight)",
    "bf16": "bfloat16: exact for weights trained in bf16 (about 2 bytes a weight)",
    "q8_0": "8-bit: nearly lossless, half of f16 (about 1.06 bytes a weight)",
    "q5_0": "5-bit: smaller, a little less accurate (about 0.69 bytes a weight)",
    "q4_0": "4-bit: smallest, loses the most (about 0.56 bytes a weight)",
}
SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
"""Both are llama.cpp's `llama` architecture (convert_hf_to_gguf.py maps them to one writer)."""

_KNOWN_PRE = {
    # The pre-tokenizer name llama.cpp gives a BPE tokenizer. llama.cpp picks it by hashing its own test text's
    # tokens; we recognise the tokenizers we can check here by their pre_tokenizer section instead, and say so
    # when we do not know one (llama.cpp then splits words with its default rule).
    "smollm": ('{"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}, '
               '{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]}'),
    "gpt-2": '{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}',
}
CONVERTED_MARKER = ".studio-converted.json"
"""studio.models.embedded's marker in a model folder converted from a GGUF: it names the source file."""


def _types() -> dict[str, Any]:
    from gguf import GGMLQuantizationType as T

    return {"f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0, "q5_0": T.Q5_0, "q4_0": T.Q4_0}


def _file_types() -> dict[str, int]:
    from gguf import LlamaFileType as F

    return {"f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16, "q8_0": F.MOSTLY_Q8_0, "q5_0": F.MOSTLY_Q5_0,
            "q4_0": F.MOSTLY_Q4_0}


def check_quant(quant: str) -> str:
    q = str(quant or "").strip().lower()
    if q not in QUANTS:
        raise ExportError(f"'{quant}' is not a GGUF type the studio writes. Pick one of: {', '.join(QUANTS)}.")
    return q


# ------------------------------------------------------------------------------------------- the model's layout


@dataclass(frozen=True)
class LlamaShape:
    """What the GGUF header and the q/k permutation need from config.json."""

    architecture: str
    n_layers: int
    hidden: int
    intermediate: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context: int
    rope_theta: float
    rms_eps: float
    vocab: int
    rope_scaling: dict[str, Any] | None


def read_shape(model_dir: Path) -> LlamaShape:
    """The config of a model folder, checked for what the GGUF writer supports (ExportError says what not)."""
    path = Path(model_dir) / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path} cannot be read ({exc}); the model folder is incomplete. Merge the run "
                          "again, or check the base model's folder.") from None
    arch = (cfg.get("architectures") or ["?"])[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ExportError(f"GGUF export supports Llama-family models ({', '.join(SUPPORTED_ARCHITECTURES)}); "
                          f"this model is {arch}. Use llama.cpp's convert_hf_to_gguf.py on the merged model "
                          "folder, or push the adapter and serve it with vLLM.")
    scaling = cfg.get("rope_scaling")
    if scaling and (scaling.get("rope_type") or scaling.get("type")) not in ("linear", "default"):
        raise ExportError(f"This model's rope scaling ({scaling.get('rope_type') or scaling.get('type')}) is not "
                          "written by the studio's GGUF export. Use llama.cpp's convert_hf_to_gguf.py on the "
                          "merged model folder.")
    heads = int(cfg["num_attention_heads"])
    hidden = int(cfg["hidden_size"])
    return LlamaShape(
        architecture=arch, n_layers=int(cfg["num_hidden_layers"]), hidden=hidden,
        intermediate=int(cfg["intermediate_size"]), n_heads=heads,
        n_kv_heads=int(cfg.get("num_key_value_heads") or heads),
        head_dim=int(cfg.get("head_dim") or hidden // heads),
        context=int(cfg.get("max_position_embeddings") or 2048),
        rope_theta=float(cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta") or 10000.0),
        rms_eps=float(cfg.get("rms_norm_eps") or 1e-6), vocab=int(cfg["vocab_size"]),
        rope_scaling=scaling if scaling and (scaling.get("rope_type") or scaling.get("type")) == "linear" else None)


def permute_qk(weights: Any, n_heads: int) -> Any:
    """HF's q/k rows (rotary halves) into GGML's interleaved layout; llama.cpp's LlamaModel.permute.

    `weights` is a (rows, ...) numpy array whose rows are n_heads blocks of head_dim rows.
    """
    rows = weights.shape[0]
    return (weights.reshape(n_heads, 2, rows // n_heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


@lru_cache(maxsize=8)
def _name_map(n_layers: int) -> Any:
    import gguf

    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)  # builds every pattern: once per shape


def gguf_name(hf_name: str, n_layers: int) -> str | None:
    """The GGUF tensor name of an HF llama tensor (None for tensors llama.cpp does not load, like rotary caches)."""
    if hf_name.endswith(".rotary_emb.inv_freq"):
        return None
    name = _name_map(n_layers).get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if name is None:
        raise ExportError(f"The model holds a tensor GGUF has no place for ({hf_name}). Use llama.cpp's "
                          "convert_hf_to_gguf.py on the merged model folder.")
    return name


def qk_heads(hf_name: str, shape: LlamaShape) -> int | None:
    """Heads to permute by for a q/k projection (its weights or a LoRA B), None for every other tensor."""
    if hf_name.endswith(("q_proj.weight", "q_proj")):
        return shape.n_heads
    if hf_name.endswith(("k_proj.weight", "k_proj")):
        return shape.n_kv_heads
    return None


# ---------------------------------------------------------------------------------------------- the tensors


@dataclass(frozen=True)
class _Plan:
    hf_name: str
    name: str
    shape: tuple[int, ...]
    qtype: Any
    nbytes: int
    file: Path


def _safetensors_files(model_dir: Path) -> list[Path]:
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise ExportError(f"{model_dir} holds no .safetensors weights, so there is nothing to write as GGUF. "
                          "Merge the run again (older .bin checkpoints are not read).")
    return files


def _headers(files: list[Path]) -> Iterator[tuple[Path, str, tuple[int, ...]]]:
    from safetensors import safe_open

    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                yield file, key, tuple(handle.get_slice(key).get_shape())


def _tensor_type(name: str, shape: tuple[int, ...], quant: str) -> Any:
    import gguf

    types = _types()
    if len(shape) == 1 or name.endswith("_norm.weight"):
        return gguf.GGMLQuantizationType.F32
    wanted = types[quant]
    if quant in ("q5_0", "q4_0") and name == "token_embd.weight":
        wanted = types["q8_0"]
    block, _ = gguf.GGML_QUANT_SIZES[wanted]
    if shape[-1] % block:
        return types["f16"]
    return wanted


def _nbytes(shape: tuple[int, ...], qtype: Any) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[qtype]
    elements = 1
    for d in shape:
        elements *= d
    return elements // block * size


def _plan(model_dir: Path, shape: LlamaShape, quant: str) -> list[_Plan]:
    plans = []
    for file, key, dims in _headers(_safetensors_files(model_dir)):
        name = gguf_name(key, shape.n_layers)
        if name is None:
            continue
        qtype = _tensor_type(name, dims, quant)
        plans.append(_Plan(key, name, dims, qtype, _nbytes(dims, qtype), file))
    if not any(p.name == "token_embd.weight" for p in plans):
        raise ExportError(f"{model_dir} has no token embeddings (model.embed_tokens.weight); it is not a whole "
                          "model. Merge the run again.")
    return plans


def model_gguf_bytes(model_dir: Path, quant: str) -> int:
    """The size the GGUF of `model_dir` will have in `quant` (tensor data; the header adds about a megabyte)."""
    quant = check_quant(quant)
    return sum(p.nbytes for p in _plan(Path(model_dir), read_shape(Path(model_dir)), quant))


def _convert(array: Any, plan: _Plan, shape: LlamaShape) -> Any:
    import gguf
    import numpy as np

    heads = qk_heads(plan.hf_name, shape)
    if heads is not None:
        array = permute_qk(array, heads)
    if plan.qtype == gguf.GGMLQuantizationType.F32:
        return np.ascontiguousarray(array, dtype=np.float32)
    if plan.qtype == gguf.GGMLQuantizationType.F16:
        return np.ascontiguousarray(array, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(array, dtype=np.float32), plan.qtype)


# ---------------------------------------------------------------------------------------------- the vocabulary


def source_pre_tokenizer(base_dir: Path | None) -> str | None:
    """The pre-tokenizer name of the GGUF a base folder was converted from (the embedded SmolLM2), else None.

    transformers' GGUF reader turns SmolLM's digit-splitting rule into plain GPT-2 splitting, so the folder's
    tokenizer.json alone would name the wrong rule; the source file says what llama.cpp used all along."""
    if base_dir is None or not (Path(base_dir) / CONVERTED_MARKER).is_file():
        return None
    try:
        source = json.loads((Path(base_dir) / CONVERTED_MARKER).read_text(encoding="utf-8")).get("source", "")
        from gguf import GGUFReader

        field = GGUFReader(str(source)).get_field("tokenizer.ggml.pre")
        return str(field.contents()) if field is not None else None
    except (OSError, ValueError, KeyError):
        return None


def _vocab(model_dir: Path, n_vocab: int, pre_hint: str | None
           ) -> tuple[list[str], list[int], str, list[str]]:
    """(tokens, token types, pre-tokenizer name, notes) the way llama.cpp's get_vocab_base builds them."""
    import gguf

    # Read tokenizer.json itself (what transformers' fast tokenizer is built from): the same ids and added
    # tokens as AutoTokenizer, without importing transformers.
    path = Path(model_dir) / "tokenizer.json"
    try:
        tok_json = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ExportError("GGUF export needs the model's fast tokenizer (tokenizer.json), which this model folder "
                          "does not have or cannot be read. Use llama.cpp's convert_hf_to_gguf.py.") from None
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise ExportError("GGUF export writes byte-level BPE tokenizers (GPT-2 style, as SmolLM, Llama 3 and "
                          "Qwen use); this model's is not one. Use llama.cpp's convert_hf_to_gguf.py.")
    reverse = {int(i): t for t, i in (model.get("vocab") or {}).items()}
    added = {int(a["id"]): a for a in tok_json.get("added_tokens") or []}
    reverse.update({i: a["content"] for i, a in added.items()})
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif i in added:
            tokens.append(token)
            types.append(int(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED))
        else:
            tokens.append(token)
            types.append(int(gguf.TokenType.NORMAL))
    pre_section = json.dumps(tok_json.get("pre_tokenizer"), sort_keys=False)
    pre = pre_hint or next((name for name, section in _KNOWN_PRE.items()
                            if json.loads(section) == json.loads(pre_section)), None)
    notes = [] if pre else ["llama.cpp does not know this tokenizer's word-splitting rule by name, so the GGUF "
                            "says 'default'; check a few prompts' tokens in llama.cpp before relying on it."]
    return tokens, types, pre or "default", notes


# ---------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class GGUFWritten:
    path: Path
    quant: str
    bytes: int
    tensors: int
    notes: list[str]


def write_model_gguf(model_dir: Path, out_path: Path, quant: str, *, name: str = "", base_model: str = "",
                     pre_tokenizer: str | None = None, progress: Progress | None = None) -> GGUFWritten:
    """Write `model_dir` (a merged or base model folder) as a GGUF file at `out_path` (the caller renames it).

    `pre_tokenizer`: llama.cpp's name for the word-splitting rule when the caller knows it
    (source_pre_tokenizer of the base); else it is recognised from tokenizer.json."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    quant = check_quant(quant)
    model_dir = Path(model_dir)
    shape = read_shape(model_dir)
    plans = _plan(model_dir, shape, quant)
    embed_rows = next(p.shape[0] for p in plans if p.name == "token_embd.weight")
    tokens, token_types, pre, notes = _vocab(model_dir, embed_rows, pre_tokenizer)

    writer = gguf.GGUFWriter(str(out_path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name or model_dir.name)
    if base_model:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, base_model)
        writer.add_base_model_repo_url(0, f"https://huggingface.co/{base_model}")
    writer.add_block_count(shape.n_layers)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden)
    writer.add_feed_forward_length(shape.intermediate)
    writer.add_head_count(shape.n_heads)
    writer.add_head_count_kv(shape.n_kv_heads)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_vocab_size(embed_rows)
    if shape.rope_scaling:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(shape.rope_scaling["factor"]))
    writer.add_file_type(_file_types()[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)

    for p in plans:
        writer.add_tensor_info(p.name, p.shape, np.dtype(np.float32), p.nbytes, raw_dtype=p.qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    handles: dict[Path, Any] = {}
    try:
        for i, p in enumerate(plans):
            if p.file not in handles:
                handles[p.file] = safe_open(str(p.file), framework="pt").__enter__()
            array = handles[p.file].get_tensor(p.hf_name).float().numpy()
            data = _convert(array, p, shape)
            if data.dtype != np.uint8:
                data = data.view(np.uint8)
            writer.write_tensor_data(data.reshape(-1))
            if progress:
                progress((i + 1) / len(plans), f"Writing {quant} GGUF: tensor {i + 1} of {len(plans)}")
    finally:
        for handle in handles.values():
            handle.__exit__(None, None, None)
        writer.close()
    return GGUFWritten(Path(out_path), quant, Path(out_path).stat().st_size, len(plans), notes)
