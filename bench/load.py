"""Load benchmark: 10 concurrent gradio_client sessions reviewing and browsing while a training run goes on.

    SEED_STUDIO_MODELS_DIR=.cache/models .venv/bin/python bench/load.py [--clients 10] [--actions 60]

Why: a studio is shared by a few reviewers while the only CPU trains; the UI must keep answering and no
verdict may be lost. One `python app.py` on a temporary workspace (the shared seeds, a 240-row batch, a frozen
dataset version), then two phases against it through the named API endpoints:

1. baseline: 1 client, no training, `--actions` actions of the mix below;
2. train-1 (skip with --no-solo): a LoRA run of a tiny random Llama (SmolLM2's tokenizer) trains in the app's
   worker, and 1 client runs the baseline's actions: what training alone costs the UI;
3. load: the same run still training, `--clients` threads, each with its own `gradio_client.Client`, run
   `--actions` actions each.

The mix, in turn: record_verdict (on the review sample, each client its own rows), list_candidates,
list_seeds, run_status, list_dataset_versions, batch_status, review_sample. Afterwards every verdict an
endpoint acknowledged is looked up in the SQLite file (same id, row, verdict and reviewer).

Prints a p50/p95 table per action and phase; last line `ratio: X.XX` = overall p95 under load / overall
p95 of the baseline (same run).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = ROOT.parent / "shared" / "data" / "self_instruct_seeds.jsonl"
ACTIONS = ("record_verdict", "list_candidates", "list_seeds", "run_status", "list_dataset_versions",
           "batch_status", "review_sample")
# Long enough to outlast the load phase (it is stopped afterwards); checkpoints and evaluations on the way,
# so the worker writes to the same SQLite file while the clients do.
TRAIN_SETTINGS = {"max_steps": 100_000, "eval_every_steps": 20, "save_every_steps": 20, "per_device_batch_size": 2,
                  "gradient_accumulation_steps": 1, "max_seq_length": 128, "early_stopping_patience": 0,
                  "learning_rate": 1e-3}


@dataclass
class Call:
    phase: str
    client: int
    action: str
    seconds: float
    error: str = ""
    verdict: dict[str, Any] | None = None  # what record_verdict acknowledged


@dataclass
class Setup:
    project_id: int
    batch_id: int
    version: str
    idle_run_id: int  # a finished run row: the baseline's run_status target (no training then)
    candidates: list[int] = field(default_factory=list)  # the review sample's rows


def tiny_model(folder: Path) -> Path:
    """A random 2-layer Llama with SmolLM2's tokenizer: its training keeps a worker busy on the CPU."""
    from studio.config import load_settings
    from studio.models.embedded import ensure_converted_chat_model
    from tests.factories import write_tiny_chat_model

    return write_tiny_chat_model(folder, ensure_converted_chat_model(load_settings().models_dir))


def prepare(home: Path, seeds: Path = SEEDS, rows: int = 240) -> Setup:
    """The workspace the app will serve: seeds, a finished batch of reviewable rows, a frozen version."""
    from studio.config import load_settings
    from studio.data.versions import FreezeConfig, freeze_version
    from studio.review.sampling import draw_sample
    from studio.train.settings import TrainConfig
    from studio.workspace import Workspace
    from studio.workspace.seeds import list_seeds
    from studio.workspace.store import utc_now
    from tests.factories import add_batch, project_with_seeds

    ws = Workspace(load_settings(home))
    project_id = project_with_seeds(ws, seeds, name="load")
    base = [s.data for s in list_seeds(ws, project_id)]
    batch_rows = [{**base[i % len(base)], "instruction": f"{base[i % len(base)]['instruction']} (variant {i})"}
                  for i in range(rows)]
    batch_id = add_batch(ws, project_id, batch_rows)
    version = freeze_version(ws, project_id, FreezeConfig(name="v1", validation_fraction=0.05, test_fraction=0.05))
    sample = draw_sample(ws, batch_id, fraction=0.5, min_size=20)
    now = utc_now()
    with ws.write() as conn:
        idle = int(conn.execute(
            "INSERT INTO run(project_id, dataset_version_id, base_model_ref, method, config, status, name, message, "
            "created_at, updated_at, finished_at, output_dir) VALUES (?, ?, 'embedded:smollm2-135m-instruct', "
            "'lora', ?, 'done', 'earlier run', 'Done.', ?, ?, ?, ?)",
            (project_id, version.id, json.dumps(TrainConfig(method="lora").to_dict()), now, now, now,
             str(ws.runs_dir / "idle"))).lastrowid)
    return Setup(project_id, batch_id, version.name, idle, [i.candidate_id for i in sample.items])


def session(url: str, phase: str, client_no: int, actions: int, setup: Setup, run_id: int, rows: list[int],
            out: list[Call], start: threading.Barrier | None = None) -> None:
    """One reviewer's tab: `actions` calls of the mix, each timed; errors are recorded, not raised."""
    from gradio_client import Client

    try:
        client = Client(url, verbose=False)
        client.predict(api_name="/list_projects")  # untimed: the connection's first call
    except Exception as exc:  # no session at all: every one of its actions goes unanswered
        out.extend(Call(phase, client_no, "connect", 0.0, f"{type(exc).__name__}: {exc}"[:300])
                   for _ in range(actions))
        client = None
    if start is not None:
        start.wait()
    if client is None:
        return
    reviewer = f"{phase}-{client_no}"
    verdicts = ("accept", "reject")
    for i in range(actions):
        action = ACTIONS[(i + client_no) % len(ACTIONS)]  # clients start at different points of the mix
        t0 = time.perf_counter()
        call = Call(phase, client_no, action, 0.0)
        try:
            if action == "record_verdict":
                cid = rows[i % len(rows)]
                v = verdicts[i % 2]
                got = client.predict(cid, v, reviewer, ["other"] if v == "reject" else [], None, None, None, "",
                                     api_name="/record_verdict")
                call.verdict = {"review_id": got["review_id"], "candidate_id": cid, "verdict": v,
                                "reviewer": reviewer}
            elif action == "list_candidates":
                assert len(client.predict(setup.batch_id, api_name="/list_candidates")) > 0
            elif action == "list_seeds":
                assert len(client.predict(setup.project_id, api_name="/list_seeds")) > 0
            elif action == "run_status":
                assert client.predict(run_id, api_name="/run_status")["id"] == run_id
            elif action == "list_dataset_versions":
                assert client.predict(setup.project_id, api_name="/list_dataset_versions")
            elif action == "batch_status":
                assert client.predict(setup.batch_id, api_name="/batch_status")["id"] == setup.batch_id
            else:
                assert client.predict(setup.batch_id, 0.5, 20, api_name="/review_sample")["items"]
        except Exception as exc:  # a call that did not answer is what this benchmark counts
            call.error = f"{type(exc).__name__}: {exc}"[:300]
        call.seconds = time.perf_counter() - t0
        out.append(call)


def run_phase(url: str, phase: str, clients: int, actions: int, setup: Setup, run_id: int) -> list[Call]:
    """`clients` sessions at once, each reviewing its own slice of the sample (so verdicts are distinct)."""
    calls: list[Call] = []
    barrier = threading.Barrier(clients)
    slices = [setup.candidates[k::clients] or setup.candidates for k in range(clients)]
    threads = [threading.Thread(target=session, args=(url, phase, k, actions, setup, run_id, slices[k], calls,
                                                      barrier)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return calls


def lost_verdicts(db: Path, calls: list[Call]) -> list[dict[str, Any]]:
    """Acknowledged verdicts missing from (or different in) the database."""
    with sqlite3.connect(db) as conn:
        saved = {r[0]: {"review_id": r[0], "candidate_id": r[1], "verdict": r[2], "reviewer": r[3]}
                 for r in conn.execute("SELECT id, candidate_id, verdict, reviewer FROM review")}
    return [c.verdict for c in calls if c.verdict and saved.get(c.verdict["review_id"]) != c.verdict]


def start_training(url: str, setup: Setup, model: Path, timeout: float = 240) -> int:
    """Start the run through the API and wait until the worker has taken a few steps (it is really training)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    run = client.predict(setup.project_id, setup.version, str(model), TRAIN_SETTINGS, "under load",
                         api_name="/start_training")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.predict(run["id"], api_name="/run_status")
        if status["status"] == "running" and (status.get("step") or 0) >= 2:
            return int(run["id"])
        if status["status"] in ("failed", "done", "stopped", "interrupted"):
            raise RuntimeError(f"the training run ended before the load: {status['status']} {status['message']}")
        time.sleep(0.5)
    raise RuntimeError(f"the training run did not start within {timeout:.0f} s")


def stop_training(url: str, run_id: int, timeout: float = 60) -> dict[str, Any]:
    from gradio_client import Client

    client = Client(url, verbose=False)
    status = client.predict(run_id, api_name="/run_status")
    if status["status"] in ("queued", "running"):
        client.predict(run_id, api_name="/stop_run")
    deadline = time.monotonic() + timeout
    while status["status"] in ("queued", "running", "stopping") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = client.predict(run_id, api_name="/run_status")
    return status


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100): a real observed latency, no interpolation."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def table(calls: list[Call]) -> str:
    lines = [f"{'phase':<9} {'action':<22} {'calls':>5} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"]
    for phase in dict.fromkeys(c.phase for c in calls):
        mine = [c for c in calls if c.phase == phase]
        for action in (*ACTIONS, "overall"):
            rows = mine if action == "overall" else [c for c in mine if c.action == action]
            if not rows:
                continue
            s = [c.seconds * 1000 for c in rows]
            lines.append(f"{phase:<9} {action:<22} {len(rows):>5} {sum(bool(c.error) for c in rows):>6} "
                         f"{pct(s, 50):>8.0f} {pct(s, 95):>8.0f} {max(s):>8.0f}")
    return "\n".join(lines)


def overall_p95(calls: list[Call], phase: str) -> float:
    return pct([c.seconds for c in calls if c.phase == phase], 95)


def bench(home: Path, model: Path, clients: int, actions: int, baseline_actions: int,
          solo: bool = True) -> dict[str, Any]:
    """Both phases against one app; returns the calls, the run's end state and the lost verdicts."""
    from tests.conftest import RunningApp

    setup = prepare(home)
    app = RunningApp(home)
    try:
        calls = run_phase(app.url, "baseline", 1, baseline_actions, setup, setup.idle_run_id)
        t0 = time.perf_counter()
        run_id = start_training(app.url, setup, model)
        warmup = time.perf_counter() - t0
        if solo:  # 1 client while training: what the training costs, apart from the other clients' queue
            calls += run_phase(app.url, "train-1", 1, baseline_actions, setup, run_id)
        t0 = time.perf_counter()
        calls += run_phase(app.url, "load", clients, actions, setup, run_id)
        load_seconds = time.perf_counter() - t0
        during = stop_training(app.url, run_id)
    except Exception:
        if app.proc.poll() is not None:  # say why the app went away, before its temporary folder does
            print(f"app.py exited with {app.proc.returncode}:\n{app.log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        app.stop()
    return {"calls": calls, "run": during, "lost": lost_verdicts(home / "studio.db", calls), "setup": setup,
            "warmup_s": warmup, "load_s": load_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--actions", type=int, default=60, help="actions per client under load")
    parser.add_argument("--baseline-actions", type=int, default=140, help="actions of the single baseline client")
    parser.add_argument("--no-solo", action="store_true", help="skip the 1-client phase during training")
    parser.add_argument("--model", type=Path, help="model folder to train (default: a random 2-layer Llama)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or tiny_model(Path(tmp) / "tiny")
        result = bench(Path(tmp) / "home", model, args.clients, args.actions, args.baseline_actions,
                       solo=not args.no_solo)
    calls: list[Call] = result["calls"]
    print(table(calls))
    errors = [c for c in calls if c.error]
    verdicts = sum(1 for c in calls if c.verdict)
    run = result["run"]
    print(f"\nload phase: {args.clients} clients x {args.actions} actions in {result['load_s']:.1f} s "
          f"({sum(c.phase == 'load' for c in calls) / result['load_s']:.1f} actions/s); training run reached step "
          f"{run.get('step')} ({run['status']}); worker start to step 2: {result['warmup_s']:.1f} s")
    print(f"verdicts acknowledged: {verdicts}, lost: {len(result['lost'])}; calls without an answer: {len(errors)}")
    for c in errors[:5]:
        print(f"  {c.phase} client {c.client} {c.action}: {c.error}")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    median = statistics.median(c.seconds for c in calls if c.phase == "load")
    print(f"p95 overall: baseline {overall_p95(calls, 'baseline') * 1000:.0f} ms, under load "
          f"{overall_p95(calls, 'load') * 1000:.0f} ms (median {median * 1000:.0f} ms)")
    print(f"ratio: {overall_p95(calls, 'load') / overall_p95(calls, 'baseline'):.2f}")


if __name__ == "__main__":
    main()
