"""`seed-studio push adapter|dataset` and `seed-studio publications`: the Publish tab's twins.

The token is read from an environment variable (HF_TOKEN, or the one --token-env names), else the saved
`hf auth login`; never from a command-line argument, which other users of the machine could read in the
process list and which lands in the shell history.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from studio.cli.common import HomeOption, JsonOption, ProjectOption, open_workspace, pick_project, print_json

push_app = typer.Typer(help="Push an adapter (or merged model) or a dataset version to the Hugging Face Hub.",
                       no_args_is_help=True)

RepoOption = Annotated[str, typer.Option("--repo", help="Hub repo: owner/name, or a name for your own account.")]
PrivateOption = Annotated[bool, typer.Option("--private/--public", help="Visibility of a new repo (an existing "
                                             "repo keeps its own).")]
TokenEnvOption = Annotated[str | None, typer.Option("--token-env", help="Environment variable holding the access "
                                                    "token (default: HF_TOKEN, else the `hf auth login` token).")]
EndpointOption = Annotated[str | None, typer.Option("--endpoint", help="Hub endpoint URL (default: HF_ENDPOINT or "
                                                    "https://huggingface.co).")]


def _token(token_env: str | None) -> str | None:
    from studio.errors import HubError
    from studio.publish.auth import resolve_token

    if token_env:
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise HubError(f"The environment variable {token_env} (named by --token-env) is not set or empty. "
                           f"Set it to a Hugging Face access token with write access, or leave --token-env out "
                           "to use HF_TOKEN or the `hf auth login` token.")
        return value
    return resolve_token()


def _progress(quiet: bool) -> Any:
    def show(fraction: float, message: str) -> None:
        if not quiet:
            typer.echo(f"[{round(fraction * 100):>3}%] {message}", err=True)

    return show


def _show(pub: Any, as_json: bool) -> None:
    if as_json:
        print_json(pub.to_dict())
        return
    typer.echo(pub.message)
    typer.echo(f"  {pub.url}")
    if pub.merged is not None:
        typer.echo(pub.merged.message)
        typer.echo(f"  {pub.merged.url}")


@push_app.command("adapter")
def push_adapter_cmd(
    run: Annotated[int, typer.Option("--run", help="Run id (see `seed-studio runs list`).")],
    repo: RepoOption,
    private: PrivateOption = True,
    merged: Annotated[bool, typer.Option("--merged", help="Also push the adapter merged into its base model, to "
                                         "REPO-merged.")] = False,
    dataset_repo: Annotated[str | None, typer.Option("--dataset-repo", help="Hub dataset the model card links to "
                                                     "(e.g. where `push dataset` put the version).")] = None,
    token_env: TokenEnvOption = None,
    endpoint: EndpointOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Push a finished run's adapter with its model card (a full fine-tune: the whole model)."""
    from studio.publish.push import push_adapter

    ws = open_workspace(home)
    token = _token(token_env)
    pub = push_adapter(ws, run, repo, token=token, private=private, merged=merged, endpoint=endpoint,
                       progress=_progress(as_json), dataset_repo=dataset_repo)
    _show(pub, as_json)


@push_app.command("dataset")
def push_dataset_cmd(
    version: Annotated[str, typer.Option("--version", help="Dataset version id or name.")],
    repo: RepoOption,
    private: PrivateOption = True,
    token_env: TokenEnvOption = None,
    endpoint: EndpointOption = None,
    as_json: JsonOption = False,
    project: ProjectOption = None,
    home: HomeOption = None,
) -> None:
    """Push a frozen dataset version (its splits) with its dataset card."""
    from studio.data.versions import get_version
    from studio.publish.push import push_dataset

    ws = open_workspace(home)
    v = get_version(ws, pick_project(ws, project).id, version)
    token = _token(token_env)
    pub = push_dataset(ws, v.id, repo, token=token, private=private, endpoint=endpoint,
                       progress=_progress(as_json))
    _show(pub, as_json)


def publications(as_json: JsonOption = False, project: ProjectOption = None, home: HomeOption = None) -> None:
    """What this project has pushed to the Hub, newest first."""
    from studio.publish.push import list_publications

    ws = open_workspace(home)
    pubs = list_publications(ws, pick_project(ws, project).id)
    if as_json:
        print_json([p.to_dict() for p in pubs])
        return
    if not pubs:
        typer.echo("Nothing pushed yet: `seed-studio push adapter` or `seed-studio push dataset`.")
    for p in pubs:
        typer.echo(f"{p.id:>4}  {p.created_at[:16].replace('T', ' ')}  {p.kind:<8} #{p.subject_id:<4} "
                   f"{'private' if p.private else 'public ':<7}  {p.repo_id}@{p.revision[:8]}")


def register(app: Any) -> None:
    app.add_typer(push_app, name="push")
    app.command("publications")(publications)
