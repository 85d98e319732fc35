"""EndpointTeacher against real HTTP servers on loopback: `transformers serve`, and a small fault server.

The fault server is a stdlib ThreadingHTTPServer speaking just enough of the OpenAI chat-completions API to
misbehave on purpose (500s, garbage, slowness, 401, 404); it records every request and the most requests it
ever had in flight at once. Backoffs are 0.01 s so the retry tests stay fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from studio.errors import TeacherError
from studio.teachers.base import GenerationParams, Teacher
from studio.teachers.endpoint import EndpointTeacher, api_key_from_env
from tests.conftest import ROOT, free_port

KEY = "sk-test-SECRET-0123456789"
"""The API key the tests send; it must never show up in an error message, describe() or repr()."""


def convo(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


# --- the fault server ----------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body: dict[str, Any]


@dataclass
class FaultServer:
    """An OpenAI-compatible server that fails in the way `mode` says.

    Modes: "ok" (replies with a JSON echo of the request as the content), "500" (always, echoing the
    Authorization header in the body, as careless servers do), "flaky" (`fail_first` times `fail_status`,
    then "ok"), "garbage" (an HTML page with status 200), "nochoices" (JSON without choices), "slow"
    (sleeps `delay` s, then "ok"), "401" and "404" (echoing the Authorization header), "empty" (content
    null). GET /v1/models lists `models`.
    """

    mode: str = "ok"
    delay: float = 0.0
    fail_first: int = 2
    fail_status: int = 500
    models: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def chat_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    def __enter__(self) -> FaultServer:
        handler = type("BoundHandler", (_FaultHandler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True  # a handler still sleeping must not block shutdown
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()


class _FaultHandler(BaseHTTPRequestHandler):
    server_state: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        state = self.server_state
        with state._lock:
            state.seen.append(Seen("GET", self.path, self.headers.get("Authorization"), {}))
        if self.path.rstrip("/") == "/v1/models" and state.models:
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in state.models]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        state = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        auth = self.headers.get("Authorization")
        with state._lock:
            state.seen.append(Seen("POST", self.path, auth, body))
            number = len(state.chat_requests())
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._answer(state, body, auth, number)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass
        finally:
            with state._lock:
                state.in_flight -= 1

    def _answer(self, state: FaultServer, body: dict[str, Any], auth: str | None, number: int) -> None:
        mode = state.mode
        if mode == "flaky" and number <= state.fail_first:
            self._json(state.fail_status, {"error": {"message": f"overloaded ({number})"}},
                       {"Retry-After": "0"} if state.fail_status == 429 else None)
        elif mode == "500":
            self._json(500, {"error": {"message": f"internal error while serving {auth}"}})
        elif mode == "401":
            self._json(401, {"error": {"message": f"Incorrect API key provided: {auth}"}})
        elif mode == "404":
            self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist"}})
        elif mode == "garbage":
            self._raw(200, b"<html><body>Welcome to nginx!</body></html>", "text/html")
        elif mode == "nochoices":
            self._json(200, {"object": "list", "data": []})
        elif mode == "empty":
            self._json(200, _completion(None))
        else:  # ok, slow, flaky after its failures
            if state.delay:
                time.sleep(state.delay)
            echo = {k: body.get(k) for k in ("model", "temperature", "top_p", "seed", "max_tokens")}
            echo["last"] = body["messages"][-1]["content"]
            self._json(200, _completion(json.dumps(echo)))

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _completion(content: str | None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "fault",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}]}


def teacher(url: str, model: str = "fault-model", **kwargs: Any) -> EndpointTeacher:
    options: dict[str, Any] = {"api_key": KEY, "timeout": 5.0, "retries": 2, "backoff": 0.01, **kwargs}
    return EndpointTeacher(url, model, **options)


def failure(t: EndpointTeacher, conversations: int = 1) -> str:
    """Generate, expect a TeacherError, check it does not leak the key, return its message."""
    with pytest.raises(TeacherError) as info:
        t.generate([convo(f"q{i}") for i in range(conversations)], GenerationParams(max_new_tokens=8))
    message = str(info.value)
    assert KEY not in message
    assert "SECRET" not in message
    return message


# --- happy paths -------------------------------------------------------------------------------------


def test_generate_returns_texts_in_input_order_with_the_request_params() -> None:
    with FaultServer(mode="slow", delay=0.02) as server:
        t = teacher(server.url, concurrency=3)
        assert isinstance(t, Teacher)
        texts = t.generate([convo(f"question {i}") for i in range(5)],
                           GenerationParams(max_new_tokens=12, temperature=0.7, top_p=0.9, seed=5))
    echoes = [json.loads(text) for text in texts]
    assert [e["last"] for e in echoes] == [f"question {i}" for i in range(5)]
    assert {e["model"] for e in echoes} == {"fault-model"}
    assert {(e["temperature"], e["top_p"], e["max_tokens"]) for e in echoes} == {(0.7, 0.9, 12)}
    # One seed per conversation, so repeated prompts do not all get the same sample.
    assert sorted(e["seed"] for e in echoes) == [5, 6, 7, 8, 9]
    assert [e["seed"] for e in echoes] == [5, 6, 7, 8, 9]
    assert {s.authorization for s in server.chat_requests()} == {f"Bearer {KEY}"}
    assert {s.path for s in server.chat_requests()} == {"/v1/chat/completions"}


def test_greedy_sends_temperature_zero() -> None:
    with FaultServer() as server:
        (text,) = teacher(server.url).generate([convo("hi")], GenerationParams(temperature=-1.0))
    echo = json.loads(text)
    assert echo["temperature"] == 0
    assert echo["seed"] is None


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
def test_base_url_forms_all_reach_chat_completions(suffix: str) -> None:
    with FaultServer() as server:
        t = teacher(server.url + suffix)
        assert t.generate([convo("hi")], GenerationParams(max_new_tokens=4))[0]
        assert [s.path for s in server.chat_requests()] == ["/v1/chat/completions"]


def test_empty_model_uses_the_first_model_the_server_lists() -> None:
    with FaultServer(models=["served/model-a", "served/model-b"]) as server:
        t = teacher(server.url + "/v1/", model="")
        (text,) = t.generate([convo("hi")], GenerationParams(max_new_tokens=4))
        assert json.loads(text)["model"] == "served/model-a"
        assert t.describe()["model"] == "served/model-a"
        gets = [s for s in server.seen if s.method == "GET"]
        assert [(s.path, s.authorization) for s in gets] == [("/v1/models", f"Bearer {KEY}")]


def test_empty_content_is_an_empty_string_not_an_error() -> None:
    with FaultServer(mode="empty") as server:
        assert teacher(server.url).generate([convo("a"), convo("b")], GenerationParams()) == ["", ""]


def test_no_key_sends_no_authorization_even_with_a_saved_hf_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # InferenceClient would otherwise send the local Hugging Face token to any server it is pointed at.
    monkeypatch.setenv("HF_TOKEN", "hf_local_token_SECRET")
    with FaultServer(models=["listed"]) as server:
        EndpointTeacher(server.url, "").generate([convo("hi")], GenerationParams(max_new_tokens=4))
        assert [(s.method, s.authorization) for s in server.seen] == [("GET", None), ("POST", None)]


def test_concurrency_is_bounded() -> None:
    with FaultServer(mode="slow", delay=0.15) as server:
        texts = teacher(server.url, concurrency=2).generate([convo(f"c{i}") for i in range(6)],
                                                            GenerationParams(max_new_tokens=4))
        assert [json.loads(t)["last"] for t in texts] == [f"c{i}" for i in range(6)]
        assert server.max_in_flight == 2
        assert len(server.chat_requests()) == 6


def test_describe_and_repr_hold_no_secret() -> None:
    t = EndpointTeacher("http://someone:pw-SECRET@127.0.0.1:9/v1/?api_key=q-SECRET&api-version=2024",
                        "m", api_key=KEY)
    assert t.describe() == {"kind": "endpoint", "model": "m", "base_url": "http://127.0.0.1:9/v1?api-version=2024"}
    for text in (repr(t), str(t.describe())):
        assert "SECRET" not in text
        assert KEY not in text


def test_api_key_from_env_order(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEED_STUDIO_TEACHER_API_KEY", "OPENAI_API_KEY", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert api_key_from_env() is None
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    assert api_key_from_env() == "hf_x"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert api_key_from_env() == "sk-openai"
    monkeypatch.setenv("SEED_STUDIO_TEACHER_API_KEY", "studio-key")
    assert api_key_from_env() == "studio-key"
    assert api_key_from_env("explicit") == "explicit"
    assert api_key_from_env("  ") == "studio-key"


def test_connection_check_reports_success_and_failure() -> None:
    with FaultServer() as server:
        message = teacher(server.url).test_connection()
        assert message.startswith(f"Connected to {server.url}: model fault-model answered in ")
        assert len(server.chat_requests()) == 1
    with FaultServer(mode="401") as server, pytest.raises(TeacherError, match="HTTP 401") as info:
        teacher(server.url).test_connection()
    assert KEY not in str(info.value)


def test_invalid_url_is_refused_up_front() -> None:
    with pytest.raises(TeacherError, match="http:// or https://"):
        EndpointTeacher("localhost:8000", "m")
    with pytest.raises(TeacherError, match="Concurrency must be at least 1"):
        EndpointTeacher("http://localhost:8000", "m", concurrency=0)


# --- failures ----------------------------------------------------------------------------------------


def test_retries_then_succeeds_after_two_500s() -> None:
    with FaultServer(mode="flaky", fail_first=2) as server:
        (text,) = teacher(server.url, retries=3).generate([convo("hi")], GenerationParams(max_new_tokens=4))
        assert json.loads(text)["last"] == "hi"
        assert len(server.chat_requests()) == 3


def test_retries_on_429() -> None:
    with FaultServer(mode="flaky", fail_first=1, fail_status=429) as server:
        assert teacher(server.url).generate([convo("hi")], GenerationParams(max_new_tokens=4))[0]
        assert len(server.chat_requests()) == 2


def test_persistent_500_gives_up_after_the_retries() -> None:
    with FaultServer(mode="500") as server:
        message = failure(teacher(server.url, retries=2))
        assert len(server.chat_requests()) == 3
    assert "HTTP 500" in message
    assert "3 tries" in message
    assert "internal error while serving" in message  # the server's own words, with the key blanked out


def test_401_fails_at_once_and_stops_the_batch() -> None:
    with FaultServer(mode="401") as server:
        message = failure(teacher(server.url, retries=3, concurrency=1), conversations=6)
        assert len(server.chat_requests()) == 1  # no retry, and the other five were never sent
    assert "refused the API key (HTTP 401)" in message


def test_401_without_a_key_asks_for_one() -> None:
    with FaultServer(mode="401") as server:
        message = failure(EndpointTeacher(server.url, "m", retries=3))
        assert len(server.chat_requests()) == 1
    assert "requires an API key" in message


def test_404_names_the_model() -> None:
    with FaultServer(mode="404") as server:
        message = failure(teacher(server.url, model="no-such-model"))
        assert len(server.chat_requests()) == 1
    assert "Model 'no-such-model' not found" in message
    assert "/v1/models" in message


@pytest.mark.parametrize("mode", ["garbage", "nochoices"])
def test_garbage_reply_is_not_an_openai_endpoint(mode: str) -> None:
    with FaultServer(mode=mode) as server:
        message = failure(teacher(server.url))
        assert len(server.chat_requests()) == 1
    assert "did not answer like an OpenAI-compatible chat endpoint" in message


def test_slow_server_times_out_after_the_retries() -> None:
    with FaultServer(mode="slow", delay=3.0) as server:
        started = time.monotonic()
        message = failure(teacher(server.url, timeout=0.3, retries=1))
        assert time.monotonic() - started < 2.5  # two 0.3 s waits, not the server's 3 s
        assert len(server.chat_requests()) == 2
    assert "timed out after 0.3 s" in message
    assert "raise the timeout" in message


def test_refused_connection() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    message = failure(teacher(url, retries=1))
    assert "connection was refused" in message
    assert "2 tries" in message
    with pytest.raises(TeacherError, match="refused"):
        teacher(url).test_connection()


# --- a real `transformers serve` ---------------------------------------------------------------------


@dataclass
class Served:
    url: str
    model: str
    log: Path


@pytest.fixture(scope="module")
def transformers_serve(tiny_chat_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`transformers serve` pinned to the tiny random Llama, on loopback; the log goes to a file."""
    folder = tmp_path_factory.mktemp("transformers-serve")
    hub_cache = folder / "hub-cache"
    hub_cache.mkdir()  # /v1/models scans the HF cache and answers 500 when the folder does not exist
    log = folder / "serve.log"
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_CACHE": str(hub_cache),
           "TOKENIZERS_PARALLELISM": "false"}
    command = [str(ROOT / ".venv" / "bin" / "transformers"), "serve", str(tiny_chat_model),
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "info"]
    if not Path(command[0]).exists():
        command[0] = "transformers"
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer /health within 120 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield Served(url=url, model=str(tiny_chat_model), log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_transformers_serve_generates(transformers_serve: Served) -> None:
    t = EndpointTeacher(transformers_serve.url + "/v1/", transformers_serve.model, api_key=KEY, timeout=60)
    texts = t.generate([convo("Name a fruit."), convo("Name a colour."), convo("Name an animal.")],
                       GenerationParams(max_new_tokens=6, temperature=0.0))
    # The random tiny model writes gibberish (in practice newlines), so order is checked on the fault server.
    assert len(texts) == 3
    assert all(isinstance(text, str) and text for text in texts)
    assert t.describe() == {"kind": "endpoint", "model": transformers_serve.model,
                            "base_url": transformers_serve.url + "/v1"}
    assert KEY not in repr(t) and KEY not in str(t.describe())


def test_transformers_serve_connection_check(transformers_serve: Served) -> None:
    message = EndpointTeacher(transformers_serve.url, transformers_serve.model).test_connection()
    assert message.startswith(f"Connected to {transformers_serve.url}: model {transformers_serve.model} ")


def test_transformers_serve_without_a_model_name_says_what_it_serves(transformers_serve: Served) -> None:
    # transformers serve lists no models for a pinned folder, so InferenceClient sends model "dummy", which
    # the pinned server refuses with HTTP 400 naming the folder it serves.
    with pytest.raises(TeacherError) as info:
        EndpointTeacher(transformers_serve.url, "", retries=0).generate([convo("hi")], GenerationParams())
    message = str(info.value)
    assert "HTTP 400" in message
    assert transformers_serve.model in message
    assert "Enter the model name" in message


def test_transformers_serve_reads_past_response_format_and_the_record_says_so(transformers_serve: Served) -> None:
    # `transformers serve` accepts a request carrying an OpenAI response_format but does not enforce it: the
    # random tiny model writes what it likes. The teacher checks each finished answer against the schema and
    # counts the misses in describe(), which is what a batch records about its teacher.
    t = EndpointTeacher(transformers_serve.url, transformers_serve.model, timeout=60, retries=0)
    schema = {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string", "maxLength": 20}}
    texts = t.generate([convo("List two fruits."), convo("List two colours.")],
                       GenerationParams(max_new_tokens=6, temperature=0.0), schema=schema)
    assert len(texts) == 2
    described = t.describe()
    if "response_format_refused" in described:  # a release that refuses it: the fallback path
        assert described["structured"] == "prompt" and described["response_format_refused"].startswith("HTTP 4")
    else:
        assert described["structured"] == "response_format"
        finished = sum(getattr(text, "finish_reason", "") == "stop" for text in texts)
        assert described.get("response_format_misses", 0) == finished
