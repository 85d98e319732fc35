"""Hub failures during a push, as plain HubErrors; transient ones (429, 5xx, dropped connections) retried.

    result = with_retries(lambda: api.create_repo(...), ctx)     # retries, then raises a plain HubError

Why a module of its own: every step of a push (whoami, create_repo, the upload commit, push_to_hub) fails in
the same few ways, and each way needs the same advice. Messages never quote the token, and name the endpoint
by host only (a mirror URL might carry credentials).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from studio.errors import HubError
from studio.hub_client import hub_timeout_s

T = TypeVar("T")

BACKOFF_S: tuple[float, ...] = (2.0, 5.0, 15.0)
"""Waits before the 2nd, 3rd and 4th attempt of a step that failed transiently (tests set these to 0)."""
MAX_RETRY_AFTER_S = 60.0
"""A Retry-After longer than this is not waited out: the user gets the message at once instead."""
TOKENS_PAGE = "https://huggingface.co/settings/tokens"
NOTHING_LOST = "Nothing was published and nothing in the studio changed"


@dataclass(frozen=True)
class PushContext:
    """What a message needs to name: the repo, its kind, the signed-in account, the endpoint."""

    repo_id: str
    repo_type: str = "model"
    account: str = ""
    endpoint: str | None = None

    @property
    def where(self) -> str:
        from huggingface_hub import constants

        endpoint = self.endpoint or constants.ENDPOINT  # HF_ENDPOINT when no endpoint was given
        host = urlsplit(endpoint).netloc.rsplit("@", 1)[-1]
        return "the Hugging Face Hub" if host in ("", "huggingface.co") else f"the Hub at {host}"

    @property
    def what(self) -> str:
        return f"the {'dataset' if self.repo_type == 'dataset' else 'model'} repo {self.repo_id}"

    @property
    def outcome(self) -> str:
        return f"{self.what} was not pushed" if self.repo_id else "the token could not be checked"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) if response is not None else None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes/contexts (datasets and huggingface_hub re-raise wrapped errors)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _http_error(exc: BaseException) -> BaseException | None:
    from huggingface_hub.errors import HfHubHTTPError

    return next((e for e in _chain(exc) if isinstance(e, HfHubHTTPError) and _status(e) is not None), None)


def _network_error(exc: BaseException) -> BaseException | None:
    import httpx2

    kinds = (httpx2.TransportError, httpx2.TimeoutException, ConnectionError, TimeoutError)
    return next((e for e in _chain(exc) if isinstance(e, kinds)), None)


def _timed_out(exc: BaseException) -> bool:
    import httpx2

    return any(isinstance(e, httpx2.TimeoutException | TimeoutError) for e in _chain(exc))


def is_transient(exc: BaseException) -> bool:
    """Worth another try: rate limit, a server error, or a connection that failed or dropped."""
    if isinstance(exc, HubError):
        return False
    http = _http_error(exc)
    if http is not None:
        status = _status(http) or 0
        return status in (408, 429) or status >= 500
    return _network_error(exc) is not None


def retry_after(exc: BaseException) -> float | None:
    """The server's Retry-After in seconds, when it sent one."""
    http = _http_error(exc)
    if http is None:
        return None
    value = http.response.headers.get("Retry-After")  # type: ignore[attr-defined]
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def translate(exc: BaseException, ctx: PushContext) -> HubError | None:
    """A plain HubError for the ways a push fails; None for anything else (a bug: let it surface)."""
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(exc, HubError):
        return exc
    where, outcome = _cap(ctx.where), ctx.outcome
    if any(isinstance(e, OfflineModeIsEnabled) for e in _chain(exc)):
        return HubError(f"Offline mode is on (HF_HUB_OFFLINE is set), so {outcome}. Unset HF_HUB_OFFLINE and try "
                        f"again. {NOTHING_LOST}.")
    http = _http_error(exc)
    if http is not None:
        status = _status(http)
        if status == 401:
            return HubError(f"{where} rejected the access token (it is invalid, expired or revoked), so {outcome}. "
                            f"Create a token with write access at {TOKENS_PAGE}, set HF_TOKEN to it (or sign in "
                            f"again), and try again. {NOTHING_LOST}.")
        if status == 403 and ctx.repo_id:
            who = f"the account {ctx.account}" if ctx.account else "the signed-in account"
            return HubError(f"{where} refused to let {who} write to {ctx.what}: it belongs to another user or to an "
                            "organization the account may not write to, or the token is read-only. Pick a repo "
                            f"under your own name ({ctx.account or 'your-name'}/...), or use a token with write "
                            f"access ({TOKENS_PAGE}). {NOTHING_LOST}.")
        if status == 429:
            return HubError(f"{where} is rate-limiting this account, so {outcome} (it was tried several times). "
                            f"Wait a few minutes and try again. {NOTHING_LOST}.")
        if status is not None and status >= 500:
            return HubError(f"{where} is having trouble (HTTP {status}), so {outcome} (it was tried several "
                            f"times). Try again in a few minutes. {NOTHING_LOST}.")
        if ctx.repo_id and (isinstance(http, RepositoryNotFoundError) or status == 404):
            return HubError(f"{_cap(ctx.what)} was not found on {ctx.where} and could not be created. Check the "
                            f"name and that the token may create repos there. {NOTHING_LOST}.")
        return HubError(f"{where} refused the request (HTTP {status}: {_first_line(http)}), so {outcome}. Check "
                        f"the repo name and the token, and try again. {NOTHING_LOST}.")
    if _timed_out(exc):
        # Unlike a refused or dropped request, the server may still apply one that timed out: say so.
        return HubError(f"{where} did not answer within {hub_timeout_s():g} s (it was tried several times), so "
                        f"{ctx.what if ctx.repo_id else 'the request'} may or may not have been updated. Wait a few "
                        "minutes and publish again: files that are already there are not uploaded twice. Nothing "
                        "in the studio changed (a publication is recorded only once the Hub confirms it).")
    if _network_error(exc) is not None:
        return HubError(f"{where} cannot be reached from this machine (the connection failed or dropped, also on "
                        f"retrying), so {outcome}. Check the internet connection (and HTTPS_PROXY if you use a "
                        f"proxy), then try again. {NOTHING_LOST}.")
    return None


def _first_line(exc: BaseException) -> str:
    from studio.data.versions import public_text

    text = str(exc).strip()
    return public_text(text.splitlines()[0] if text else type(exc).__name__)[:200]


def with_retries(step: Callable[[], T], ctx: PushContext, *, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[int, float], None] | None = None) -> T:
    """Run `step`; on a transient failure wait (BACKOFF_S, or the server's Retry-After) and run it again.

    `step` must be safe to repeat (create_repo with exist_ok, a commit of the same files). After the last try,
    or on a failure that is not transient, the error is translated (an untranslatable one propagates as is).
    """
    attempt = 0
    while True:
        try:
            return step()
        except Exception as exc:
            hint = retry_after(exc)
            if attempt < len(BACKOFF_S) and is_transient(exc) and (hint is None or hint <= MAX_RETRY_AFTER_S):
                wait = BACKOFF_S[attempt] if hint is None else hint
                attempt += 1
                if on_retry is not None:
                    on_retry(attempt, wait)
                sleep(wait)
                continue
            translated = translate(exc, ctx)
            if translated is None or translated is exc:
                raise
            raise translated from None
