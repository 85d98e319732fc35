"""The launched app, driven through gradio_client: the same endpoints a script would call."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client, handle_file

from studio.workspace import Workspace
from studio.workspace.seeds import list_seeds
from tests.conftest import EXAMPLE_SEEDS


def test_create_project_and_import_seeds_over_the_api(running_app, shared_seeds) -> None:
    client = Client(running_app.url, verbose=False)
    project = client.predict("Self-Instruct", "Answer general instructions", api_name="/create_project")
    assert project["name"] == "Self-Instruct" and project["base_model_ref"] == "embedded:smollm2-135m-instruct"

    result = client.predict(project["id"], handle_file(str(shared_seeds)), "", api_name="/import_seeds")
    assert result["imported"] == 120 and result["problems"] == []
    listed = client.predict(project["id"], api_name="/list_seeds")
    first = json.loads(shared_seeds.read_text().splitlines()[0])
    assert len(listed) == 120 and listed[0]["data"]["instruction"] == first["instruction"]

    # The app wrote to its workspace on disk: the same truth a restart (or the CLI) sees.
    ws = Workspace.open(running_app.home)
    assert len(list_seeds(ws, project["id"])) == 120
    assert [p["name"] for p in client.predict(api_name="/list_projects")] == ["Self-Instruct"]


def test_api_errors_carry_the_plain_message(running_app, tmp_path) -> None:
    client = Client(running_app.url, verbose=False)
    project = client.predict("Errors", "", api_name="/create_project")
    client.predict(project["id"], handle_file(str(EXAMPLE_SEEDS)), "", api_name="/import_seeds")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("instruction,output\nCaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(Exception, match="is not UTF-8 text: line 2"):
        client.predict(project["id"], handle_file(str(bad)), "", api_name="/import_seeds")
    with pytest.raises(Exception, match="already exists"):
        client.predict("errors", "", api_name="/create_project")
    assert len(client.predict(project["id"], api_name="/list_seeds")) == 16


def test_compare_and_evaluate_over_the_api(running_app, tiny_chat_model, shared_seeds) -> None:
    """A finished run (tiny model, real adapter) compared and evaluated through the named endpoints."""
    import time

    from studio.data.importer import commit_import, preview_file
    from studio.data.versions import FreezeConfig, freeze_version
    from studio.evaluation.sidebyside import BASE, SideBySide
    from studio.train.runs import get_run
    from tests.factories import finished_run

    client = Client(running_app.url, verbose=False)
    project = client.predict("Compare API", "", api_name="/create_project")
    ws = Workspace.open(running_app.home)
    commit_import(ws, project["id"], preview_file(ws, shared_seeds, project_id=project["id"]))
    version = freeze_version(ws, project["id"], FreezeConfig(name="v1", validation_fraction=0.05, test_fraction=0.05))
    run_id = finished_run(ws, project["id"], version.id, str(tiny_chat_model))

    out = client.predict([run_id], "Name three colours.", "", 12, 0.0, 1.0, 0, api_name="/compare")
    direct = SideBySide.load(ws, str(tiny_chat_model), [run_id])
    assert out["answers"] == {"base": direct.generate("Name three colours.", which=BASE, max_new_tokens=12),
                              f"run {run_id}": direct.generate("Name three colours.", which=run_id,
                                                               max_new_tokens=12)}

    started = client.predict(run_id, "test", 2, False, 8, api_name="/start_evaluation")
    deadline = time.monotonic() + 120
    status = started
    while status["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = client.predict(started["id"], api_name="/evaluation_status")
    assert status["status"] == "done", status
    assert [r["metric"] for r in status["metrics"]["rows"]] == ["rouge_l", "bleu", "exact"]
    assert len(status["examples"]) == 2 and status["metrics"]["loss"]["base"] > 0
    assert get_run(ws, run_id).status == "done"  # nothing about the run changed

    with pytest.raises(Exception, match="validation"):
        client.predict(run_id, "train", 0, False, 8, api_name="/start_evaluation")
    with pytest.raises(Exception, match="one or two run ids"):
        client.predict([], "hi", "", 12, 0.0, 1.0, 0, api_name="/compare")
