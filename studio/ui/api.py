"""Named API endpoints of the running app, for `gradio_client` and scripts: the headless twin of the
tabs, over HTTP. Each wraps one core call; errors come back as the same plain message."""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import gradio as gr

from studio.data.formats import parse_label_names, summary_text
from studio.data.importer import commit_import, preview_file
from studio.data.readers import ReadOptions
from studio.errors import StudioError
from studio.models.registry import DEFAULT_BASE_MODEL, DEFAULT_TEACHER
from studio.ui.visitors import concrete
from studio.workspace import Workspace
from studio.workspace.projects import create_project, list_projects
from studio.workspace.seeds import list_seeds


def register(ws: Workspace) -> None:
    def api_create_project(name: str, task_description: str = "") -> dict:
        try:
            p = create_project(ws, name, task_description=task_description, base_model_ref=DEFAULT_BASE_MODEL,
                               teacher_ref=DEFAULT_TEACHER)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        return asdict(p)

    def api_list_projects() -> list[dict]:
        return [asdict(p) for p in list_projects(ws)]

    def api_import_seeds(project_id: int, file: gr.FileData, format: str = "", sheet: str = "",
                         all_paths: bool = False, label_names: str = "") -> dict:
        path = file["path"] if isinstance(file, dict) else file.path
        name = (file.get("orig_name") if isinstance(file, dict) else file.orig_name) or Path(path).name
        try:
            options = ReadOptions(sheet=sheet or None, chat_paths="all" if all_paths else "best")
            preview = preview_file(ws, path, project_id=int(project_id), display_name=name, fmt=format or None,
                                   options=options, label_names=parse_label_names(label_names) or None)
            result = commit_import(ws, int(project_id), preview)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        return {"imported": result.imported, "skipped": result.skipped, "message": result.message(name),
                "problems": [str(p) for p in preview.problems]}

    def api_list_seeds(project_id: int) -> list[dict]:
        out = []
        for s in list_seeds(ws, int(project_id)):
            prompt, answer = summary_text(s.format, s.data)
            out.append({"id": s.id, "format": s.format.value, "data": s.data, "prompt": prompt, "response": answer})
        return out

    def api_start_generation(project_id: int, strategy: str, count: int, teacher: str = "", teacher_model: str = "",
                             options: dict | None = None, generation: dict | None = None) -> dict:
        """Plan a batch and run it in the background. `options`: StrategyOptions fields; `generation`:
        GenerationParams fields. An endpoint's API key comes from the server's environment."""
        from studio.augment import batches
        from studio.augment.strategies import StrategyOptions, get_strategy
        from studio.teachers.base import GenerationParams
        from studio.teachers.spec import parse_teacher
        from studio.workspace.projects import get_project

        try:
            strat = get_strategy(strategy)
            spec = None
            if strat.uses_teacher:
                ref = teacher or get_project(ws, int(project_id)).teacher_ref or DEFAULT_TEACHER
                spec = parse_teacher(ref, model=teacher_model)
            req = batches.BatchRequest(int(project_id), strat.name, count, spec, None,
                                       StrategyOptions.from_dict(options), GenerationParams.from_dict(generation or {}))
            b = batches.plan_batch(ws, req)
            batches.start_in_background(concrete(ws), b.id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None
        return batch_json(b.id)

    def batch_json(batch_id: int) -> dict:
        from studio.augment import batches

        b = batches.get_batch(ws, int(batch_id))
        return {"id": b.id, "strategy": b.strategy, "state": b.state, "rows_ok": b.rows_ok,
                "rows_failed": b.rows_failed, "target_count": b.target_count,
                "message": b.job.message if b.job else b.note, "progress": b.job.progress_text() if b.job else ""}

    def api_batch_status(batch_id: int) -> dict:
        try:
            return batch_json(batch_id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None

    def api_stop_generation(batch_id: int) -> dict:
        from studio.augment import batches

        try:
            batches.stop_batch(ws, int(batch_id))
            return batch_json(batch_id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None

    def api_resume_generation(batch_id: int) -> dict:
        from studio.augment import batches

        try:
            batches.start_in_background(concrete(ws), int(batch_id))
            return batch_json(batch_id)
        except StudioError as exc:
            raise gr.Error(str(exc)) from None

    def api_list_candidates(batch_id: int) -> list[dict]:
        from studio.augment.candidates import list_candidates

        return [c.to_json() for c in list_candidates(ws, batch_id=int(batch_id))]

    def guarded(fn):  # every review/dataset endpoint reports a user's error as its plain message
        @functools.wraps(fn)  # keeps the signature gr.api reads
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except StudioError as exc:
                raise gr.Error(str(exc)) from None
        return call

    def api_filter_batch(batch_id: int, config: dict | None = None, apply: bool = True) -> dict:
        """Run the filters (FilterConfig fields in `config`); apply=False previews without writing."""
        from studio.quality.filters import FilterConfig, apply_filters, preview_filters

        cfg = FilterConfig.from_dict(config or {})
        cfg.check()
        return (apply_filters if apply else preview_filters)(ws, int(batch_id), cfg).to_dict()

    def api_review_sample(batch_id: int, fraction: float = 0.10, min_size: int = 20) -> dict:
        """The batch's review sample (drawn on first call, the same one afterwards)."""
        from studio.review.sampling import draw_sample

        sample = draw_sample(ws, int(batch_id), fraction=float(fraction), min_size=int(min_size))
        return {"sample_id": sample.id, "rng_seed": sample.rng_seed,
                "items": [{"position": i.position, "candidate_id": i.candidate_id, "stratum": i.stratum}
                          for i in sample.items]}

    def api_record_verdict(candidate_id: int, verdict: str, reviewer: str, reason_tags: list | None = None,
                           edited_data: dict | None = None, accuracy: int | None = None, tone: int | None = None,
                           note: str = "") -> dict:
        """Append one verdict (accept / reject / edit); returns the review row id."""
        from studio.augment.candidates import get_candidate
        from studio.review.sampling import get_sample
        from studio.review.verdicts import record_verdict

        c = get_candidate(ws, int(candidate_id))
        sample = get_sample(ws, c.batch_id) if c else None
        r = record_verdict(ws, int(candidate_id), verdict=verdict, reviewer=reviewer, reason_tags=reason_tags or [],
                           edited_data=edited_data, accuracy=accuracy, tone=tone, note=note,
                           sample_id=sample.id if sample else None)
        return {"review_id": r.id, "candidate_id": int(candidate_id), "verdict": r.verdict}

    def api_gate(batch_id: int, threshold: float = 0.10, apply: bool = False) -> dict:
        """Error rate, Wilson interval and decision; apply=True records it (discard or select rows)."""
        from studio.review.gate import GateConfig, apply_gate, evaluate_gate

        cfg = GateConfig(threshold=float(threshold))
        return (apply_gate(ws, int(batch_id), cfg) if apply else evaluate_gate(ws, int(batch_id), cfg)).to_dict()

    def api_review_calibration(batch_id: int, judge_threshold: float = 0.0) -> dict:
        """How far the judge and the filters agree with the reviewers (and the reviewers with each other);
        judge_threshold 0 = the default cut, 3."""
        from studio.review.calibration import calibrate, threshold_for

        return calibrate(ws, int(batch_id), judge_threshold=threshold_for(float(judge_threshold))).to_dict()

    def api_freeze_dataset(project_id: int, config: dict | None = None) -> dict:
        """Freeze a dataset version (FreezeConfig fields in `config`)."""
        from studio.data.versions import FreezeConfig, freeze_version

        return freeze_version(ws, int(project_id), FreezeConfig.from_dict(config or {})).to_dict()

    def api_list_dataset_versions(project_id: int) -> list[dict]:
        from studio.data.versions import list_versions

        return [v.to_dict() for v in list_versions(ws, int(project_id))]

    def api_start_training(project_id: int, dataset_version: str, base_model: str = "", settings: dict | None = None,
                           name: str = "") -> dict:
        """Create and start a training run (TrainConfig fields in `settings`); it queues when the device is busy."""
        from studio.data.versions import get_version
        from studio.models.registry import DEFAULT_BASE_MODEL
        from studio.train.runs import create_run, start
        from studio.train.settings import TrainConfig
        from studio.workspace.projects import get_project

        version = get_version(ws, int(project_id), str(dataset_version))
        ref = base_model or get_project(ws, int(project_id)).base_model_ref or DEFAULT_BASE_MODEL
        run = create_run(ws, int(project_id), dataset_version_id=version.id, base_model_ref=ref,
                         config=TrainConfig.from_dict(settings or {}), name=name)
        return start(ws, run.id).to_dict()

    def api_run_status(run_id: int) -> dict:
        """A run's status, progress, losses and curves."""
        from studio.train.runs import get_run

        return get_run(ws, int(run_id)).to_dict()

    def api_stop_run(run_id: int) -> dict:
        from studio.train.runs import request_stop

        return request_stop(ws, int(run_id)).to_dict()

    def api_compare(run_ids: list, prompt: str, base_model: str = "", max_new_tokens: int = 128,
                    temperature: float = 0.0, top_p: float = 1.0, seed: int = 0) -> dict:
        """The base model's and 1-2 runs' answers to one prompt, same settings and seed (one batched call)."""
        from studio.evaluation.sidebyside import BASE
        from studio.evaluation.together import generate_together
        from studio.train.runs import get_run
        from studio.ui.compare import loaded_model

        ids = [int(i) for i in (run_ids if isinstance(run_ids, list | tuple) else [run_ids])]
        if not ids:
            raise StudioError("Give one or two run ids to compare with the base model.")
        ref = base_model or get_run(ws, ids[0]).base_model_ref
        settings = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature), "top_p": float(top_p),
                    "seed": int(seed)}
        answers = generate_together(loaded_model(ws, ref, ids), prompt, [BASE, *ids], **settings)
        return {"prompt": prompt, "base_model": ref, "settings": settings,
                "answers": {("base" if side == BASE else f"run {side}"): text for side, text in answers.items()}}

    def api_start_evaluation(run_id: int, split: str = "test", limit: int = 0, judge: bool = False,
                             max_new_tokens: int = 128) -> dict:
        """Evaluate a run against its base on a held-out split, in the background; poll evaluation_status."""
        from studio.evaluation.batch import EvalConfig
        from studio.ui.compare import start_eval

        cfg = EvalConfig(split=split, limit=int(limit) or None, judge=bool(judge), max_new_tokens=int(max_new_tokens))
        return start_eval(ws, int(run_id), cfg).to_dict()

    def api_evaluation_status(eval_id: int) -> dict:
        """An evaluation's status, progress, metrics and per-example rows."""
        from studio.evaluation.batch import get_eval

        return get_eval(ws, int(eval_id)).to_dict(examples=True)

    gr.api(guarded(api_compare), api_name="compare")
    gr.api(guarded(api_start_evaluation), api_name="start_evaluation")
    gr.api(guarded(api_evaluation_status), api_name="evaluation_status")
    gr.api(guarded(api_start_training), api_name="start_training")
    gr.api(guarded(api_run_status), api_name="run_status")
    def api_resume_run(run_id: int) -> dict:
        """Resume a stopped, interrupted or failed run from its newest checkpoint (what the Train tab's button does)."""
        from studio.train.runs import resume

        return resume(ws, int(run_id)).to_dict()

    gr.api(guarded(api_stop_run), api_name="stop_run")
    gr.api(guarded(api_resume_run), api_name="resume_run")
    gr.api(guarded(api_filter_batch), api_name="filter_batch")
    gr.api(guarded(api_review_sample), api_name="review_sample")
    gr.api(guarded(api_record_verdict), api_name="record_verdict")
    gr.api(guarded(api_gate), api_name="gate")
    gr.api(guarded(api_review_calibration), api_name="review_calibration")
    gr.api(guarded(api_freeze_dataset), api_name="freeze_dataset")
    gr.api(guarded(api_list_dataset_versions), api_name="list_dataset_versions")
    gr.api(api_start_generation, api_name="start_generation")
    gr.api(api_batch_status, api_name="batch_status")
    gr.api(api_stop_generation, api_name="stop_generation")
    gr.api(api_resume_generation, api_name="resume_generation")
    gr.api(api_list_candidates, api_name="list_candidates")
    gr.api(api_create_project, api_name="create_project")
    gr.api(api_list_projects, api_name="list_projects")
    gr.api(api_import_seeds, api_name="import_seeds")
    gr.api(api_list_seeds, api_name="list_seeds")
