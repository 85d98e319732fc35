"""`seed-studio export`: the Publish tab's export section. GGUF files, an Ollama Modelfile and the commands that
run them (llama.cpp, Ollama, vLLM), written into the run's export folder."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, open_workspace, print_json


def export_command(
    run: Annotated[int, typer.Option("--run", help="Run id (see `seed-studio runs list`).")],
    gguf: Annotated[list[str] | None, typer.Option(
        "--gguf", help="GGUF type of the merged model: f16, bf16, q8_0, q5_0 or q4_0 (repeat for several).")] = None,
    adapter: Annotated[bool, typer.Option("--adapter-gguf", help="Also write the LoRA alone as GGUF, with the "
                                          "base model's GGUF it applies to (llama-server --lora, Ollama "
                                          "ADAPTER).")] = False,
    ollama: Annotated[bool, typer.Option("--ollama", help="Also write an Ollama Modelfile.")] = False,
    estimate: Annotated[bool, typer.Option("--estimate", help="Only say what would be written and how big it "
                                           "is; write nothing.")] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Export a finished LoRA/QLoRA run for llama.cpp, Ollama and vLLM (into <run folder>/export)."""
    from studio.export.run_export import ExportRequest, export_plan_dict, export_run, list_export, plan_export

    ws = open_workspace(home)
    request = ExportRequest(quants=list(gguf or []), adapter=adapter, ollama=ollama)
    plan = plan_export(ws, run, request)
    if estimate:
        if as_json:
            print_json(export_plan_dict(plan))
        else:
            _echo_plan(plan)
        return
    if not as_json:
        typer.echo(plan.summary(), err=True)
    last = [-1]

    def progress(fraction: float, message: str) -> None:
        pct = round(fraction * 100)
        if not as_json and pct != last[0]:
            last[0] = pct
            typer.echo(f"[{pct:>3}%] {message}", err=True)

    result = export_run(ws, run, request, progress=progress)
    listed = list_export(ws, run)
    if as_json:
        print_json({"folder": listed["folder"], "written": result.written, "files": listed["files"],
                    "commands": listed.get("commands", {}), "notes": listed.get("notes", []),
                    "servability": listed.get("servability", {})})
        return
    typer.echo(result.summary())
    for note in listed.get("notes", []):
        typer.echo(f"Note: {note}")
    typer.echo("\nRun it:")
    for name, command in listed.get("commands", {}).items():
        typer.echo(f"  {name}:\n    {command}")


def _echo_plan(plan: Any) -> None:
    typer.echo(plan.summary())
    for note in plan.notes:
        typer.echo(f"Note: {note}")
    typer.echo(plan.servability.summary())


def register(app: Any) -> None:
    app.command("export")(export_command)
