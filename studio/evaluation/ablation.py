"""Augmentation ablation: did the synthetic rows help? The same training run twice, with and without them.

    ab = start_ablation(ws, project_id, version_id=v.id, base_model_ref=ref, config=TrainConfig())
    report = ablation_report(ws, ab.id, evaluate_missing=True)     # once both runs are done
    report.verdict   # "The synthetic rows helped: ..."

The "seeds only" twin of a version is frozen with the version's own settings but no synthetic rows
(batch_ids=[] and include_reviewed_accepts=False). The seed split depends only on the seeds, the fractions
and rng_seed, so the twin's validation rows and human test rows are exactly the version's; this is checked
before anything is written (the project's seeds must be the ones the version was frozen from), and again
after freezing. An identical twin frozen earlier is reused. Both runs get the same TrainConfig and base
model and queue one per device.

The report compares the two runs on the SAME rows: the validation loss each worker measured on the shared
human validation split at the end of training, and the metrics of each run's evaluation on the twin's test
split (human-written rows only), made by studio.evaluation.batch with identical settings.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.errors import DatasetVersionError, TrainError
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from studio.data.versions import DatasetRow, DatasetVersion, FreezeConfig
    from studio.evaluation.batch import EvalConfig, Evaluation
    from studio.evaluation.sidebyside import SideBySide
    from studio.train.runs import Run

TWIN_SUFFIX = "-seeds-only"
SEEDS, AUGMENTED = "seeds", "augmented"
LOSS_TOLERANCE = 0.01
"""A relative validation-loss change smaller than this (1%) is no clear difference."""
METRIC_TOLERANCE = {"rouge_l": 0.01, "bleu": 1.0, "exact": 0.01, "loss": 0.01}
LABELS = {"rouge_l": "ROUGE-L", "bleu": "BLEU", "exact": "Exact match", "loss": "Test loss"}


@dataclass
class Ablation:
    id: int
    project_id: int
    source_version_id: int
    seeds_version_id: int
    seeds_run_id: int
    augmented_run_id: int
    config: dict[str, Any]
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- start ---------------------------------------------------------------------------------------------


def start_ablation(ws: Workspace, project_id: int, *, version_id: int, base_model_ref: str, config: TrainConfig,
                   device: str | None = None) -> Ablation:
    """Freeze (or reuse) the seeds-only twin of `version_id`, create two runs with `config` and start them.

    Every check runs before the first write: the version is this project's and has synthetic train rows,
    the settings and base model are usable (LoRA/QLoRA: the comparison evaluates adapters), the project's
    seeds are the ones the version was frozen from, and the twin would hold the same validation and human
    test rows and enough train rows."""
    from studio.data.versions import FreezeConfig, freeze_version, plan_version, version_rows
    from studio.train import runs
    from studio.workspace.projects import get_project

    get_project(ws, project_id)  # ProjectError says what to do
    source = _project_version(ws, project_id, version_id)
    rows = version_rows(ws, source.id)
    synthetic_train = sum(1 for r in rows if r.split == "train" and r.origin == "synthetic")
    if synthetic_train == 0:
        raise DatasetVersionError(
            f"Dataset version {source.name} has no synthetic rows in train, so there is nothing to ablate: seeds "
            "only and seeds + synthetic would be the same data. Generate, review and select synthetic rows, freeze "
            "a version with them, then run the ablation on that version.")
    if not isinstance(config, TrainConfig):
        raise TrainError("The ablation needs training settings (a TrainConfig); pick a preset.")
    config = config.check()
    if not config.uses_lora:
        raise TrainError(
            f"The ablation compares the two runs' adapters on the test rows, so it needs LoRA or QLoRA; "
            f"{config.method} fine-tuning saves no adapter. Choose LoRA (or QLoRA) for the ablation.")
    # The same checks create_run makes for the source version, the model and the method; none writes.
    runs._check_version(ws, project_id, source.id)
    info = runs._check_model(ws, base_model_ref)
    runs._check_method(ws, config.method, info)
    from studio.train import devices

    device = devices.text(devices.parse(device))
    _check_seeds_unchanged(ws, project_id, source, rows)
    general = source.config.get("general_path")
    if general and not Path(str(general)).expanduser().is_file():
        raise DatasetVersionError(
            f"Version {source.name} mixed in general rows from {general}, which is no longer there. The seeds-only "
            "twin needs the same file so that the synthetic rows are the only difference. Put the file back at that "
            "path, or freeze a version without general rows and ablate that one.")

    twin_cfg = FreezeConfig.from_dict(source.config)
    twin_cfg.batch_ids = []
    twin_cfg.include_reviewed_accepts = False
    twin = _identical_twin(ws, project_id, source, rows, twin_cfg)
    if twin is None:
        twin_cfg.name = _twin_name(ws, project_id, source.name)
        plan = plan_version(ws, project_id, twin_cfg)  # raises what freezing would raise; writes nothing
        expected = {s: sum(1 for r in rows if r.split == s and r.origin == "seed") for s in ("train", "validation",
                                                                                               "test")}
        same = (all(plan.counts[s]["seed"] == expected[s] for s in expected)
                and plan.sizes["validation"] == source.splits.get("validation", 0)
                and not any(plan.counts[s]["synthetic"] for s in expected))
        if not same:
            raise DatasetVersionError(
                f"A seeds-only copy of version {source.name} would not split the seeds as {source.name} does, so the "
                "two runs could not be compared on the same rows. Freeze a new version with the synthetic rows and "
                "run the ablation on it.")
        twin_train = plan.sizes["train"]
    else:
        twin_train = twin.splits.get("train", 0)
    if twin_train < runs.MIN_TRAIN_ROWS:
        raise TrainError(
            f"Without its synthetic rows, version {source.name} keeps {twin_train} training rows; a run needs at "
            f"least {runs.MIN_TRAIN_ROWS}. Add more seeds, freeze a new version, and ablate that one.")

    # --- writes: twin version (if new), two runs, the ablation row; then the runs start (or queue).
    reused = twin is not None
    if twin is None:
        twin = freeze_version(ws, project_id, twin_cfg)
    _assert_same_human_rows(ws, source, twin)
    seeds_run = runs.create_run(ws, project_id, dataset_version_id=twin.id, base_model_ref=base_model_ref,
                                config=config, name=f"{source.name} seeds only", device=device)
    augmented_run = runs.create_run(ws, project_id, dataset_version_id=source.id, base_model_ref=base_model_ref,
                                    config=config, name=f"{source.name} seeds + synthetic", device=device)
    record = {
        "train": config.to_dict(),
        "base_model_ref": info.ref,
        "device": device,
        "source_version": {"id": source.id, "name": source.name, "train_rows": source.splits.get("train", 0),
                           "synthetic_train_rows": synthetic_train},
        "seeds_version": {"id": twin.id, "name": twin.name, "train_rows": twin.splits.get("train", 0),
                          "reused": reused},
        "validation_rows": source.splits.get("validation", 0),
    }
    with ws.write() as conn:
        ablation_id = int(conn.execute(
            "INSERT INTO ablation(project_id, source_version_id, seeds_version_id, seeds_run_id, augmented_run_id, "
            "config, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (project_id, source.id, twin.id, seeds_run.id, augmented_run.id, json.dumps(record), utc_now()),
        ).lastrowid or 0)
    runs.start(ws, seeds_run.id)
    runs.start(ws, augmented_run.id)  # waits in the queue behind the first on one device
    return get_ablation(ws, ablation_id)


def _project_version(ws: Workspace, project_id: int, version_id: int) -> DatasetVersion:
    from studio.data.versions import get_version_by_id

    try:
        version = get_version_by_id(ws, int(version_id))
    except (TypeError, ValueError):
        raise DatasetVersionError(f"'{version_id}' is not a dataset version id. Pick a version from the "
                                  "list.") from None
    if version.project_id != project_id:
        raise DatasetVersionError(f"Dataset version {version.name} (#{version.id}) belongs to another project. "
                                  "Pick one of this project's versions.")
    return version


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _check_seeds_unchanged(ws: Workspace, project_id: int, source: DatasetVersion, rows: list[DatasetRow]) -> None:
    """The twin re-splits the project's current seeds: they must be exactly the seeds `source` was frozen from."""
    with ws.read() as conn:
        now = {r["id"]: (r["format"], _canonical(json.loads(r["data"])))
               for r in conn.execute("SELECT id, format, data FROM seed WHERE project_id = ?", (project_id,))}
    then = {r.source_id: (str(r.format), _canonical(r.data)) for r in rows if r.origin == "seed"}
    if now == then:
        return
    added = len(now.keys() - then.keys())
    removed = len(then.keys() - now.keys())
    edited = sum(1 for k in now.keys() & then.keys() if now[k] != then[k])
    changes = ", ".join(f"{n} {what}" for n, what in ((added, "added"), (edited, "edited"), (removed, "deleted"))
                        if n)
    raise DatasetVersionError(
        f"The project's seeds changed since version {source.name} was frozen ({changes}), so a seeds-only copy "
        "would split them differently and the two runs would not be validated on the same rows. Freeze a new "
        "version with the synthetic rows and run the ablation on it.")


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    from studio.data.versions import FreezeConfig

    data = FreezeConfig.from_dict(config).to_dict()
    data.pop("name", None)
    data["general_path"] = str(data["general_path"]) if data.get("general_path") else None
    return data


def _seed_rows(rows: list[DatasetRow]) -> set[tuple[str, int | None, str]]:
    return {(r.split, r.source_id, _canonical(r.data)) for r in rows if r.origin == "seed"}


def _identical_twin(ws: Workspace, project_id: int, source: DatasetVersion, rows: list[DatasetRow],
                    twin_cfg: FreezeConfig) -> DatasetVersion | None:
    """An earlier seeds-only version with the same settings and the same seed rows, if there is one."""
    from studio.data.versions import list_versions, version_rows

    want = _comparable(twin_cfg.to_dict())
    seeds = _seed_rows(rows)
    for version in list_versions(ws, project_id):
        if version.id == source.id or _comparable(version.config) != want:
            continue
        theirs = version_rows(ws, version.id)
        if not any(r.origin == "synthetic" for r in theirs) and _seed_rows(theirs) == seeds:
            return version
    return None


def _twin_name(ws: Workspace, project_id: int, source_name: str) -> str:
    from studio.data.versions import MAX_NAME_LENGTH, list_versions

    taken = {v.name.lower() for v in list_versions(ws, project_id)}
    stem = source_name[: MAX_NAME_LENGTH - len(TWIN_SUFFIX) - 3].rstrip()
    name, k = f"{stem}{TWIN_SUFFIX}", 2
    while name.lower() in taken:
        name, k = f"{stem}{TWIN_SUFFIX}-{k}", k + 1
    return name


def _assert_same_human_rows(ws: Workspace, source: DatasetVersion, twin: DatasetVersion) -> None:
    """Validation rows identical, and the twin's test rows exactly the source's human test rows."""
    from studio.data.versions import version_rows

    def rows(version_id: int, split: str, origin: str | None = None) -> list[tuple[int | None, str]]:
        return sorted((r.source_id, _canonical(r.data)) for r in version_rows(ws, version_id, split)
                      if origin is None or r.origin == origin)

    if rows(source.id, "validation") != rows(twin.id, "validation") or \
            rows(source.id, "test", "seed") != rows(twin.id, "test"):
        raise DatasetVersionError(
            f"Version {twin.name} does not hold the same validation and human test rows as {source.name}, so the "
            "ablation would compare different rows. Freeze a new version with the synthetic rows and ablate it.")


# --- read ----------------------------------------------------------------------------------------------


def get_ablation(ws: Workspace, ablation_id: int) -> Ablation:
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM ablation WHERE id = ?", (ablation_id,)).fetchone()
    if row is None:
        raise TrainError(f"There is no ablation #{ablation_id} in this workspace. `seed-studio ablation list` "
                         "lists them.")
    return _ablation(row)


def list_ablations(ws: Workspace, project_id: int) -> list[Ablation]:
    """The project's ablations, newest first."""
    with ws.read() as conn:
        rows = conn.execute("SELECT * FROM ablation WHERE project_id = ? ORDER BY id DESC", (project_id,)).fetchall()
    return [_ablation(r) for r in rows]


def ablations_of_run(ws: Workspace, run_id: int) -> list[Ablation]:
    """Ablations the run is one side of (the report and the model card mention them)."""
    with ws.read() as conn:
        rows = conn.execute("SELECT * FROM ablation WHERE seeds_run_id = ? OR augmented_run_id = ? ORDER BY id DESC",
                            (run_id, run_id)).fetchall()
    return [_ablation(r) for r in rows]


def _ablation(r: sqlite3.Row) -> Ablation:
    try:
        config = json.loads(r["config"] or "{}")
    except ValueError:
        config = {}
    return Ablation(r["id"], r["project_id"], r["source_version_id"], r["seeds_version_id"], r["seeds_run_id"],
                    r["augmented_run_id"], config if isinstance(config, dict) else {}, r["created_at"])


# --- report --------------------------------------------------------------------------------------------


@dataclass
class AblationReport:
    ablation: Ablation
    seeds_run: Run
    augmented_run: Run
    ready: bool
    """Both runs are done."""
    val_loss: dict[str, float | None]
    """{"seeds", "augmented", "delta"}: validation loss at the end of each run (same human rows)."""
    metrics: list[dict[str, Any]]
    """[{"metric", "label", "better", "base", "seeds", "augmented", "delta"}] on the same human test rows."""
    verdict: str
    rows: int | None = None
    """How many test rows the metrics cover."""
    evals: dict[str, int | None] = field(default_factory=lambda: {SEEDS: None, AUGMENTED: None})

    def to_dict(self) -> dict[str, Any]:
        return {"ablation": self.ablation.to_dict(), "seeds_run": _run_summary(self.seeds_run),
                "augmented_run": _run_summary(self.augmented_run), "ready": self.ready, "val_loss": self.val_loss,
                "metrics": self.metrics, "rows": self.rows, "evals": self.evals, "verdict": self.verdict}

    def to_markdown(self) -> str:
        cfg = self.ablation.config
        seeds_v, source_v = cfg.get("seeds_version", {}), cfg.get("source_version", {})
        lines = [
            f"Same training settings and base model, two datasets: **seeds only** (version "
            f"{_md(seeds_v.get('name', self.ablation.seeds_version_id))}, {seeds_v.get('train_rows', '?')} train "
            f"rows) and **seeds + synthetic** (version {_md(source_v.get('name', self.ablation.source_version_id))}, "
            f"{source_v.get('train_rows', '?')} train rows). Both are validated on the same human-written rows.",
            "",
            "| | Seeds only | Seeds + synthetic | Change |",
            "|---|---:|---:|---:|",
            f"| Run | #{self.seeds_run.id} ({self.seeds_run.status}) | #{self.augmented_run.id} "
            f"({self.augmented_run.status}) | |",
            f"| Validation loss (lower is better) | {_num(self.val_loss.get(SEEDS))} | "
            f"{_num(self.val_loss.get(AUGMENTED))} | {_num(self.val_loss.get('delta'), signed=True)} |",
        ]
        for m in self.metrics:
            where = f" on {self.rows} human test rows" if self.rows else ""
            lines.append(f"| {m['label']}{where} ({m['better']} is better) | {_num(m['seeds'])} | "
                         f"{_num(m['augmented'])} | {_num(m['delta'], signed=True)} |")
        lines += ["", f"**Verdict:** {_md(self.verdict)}"]
        return "\n".join(lines)


def ablation_report(ws: Workspace, ablation_id: int, *, evaluate_missing: bool = False,
                    model_factory: Callable[[Run], SideBySide | None] | None = None,
                    eval_config: EvalConfig | None = None) -> AblationReport:
    """Where the ablation stands and, once both runs are done, its validation-loss and metric deltas.

    evaluate_missing: evaluate each finished run that has no evaluation on the seeds-only version's test
    split yet (the second with the first's settings, so both cover the same rows). `eval_config` sets
    limit / max_new_tokens / seed of a new evaluation (split and version are always the twin's test split).
    `model_factory(run)` may return a SideBySide already loaded with that run (the UI's cached one)."""
    from studio.train.runs import get_run

    ablation = get_ablation(ws, ablation_id)
    seeds_run, augmented_run = get_run(ws, ablation.seeds_run_id), get_run(ws, ablation.augmented_run_id)
    ready = seeds_run.status == "done" and augmented_run.status == "done"
    seeds_eval, augmented_eval = _eval_pair(ws, ablation)
    if evaluate_missing and ready and not _comparable_evals(seeds_eval, augmented_eval):
        seeds_eval, augmented_eval = _evaluate_missing(ws, ablation, (seeds_run, seeds_eval),
                                                       (augmented_run, augmented_eval), model_factory, eval_config)
    val = {SEEDS: _val_loss(seeds_run), AUGMENTED: _val_loss(augmented_run)}
    delta = val[AUGMENTED] - val[SEEDS] if val[SEEDS] is not None and val[AUGMENTED] is not None else None
    val_loss: dict[str, float | None] = {**val, "delta": delta}
    metrics: list[dict[str, Any]] = []
    rows = None
    if _comparable_evals(seeds_eval, augmented_eval):
        assert seeds_eval is not None and augmented_eval is not None
        metrics = _metric_rows(seeds_eval, augmented_eval)
        rows = int(seeds_eval.metrics.get("n") or 0) or None
    verdict = _verdict(ablation, seeds_run, augmented_run, ready, val_loss, metrics, rows)
    evals = {SEEDS: seeds_eval.id if seeds_eval else None, AUGMENTED: augmented_eval.id if augmented_eval else None}
    return AblationReport(ablation, seeds_run, augmented_run, ready, val_loss, metrics, verdict, rows, evals)


def _run_summary(run: Run) -> dict[str, Any]:
    return {"id": run.id, "title": run.title, "status": run.status, "step": run.step, "max_steps": run.max_steps,
            "dataset_version_id": run.dataset_version_id, "message": run.message, "progress": run.progress_text()}


def _val_loss(run: Run) -> float | None:
    """The validation loss of the model the run saved: the worker's final evaluation (run.json), else the
    last logged validation point. None until the run is done."""
    if run.status != "done":
        return None
    try:
        record = json.loads((Path(run.output_dir) / "run.json").read_text(encoding="utf-8"))
        value = record.get("final_metrics", {}).get("eval_loss")
        if isinstance(value, int | float):
            return float(value)
    except (OSError, ValueError, AttributeError):
        pass
    return run.validation_loss


def _eval_ok(ev: Evaluation, ablation: Ablation) -> bool:
    return ev.status == "done" and ev.split == "test" and ev.dataset_version_id == ablation.seeds_version_id


def _same_rows(a: Evaluation, b: Evaluation) -> bool:
    """Both evaluations scored the same rows with the same decoding: their numbers compare directly."""
    keys = ("limit", "max_new_tokens", "temperature", "seed")
    return (all(getattr(a.config, k) == getattr(b.config, k) for k in keys)
            and a.metrics.get("n") == b.metrics.get("n"))


def _comparable_evals(a: Evaluation | None, b: Evaluation | None) -> bool:
    return a is not None and b is not None and _same_rows(a, b)


def _eval_pair(ws: Workspace, ablation: Ablation) -> tuple[Evaluation | None, Evaluation | None]:
    """The newest comparable pair of test evaluations on the twin version; else each run's newest one."""
    from studio.evaluation.batch import list_evals

    seeds = [e for e in list_evals(ws, run_id=ablation.seeds_run_id) if _eval_ok(e, ablation)]
    augmented = [e for e in list_evals(ws, run_id=ablation.augmented_run_id) if _eval_ok(e, ablation)]
    for s in seeds:
        for a in augmented:
            if _same_rows(s, a):
                return s, a
    return (seeds[0] if seeds else None), (augmented[0] if augmented else None)


def _evaluate_missing(ws: Workspace, ablation: Ablation, seeds: tuple[Run, Evaluation | None],
                      augmented: tuple[Run, Evaluation | None],
                      model_factory: Callable[[Run], SideBySide | None] | None,
                      eval_config: EvalConfig | None) -> tuple[Evaluation | None, Evaluation | None]:
    from studio.evaluation.batch import EvalConfig, evaluate

    def config(template: Evaluation | None) -> EvalConfig:
        # Without explicit settings, the other run's: the same rows, the same decoding.
        base = template.config if eval_config is None and template is not None else eval_config or EvalConfig()
        return dataclasses.replace(base, split="test", version_id=ablation.seeds_version_id, judge=False)

    (seeds_run, seeds_eval), (augmented_run, augmented_eval) = seeds, augmented
    if seeds_eval is None:
        seeds_eval = evaluate(ws, seeds_run.id, config(augmented_eval),
                              model=model_factory(seeds_run) if model_factory else None)
    if augmented_eval is None or not _same_rows(seeds_eval, augmented_eval):
        augmented_eval = evaluate(ws, augmented_run.id, config(seeds_eval),
                                  model=model_factory(augmented_run) if model_factory else None)
    return seeds_eval, augmented_eval


def _metric_rows(seeds: Evaluation, augmented: Evaluation) -> list[dict[str, Any]]:
    """Each tuned model's score, seeds-only vs seeds + synthetic (the base model's score for reference)."""
    theirs = {r["metric"]: r for r in augmented.metrics.get("rows", [])}
    out = []
    for r in seeds.metrics.get("rows", []):
        other = theirs.get(r["metric"])
        if other is None:
            continue
        s, a = float(r["tuned"]), float(other["tuned"])
        out.append({"metric": r["metric"], "label": LABELS.get(r["metric"], r["metric"]), "better": "higher",
                    "base": float(r["base"]), SEEDS: s, AUGMENTED: a, "delta": a - s})
    loss_s, loss_a = seeds.metrics.get("loss") or {}, augmented.metrics.get("loss") or {}
    if isinstance(loss_s.get("tuned"), int | float) and isinstance(loss_a.get("tuned"), int | float):
        s, a = float(loss_s["tuned"]), float(loss_a["tuned"])
        out.append({"metric": "loss", "label": LABELS["loss"], "better": "lower",
                    "base": float(loss_s.get("base") or 0.0), SEEDS: s, AUGMENTED: a, "delta": a - s})
    return out


def _direction(delta: float, tolerance: float, better: str) -> int:
    """+1 when the synthetic rows made it better, -1 worse, 0 no clear difference."""
    if abs(delta) < tolerance:
        return 0
    improved = delta > 0 if better == "higher" else delta < 0
    return 1 if improved else -1


def _verdict(ablation: Ablation, seeds_run: Run, augmented_run: Run, ready: bool, val_loss: dict[str, float | None],
             metrics: list[dict[str, Any]], rows: int | None) -> str:
    if not ready:
        parts = []
        advice = ""
        for label, run in (("seeds-only", seeds_run), ("seeds + synthetic", augmented_run)):
            parts.append(f"the {label} run (#{run.id}) is {run.progress_text() if not run.ended else run.status}")
            if run.resumable and not advice:
                advice = f" Resume run #{run.id} (`seed-studio runs resume {run.id}`) to finish the ablation."
        return f"Not finished yet: {'; '.join(parts)}.{advice or ' The verdict appears when both runs are done.'}"
    seeds_loss, aug_loss, delta = val_loss[SEEDS], val_loss[AUGMENTED], val_loss["delta"]
    rouge = next((m for m in metrics if m["metric"] == "rouge_l"), None)
    evidence, signs = [], []
    if seeds_loss is not None and aug_loss is not None and delta is not None:
        evidence.append(f"the validation loss went from {seeds_loss:.3f} (seeds only) to {aug_loss:.3f} "
                        f"(seeds + synthetic)")
        signs.append(_direction(delta / (abs(seeds_loss) or 1.0), LOSS_TOLERANCE, "lower"))
    if rouge is not None:
        where = f" on the {rows} human-written test rows" if rows else " on the human-written test rows"
        evidence.append(f"ROUGE-L{where} from {rouge[SEEDS]:.3f} to {rouge[AUGMENTED]:.3f}")
        signs.append(_direction(rouge["delta"], METRIC_TOLERANCE["rouge_l"], "higher"))
    if not evidence:
        return ("Both runs are done, but neither has a validation loss or a test evaluation to compare. Evaluate "
                f"them: `seed-studio ablation show {ablation.id} --evaluate`.")
    said = " and ".join(evidence)
    if all(s > 0 for s in signs):
        head = "The synthetic rows helped"
    elif all(s < 0 for s in signs):
        head = "The synthetic rows did not help (they made it worse)"
    elif all(s == 0 for s in signs):
        head = "The synthetic rows made no clear difference"
    elif 1 in signs and -1 in signs:
        head = "Mixed result, so no clear evidence that the synthetic rows helped"
    else:
        head = "The synthetic rows helped a little, but not on every measure" if 1 in signs else \
            "The synthetic rows did not help"
    tail = "" if rouge is not None else (f" Evaluate both runs on the human test rows for metric deltas "
                                         f"(`seed-studio ablation show {ablation.id} --evaluate`).")
    return f"{head}: {said}.{tail}"


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _md(text: object) -> str:
    """User text made safe inside a Markdown table or paragraph (no raw HTML, no broken cells)."""
    import html

    return html.escape(" ".join(str(text).split()), quote=False).replace("|", "\\|")
