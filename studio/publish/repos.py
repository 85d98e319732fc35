"""Repo names checked before any request: the Hub's own rules, with a plain message for each way to break them.

    validate_repo_id("my-adapter", default_namespace="alice")   -> "alice/my-adapter"
    validate_repo_id("https://huggingface.co/alice/x", None)    -> "alice/x"  (a pasted page address works too)

Why here and not on the Hub: a name the Hub refuses would otherwise fail after the repo was half set up, and
the Hub's 400 answer does not say which rule was broken.
"""

from __future__ import annotations

import re

from studio.errors import HubError

MAX_NAME = 96
_ALLOWED = re.compile(r"^[A-Za-z0-9._-]+$")
_PAGE_PREFIX = re.compile(r"^(?:https?://)?(?:www\.)?huggingface\.co/(?:(?:datasets|spaces|models)/)?", re.I)
_EXAMPLE = "like alice/support-replies-lora"


def _check_part(part: str, what: str, text: str) -> None:
    if not part:
        raise HubError(f"The repo name '{text}' has an empty {what}. Use owner/name, {_EXAMPLE}.")
    if len(part) > MAX_NAME:
        raise HubError(f"The {what} '{part[:20]}…' is {len(part)} characters long; the Hub allows at most "
                       f"{MAX_NAME}. Pick a shorter one.")
    if not _ALLOWED.match(part):
        bad = sorted({c for c in part if not re.match(r"[A-Za-z0-9._-]", c)})
        shown = " ".join(repr(c) for c in bad)
        raise HubError(f"The {what} '{part}' contains {shown}: the Hub allows only letters, digits, '-', '_' "
                       f"and '.'. For example {_EXAMPLE}.")
    if "--" in part or ".." in part:
        raise HubError(f"The {what} '{part}' contains '--' or '..', which the Hub does not allow. Use a single "
                       "'-' or '.'.")
    if part[0] in "-." or part[-1] in "-.":
        raise HubError(f"The {what} '{part}' starts or ends with '-' or '.', which the Hub does not allow.")
    if part.lower().endswith(".git"):
        raise HubError(f"The {what} '{part}' ends with '.git', which the Hub does not allow.")


def validate_repo_id(text: str, default_namespace: str | None) -> str:
    """`namespace/name` following the Hub's rules, or HubError saying which rule `text` breaks.

    A bare `name` goes under `default_namespace` (the signed-in account); without one it is an error.
    """
    raw = str(text or "").strip()
    value = _PAGE_PREFIX.sub("", raw).rstrip("/")
    if not value:
        raise HubError(f"No repo name was given. Use owner/name, {_EXAMPLE}.")
    parts = value.split("/")
    if len(parts) > 2:
        raise HubError(f"'{raw}' has {len(parts) - 1} slashes; a repo name is owner/name with one, {_EXAMPLE}.")
    if len(parts) == 1:
        if not default_namespace:
            raise HubError(f"'{raw}' names no owner, and no signed-in account is known to put it under. Write "
                           f"owner/name, {_EXAMPLE}.")
        parts = [default_namespace, parts[0]]
    namespace, name = parts
    _check_part(namespace, "owner (the part before '/')", raw)
    _check_part(name, "repo name", raw)
    return f"{namespace}/{name}"


def with_suffix(repo_id: str, suffix: str) -> str:
    """`repo_id` + suffix (the merged model's repo), checked against the same rules."""
    namespace, name = repo_id.split("/", 1)
    try:
        return validate_repo_id(f"{namespace}/{name}{suffix}", None)
    except HubError as exc:
        raise HubError(f"The merged model goes to its own repo, {namespace}/{name}{suffix}, and that name does not "
                       f"work: {exc} Pick a shorter repo name.") from None
