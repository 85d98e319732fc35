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
