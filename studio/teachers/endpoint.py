"""`EndpointTeacher`: any OpenAI-compatible chat-completions server as a teacher.

Works with vLLM, TGI, `transformers serve`, Ollama, the llama.cpp server, OpenAI and Hugging Face Inference
Providers, through `huggingface_hub.InferenceClient`. Conversations go out concurrently (bounded by
`concurrency`) and the texts come back in input order. Transient failures (refused or dropped connections,
timeouts, HTTP 408/429/5xx) are retried with exponential backoff; anything else fails fast with a
`TeacherError` that says what happened and what to do.

Structured output: given a JSON schema, requests carry `response_format` ({"type": "json_schema", ...}),
which vLLM, the llama.cpp server, Ollama, OpenAI and HF Inference Providers honour. A server that refuses
it (`transformers serve` answers 400/422) is asked once more without it; from then on this teacher sends
the prompt alone, and `describe()["structured"]` says so, with the server's reason, for the batch record.

The API key lives only in memory: it is never part of `describe()`, `repr()`, log lines or error messages
(server error bodies that echo it are scrubbed).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from studio.errors import TeacherError
from studio.teachers.base import (
    STRUCTURED_PROMPT,
    STRUCTURED_RESPONSE_FORMAT,
    ChatMessages,
    Completion,
    GenerationParams,
    JsonSchema,
    Schemas,
    schema_for,
)

log = logging.getLogger(__name__)

API_KEY_ENV_VARS = ("SEED_STUDIO_TEACHER_API_KEY", "OPENAI_API_KEY", "HF_TOKEN")
"""Where `api_key_from_env` looks, in order, when no key is given explicitly."""

MAX_CONCURRENCY = 64
"""huggingface_hub's shared HTTP client pools 100 connections; more workers would wait for a free one and
report it as a timeout."""

_TEST_TIMEOUT_CAP = 15.0
"""`test_connection` must answer quickly in the UI, whatever the generation timeout is."""

_SECRET_QUERY_WORDS = ("key", "token", "secret", "password", "passwd", "auth", "sig", "credential")
_MAX_DETAIL = 300
_REFUSAL_STATUSES = (400, 404, 415, 422, 501)
"""What servers answer a request field they do not support; the request is tried again without it."""
"""Server error bodies are quoted in messages, cut to this many characters."""


def api_key_from_env(explicit: str | None = None) -> str | None:
    """The explicit key if given, else the first set of SEED_STUDIO_TEACHER_API_KEY, OPENAI_API_KEY, HF_TOKEN."""
    if explicit and explicit.strip():
        return explicit.strip()
    for name in API_KEY_ENV_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


@dataclass(frozen=True)
class _Urls:
    display: str
    """What users and provenance see: no userinfo, no secret-looking query values, no fragment."""
    api_base: str
    """The URL handed to InferenceClient, ending in /v1 (or the user's own .../chat/completions)."""
    models: str
    """GET here lists the served models."""
    secrets: tuple[str, ...]
    """Parts of the user's URL that must never be shown (password, secret query values)."""


def _split_url(base_url: str) -> _Urls:
    raw = (base_url or "").strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TeacherError(f"The endpoint URL must start with http:// or https:// and name a host, like "
                           f"http://localhost:8000/v1 (got {_shorten(_strip_userinfo(raw)) or 'nothing'}).")
    secrets = [part for part in (parts.username, parts.password) if part]
    query = parse_qsl(parts.query, keep_blank_values=True)
    public_query = []
    for name, value in query:
        if any(word in name.lower() for word in _SECRET_QUERY_WORDS):
            if value:
                secrets.append(value)
        else:
            public_query.append((name, value))

    # InferenceClient appends /chat/completions to a path ending in /v1 and /v1/chat/completions to anything
    # else, so `host:port`, `host:port/v1` and `host:port/v1/` all reach the same route. We normalise here
    # ourselves as well, because the models list (for an empty model name) lives next to it at /v1/models.
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        api_path = path
        models_path = path[: -len("/chat/completions")] + "/models"
        display_path = path[: -len("/chat/completions")]
    else:
        api_path = path if path.endswith("/v1") else path + "/v1"
        models_path = api_path + "/models"
        display_path = path
    netloc = parts.netloc
    api_base = urlunsplit((parts.scheme, netloc, api_path, parts.query, ""))
    models = urlunsplit((parts.scheme, netloc, models_path, parts.query, ""))
    display = urlunsplit((parts.scheme, _host_port(parts), display_path, urlencode(public_query), ""))
    return _Urls(display=display, api_base=api_base, models=models, secrets=tuple(secrets))


def _host_port(parts: Any) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


def _strip_userinfo(url: str) -> str:
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    return f"{head}://{netloc.rpartition('@')[2]}{slash}{tail}"


def _shorten(text: str, limit: int = _MAX_DETAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Abort(Exception):
    """Another conversation of the same call already failed: stop without sending more requests."""


class _Failure(Exception):
    """One request failed. `retryable` says whether another attempt may help."""

    def __init__(self, kind: str, detail: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        """"refused", "connection", "timeout", "http", "garbage"."""
        self.detail = detail
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class EndpointTeacher:
    """Writes completions through an OpenAI-compatible chat-completions server; see `base.Teacher`.

    `base_url` may be `http://host:port`, `http://host:port/v1` (with or without a trailing slash) or the
    full `.../v1/chat/completions` URL. An empty `model` asks the server's `/v1/models` for its first model
    (servers that list none get the request without a model name of ours; InferenceClient then sends
    "dummy", which single-model servers like llama.cpp ignore). At most `concurrency` requests are in
    flight at once; each waits `timeout` seconds and is retried `retries` times on transient failures,
    after `backoff`, 2×`backoff`, 4×`backoff`… seconds (plus a little jitter).
    """

    kind = "endpoint"

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise TeacherError(f"Concurrency must be at least 1 and at most {MAX_CONCURRENCY} (got {concurrency}).")
        if timeout <= 0:
            raise TeacherError(f"The timeout must be more than 0 seconds (got {timeout:g}).")
        if retries < 0:
            raise TeacherError(f"Retries cannot be negative (got {retries}).")
        if backoff < 0:
            raise TeacherError(f"Backoff cannot be negative (got {backoff:g}).")
        try:
            self._urls = _split_url(base_url)
        except TeacherError as error:  # the URL field may hold a pasted key by mistake
            raise TeacherError(str(error).replace(api_key, "***") if api_key else str(error)) from None
        self.base_url = self._urls.display
        self.model = (model or "").strip()
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.retries = retries
        self.backoff = float(backoff)
        self._api_key = api_key.strip() if api_key and api_key.strip() else None
        self._resolved_model: str | None = self.model or None
        self._model_checked = bool(self.model)
        self._model_lock = threading.Lock()
        self._client = self._make_client(self.timeout)
        self._schema_refused = ""
        """Why the server refused response_format ("" while it has not); then only the prompt asks."""
        self._schema_misses = 0
        """Finished answers to a response_format request that did not fit the schema."""
        self._structured = ""

    def __repr__(self) -> str:
        return f"EndpointTeacher(base_url={self.base_url!r}, model={self.model_name!r})"

    @property
    def model_name(self) -> str:
        """The model requests ask for: the given one, else the one the server listed first ("" if none)."""
        return self._resolved_model or ""

    # --- Teacher protocol -------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        out = {"kind": self.kind, "model": self.model_name, "base_url": self.base_url}
        if self._structured:
            out["structured"] = self._structured
        if self._schema_refused:
            out["response_format_refused"] = self._schema_refused
        if self._schema_misses:
            out["response_format_misses"] = self._schema_misses
        return out

    def generate(self, conversations: list[ChatMessages], params: GenerationParams, *,
                 schema: Schemas = None) -> list[str]:
        """One `Completion` per conversation, in input order; raises `TeacherError` when the call cannot be served.

        A reply with empty content gives "" for that conversation (the caller records a parse failure).
        With a `schema` the requests carry `response_format` until the server refuses it (see the module).
        """
        if not conversations:
            return []
        if params.max_new_tokens < 1:
            raise TeacherError(f"Max new tokens must be at least 1 (got {params.max_new_tokens}).")
        model = self._resolve_model(self.timeout)
        abort = threading.Event()
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations)),
                                  thread_name_prefix="endpoint-teacher")
        failed = False
        try:
            futures: list[Future[str]] = [
                pool.submit(self._complete_or_abort, conversation,
                            self._request_kwargs(params, model, index, schema_for(schema, index)), abort)
                for index, conversation in enumerate(conversations)
            ]
            wait(futures, return_when=FIRST_EXCEPTION)
            errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception()]
            if errors:
                failed = True
                # Stop queued and backing-off requests at once: a dead or refusing server should not get
                # the rest of the batch, and the user should not wait for it.
                abort.set()
                raise next((e for e in errors if not isinstance(e, _Abort)), errors[0])
            return [f.result() for f in futures]
        except BaseException:
            failed = True
            abort.set()
            raise
        finally:
            # After a failure, requests still in flight end on their own (within the timeout) in the background.
            pool.shutdown(wait=not failed, cancel_futures=True)

    # --- connection check -------------------------------------------------------------------------

    def test_connection(self) -> str:
        """Send one tiny request; a short message on success, `TeacherError` with the reason otherwise."""
        timeout = min(self.timeout, _TEST_TIMEOUT_CAP)
        client = self._make_client(timeout)
        model = self._resolve_model(timeout)
        kwargs: dict[str, Any] = {"model": model, "max_tokens": 4, "temperature": 0.0}
        conversation: ChatMessages = [{"role": "user", "content": "Say OK."}]
        started = time.monotonic()
        self._complete_with_retries(client, conversation, kwargs, threading.Event(), 0, timeout=timeout)
        elapsed = time.monotonic() - started
        who = f"model {model}" if model else "the server's default model"
        return f"Connected to {self.base_url}: {who} answered in {elapsed:.1f} s."

    # --- internals --------------------------------------------------------------------------------

    def _make_client(self, timeout: float) -> Any:
        from huggingface_hub import InferenceClient

        # Without a key of ours, InferenceClient would send the locally saved Hugging Face token (HF_TOKEN or
        # `hf auth login`) to whatever server this is; a None header value makes it send no Authorization.
        headers = None if self._api_key else {"authorization": None}
        return InferenceClient(base_url=self._urls.api_base, api_key=self._api_key, timeout=timeout,
                               headers=headers)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _resolve_model(self, timeout: float) -> str | None:
        """The model to ask for; with none given, the first id the server lists (once per teacher)."""
        with self._model_lock:
            if not self._model_checked:
                self._resolved_model = self._first_listed_model(min(timeout, _TEST_TIMEOUT_CAP))
                self._model_checked = True
                if self._resolved_model:
                    log.info("Endpoint %s: using model %s (first in its list)", self.base_url,
                             self._resolved_model)
            return self._resolved_model

    def _first_listed_model(self, timeout: float) -> str | None:
        from huggingface_hub.utils import get_session

        # Best effort: an unreachable or refusing server is reported by the chat request that follows,
        # with retries and a proper message; here it only means "no model name known".
        try:
            response = get_session().get(self._urls.models, headers=self._auth_headers(), timeout=timeout)
            if response.status_code != 200:
                return None
            data = response.json().get("data")
        except Exception as error:
            log.debug("Endpoint %s: no model list (%s)", self.base_url, self._scrub(type(error).__name__))
            return None
        if isinstance(data, list):
            for entry in data:
                if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"].strip():
                    return entry["id"]
        return None

    def _request_kwargs(self, params: GenerationParams, model: str | None, index: int,
                        schema: JsonSchema | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": model, "max_tokens": params.max_new_tokens}
        if schema is not None and not self._schema_refused:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        if params.greedy:
            kwargs["temperature"] = 0.0
        else:
            kwargs["temperature"] = params.temperature
            kwargs["top_p"] = params.top_p
        if params.seed is not None:
            # One seed per conversation: the same seed on every request would make a server that honours
            # seeds return the same text for repeated prompts, which kills the diversity sampling is for.
            kwargs["seed"] = params.seed + index
        return kwargs

    def _complete_or_abort(self, conversation: ChatMessages, kwargs: dict[str, Any], abort: threading.Event) -> str:
        try:
            return self._complete_with_retries(self._client, conversation, kwargs, abort, self.retries)
        except BaseException:
            # Set before this future completes: otherwise a pool thread can take the next queued
            # conversation and send it in the moment before the batch's own thread sees the failure.
            abort.set()
            raise

    def _complete_with_retries(self, client: Any, conversation: ChatMessages, kwargs: dict[str, Any],
                               abort: threading.Event, retries: int, *, timeout: float | None = None) -> str:
        attempts = retries + 1
        for attempt in range(attempts):
            if abort.is_set():
                raise _Abort()
            if self._schema_refused and "response_format" in kwargs:  # refused meanwhile, by another request
                kwargs = {k: v for k, v in kwargs.items() if k != "response_format"}
            try:
                return self._complete_once(client, conversation, kwargs)
            except _Failure as failure:
                if "response_format" in kwargs and failure.status in _REFUSAL_STATUSES:
                    # The server may not know response_format: the same request without it tells.
                    kwargs = {k: v for k, v in kwargs.items() if k != "response_format"}
                    answer = self._complete_with_retries(client, conversation, kwargs, abort, retries,
                                                         timeout=timeout)
                    self._note_refusal(failure)
                    return answer
                if not failure.retryable or attempt == attempts - 1:
                    raise self._teacher_error(failure, attempts=attempt + 1,
                                              timeout=timeout or self.timeout) from None
                delay = self.backoff * (2**attempt) + random.uniform(0, self.backoff * 0.25)
                if failure.retry_after is not None:
                    delay = max(delay, min(failure.retry_after, 60.0))
                log.warning("Endpoint %s: %s; retry %d of %d in %.1f s", self.base_url,
                            self._scrub(_shorten(failure.detail, 120)), attempt + 1, retries, delay)
                if abort.wait(delay):
                    raise _Abort() from None
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _complete_structured(self, conversation: ChatMessages, kwargs: dict[str, Any]) -> Completion:
        """A request carrying response_format, posted as the OpenAI API defines it.

        Not through InferenceClient: for a URL it rewrites {"type": "json_schema", ...} into TGI's
        {"type": "json_object", "value": ...}, which vLLM, Ollama and the llama.cpp server read as plain
        JSON mode, schema dropped. Same session, headers and error handling as the unstructured path.
        """
        from huggingface_hub.utils import get_session

        body = {k: v for k, v in kwargs.items() if v is not None}
        body["messages"] = conversation
        response = get_session().post(self._chat_url(), json=body, headers=self._auth_headers(),
                                      timeout=self.timeout)
        if response.status_code >= 400:
            status = response.status_code
            error = SimpleNamespace(response=response)
            raise _Failure("http", _server_detail(error), retryable=status in (408, 429) or status >= 500,
                           status=status, retry_after=_retry_after(error))
        try:
            output = response.json()
        except ValueError as error:
            raise _Failure("garbage", "the reply is not JSON", retryable=False) from error
        choices = output.get("choices") if isinstance(output, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Failure("garbage", "the reply has no 'choices'", retryable=False)
        content = _content_of(SimpleNamespace(choices=[SimpleNamespace(message=choices[0].get("message"))]))
        self._structured = STRUCTURED_RESPONSE_FORMAT
        finish = "length" if choices[0].get("finish_reason") == "length" else "stop"
        if finish == "stop" and not _fits(kwargs["response_format"]["json_schema"]["schema"], content):
            # Accepted but not enforced (`transformers serve` reads past the field): say so in the record.
            with self._model_lock:
                self._schema_misses += 1
        return Completion(content, finish, STRUCTURED_RESPONSE_FORMAT)

    def _chat_url(self) -> str:
        parts = urlsplit(self._urls.api_base)
        path = parts.path if parts.path.endswith("/chat/completions") else parts.path + "/chat/completions"
        return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))

    def _note_refusal(self, failure: _Failure) -> None:
        if not self._schema_refused:
            reason = self._scrub(_shorten(failure.detail, 160)) or "no reason given"
            self._schema_refused = f"HTTP {failure.status}: {reason}"
            log.warning("Endpoint %s refused response_format (%s); asking by prompt only from now on.",
                        self.base_url, self._schema_refused)
        self._structured = STRUCTURED_PROMPT

    def _complete_once(self, client: Any, conversation: ChatMessages, kwargs: dict[str, Any]) -> str:
        import httpx2
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        try:
            if "response_format" in kwargs:
                return self._complete_structured(conversation, kwargs)
            output = client.chat_completion(conversation, **kwargs)
        except (InferenceTimeoutError, httpx2.TimeoutException) as error:
            raise _Failure("timeout", "timed out", retryable=True) from error
        except HfHubHTTPError as error:
            status = error.response.status_code if error.response is not None else None
            retryable = status is not None and (status in (408, 429) or status >= 500)
            raise _Failure("http", _server_detail(error), retryable=retryable, status=status,
                           retry_after=_retry_after(error)) from error
        except httpx2.ConnectError as error:
            refused = "refused" in str(error).lower()
            raise _Failure("refused" if refused else "connection", str(error), retryable=True) from error
        except httpx2.TransportError as error:  # dropped connection, broken HTTP, proxy trouble
            raise _Failure("connection", f"{type(error).__name__}: {error}", retryable=True) from error
        except json.JSONDecodeError as error:
            raise _Failure("garbage", "the reply is not JSON", retryable=False) from error
        except (ValueError, TypeError, KeyError, AttributeError) as error:  # JSON, but not chat-completions JSON
            raise _Failure("garbage", f"{type(error).__name__}: {error}", retryable=False) from error
        structured = STRUCTURED_RESPONSE_FORMAT if "response_format" in kwargs else STRUCTURED_PROMPT
        if "response_format" in kwargs:
            self._structured = structured
        return Completion(_content_of(output), _finish_reason_of(output), structured)

    def _teacher_error(self, failure: _Failure, *, attempts: int, timeout: float) -> TeacherError:
        url = self.base_url
        tries = f" ({attempts} tries)" if attempts > 1 else ""
        detail = self._scrub(_shorten(failure.detail))
        status = failure.status
        if failure.kind == "refused":
            text = (f"Could not connect to {url}: the connection was refused{tries}. Check that the server is "
                    "running and that the host and port are right.")
        elif failure.kind == "connection":
            text = (f"Could not talk to {url}: the connection failed{tries} ({detail}). Check the URL, that "
                    "the server is running, and any proxy or firewall in between.")
        elif failure.kind == "timeout":
            text = (f"{url} timed out after {timeout:g} s{tries}. The server may be overloaded or the model "
                    "too slow for this length: raise the timeout, lower max new tokens, or lower concurrency.")
        elif failure.kind == "garbage":
            text = (f"{url} did not answer like an OpenAI-compatible chat endpoint ({detail}). Check that the URL "
                    "points at the server's OpenAI-compatible API (usually ending in /v1).")
        elif status == 401:
            if self._api_key:
                text = (f"The endpoint refused the API key (HTTP 401). Check the key, or that it belongs to "
                        f"{url}.")
            else:
                text = f"The endpoint at {url} requires an API key (HTTP 401). Enter one and try again."
        elif status == 403:
            text = (f"The endpoint at {url} refused access (HTTP 403): {detail}. The API key may lack permission "
                    "for this model.")
        elif status == 404:
            if self.model_name:
                text = (f"Model '{self.model_name}' not found at {url} (HTTP 404): {detail}. Check the model "
                        f"name (the server lists its models at {self._safe_models_url()}) and the URL.")
            else:
                text = (f"{url} has no OpenAI-compatible chat endpoint (HTTP 404): {detail}. Check the URL "
                        "(usually http://host:port/v1) and enter a model name.")
        elif status == 429:
            text = (f"{url} kept answering HTTP 429 (rate limited){tries}: {detail}. Lower the concurrency, "
                    "or wait and try again.")
        elif status is not None and status >= 500:
            text = (f"{url} answered HTTP {status}{tries}: {detail}. The server failed; check its logs, then "
                    "try again.")
        elif status == 408:
            text = f"{url} answered HTTP 408 (request timeout){tries}. Lower max new tokens or the concurrency."
        else:
            hint = ("Enter the model name the server serves." if not self.model_name else
                    "Check the model name and the decoding settings.")
            text = f"The endpoint at {url} rejected the request (HTTP {status}): {detail}. {hint}"
        return TeacherError(self._scrub(text))

    def _safe_models_url(self) -> str:
        return self._scrub(_strip_userinfo(self._urls.models).split("?", 1)[0])

    def _scrub(self, text: str) -> str:
        """Blank out the API key and URL secrets wherever a message (often a server's echo) contains them."""
        for secret in (self._api_key, *self._urls.secrets):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


def _content_of(output: Any) -> str:
    choices = getattr(output, "choices", None)
    if not isinstance(choices, list) or not choices:
        if isinstance(output, dict):
            keys = sorted(k for k, v in output.items() if v is not None)[:8]
            raise _Failure("garbage", f"the reply has no 'choices', only {keys}", retryable=False)
        raise _Failure("garbage", "the reply has no 'choices'", retryable=False)
    message = getattr(choices[0], "message", None)
    if isinstance(message, dict):
        content = message.get("content")
    elif message is not None and hasattr(message, "content"):
        content = message.content
    else:
        raise _Failure("garbage", "the first choice has no 'message' object", retryable=False)
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
        return "".join(_part_text(part) for part in content)
    raise _Failure("garbage", f"message content is a {type(content).__name__}", retryable=False)


def _fits(schema: JsonSchema, content: str) -> bool:
    """Whether an answer fits its schema; True where xgrammar is not installed (nothing to check with)."""
    from studio.teachers import grammar

    return not grammar.available() or grammar.schema_valid(schema, content)


def _finish_reason_of(output: Any) -> str:
    """"length" when the server says the answer hit max_tokens, else "stop"."""
    choices = getattr(output, "choices", None) or []
    reason = getattr(choices[0], "finish_reason", None) if choices else None
    return "length" if reason == "length" else "stop"


def _part_text(part: Any) -> str:
    if isinstance(part, dict):
        text = part.get("text")
        return text if isinstance(text, str) else ""
    return part if isinstance(part, str) else ""


def _server_detail(error: Any) -> str:
    """The server's own explanation: OpenAI/vLLM `{"error": {"message"}}`, TGI `{"error"}`, FastAPI `{"detail"}`."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    text = ""
    try:
        text = response.text if response is not None else ""
    except Exception:  # a streamed body that was not read: fall back to the client's own summary
        text = ""
    found: Iterable[Any] = ()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        found = (err.get("message") if isinstance(err, dict) else err, body.get("detail"), body.get("message"))
    for candidate in found:
        if isinstance(candidate, str) and candidate.strip():
            return candidate
        if candidate:
            return json.dumps(candidate)[:_MAX_DETAIL]
    if text.strip() and not text.lstrip().startswith("<"):  # plain text, not an HTML error page
        return text
    server_message = getattr(error, "server_message", None)
    if isinstance(server_message, str) and server_message.strip():
        return server_message
    return f"HTTP {status}" if status else type(error).__name__


def _retry_after(error: Any) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: rare for these servers, so fall back to our own backoff
        return None
