"""Publish: push a run's adapter (or merged / full model) and a dataset version to the Hugging Face Hub.

    token = resolve_token()                                  # explicit, else HF_TOKEN, else `hf auth login`
    whoami(token)                                            # the account a token belongs to
    validate_repo_id("my-adapter", default_namespace="alice")  # the Hub's naming rules, before any request
    push_adapter(ws, run_id, "alice/my-adapter", token=token, merged=False, progress=cb)
    push_dataset(ws, version_id, "alice/my-data", token=token)
    list_publications(ws, project_id)

Modules: auth (tokens, accounts), repos (names), model_card (README.md of a model repo), hub_errors (plain
messages, retries), push (the pushes and the `publication` rows). Heavy libraries are imported inside functions,
so importing this package is cheap. The token is never stored, logged, written into a file or a message.
"""

from studio.publish.auth import resolve_token, whoami
from studio.publish.model_card import model_card
from studio.publish.push import Publication, list_publications, push_adapter, push_dataset
from studio.publish.repos import validate_repo_id

__all__ = ["Publication", "list_publications", "model_card", "push_adapter", "push_dataset", "resolve_token",
           "validate_repo_id", "whoami"]
