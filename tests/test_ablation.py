"""Augmentation ablation: the seeds-only twin (no synthetic row, the very same human validation and test rows), two
runs with one config queued one per device, refusals that write nothing, and end to end with the real worker
processes on the tiny model, real evaluations and the CLI.

The fast tests replace only the worker launch (runs._spawn) with a real process that sleeps, as
tests/test_train_runs.py does: the queue sees a live pid, nothing trains. The slow test trains for real.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from studio.data.versions import FreezeConfig, freeze_version, list_versions, version_rows
from studio.errors import DatasetVersionError, ModelRefError, ProjectError, StudioError, TrainError
from studio.evaluation.ablation import ablation_report, get_ablation, list_ablations, start_ablation
from studio.train import runs
from studio.train.settings import TrainConfig
from studio.workspace import Workspace, utc_now
from studio.workspace.seeds import list_seeds, update_seed
from tests.conftest import SHARED_SEEDS, snapshot
from tests.factories import project_with_seeds
from tests.test_cli_generate import run as cli
from tests.test_dataset_versions import select_batch, variants
from tests.test_train_runs import StandIn, fake_model

FREEZE = FreezeConfig(validation_fraction=0.1, test_fraction=0.1)


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch):
    fake = StandIn()
    monkeypatch.setattr(runs, "_spawn", fake)
    yield fake
    fake.close()


def augmented_project(ws: Workspace, name: str = "ablate") -> tuple[int, int]:
    """(project id, version id): the shared seeds plus one selected batch of one variant per seed."""
    project_id = project_with_seeds(ws, SHARED_SEEDS, name=name)
    rows, sources = variants(ws, project_id)
    select_batch(ws, project_id, rows, seed_ids=sources)
    version = freeze_version(ws, project_id, FREEZE)
    assert version.counts["train"]["synthetic"] > 0
    return project_id, version.id


def texts(ws: Workspace, version_id: int, split: str, origin: str | None = None) -> list[str]:
    return sorted(json.dumps(r.data, sort_keys=True) for r in version_rows(ws, version_id, split)
                  if origin is None or r.origin == origin)


def assert_seeds_only_twin(ws: Workspace, source_id: int, twin_id: int) -> None:
    twin = version_rows(ws, twin_id)
    assert twin and all(r.origin == "seed" for r in twin)  # not one synthetic row, in any split
    assert texts(ws, twin_id, "validation") == texts(ws, source_id, "validation")
    assert texts(ws, twin_id, "test") == texts(ws, source_id, "test", "seed")  # the human test rows
    assert texts(ws, twin_id, "train") == texts(ws, source_id, "train", "seed")


# --- start: twin, runs, queue ---------------------------------------------------------------------------


def test_start_freezes_a_seeds_only_twin_and_queues_two_runs(ws: Workspace, stand_in: StandIn,
                                                             tmp_path: Path) -> None:
    project_id, version_id = augmented_project(ws)
    model = fake_model(tmp_path / "model")
    config = TrainConfig(max_steps=5, learning_rate=1e-3)
    ab = start_ablation(ws, project_id, version_id=version_id, base_model_ref=str(model), config=config, device="cpu")

    assert ab.source_version_id == version_id and ab.seeds_version_id != version_id
    twin = next(v for v in list_versions(ws, project_id) if v.id == ab.seeds_version_id)
    assert twin.name == "v1-seeds-only"
    assert twin.config["batch_ids"] == [] and twin.config["include_reviewed_accepts"] is False
    assert_seeds_only_twin(ws, version_id, twin.id)

    seeds_run, augmented_run = runs.get_run(ws, ab.seeds_run_id), runs.get_run(ws, ab.augmented_run_id)
    assert (seeds_run.dataset_version_id, augmented_run.dataset_version_id) == (twin.id, version_id)
    assert seeds_run.config == augmented_run.config == config.check().to_dict()
    assert seeds_run.base_model_ref == augmented_run.base_model_ref == str(model)
    assert (seeds_run.name, augmented_run.name) == ("v1 seeds only", "v1 seeds + synthetic")
    # One run per device: the first is launched, the second waits behind it.
    assert seeds_run.launching or seeds_run.status == "running"
    assert augmented_run.status == "queued" and augmented_run.queue_position == 1
    assert ab.config["source_version"]["synthetic_train_rows"] == len(
        [r for r in version_rows(ws, version_id, "train") if r.origin == "synthetic"])
    assert ab.config["seeds_version"] == {"id": twin.id, "name": twin.name, "train_rows": twin.splits["train"],
                                          "reused": False}
    assert get_ablation(ws, ab.id) == ab and list_ablations(ws, project_id) == [ab]

    # A second ablation of the same version reuses the identical twin instead of freezing another.
    again = start_ablation(ws, project_id, version_id=version_id, base_model_ref=str(model), config=config,
                           device="cpu")
    assert again.seeds_version_id == twin.id and again.config["seeds_version"]["reused"] is True
    assert len(list_versions(ws, project_id)) == 2
    assert [a.id for a in list_ablations(ws, project_id)] == [again.id, ab.id]

    # Not finished: the report says so, plainly, without failing.
    report = ablation_report(ws, ab.id)
    assert not report.ready and report.val_loss == {"seeds": None, "augmented": None, "delta": None}
    assert report.metrics == [] and report.verdict.startswith("Not finished yet: the seeds-only run")


def test_refusals_write_nothing(ws: Workspace, stand_in: StandIn, tmp_path: Path) -> None:
    project_id, version_id = augmented_project(ws)
    seeds_only = freeze_version(ws, project_id, FreezeConfig(batch_ids=[])).id
    other_project, other_version = augmented_project(ws, name="other")
    model = str(fake_model(tmp_path / "model"))
    ok = {"version_id": version_id, "base_model_ref": model, "config": TrainConfig(max_steps=5), "device": "cpu"}

    def refused(exc: type[StudioError], match: str, project: int = project_id, **changes: object) -> str:
        before = snapshot(ws)
        with pytest.raises(exc, match=match) as info:
            start_ablation(ws, project, **{**ok, **changes})  # type: ignore[arg-type]
        assert snapshot(ws) == before
        assert list(ws.runs_dir.iterdir()) == []
        return str(info.value)

    message = refused(DatasetVersionError, "no synthetic rows in train, so there is nothing to ablate",
                      version_id=seeds_only)
    assert "freeze a version with them" in message
    refused(DatasetVersionError, "no dataset version #999", version_id=999)
    refused(DatasetVersionError, "belongs to another project", version_id=other_version)
    refused(ProjectError, "no project #12345", project=12345)
    refused(TrainError, "learning rate must be above 0", config=TrainConfig(learning_rate=-1.0))
    refused(TrainError, "needs LoRA or QLoRA", config=TrainConfig(method="full", learning_rate=1e-5))
    refused(ModelRefError, "does not exist", base_model_ref=str(tmp_path / "no-such-model"))
    with pytest.raises(TrainError, match="no ablation #77"):
        get_ablation(ws, 77)
    with pytest.raises(TrainError, match="no ablation #77"):
        ablation_report(ws, 77)

    # Seeds edited after freezing: a seeds-only copy would split differently, so it is refused.
    seed = list_seeds(ws, project_id)[0]
    update_seed(ws, seed.id, {**seed.data, "output": seed.data["output"] + " (edited)"})
    assert "1 edited" in refused(DatasetVersionError, "seeds changed since version v1 was frozen")
    assert other_project != project_id


# --- end to end: real workers, real evaluations, the CLI ---------------------------------------------------


def wait_until_done(ws: Workspace, run_ids: list[int], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [runs.get_run(ws, i) for i in run_ids]
        if all(r.ended for r in states):
            assert all(r.status == "done" for r in states), [(r.id, r.status, r.message) for r in states]
            return
        time.sleep(0.5)
    logs = [Path(r.log_path).read_text(errors="replace")[-2000:] for r in states if Path(r.log_path).exists()]
    raise AssertionError(f"runs {run_ids} did not finish in {timeout}s: {[r.status for r in states]}\n{logs}")


@pytest.mark.slow
def test_ablation_end_to_end(ws: Workspace, tiny_chat_model: Path) -> None:
    from studio.evaluation.batch import EvalConfig, list_evals
    from studio.workspace.projects import use_project

    project_id, version_id = augmented_project(ws)
    config = TrainConfig(method="lora", max_steps=3, per_device_batch_size=2, max_seq_length=64, eval_every_steps=3,
                         early_stopping_patience=0, learning_rate=1e-3, warmup_ratio=0.0, lora_dropout=0.0)
    ab = start_ablation(ws, project_id, version_id=version_id, base_model_ref=str(tiny_chat_model), config=config,
                        device="cpu")
    wait_until_done(ws, [ab.seeds_run_id, ab.augmented_run_id])

    report = ablation_report(ws, ab.id, evaluate_missing=True, eval_config=EvalConfig(limit=3, max_new_tokens=6))
    assert report.ready
    # Validation loss: each worker's final evaluation on the same human validation rows (run.json).
    for key, run_id in (("seeds", ab.seeds_run_id), ("augmented", ab.augmented_run_id)):
        record = json.loads((ws.runs_dir / str(run_id) / "run.json").read_text())
        assert report.val_loss[key] == pytest.approx(record["final_metrics"]["eval_loss"])
    assert report.val_loss["delta"] == pytest.approx(report.val_loss["augmented"] - report.val_loss["seeds"])

    # Metrics: both runs evaluated on the SAME rows, the first 3 human test rows of the seeds-only version.
    evals = {e.run_id: e for e in list_evals(ws, project_id=project_id)}
    assert set(evals) == {ab.seeds_run_id, ab.augmented_run_id}
    seeds_eval, augmented_eval = evals[ab.seeds_run_id], evals[ab.augmented_run_id]
    human_test = sorted(version_rows(ws, ab.seeds_version_id, "test"), key=lambda r: r.id)[:3]
    for ev in (seeds_eval, augmented_eval):
        assert (ev.status, ev.split, ev.dataset_version_id, ev.metrics["n"]) == ("done", "test",
                                                                                 ab.seeds_version_id, 3)
        assert sorted(e["reference"] for e in ev.examples) == sorted(r.data["output"] for r in human_test)
    assert report.rows == 3 and report.evals == {"seeds": seeds_eval.id, "augmented": augmented_eval.id}
    by_metric = {m["metric"]: m for m in report.metrics}
    assert set(by_metric) == {"rouge_l", "bleu", "exact", "loss"}
    for m in seeds_eval.metrics["rows"]:
        row = by_metric[m["metric"]]
        other = next(x for x in augmented_eval.metrics["rows"] if x["metric"] == m["metric"])
        assert (row["seeds"], row["augmented"]) == (m["tuned"], other["tuned"])
        assert row["delta"] == pytest.approx(other["tuned"] - m["tuned"])
    assert by_metric["loss"]["seeds"] == seeds_eval.metrics["loss"]["tuned"]
    assert report.verdict.startswith(("The synthetic rows helped", "The synthetic rows did not help",
                                      "The synthetic rows made no clear difference", "Mixed result"))
    assert f"{report.val_loss['seeds']:.3f} (seeds only)" in report.verdict and "3 human-written test rows" in \
        report.verdict

    # Asking again evaluates nothing new; the markdown carries the numbers and the verdict.
    again = ablation_report(ws, ab.id, evaluate_missing=True)
    assert again.evals == report.evals and len(list_evals(ws, project_id=project_id)) == 2
    text = again.to_markdown()
    assert "| Validation loss (lower is better) |" in text and f"**Verdict:** {report.verdict}" in text

    # The CLI twins read the same ablation.
    use_project(ws, str(project_id))
    shown = cli(ws.home, "ablation", "show", str(ab.id), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["verdict"] == report.verdict and data["evals"] == report.evals and data["ready"] is True
    listed = cli(ws.home, "ablation", "list", "--json")
    assert [a["id"] for a in json.loads(listed.stdout)] == [ab.id]
    out = ws.home / "ablation-report.md"
    done = cli(ws.home, "report", "--run", str(ab.augmented_run_id), "--out", str(out))
    assert done.returncode == 0 and done.stdout.strip() == str(out)
    assert f"## Augmentation ablation #{ab.id}" in out.read_text() and report.verdict in out.read_text()


def test_cli_ablation_start_show_list_and_refusals(ws: Workspace, tmp_path: Path) -> None:
    project_id, version_id = augmented_project(ws, name="cli")
    freeze_version(ws, project_id, FreezeConfig(batch_ids=[]))  # v2: seeds only, nothing to ablate
    model = str(fake_model(tmp_path / "m"))
    before = snapshot(ws)
    for args, message in (
        (("ablation", "start", "--version", "v2", "--base", model), "nothing to ablate"),
        (("ablation", "start", "--version", "v9"), "no dataset version 'v9'"),
        (("ablation", "start", "--version", "v1", "--preset", "turbo"), "no preset called 'turbo'"),
        (("ablation", "start", "--version", "v1", "--base", model, "--method", "full"), "needs LoRA or QLoRA"),
        (("ablation", "show", "5"), "no ablation #5"),
    ):
        done = cli(ws.home, *args, "--project", "cli") if args[1] != "show" else cli(ws.home, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("Error: ") and message in done.stderr, done.stderr
    assert snapshot(ws) == before
    empty = cli(ws.home, "ablation", "list", "--project", "cli")
    assert empty.returncode == 0 and "No ablations yet" in empty.stdout

    # A run holds the cpu (this test process stands in for its worker), so the ablation's runs stay queued.
    with ws.write() as conn:
        conn.execute("INSERT INTO run(project_id, dataset_version_id, base_model_ref, method, status, pid, device, "
                     "created_at, updated_at) VALUES (?, ?, ?, 'lora', 'running', ?, 'cpu', ?, ?)",
                     (project_id, version_id, model, os.getpid(), utc_now(), utc_now()))
    started = cli(ws.home, "ablation", "start", "--version", "v1", "--base", model, "--preset", "quick",
                  "--max-steps", "3", "--device", "cpu", "--project", "cli", "--json")
    assert started.returncode == 0, started.stderr
    ab = json.loads(started.stdout)
    assert ab["source_version_id"] == version_id and ab["config"]["seeds_version"]["name"] == "v1-seeds-only"
    assert ab["config"]["train"]["preset"] == "quick" and ab["config"]["train"]["max_steps"] == 3
    for run_id, position in ((ab["seeds_run_id"], 1), (ab["augmented_run_id"], 2)):
        run = runs.get_run(ws, run_id)
        assert (run.status, run.queue_position, run.config["max_steps"]) == ("queued", position, 3)
    shown = cli(ws.home, "ablation", "show", str(ab["id"]))
    assert shown.returncode == 0 and "Not finished yet: the seeds-only run" in shown.stdout
    assert "| Validation loss (lower is better) | – | – | – |" in shown.stdout
    listed = cli(ws.home, "ablation", "list", "--project", "cli")
    assert f"#{ab['id']}" in listed.stdout and "v1 vs v1-seeds-only" in listed.stdout
