"""Which token a push uses, and whose account it is. The token is passed along, never kept.

Order: an explicit token (the Space's OAuth login, a CLI --token-env variable), else HF_TOKEN, else the
huggingface_hub login (`hf auth login`). Nothing here logs, stores or prints a token: messages name the
account, never the token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from studio.errors import HubError
from studio.hub_client import install_timeouts
from studio.publish.hub_errors import TOKENS_PAGE, PushContext, with_retries

NO_TOKEN = (f"No Hugging Face access token was found, so nothing can be pushed. Create one with write access at "
            f"{TOKENS_PAGE} and set HF_TOKEN to it, or run `hf auth login`; in the web studio on a Space, use "
            "'Sign in with Hugging Face'.")


@dataclass(frozen=True)
class Account:
    """The account a token belongs to: its name, its organizations, and the token's role when the Hub says it."""

    name: str
    orgs: tuple[str, ...] = ()
    role: str = ""
    """'read', 'write', 'fineGrained' for access tokens; '' when unknown (OAuth, older servers)."""

    def may_write_to(self, namespace: str) -> bool:
        return namespace.lower() in {n.lower() for n in (self.name, *self.orgs)}


def resolve_token(explicit: str | None = None) -> str | None:
    """The token to push with: `explicit`, else $HF_TOKEN, else the saved huggingface_hub login; None if none."""
    if explicit and explicit.strip():
        return explicit.strip()
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env
    from huggingface_hub import get_token

    saved = get_token()
    return saved.strip() if saved and saved.strip() else None


def require_token(explicit: str | None = None) -> str:
    token = resolve_token(explicit)
    if not token:
        raise HubError(NO_TOKEN)
    return token


def account(token: str, endpoint: str | None = None) -> Account:
    """Ask the Hub whose `token` this is (retrying transient failures); HubError when it is refused."""
    from huggingface_hub import HfApi

    if not token:
        raise HubError(NO_TOKEN)
    install_timeouts()  # every push starts here: no Hub request of it may wait forever
    api = HfApi(endpoint=endpoint, token=token)
    ctx = PushContext(repo_id="", endpoint=endpoint)
    info = with_retries(lambda: api.whoami(token=token), ctx)
    name = str(info.get("name") or "")
    if not name:
        raise HubError(f"{ctx.where.capitalize()} did not say which account the token belongs to. Use a user "
                       f"access token ({TOKENS_PAGE}).")
    orgs = tuple(str(o.get("name")) for o in info.get("orgs") or [] if isinstance(o, dict) and o.get("name"))
    auth = info.get("auth") or {}
    access = auth.get("accessToken") if isinstance(auth, dict) else None
    role = str(access.get("role") or "") if isinstance(access, dict) else ""
    return Account(name=name, orgs=orgs, role=role)


def whoami(token: str, endpoint: str | None = None) -> str:
    """The username the token belongs to (HubError on 401, no connection, ...)."""
    return account(token, endpoint).name
