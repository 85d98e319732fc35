"""Export a finished run for the runtimes people use: GGUF files, an Ollama Modelfile, vLLM and llama.cpp commands.

    req  = ExportRequest(quants=["q8_0"], adapter=True, ollama=True)
    plan = plan_export(ws, run_id, req)         # sizes and problems first; writes nothing
    res  = export_run(ws, run_id, req, progress=...)
    list_export(ws, run_id)                     # what is in <run>/export, with the commands

Everything goes to `<run output>/export/`:
  run<N>-<type>.gguf           the adapter merged into its base (studio.export.gguf_model), one per type asked
  run<N>-lora-f32.gguf         the adapter alone (studio.export.gguf_adapter), with
  base-*.gguf                  the base it applies to: the embedded SmolLM2's own shipped GGUF (the exact weights
                               the adapter was trained on), else the base written as f16
  Modelfile                    for `ollama create` (studio.export.ollama), beside the GGUF it names
  vllm-adapter/                the adapter with the base model's Hub id in adapter_config.json (what vLLM and
                               PEFT read), local paths removed
  export.json                  the manifest: files, sizes, sha256, the commands, notes

Atomic: every file is written under a '.partial' name and renamed when complete, and the manifest is rewritten
(also atomically) after each file, so an interrupted export leaves whole files and a manifest that names only
them. Asking again replaces the files of the same names. The merge reuses <run>/merged when it is newer than
the adapter (publish makes it too).

Checked before any writing: the run has an adapter, the base is a Llama-family model with a BPE tokenizer,
the adapter is one llama.cpp can apply (for the adapter GGUF) and vLLM can serve (reported, not fatal: the
merged GGUF does not need it), and the disk has room for the size estimate.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from studio.errors import ExportError
from studio.export.gguf_model import QUANTS, check_quant
from studio.export.servability import Servability, servability
from studio.workspace import Workspace, utc_now

Progress = Callable[[float, str], None]

EXPORT_DIR = "export"
MANIFEST = "export.json"
VLLM_DIR = "vllm-adapter"
_HEADER_BYTES = 2 * 1024 * 1024
"""Metadata and vocabulary on top of the tensors (SmolLM2's 49k tokens and merges: about 1.8 MB)."""


@dataclass
class ExportRequest:
    quants: list[str] = field(default_factory=list)
    """Merged-model GGUF types (studio.export.gguf_model.QUANTS)."""
    adapter: bool = False
    """The LoRA alone as GGUF, with the base GGUF it applies to."""
    ollama: bool = False
    """An Ollama Modelfile (needs a merged GGUF, or the adapter GGUF)."""

    def checked(self) -> ExportRequest:
        quants = list(dict.fromkeys(check_quant(q) for q in self.quants or []))
        if not quants and not self.adapter:
            raise ExportError("Pick at least one thing to export: a GGUF type for the merged model (q8_0 is a "
                              "good start) or the adapter as GGUF.")
        return ExportRequest(quants=[q for q in QUANTS if q in quants], adapter=bool(self.adapter),
                             ollama=bool(self.ollama))


@dataclass(frozen=True)
class PlannedFile:
    name: str
    kind: str
    """merged | adapter | base | modelfile"""
    quant: str
    bytes: int


@dataclass(frozen=True)
class ExportPlan:
    run_id: int
    folder: Path
    files: list[PlannedFile]
    servability: Servability
    free_bytes: int
    notes: list[str]

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def summary(self) -> str:
        names = ", ".join(f"{f.name} (about {human_size(f.bytes)})" for f in self.files)
        return (f"Will write {names}: about {human_size(self.total_bytes)} in all, to {self.folder} "
                f"({human_size(self.free_bytes)} free there).")


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# ------------------------------------------------------------------------------------------------ checks


def _run(ws: Workspace, run_id: int) -> Any:
    from studio.errors import TrainError
    from studio.train.runs import get_run

    run = get_run(ws, run_id)
    if run.method not in ("lora", "qlora"):
        raise ExportError(f"{run.title} is a full fine-tune: its folder already holds the whole model. GGUF export "
                          "here starts from a LoRA or QLoRA run's adapter.")
    if run.status in ("queued", "running", "stopping"):
        raise TrainError(f"{run.title} is still {run.status}. Export it once it is done.")
    if not (Path(run.output_dir or "") / "adapter" / "adapter_config.json").is_file():
        raise ExportError(f"{run.title} has no saved adapter, so there is nothing to export. Export a run that "
                          "finished (or was stopped after saving a checkpoint).")
    return run


def _base_dir(ws: Workspace, run: Any) -> Path:
    from studio.models.loading import local_model_path

    return local_model_path(run.base_model_ref, ws.models_dir)


def _slug(run: Any) -> str:
    return f"run{run.id}"


def _base_gguf_source(base_dir: Path) -> Path | None:
    """The GGUF the base folder was converted from (the embedded SmolLM2), when it still exists."""
    from studio.export.gguf_model import CONVERTED_MARKER

    marker = base_dir / CONVERTED_MARKER
    if not marker.is_file():
        return None
    try:
        source = Path(json.loads(marker.read_text(encoding="utf-8")).get("source", ""))
    except (OSError, ValueError):
        return None
    return source if source.is_file() else None


def _base_file_name(base_dir: Path) -> str:
    source = _base_gguf_source(base_dir)
    return f"base-{source.name}" if source else "base-f16.gguf"


def plan_export(ws: Workspace, run_id: int, request: ExportRequest) -> ExportPlan:
    """What an export would write and how big it would be; ExportError says what cannot be done. Writes nothing."""
    from studio.export.gguf_adapter import adapter_config, adapter_tensor_bytes
    from studio.export.gguf_model import model_gguf_bytes, read_shape

    request = request.checked()
    run = _run(ws, run_id)
    adapter_dir = Path(run.output_dir) / "adapter"
    base_dir = _base_dir(ws, run)
    read_shape(base_dir)  # Llama family, or a plain message now rather than after the merge
    config = adapter_config(adapter_dir)
    serv = servability(config)
    if request.adapter and serv.llama_cpp_problems:
        raise ExportError("The adapter cannot be written as a GGUF LoRA: " + " ".join(serv.llama_cpp_problems)
                          + " Export the merged model as GGUF instead (untick 'adapter as GGUF').")
    slug = _slug(run)
    files = [PlannedFile(f"{slug}-{q}.gguf", "merged", q, model_gguf_bytes(base_dir, q) + _HEADER_BYTES)
             for q in request.quants]
    if request.adapter:
        files.append(PlannedFile(f"{slug}-lora-f32.gguf", "adapter", "f32",
                                 adapter_tensor_bytes(adapter_dir) + 64 * 1024))
        source = _base_gguf_source(base_dir)
        base_bytes = source.stat().st_size if source else model_gguf_bytes(base_dir, "f16") + _HEADER_BYTES
        files.append(PlannedFile(_base_file_name(base_dir), "base", "as shipped" if source else "f16", base_bytes))
    if request.ollama:
        files.append(PlannedFile("Modelfile", "modelfile", "", 4096))
    folder = Path(run.output_dir) / EXPORT_DIR
    probe = folder if folder.exists() else Path(run.output_dir)
    free = shutil.disk_usage(probe).free
    notes = []
    if request.quants and not (Path(run.output_dir) / "merged" / "config.json").is_file():
        notes.append("The adapter is merged into its base first (a full copy of the base's weights in the run "
                     "folder, kept for the next export and for publishing).")
    if not serv.vllm_ok:
        notes.append(serv.summary())
    plan = ExportPlan(run.id, folder, files, serv, free, notes)
    needed = plan.total_bytes * 1.1
    if needed > free:
        raise ExportError(f"The export needs about {human_size(needed)} and {probe} has {human_size(free)} free. "
                          "Free some space, or pick fewer or smaller types (q8_0 is half of f16).")
    return plan


# ------------------------------------------------------------------------------------------------ writing


@dataclass
class ExportResult:
    run_id: int
    folder: Path
    written: list[str]
    manifest: dict[str, Any]

    def summary(self) -> str:
        files = self.manifest.get("files", {})
        sizes = ", ".join(f"{name} ({human_size(files[name]['bytes'])})" for name in self.written if name in files)
        return f"Exported {sizes} to {self.folder}."


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"files": {}, "notes": []}
    # Only files that are really there: a manifest never names a file a person deleted by hand.
    data["files"] = {k: v for k, v in (data.get("files") or {}).items() if (folder / k).exists()}
    return data


def _write_manifest(folder: Path, data: dict[str, Any]) -> None:
    tmp = folder / (MANIFEST + ".partial")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic(folder: Path, name: str, write: Callable[[Path], Any]) -> Any:
    """Run write(tmp path), then rename onto `name`: a file under its real name is always complete.
    Returns what write returned."""
    tmp = folder / (name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        out = write(tmp)
        os.replace(tmp, folder / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _merged_dir(ws: Workspace, run: Any, base_dir: Path) -> Path:
    from studio.train.merge import merge_and_save

    merged = Path(run.output_dir) / "merged"
    adapter = Path(run.output_dir) / "adapter" / "adapter_model.safetensors"
    config = merged / "config.json"
    if config.is_file() and adapter.is_file() and config.stat().st_mtime >= adapter.stat().st_mtime:
        return merged
    return merge_and_save(run, models_dir=ws.models_dir, base_path=base_dir)


def decoding_defaults(ws: Workspace, run: Any, model_dir: Path) -> Any:
    """How the model is meant to be sampled: the settings of the run's newest finished evaluation (what the person
    compared with), else the model's generation_config.json, else greedy."""
    from studio.evaluation.batch import list_evals
    from studio.export.ollama import Decoding

    num_ctx = int(run.config.get("max_seq_length") or 2048)
    for ev in list_evals(ws, run_id=run.id):
        settings = (ev.metrics or {}).get("settings") if ev.status == "done" else None
        if settings:
            return Decoding(float(settings.get("temperature", 0.0)), 1.0, int(settings.get("max_new_tokens", 256)),
                            num_ctx, f"the settings of evaluation #{ev.id}")
    try:
        gen = json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        gen = {}
    if gen.get("do_sample") and "temperature" in gen:
        return Decoding(float(gen["temperature"]), float(gen.get("top_p", 1.0)),
                        int(gen.get("max_new_tokens") or 256), num_ctx, "the model's generation_config.json")
    return Decoding(0.0, 1.0, 256, num_ctx, "greedy decoding, the studio's default for comparing")


def export_run(ws: Workspace, run_id: int, request: ExportRequest, *, progress: Progress | None = None
               ) -> ExportResult:
    """Write what `request` asks into <run>/export (see the module doc); returns what was written."""
    from studio.export.gguf_adapter import write_adapter_gguf
    from studio.export.gguf_model import source_pre_tokenizer, write_model_gguf
    from studio.publish.model_card import public_base_id

    def report(fraction: float, message: str) -> None:
        if progress:
            progress(max(0.0, min(1.0, fraction)), message)

    plan = plan_export(ws, run_id, request)
    request = request.checked()
    run = _run(ws, run_id)
    base_dir = _base_dir(ws, run)
    adapter_dir = Path(run.output_dir) / "adapter"
    folder = plan.folder
    folder.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(folder)
    manifest.update({"run_id": run.id, "base_model": run.base_model_ref,
                     "base_hub_id": public_base_id(run.base_model_ref) or "",
                     "servability": {"summary": plan.servability.summary(), "vllm_ok": plan.servability.vllm_ok,
                                     "vllm_flags": plan.servability.vllm_flags, "rank": plan.servability.rank}})
    notes: list[str] = [] if plan.servability.vllm_ok else [plan.servability.summary()]
    written: list[str] = []
    pre = source_pre_tokenizer(base_dir)
    hub_id = manifest["base_hub_id"]
    steps = len(plan.files) + 1
    done = 0

    def record(name: str, kind: str, quant: str, extra_notes: list[str] | None = None) -> None:
        path = folder / name
        manifest["files"][name] = {"kind": kind, "quant": quant, "bytes": path.stat().st_size,
                                   "sha256": _sha256(path), "written_at": utc_now()}
        for note in extra_notes or []:
            if note not in notes:
                notes.append(note)
        manifest["notes"] = notes
        _write_manifest(folder, manifest)
        written.append(name)

    def sub(start: float, span: float) -> Progress:
        return lambda f, m: report(start + span * f, m)

    if request.quants:
        report(0.01, "Merging the adapter into its base model…")
        merged = _merged_dir(ws, run, base_dir)
        done += 1
        for quant in request.quants:
            name = f"{_slug(run)}-{quant}.gguf"
            written_model = _atomic(folder, name, partial(
                write_model_gguf, merged, quant=quant, name=f"{run.title} (Seed Studio)", base_model=hub_id,
                pre_tokenizer=pre, progress=sub(done / steps, 1 / steps)))
            record(name, "merged", quant, written_model.notes)
            done += 1
    if request.adapter:
        name = f"{_slug(run)}-lora-f32.gguf"
        _atomic(folder, name, partial(write_adapter_gguf, adapter_dir, base_dir, name=run.title,
                                      progress=sub(done / steps, 1 / steps)))
        record(name, "adapter", "f32")
        done += 1
        base_name = _base_file_name(base_dir)
        source = _base_gguf_source(base_dir)
        report(done / steps, f"Writing the base model as {base_name}…")
        if source is not None:
            _atomic(folder, base_name, partial(shutil.copyfile, source))
            record(base_name, "base", "as shipped")
        else:
            written_base = _atomic(folder, base_name, partial(
                write_model_gguf, base_dir, quant="f16", name=f"{Path(run.base_model_ref).name} (base)",
                base_model=hub_id, pre_tokenizer=pre, progress=sub(done / steps, 1 / steps)))
            record(base_name, "base", "f16", written_base.notes)
        done += 1
    _write_vllm_adapter(run, folder)
    if request.ollama:
        report(0.97, "Writing the Ollama Modelfile…")
        text = _modelfile_text(ws, run, base_dir, manifest, notes)
        _atomic(folder, "Modelfile", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        record("Modelfile", "modelfile", "")
    manifest["commands"] = commands(run, folder, manifest)
    manifest["notes"] = notes
    _write_manifest(folder, manifest)
    report(1.0, f"Exported {len(written)} files to {folder}")
    return ExportResult(run.id, folder, written, manifest)


def _write_vllm_adapter(run: Any, folder: Path) -> None:
    """The adapter as vLLM and PEFT load it from anywhere: the base's Hub id instead of this machine's path."""
    from studio.publish.push import stage_model

    target = folder / VLLM_DIR
    tmp = folder / (VLLM_DIR + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    stage_model(Path(run.output_dir) / "adapter", tmp, run)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _modelfile_text(ws: Workspace, run: Any, base_dir: Path, manifest: dict[str, Any], notes: list[str]) -> str:
    from studio.export.ollama import chat_format, modelfile

    merged, adapter, base = _runnable(manifest["files"])  # ExportRequest.checked asked for one of them
    template = _chat_template(base_dir)
    decoding = decoding_defaults(ws, run, base_dir)
    note = (f"The Modelfile's sampling settings come from {decoding.source}: temperature {decoding.temperature:g}, "
            f"at most {decoding.num_predict} new tokens.")
    if chat_format(template) is None:
        note += (" The studio does not recognise this model's chat template, so the Modelfile has no TEMPLATE "
                 "line and Ollama uses the template stored in the GGUF.")
    notes.append(note)
    if merged:
        return modelfile(from_file=merged[0], chat_template=template, decoding=decoding)
    return modelfile(from_file=base, adapter_file=adapter, chat_template=template, decoding=decoding)


def _chat_template(model_dir: Path) -> str:
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        return str(json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
                   .get("chat_template") or "")
    except (OSError, ValueError):
        return ""


def _runnable(files: dict[str, Any]) -> tuple[list[str], str, str]:
    """(merged GGUFs, q8_0 first: the usual balance of size and fidelity, then best first; adapter; base)."""
    merged = sorted((n for n, f in files.items() if f["kind"] == "merged"),
                    key=lambda n: (files[n]["quant"] != "q8_0", QUANTS.index(files[n]["quant"])))
    adapter = next((n for n, f in files.items() if f["kind"] == "adapter"), "")
    base = next((n for n, f in files.items() if f["kind"] == "base"), "")
    return merged, adapter, base


def commands(run: Any, folder: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """The exact commands to run the export: llama.cpp, Ollama and vLLM, with this machine's paths."""
    files = manifest.get("files", {})
    name = _slug(run)
    out: dict[str, str] = {}
    merged, adapter, base = _runnable(files)
    if merged:
        out["llama.cpp"] = f"llama-server -m {folder / merged[0]} --port 8080"
    if adapter and base:
        out["llama.cpp (base + LoRA)"] = f"llama-server -m {folder / base} --lora {folder / adapter} --port 8080"
    if "Modelfile" in files:
        out["Ollama"] = f"cd {folder} && ollama create {name} -f Modelfile && ollama run {name}"
    serv = manifest.get("servability", {})
    if serv.get("vllm_ok", True):
        base_id = manifest.get("base_hub_id") or str(run.base_model_ref)
        flags = " ".join(serv.get("vllm_flags") or [])
        out["vLLM"] = (f"vllm serve {base_id} --enable-lora {flags + ' ' if flags else ''}"
                       f"--lora-modules {name}={folder / VLLM_DIR}")
    return out


def list_export(ws: Workspace, run_id: int) -> dict[str, Any]:
    """The manifest of the run's export folder (files that exist, commands, notes); empty files when none."""
    from studio.train.runs import get_run

    run = get_run(ws, run_id)
    folder = Path(run.output_dir or ".") / EXPORT_DIR
    data = read_manifest(folder)
    data["folder"] = str(folder)
    if data["files"]:
        data["commands"] = commands(run, folder, data)
    return data


def export_plan_dict(plan: ExportPlan) -> dict[str, Any]:
    return {"run_id": plan.run_id, "folder": str(plan.folder), "total_bytes": plan.total_bytes,
            "free_bytes": plan.free_bytes, "files": [asdict(f) for f in plan.files],
            "servability": plan.servability.summary(), "notes": plan.notes, "summary": plan.summary()}


# ------------------------------------------------------------------------------------------------ the Hub


def exported_files(run: Any) -> list[Path]:
    """The run's export files that go to the Hub beside the adapter: GGUF files and the Modelfile."""
    folder = Path(run.output_dir or ".") / EXPORT_DIR
    files = read_manifest(folder).get("files", {})
    return [folder / name for name in sorted(files)]


def hub_section(run: Any, repo_id: str, pushed: list[str]) -> str:
    """The model card's "Run it locally" section: the pushed GGUF files and the commands for the Hub copy."""
    from studio.export.gguf_adapter import adapter_config
    from studio.publish.model_card import public_base_id

    folder = Path(run.output_dir or ".") / EXPORT_DIR
    files = {k: v for k, v in read_manifest(folder).get("files", {}).items() if k in set(pushed)}
    base_id = public_base_id(run.base_model_ref) or "<the base model>"
    lines = ["## Run it locally", ""]
    if files:
        lines += ["| file | what | size |", "|---|---|---:|"]
        what = {"merged": "the adapter merged into its base, GGUF {q}", "adapter": "the LoRA alone, GGUF",
                "base": "the base model, GGUF ({q})", "modelfile": "Ollama Modelfile"}
        for name, f in sorted(files.items()):
            lines.append(f"| {name} | {what[f['kind']].format(q=f['quant'])} | {human_size(f['bytes'])} |")
        lines.append("")
    merged, adapter, base = _runnable(files)
    lines += ["```bash"]
    if merged:
        lines += ["# llama.cpp", f"hf download {repo_id} {merged[0]} --local-dir .",
                  f"llama-server -m {merged[0]} --port 8080", ""]
    if adapter and base:
        lines += ["# llama.cpp, base + LoRA", f"hf download {repo_id} {base} {adapter} --local-dir .",
                  f"llama-server -m {base} --lora {adapter} --port 8080", ""]
    if "Modelfile" in files:
        needed = " ".join(["Modelfile", *(merged[:1] or [base, adapter])])
        name = f"run{run.id}"
        lines += ["# Ollama", f"hf download {repo_id} {needed} --local-dir {name}",
                  f"cd {name} && ollama create {name} -f Modelfile && ollama run {name}", ""]
    try:
        serv = servability(adapter_config(Path(run.output_dir) / "adapter"))
    except ExportError:
        serv = None
    if serv is not None and serv.vllm_ok:
        flags = " ".join(serv.vllm_flags)
        lines += ["# vLLM", f"vllm serve {base_id} --enable-lora {flags + ' ' if flags else ''}"
                            f"--lora-modules run{run.id}={repo_id}"]
    lines += ["```", ""]
    if serv is not None:
        lines += [serv.summary(), ""]
    return "\n".join(lines)
