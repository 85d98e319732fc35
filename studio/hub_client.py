"""The process's huggingface_hub HTTP client, with bounded waits.

huggingface_hub's client waits forever by default (`timeout=None`): a Hub that takes a request and never answers
would leave a push on "Uploading…", or a dataset import on "Loading…", for good. `install_timeouts()` bounds every
wait (connect, each read and each write: a stall, not the whole upload of a large file); a timeout is then an
error the caller can retry and report. The client is shared by the whole process, so one call covers every
later request.
"""

from __future__ import annotations

import os

DEFAULT_HUB_TIMEOUT_S = 120.0
_installed: float | None = None


def hub_timeout_s() -> float:
    """How long one Hub request may wait for the server (SEED_STUDIO_HUB_TIMEOUT, seconds; default 120)."""
    try:
        return max(0.1, float(os.environ.get("SEED_STUDIO_HUB_TIMEOUT", "") or DEFAULT_HUB_TIMEOUT_S))
    except ValueError:
        return DEFAULT_HUB_TIMEOUT_S


def install_timeouts() -> None:
    """Make huggingface_hub's client give up on a silent server after `hub_timeout_s()` (idempotent)."""
    global _installed
    seconds = hub_timeout_s()
    if _installed == seconds:
        return
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory  # keeps the library's own request hooks

    def bounded() -> httpx2.Client:
        client = default_client_factory()
        client.timeout = httpx2.Timeout(seconds, connect=min(seconds, 30.0), pool=None)
        return client

    set_client_factory(bounded)
    _installed = seconds
