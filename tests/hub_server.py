"""A Hugging Face Hub stand-in on loopback, for tests that drive the real `huggingface_hub` client.

huggingface.co cannot be reached from the machines these tests run on, so this serves a few in-memory
dataset repos over plain HTTP at http://127.0.0.1:<free port>, answering the requests `huggingface_hub` 2.x
makes, with the headers it checks:

    GET  /api/datasets/{repo_id}[/revision/{rev}][?blobs=true]   `HfApi.dataset_info` (blobs: files_metadata)
    HEAD /datasets/{repo_id}/resolve/{rev}/{path}               `hf_hub_download`, file metadata
    GET  /datasets/{repo_id}/resolve/{rev}/{path}               `hf_hub_download`, the bytes (Range supported)

Errors carry the `X-Error-Code` header the client turns into typed exceptions: an unknown repo answers 404
`RepoNotFound`; a private repo answers 401 `RepoNotFound` without its token (like the Hub); a gated repo
lists its files but answers 401/403 `GatedRepo` on downloads without its token; an unknown bearer token
answers 401 "Invalid credentials in Authorization header". `rev` is "main" or the repo's commit sha.

Use:

    with HubServer() as hub:
        hub.add_dataset("owner/name", {"data/train.jsonl": b'{"a": 1}\\n'})
        isolate_hf_client(monkeypatch, tmp_path)         # private cache, plain HTTP, no token
        read_hub_dataset("owner/name", max_bytes=..., endpoint=hub.url)
        assert hub.downloads() == ["owner/name/data/train.jsonl"]

Extending it (uploads, model repos): add a pattern and a branch in `_Handler._dispatch` (plus `do_POST` /
`do_PUT` methods calling it), keep state on `HubServer`, and answer errors through `_Handler._error`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

# Suffixes the Hub stores with Git LFS by default (its .gitattributes); their ETag is the sha256.
_LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".gguf", ".zip", ".gz")
_API_INFO = re.compile(r"^/api/datasets/(?P<repo>[^/]+(?:/[^/]+)?)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_TIMESTAMP = "2024-01-01T00:00:00.000Z"


@dataclass
class HubRepo:
    """One dataset repo: its files, and who may read it."""

    repo_id: str
    files: dict[str, bytes]
    gated: bool = False
    private: bool = False
    token: str | None = None
    """The token that may read this repo when it is private or gated."""

    @property
    def sha(self) -> str:
        """A 40-hex commit id that changes with the content (the client requires the commit-hash form)."""
        digest = hashlib.sha1(usedforsecurity=False)
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + self.files[path] + b"\0")
        return digest.hexdigest()

    def is_lfs(self, path: str) -> bool:
        return path.lower().endswith(_LFS_SUFFIXES)

    def etag(self, path: str) -> str:
        """What the Hub sends: the sha256 for LFS files, else the git blob id."""
        data = self.files[path]
        if self.is_lfs(path):
            return hashlib.sha256(data).hexdigest()
        return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()

    def sibling(self, path: str, blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": path}
        if blobs:
            data = self.files[path]
            entry["size"] = len(data)
            entry["blobId"] = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
            if self.is_lfs(path):
                entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
        return entry


@dataclass
class RequestRecord:
    method: str
    path: str
    authorized: bool


class HubServer:
    """The stand-in server. `start()`/`stop()` or use it as a context manager; `url` is the endpoint."""

    def __init__(self, datasets: dict[str, dict[str, bytes | str]] | None = None) -> None:
        self.repos: dict[str, HubRepo] = {}
        self.tokens: set[str] = set()
        """Bearer tokens the server accepts; repo tokens are added by `add_dataset`."""
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for repo_id, files in (datasets or {}).items():
            self.add_dataset(repo_id, files)

    def add_dataset(self, repo_id: str, files: dict[str, bytes | str], *, gated: bool = False,
                    private: bool = False, token: str | None = None) -> HubRepo:
        """Register (or replace) a dataset repo. `str` contents are stored as UTF-8."""
        data = {path: body.encode() if isinstance(body, str) else bytes(body) for path, body in files.items()}
        repo = HubRepo(repo_id, data, gated=gated, private=private, token=token)
        with self._lock:
            self.repos[repo_id] = repo
            if token:
                self.tokens.add(token)
        return repo

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: the OS picks a free one
        self._httpd.daemon_threads = True  # keep-alive connections must not block stop()
        # A short poll interval: shutdown() waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def downloads(self) -> list[str]:
        """'repo_id/path' of every file body served (GET on /resolve), in order."""
        out = []
        for r in self.requests:
            m = _RESOLVE.match(r.path)
            if r.method == "GET" and m:
                out.append(f"{unquote(m['repo'])}/{unquote(m['path'])}")
        return out

    def _record(self, method: str, path: str, authorized: bool) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, authorized))


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer  # set on the subclass made by HubServer.start
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled connections expect

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `hub.requests` instead
        pass

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # --- routing ---------------------------------------------------------------------------------------

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        token = self._bearer()
        self.hub._record(self.command, url.path, token is not None)
        if token is not None and token not in self.hub.tokens:
            self._error(401, None, "Invalid credentials in Authorization header", head)
            return
        if not head and (m := _API_INFO.match(url.path)):
            blobs = parse_qs(url.query).get("blobs", ["false"])[0].lower() == "true"
            self._dataset_info(unquote(m["repo"]), unquote(m["rev"] or "main"), blobs, token)
        elif m := _RESOLVE.match(url.path):
            self._resolve(unquote(m["repo"]), unquote(m["rev"]), unquote(m["path"]), token, head)
        else:
            self._error(404, None, f"Not found: {url.path}", head)

    def _repo(self, repo_id: str, token: str | None, head: bool) -> HubRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and token != repo.token):
            # The Hub hides private repos: 401 without a token, 404 with the wrong one, both "RepoNotFound".
            status = 401 if repo is not None and token is None else 404
            self._error(status, "RepoNotFound", "Repository not found", head)
            return None
        return repo

    def _dataset_info(self, repo_id: str, rev: str, blobs: bool, token: str | None) -> None:
        repo = self._repo(repo_id, token, head=False)
        if repo is None:
            return
        if rev not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=False)
            return
        owner = repo_id.split("/")[0] if "/" in repo_id else None
        body = {
            "_id": repo.sha[:24], "id": repo_id, "author": owner, "sha": repo.sha,
            "lastModified": _TIMESTAMP, "createdAt": _TIMESTAMP, "private": repo.private,
            "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [], "cardData": {},
            "siblings": [repo.sibling(path, blobs) for path in sorted(repo.files)],
        }
        if blobs:
            body["usedStorage"] = sum(len(d) for d in repo.files.values())
        self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head=False)

    def _resolve(self, repo_id: str, rev: str, path: str, token: str | None, head: bool) -> None:
        repo = self._repo(repo_id, token, head)
        if repo is None:
            return
        if repo.gated and token != repo.token:
            status = 401 if token is None else 403
            self._error(status, "GatedRepo", f"Access to dataset {repo_id} is restricted. You must have access "
                        "to it and be authenticated to access it. Please log in.", head)
            return
        if rev not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
            return
        data = repo.files.get(path)
        if data is None:
            self._error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"", head,
                        {"X-Repo-Commit": repo.sha})
            return
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": repo.sha,  # the client refuses a file without it ("not a Hub endpoint")
            "ETag": f'"{repo.etag(path)}"',  # the cache key: sha256 for LFS files, else the git blob id
            "Accept-Ranges": "bytes",
        }
        if repo.is_lfs(path):  # what the Hub adds on LFS files (it would also redirect to a CDN)
            headers["X-Linked-Etag"] = headers["ETag"]
            headers["X-Linked-Size"] = str(len(data))
        status, body = 200, data
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged and not head:  # the client resumes cut-off downloads with Range
            start = int(ranged[1])
            end = min(int(ranged[2]) if ranged[2] else len(data) - 1, len(data) - 1)
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(status, body, headers, head)

    # --- responses ---------------------------------------------------------------------------------------

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return auth[len("Bearer ") :].strip() or None

    def _error(self, status: int, code: str | None, message: str, head: bool,
               extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, head)

    def _send(self, status: int, body: bytes, headers: dict[str, str], head: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))  # on HEAD too: the client reads the size from it
        self.end_headers()
        if not head:
            self.wfile.write(body)


def isolate_hf_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point `huggingface_hub` at a private HF_HOME under `tmp_path`, plain HTTP, and no token; returns HF_HOME.

    huggingface_hub reads its environment once, at import (`huggingface_hub.constants`), so setting the
    variables is not enough once it is imported: the matching constants are patched too.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    cache = home / "hub"
    values = {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_HUB_DISABLE_XET": "1",  # no Xet protocol: files come over the plain /resolve route above
        "HF_HUB_DISABLE_TELEMETRY": "1",  # else the User-Agent code fetches huggingface.co/api/agent-harnesses
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_HUB_ETAG_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(home / "xet"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", constants.DEFAULT_ETAG_TIMEOUT)
    return home
