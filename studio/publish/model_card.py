"""The model card (README.md) of a pushed run: YAML front matter the Hub reads, then plain Markdown.

    text = model_card(ws, run_id, "alice/support-lora", dataset_repo="alice/support-data")

Everything comes from what the studio stored (the run row, run.json's provenance, the dataset version's frozen
stats, the comparison report's model-card section), so the card says how the model was made and how it did
against its base. Local paths never appear (a base model in a local folder is named by the folder's name) and
the whole text goes through `public_text`, which removes anything shaped like a credential.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from studio.workspace import Workspace

EMBEDDED_HUB_IDS = {"embedded:smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""The Hub repo each embedded model was converted from: what a card names as base_model."""
KNOWN_LICENSES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0"}
KINDS = ("adapter", "merged", "model")
"""adapter: a LoRA/QLoRA adapter; merged: that adapter merged into its base; model: a full fine-tune."""
_CACHE_DIR = re.compile(r"^models--(?P<owner>[^/]+?)--(?P<name>[^/]+)$")
# Settings that only matter for LoRA/QLoRA, left out of a full fine-tune's table.
_LORA_ONLY = {"lora_r", "lora_alpha", "lora_dropout", "target_modules"}
# Settings about how the studio ran things, not about the model.
_NOT_SHOWN = {"preset", "save_every_steps", "merge_after", "overfit_patience"}


def public_base_id(ref: str) -> str | None:
    """The Hub id of a base model ref, when it has one: embedded models by their source repo, Hub ids as they
    are, a folder of the Hub cache (…/models--owner--name/snapshots/…) by its repo; None for other folders."""
    from studio.models.registry import canonical_embedded_ref, is_hub_id

    text = str(ref or "").strip()
    embedded = canonical_embedded_ref(text) if text.lower().startswith("embedded:") else None
    if embedded:
        return EMBEDDED_HUB_IDS.get(embedded)
    if is_hub_id(text) and not Path(text).expanduser().exists():
        return text
    for part in reversed(Path(text).parts):
        m = _CACHE_DIR.match(part)
        if m:
            return f"{m['owner']}/{m['name']}"
    return None


def base_label(ref: str) -> str:
    """The base model as a card names it: its Hub id, else a local folder's name (never its path)."""
    hub = public_base_id(ref)
    if hub:
        return hub
    return f"{Path(str(ref)).name or ref} (a local model folder)"


def run_json(run: Any) -> dict[str, Any]:
    """run.json of a run's output folder ({} when missing or unreadable: the card then says less)."""
    path = Path(run.output_dir or "") / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if run.output_dir and path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def card_kind(run: Any, merged: bool = False) -> str:
    if run.method == "full":
        return "model"
    return "merged" if merged else "adapter"


def front_matter(ws: Workspace, run_id: int, *, dataset_repo: str | None = None, kind: str = "adapter"
                 ) -> dict[str, Any]:
    """The card's YAML metadata as a dict."""
    from studio.train.runs import get_run

    run = get_run(ws, run_id)
    base = public_base_id(run.base_model_ref)
    meta: dict[str, Any] = {}
    if base:
        meta["base_model"] = base
        meta["base_model_relation"] = "adapter" if kind == "adapter" else "finetune"
    meta["library_name"] = "peft" if kind == "adapter" else "transformers"
    meta["pipeline_tag"] = "text-generation"
    method_tag = {"lora": "lora", "qlora": "qlora", "full": "full-fine-tune"}.get(run.method, run.method)
    tags = ["seed-studio", method_tag, "trl", "sft"]
    if kind == "merged":
        tags.append("merged-adapter")
    meta["tags"] = tags
    if dataset_repo:
        meta["datasets"] = [dataset_repo]
    meta["license"] = KNOWN_LICENSES.get(base or "", "other")
    return meta


def model_card(ws: Workspace, run_id: int, repo_id: str, *, dataset_repo: str | None = None,
               kind: str = "adapter", exports: list[str] | None = None) -> str:
    """README.md for `repo_id` holding run `run_id` as `kind` (adapter, merged or model).

    `exports`: names of the run's export files (GGUF, Modelfile) pushed beside the adapter; an adapter's card
    says how to run it in llama.cpp, Ollama and vLLM either way."""
    import yaml

    from studio.data.versions import public_text
    from studio.train.runs import get_run

    run = get_run(ws, run_id)
    meta = front_matter(ws, run_id, dataset_repo=dataset_repo, kind=kind)
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    body = _body(ws, run, repo_id, kind, dataset_repo, run_json(run))
    if kind == "adapter":
        from studio.export.run_export import hub_section

        body = body.replace("## Provenance\n", hub_section(run, repo_id, exports or []) + "\n## Provenance\n", 1)
    return f"---\n{head}---\n\n" + _scrub_paths(public_text(body), ws, run)


def _scrub_paths(text: str, ws: Workspace, run: Any) -> str:
    """Belt and braces: no workspace, run or home folder path survives into a card."""
    for path in sorted({str(ws.home), str(run.output_dir or ""), str(Path.home())}, key=len, reverse=True):
        if path and len(path) > 1:
            text = text.replace(path, "…")
    return text


def _cell(value: Any) -> str:
    from studio.data.versions import public_text

    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return public_text(str(value)).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _body(ws: Workspace, run: Any, repo_id: str, kind: str, dataset_repo: str | None,
          record: dict[str, Any]) -> str:
    from studio.evaluation.report import model_card_section
    from studio.workspace.projects import get_project

    project = get_project(ws, run.project_id)
    base = public_base_id(run.base_model_ref)
    label = base_label(run.base_model_ref)
    method = {"lora": "LoRA", "qlora": "QLoRA", "full": "full fine-tuning"}.get(run.method, run.method)
    what = {"adapter": f"a {method} adapter for", "merged": f"a {method} adapter merged into",
            "model": "a full fine-tune of"}[kind]
    lines = [f"# {repo_id.split('/')[-1]}", ""]
    named = f"[{label}](https://huggingface.co/{base})" if base else label
    lines += [f"This is {what} {named}, made with Seed Studio (run {run.id}, '{run.title}', project "
              f"'{project.name}').", ""]
    task = (project.task_description or "").strip()
    lines += ["## What it is for", "", task or "No task description was written for this project.", ""]

    lines += ["## Training", ""]
    lines += _table(["setting", "value"], _config_rows(run))
    lines.append("")
    summary = [f"Status: {run.status}" + (f", {run.step} of {run.max_steps} steps" if run.max_steps else "") + "."]
    final = record.get("final_metrics") or {}
    if isinstance(final.get("train_loss"), int | float):
        summary.append(f"Final training loss {final['train_loss']:.4f}.")
    if isinstance(final.get("eval_loss"), int | float):
        summary.append(f"Final validation loss {final['eval_loss']:.4f}.")
    elif run.best_validation_loss is not None:
        summary.append(f"Best validation loss {run.best_validation_loss:.4f}.")
    if record.get("early_stopped"):
        summary.append("Early stopping ended training; the best checkpoint was kept.")
    lines += [" ".join(summary), ""]

    section = model_card_section(ws, run.id).rstrip()
    if base and run.base_model_ref != base:  # the report names an embedded base by its studio ref
        section = section.replace(str(run.base_model_ref), base)
    lines += [section, ""]

    lines += ["## Intended use and limits", "",
              "- Meant for the task above, in the style of the examples it was trained on. It was tuned on a small "
              "dataset (human-written seed examples plus synthetic rows made from them), so expect it to do well "
              "near those examples and worse away from them.",
              f"- It keeps the limits of {label}: it can state wrong facts confidently, and it has no knowledge "
              "the base model lacks. Check its answers before relying on them, and do not use it for medical, "
              "legal or financial decisions.",
              "- The evaluation above is on a held-out test split of the same dataset; it does not measure safety "
              "or behaviour on other tasks.",
              "- Synthetic training rows may also be subject to the terms of the teacher models that wrote them.", ""]

    lines += ["## How to use", "", "```python"]
    base_id = base or "<the base model>"
    if kind == "adapter":
        has_tokenizer = (Path(run.output_dir or "") / "adapter" / "tokenizer_config.json").is_file()
        lines += ["from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'base = AutoModelForCausalLM.from_pretrained("{base_id}")',
                  f'model = PeftModel.from_pretrained(base, "{repo_id}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{repo_id if has_tokenizer else base_id}")']
    else:
        lines += ["from transformers import AutoModelForCausalLM, AutoTokenizer", "",
                  f'model = AutoModelForCausalLM.from_pretrained("{repo_id}")',
                  f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")']
    lines += ["", 'messages = [{"role": "user", "content": "Hello!"}]',
              "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\")",
              "print(tokenizer.decode(model.generate(inputs, max_new_tokens=128)[0][inputs.shape[1]:]))", "```", ""]
    if not base and kind == "adapter":
        lines += [f"The base was a local model folder ({label}); load the same base model in its place.", ""]

    lines += ["## Provenance", ""]
    lines += _provenance(ws, run, dataset_repo, record)
    return "\n".join(lines) + "\n"


def _config_rows(run: Any) -> list[list[Any]]:
    from studio.train.settings import SETTING_FIELDS

    rows: list[list[Any]] = [["Base model", base_label(run.base_model_ref)]]
    config = run.config or {}
    for spec in SETTING_FIELDS:
        if spec.name in _NOT_SHOWN or (run.method == "full" and spec.name in _LORA_ONLY):
            continue
        if spec.name in config:
            value = config[spec.name]
            shown = "off" if value is False else "on" if value is True else value
            unit = spec.setting.unit
            rows.append([spec.setting.title, f"{shown} {unit}" if unit and not isinstance(value, bool) else shown])
    return rows


def _provenance(ws: Workspace, run: Any, dataset_repo: str | None, record: dict[str, Any]) -> list[str]:
    from studio.data.versions import get_version_by_id
    from studio.errors import DatasetVersionError

    out: list[str] = []
    version = None
    if run.dataset_version_id is not None:
        try:
            version = get_version_by_id(ws, run.dataset_version_id)
        except DatasetVersionError:
            version = None
    if version is not None:
        stats = version.stats or {}
        by_origin = stats.get("by_origin") or {}
        sizes = ", ".join(f"{s} {n}" for s, n in version.splits.items())
        out.append(f"- Dataset: version `{version.name}` (frozen {version.created_at[:10]}; {sizes} rows)"
                   + (f", published as [{dataset_repo}](https://huggingface.co/datasets/{dataset_repo})"
                      if dataset_repo else "") + ".")
        if by_origin:
            out.append(f"- Rows: {by_origin.get('seed', 0)} human-written seed examples, "
                       f"{by_origin.get('synthetic', 0)} synthetic rows generated from them and checked by filters "
                       "and sampled human review"
                       + (f", {by_origin['general']} general chat rows" if by_origin.get("general") else "") + ".")
        for title, key in (("Generation strategies", "strategies"), ("Teacher models", "teacher_models")):
            items = stats.get(key) or {}
            if items:
                out.append(f"- {title}: " + ", ".join(f"{k} ({v})" for k, v in sorted(items.items())) + ".")
    elif dataset_repo:
        out.append(f"- Dataset: [{dataset_repo}](https://huggingface.co/datasets/{dataset_repo}).")
    seed = (run.config or {}).get("seed")
    if seed is not None:
        out.append(f"- Training seed: {seed}. Loss on assistant tokens only.")
    provenance = run.provenance or record.get("provenance") or {}
    stats = provenance.get("token_stats") or {}
    if isinstance(stats, dict) and stats.get("total_tokens"):
        out.append(f"- Training tokens per epoch: {stats['total_tokens']}.")
    libraries = provenance.get("libraries") or {}
    if isinstance(libraries, dict) and libraries:
        out.append("- Libraries: " + ", ".join(f"{k} {v}" for k, v in libraries.items()) + ".")
    if run.device or provenance.get("device"):
        out.append(f"- Trained on: {run.device or provenance.get('device')}.")
    return out or ["- No provenance was recorded for this run."]
