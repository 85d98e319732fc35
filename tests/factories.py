"""Builders for review/dataset tests: a project with the real seeds, and batches of candidate rows.

`add_batch` writes batch and candidate rows directly, shaped as a finished generation batch writes them,
so a filter or review test can craft exactly the rows it needs (duplicates, refusals, cut-offs). Real
generated rows come from `offline_batch` (nlpaug through the real batch runner) or the ScriptedLLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.augment import batches
from studio.augment.strategies import StrategyOptions
from studio.data.importer import commit_import, preview_file
from studio.workspace import Workspace
from studio.workspace.projects import create_project
from studio.workspace.seeds import list_seeds
from studio.workspace.store import utc_now


def project_with_seeds(ws: Workspace, path: Path, name: str = "review", task: str = "Helpful answers") -> int:
    p = create_project(ws, name, task_description=task)
    commit_import(ws, p.id, preview_file(ws, path, project_id=p.id))
    return p.id


def add_batch(ws: Workspace, project_id: int, rows: list[dict[str, Any] | None], *,
              strategy: str = "instruction-expansion", fmt: str = "alpaca",
              seed_ids: list[list[int]] | None = None, metas: list[dict[str, Any]] | None = None,
              status: str = "done") -> int:
    """A finished batch holding `rows` (None = a parse failure). Seed ids default to the project's seeds in turn."""
    seeds = [s.id for s in list_seeds(ws, project_id)]
    now = utc_now()
    with ws.write() as conn:
        batch_id = conn.execute(
            "INSERT INTO batch(project_id, strategy, teacher, params, target_count, status, seed_ids, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, strategy, json.dumps({"kind": "endpoint", "ref": "http://127.0.0.1:1/v1",
                                               "model": "crafted"}),
             json.dumps({"options": {}, "generation": {"temperature": 0.7}}), len(rows), status,
             json.dumps(seeds), now, now)).lastrowid
        for i, data in enumerate(rows):
            sids = seed_ids[i] if seed_ids else ([seeds[i % len(seeds)]] if seeds else [])
            meta = metas[i] if metas else {}
            conn.execute(
                "INSERT INTO candidate(batch_id, format, data, seed_ids, raw_output, parse_status, parse_error, "
                "decoding_params, unit_idx, meta, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_id, fmt, json.dumps(data) if data is not None else None, json.dumps(sids),
                 json.dumps(data) if data is not None else "I cannot produce JSON today.",
                 "ok" if data is not None else "failed",
                 "" if data is not None else "the answer holds no JSON and no list",
                 "{}", i, json.dumps(meta), now))
    return batch_id


def offline_batch(ws: Workspace, project_id: int, count: int = 60, *, rng_seed: int = 3) -> int:
    """A real batch from the real runner: nlpaug perturbations of the seeds (no teacher needed)."""
    req = batches.BatchRequest(project_id, "nlpaug", count, None, None,
                               StrategyOptions(augmenter="keyboard"), rng_seed=rng_seed)
    batch = batches.plan_batch(ws, req)
    batches.run_batch(ws, batch.id)
    return batch.id


def finished_run(ws: Workspace, project_id: int, version_id: int, base: str, name: str = "first try") -> int:
    """A LoRA run row written as done in one statement, with a real (random) adapter where a finished run
    keeps it: for Compare tests, where training itself is not what is tested (test_train_runs does that).

    Not create_run + an update: a running app's queue would start a queued run's worker in between.
    """
    from studio.train.settings import TrainConfig
    from tests.test_sidebyside import _make_adapter

    now = utc_now()
    with ws.write() as conn:
        run_id = int(conn.execute(
            "INSERT INTO run(project_id, dataset_version_id, base_model_ref, method, config, status, name, message, "
            "created_at, updated_at, finished_at) VALUES (?, ?, ?, 'lora', ?, 'done', ?, 'Done.', ?, ?, ?)",
            (project_id, version_id, base, json.dumps(TrainConfig(method="lora").to_dict()), name, now, now,
             now)).lastrowid)
        output_dir = ws.runs_dir / str(run_id)
        conn.execute("UPDATE run SET output_dir=? WHERE id=?", (str(output_dir), run_id))
    _make_adapter(Path(base), output_dir / "adapter")
    return run_id


def write_tiny_chat_model(folder: Path, tokenizer_dir: Path) -> Path:
    """A randomly initialised 2-layer Llama (about 1.3 M weights) with the tokenizer and chat template of
    `tokenizer_dir` (SmolLM2's), saved to `folder`: it writes gibberish, fast, and trains in seconds on a CPU."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def publishable_run(ws: Workspace, project_id: int, seeds: Path, base: Path) -> tuple[int, int]:
    """Seeds imported, a v1 version frozen and a finished run with a real adapter, ready for the Publish tab:
    (run id, version id)."""
    from studio.data.versions import FreezeConfig, freeze_version

    commit_import(ws, project_id, preview_file(ws, seeds, project_id=project_id))
    version = freeze_version(ws, project_id, FreezeConfig(name="v1", validation_fraction=0.05, test_fraction=0.1))
    return finished_run(ws, project_id, version.id, str(base)), version.id
