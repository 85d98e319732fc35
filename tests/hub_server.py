"""A Hugging Face Hub stand-in on loopback, for tests that drive the real `huggingface_hub` and `datasets` clients.

huggingface.co cannot be reached from the machines these tests run on, so this serves in-memory model and
dataset repos over plain HTTP at http://127.0.0.1:<free port>, answering the requests `huggingface_hub` 2.4
and `datasets` 5.2 make (create_repo, upload_file/upload_folder/create_commit, delete_file, repo_info,
list_repo_files/list_repo_tree, hf_hub_download/snapshot_download, DatasetDict.push_to_hub, load_dataset),
with the headers and error codes they check. `{kind}` is `models` or `datasets`; `{repo}` is `name` or
`namespace/name`; `{rev}` is "main" or one of the repo's commit shas (40 hex):

    GET    /api/whoami-v2                                   `HfApi.whoami`: the token's user, orgs, role
    POST   /api/repos/create                                `create_repo` (409 + url when yours: exist_ok)
    DELETE /api/repos/delete                                `delete_repo`
    POST   /api/validate-yaml                               README.md front matter check before commits
    GET    /api/{kind}/{repo}[/revision/{rev}][?blobs=true] `repo_info`/`model_info`/`dataset_info`
    GET    /api/{kind}/{repo}/tree/{rev}[/{path}]           `list_repo_tree` (recursive, expand), HfFileSystem
    POST   /api/{kind}/{repo}/paths-info/{rev}              `get_paths_info`, HfFileSystem
    GET    /api/{kind}/{repo}/commits/{rev}                 `list_repo_commits`
    GET    /api/{kind}/{repo}/refs                          `list_repo_refs`
    PUT    /api/{kind}/{repo}/settings                      `update_repo_settings` (private, gated)
    POST   /api/{kind}/{repo}/preupload/{rev}               upload modes: "lfs" for the Hub's default LFS
                                                            suffixes (.parquet, .safetensors, .bin, ...), else
                                                            "regular"; each existing file's oid (no-op skips)
    POST   /{repo}.git/info/lfs/objects/batch               git-lfs batch API, "basic" transfer: an upload
    POST   /datasets/{repo}.git/info/lfs/objects/batch      href per object not yet stored (+ verify href)
    PUT    /lfs-upload/{sha256}                             the storage PUT (no Authorization, like S3)
    POST   /[datasets/]{repo}.git/info/lfs/objects/verify   verify an uploaded object
    POST   /api/{kind}/{repo}/commit/{rev}                  NDJSON commit: header, file (base64), lfsFile,
                                                            deletedFile, deletedFolder; parentCommit -> 412
    HEAD   /{repo}/resolve/{rev}/{path}                     `hf_hub_download` metadata (model repos)
    GET    /{repo}/resolve/{rev}/{path}                     the bytes (Range supported)
    HEAD   /datasets/{repo}/resolve/{rev}/{path}            the same for dataset repos
    GET    /datasets/{repo}/resolve/{rev}/{path}

Users and permissions. A bearer token maps to a user: `HubServer(tokens={"hf_alice": "alice"})` or
`hub.add_token("hf_bob_read", "bob", write=False, orgs=("acme",))`. A user writes to repos in their own
namespace or their orgs', and only with a write token (a read-only token gets 403 on every write). Like
the Hub: an unknown token answers 401 "Invalid credentials in Authorization header" on any request; a
private repo answers 401 `RepoNotFound` without a token and 404 `RepoNotFound` to a token that may not
read it; a gated repo lists its files but answers 401/403 `GatedRepo` on downloads; creating a repo that
exists answers 409 (with its url, which `create_repo(exist_ok=True)` needs) to its owner and 403 to anyone
else; a write without a token answers 401, and a write to a readable repo of someone else 403.
`add_dataset(..., token=...)` also grants that token read access to that one repo (private/gated tests).

A created repo starts like a Hub repo: one "initial commit" holding `.gitattributes`. Every commit keeps a
full snapshot of the files, so any commit sha is a readable revision; `hub.commits(repo_id, repo_type)`
is the per-repo log (oid, title, paths written, paths deleted): re-pushing identical files adds no commit
when the client sees nothing changed (preupload answers each existing file's git blob oid).

LFS is needed, not optional: `datasets` deletes each parquet shard's temp file right after preupload, so
its bytes must reach the server then. Small files are regular (base64 in the commit). Xet is never offered
(tests set HF_HUB_DISABLE_XET=1; `isolate_hf_client` does).

Fault injection, for retry and network-failure tests: `hub.fail_next(n, status=500|429|503,
retry_after=None, match=None)` answers the next n requests (whose "METHOD /path" matches the regex `match`,
if given) with that status (429 also carries the Hub's RateLimit headers; `retry_after` adds Retry-After,
and the client then sleeps that + 1 s); `hub.drop_next(n, match=None)` reads the request and closes the
connection unanswered (the client raises httpx2.RemoteProtocolError). Faulted requests are still logged.
`hub.delay_next(n, seconds, match=None)` holds matching requests that long, then answers them normally (a
slow Hub: a test kills the client while the request waits; the server still applies it afterwards).
`hub.stop()` makes the Hub unreachable (ConnectError). The client itself retries (1 s, 2 s, ... up to 5
times) only preupload, LFS batch/upload/verify, and file GETs on 429; create_repo, whoami, commit, repo_info
and the HEAD before a download raise on the first 429/5xx/drop.

The request log: `hub.requests` holds a `RequestRecord(method, path, authorized, query, headers, body,
status)` per request (headers without Authorization). `hub.token_leaks(secret)` says where a secret
appears anywhere but the Authorization header: URLs, other headers, bodies, or any stored file of any
revision. `hub.downloads()` lists "repo_id/path" of every file body served.

Public API (other tests rely on it): `HubServer(datasets=None, *, tokens=None)`, `start()`/`stop()`/context
manager, `url`, `add_token(token, user, *, write=True, orgs=())`, `add_dataset`/`add_model`/`add_repo(repo_id,
files, *, gated=False, private=False, token=None)`, `repo(repo_id, repo_type="model") -> HubRepo | None`
(`.files` on main, `.sha`, `.private`, `.commits`, `.is_lfs(path)`), `commits(repo_id, repo_type="model")`,
`fail_next`, `drop_next`, `delay_next`, `clear_faults()`, `requests`, `downloads()`, `token_leaks(secret)`,
`tokens` (token -> HubUser),
`lfs_objects`; and `isolate_hf_client(monkeypatch, tmp_path, endpoint=None)`.

Use:

    with HubServer(tokens={"hf_alice": "alice"}) as hub:
        isolate_hf_client(monkeypatch, tmp_path, endpoint=hub.url)   # private cache, this endpoint, no token
        HfApi(endpoint=hub.url, token="hf_alice").create_repo("alice/m", private=True)
        hub.add_dataset("owner/name", {"data/train.jsonl": b'{"a": 1}\\n'})
        assert hub.token_leaks("hf_alice") == []

Extending it: add a pattern and a branch in `_Handler._route`, keep state on `HubServer` (under its lock),
and answer errors through `_Handler._error`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

# Suffixes the Hub stores with Git LFS by default (its .gitattributes); their ETag is the sha256.
# Only files placed with `add_dataset`/`add_model` follow this; uploads here are all "regular".
_LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".gguf", ".zip", ".gz")
_KINDS = {"models": "model", "datasets": "dataset"}
_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_API = rf"^/api/(?P<kind>models|datasets)/{_REPO}"
_API_INFO = re.compile(_API + r"(?:/revision/(?P<rev>[^/]+))?$")
_API_TREE = re.compile(_API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$")
_API_PATHS_INFO = re.compile(_API + r"/paths-info/(?P<rev>[^/]+)$")
_API_PREUPLOAD = re.compile(_API + r"/preupload/(?P<rev>[^/]+)$")
_API_COMMIT = re.compile(_API + r"/commit/(?P<rev>[^/]+)$")
_API_COMMITS = re.compile(_API + r"/commits/(?P<rev>[^/]+)$")
_API_REFS = re.compile(_API + r"/refs$")
_API_SETTINGS = re.compile(_API + r"/settings$")
_LFS_BATCH = re.compile(rf"^/(?P<prefix>datasets/)?{_REPO}\.git/info/lfs/objects/(?P<op>batch|verify)$")
_LFS_UPLOAD = re.compile(r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$")
_RESOLVE_DATASET = re.compile(rf"^/datasets/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_RESOLVE_MODEL = re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_RESOLVE = _RESOLVE_DATASET  # kept for callers of the read-only version
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_TIMESTAMP = "2024-01-01T00:00:00.000Z"
_GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in _LFS_SUFFIXES).encode()


def git_blob_oid(data: bytes) -> str:
    """The git blob id: what the Hub reports as a regular file's oid and what the client compares on upload."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class HubUser:
    """Who a token acts as; `write` False is a read-only token."""

    name: str
    write: bool = True
    orgs: tuple[str, ...] = ()

    def may_write(self, namespace: str) -> bool:
        return self.write and (namespace == self.name or namespace in self.orgs)

    def is_member(self, namespace: str) -> bool:
        return namespace == self.name or namespace in self.orgs


@dataclass
class HubCommit:
    """One commit: its full file snapshot, and what it wrote and deleted."""

    oid: str
    title: str
    description: str
    author: str | None
    files: dict[str, bytes]
    added: list[str] = field(default_factory=list)
    """Paths written by this commit (new or changed or re-sent), in request order."""
    deleted: list[str] = field(default_factory=list)
    date: str = _TIMESTAMP


@dataclass
class HubRepo:
    """One repo: its commit history (newest last), who owns it and who may read it."""

    repo_id: str
    repo_type: str = "dataset"
    gated: bool = False
    private: bool = False
    token: str | None = None
    """A token that may read this repo when it is private or gated (besides its owner's)."""
    commits: list[HubCommit] = field(default_factory=list)
    lfs_paths: set[str] = field(default_factory=set)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0] if "/" in self.repo_id else self.repo_id

    @property
    def files(self) -> dict[str, bytes]:
        """The files on main (the newest commit)."""
        return self.commits[-1].files if self.commits else {}

    @property
    def sha(self) -> str:
        """The commit id of main (40 hex, the form the client requires)."""
        return self.commits[-1].oid if self.commits else "0" * 40

    def snapshot(self, rev: str) -> HubCommit | None:
        """The commit that `rev` ("main" or a commit sha) names, or None."""
        if rev == "main":
            return self.commits[-1] if self.commits else None
        return next((c for c in self.commits if c.oid == rev), None)

    def is_lfs(self, path: str) -> bool:
        return path in self.lfs_paths

    def etag(self, path: str, data: bytes | None = None) -> str:
        """What the Hub sends: the sha256 for LFS files, else the git blob id."""
        data = self.files[path] if data is None else data
        if self.is_lfs(path):
            return hashlib.sha256(data).hexdigest()
        return git_blob_oid(data)

    def sibling(self, path: str, blobs: bool, files: dict[str, bytes] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": path}
        if blobs:
            data = (self.files if files is None else files)[path]
            entry["size"] = len(data)
            entry["blobId"] = git_blob_oid(data)
            if self.is_lfs(path):
                entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
        return entry

    def tree_entry(self, path: str, files: dict[str, bytes], commit: HubCommit | None) -> dict[str, Any]:
        """A `list_repo_tree`/`paths-info` entry: a file, or a folder when `path` is a prefix of files."""
        last = {"id": commit.oid, "title": commit.title, "date": commit.date} if commit else None
        if path in files:
            data = files[path]
            entry: dict[str, Any] = {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}
            if self.is_lfs(path):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        else:
            inner = sorted(p for p in files if p.startswith(path + "/"))
            digest = hashlib.sha1(usedforsecurity=False)
            for p in inner:
                digest.update(p.encode() + b"\0" + files[p])
            entry = {"type": "directory", "oid": digest.hexdigest(), "size": 0, "path": path}
        if last is not None:
            entry["lastCommit"] = last
        return entry


@dataclass
class RequestRecord:
    method: str
    path: str
    authorized: bool
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    """Every request header except Authorization."""
    body: bytes = b""
    status: int | None = None
    """The status answered; None when the connection was dropped."""


@dataclass
class _Fault:
    remaining: int
    status: int | None  # None: drop the connection
    retry_after: int | None
    match: re.Pattern[str] | None
    delay: float = 0.0  # > 0: wait this long, then answer the request normally (delay_next)


class HubServer:
    """The stand-in server. `start()`/`stop()` or use it as a context manager; `url` is the endpoint."""

    def __init__(self, datasets: dict[str, dict[str, bytes | str]] | None = None, *,
                 tokens: Mapping[str, str] | None = None) -> None:
        self.repos: dict[tuple[str, str], HubRepo] = {}
        """(repo_type, repo_id) -> repo."""
        self.tokens: dict[str, HubUser] = {}
        """Bearer tokens the server accepts, and whom they act as."""
        self.requests: list[RequestRecord] = []
        self.lfs_objects: dict[str, bytes] = {}
        """LFS storage: sha256 -> bytes (PUT to the upload href the LFS batch answer gives)."""
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for token, user in (tokens or {}).items():
            self.add_token(token, user)
        for repo_id, files in (datasets or {}).items():
            self.add_dataset(repo_id, files)

    # --- state -----------------------------------------------------------------------------------------

    def add_token(self, token: str, user: str, *, write: bool = True, orgs: tuple[str, ...] = ()) -> HubUser:
        """Accept `token` as `user` (a write token unless `write=False`), member of `orgs`."""
        hub_user = HubUser(user, write=write, orgs=tuple(orgs))
        with self._lock:
            self.tokens[token] = hub_user
        return hub_user

    def add_dataset(self, repo_id: str, files: dict[str, bytes | str], *, gated: bool = False,
                    private: bool = False, token: str | None = None) -> HubRepo:
        """Register (or replace) a dataset repo. `str` contents are stored as UTF-8."""
        return self.add_repo(repo_id, files, repo_type="dataset", gated=gated, private=private, token=token)

    def add_model(self, repo_id: str, files: dict[str, bytes | str], *, gated: bool = False,
                  private: bool = False, token: str | None = None) -> HubRepo:
        """Register (or replace) a model repo. `str` contents are stored as UTF-8."""
        return self.add_repo(repo_id, files, repo_type="model", gated=gated, private=private, token=token)

    def add_repo(self, repo_id: str, files: dict[str, bytes | str], *, repo_type: str = "dataset",
                 gated: bool = False, private: bool = False, token: str | None = None) -> HubRepo:
        """Register (or replace) a repo with one commit holding `files`; its owner is the namespace."""
        data = {path: body.encode() if isinstance(body, str) else bytes(body) for path, body in files.items()}
        digest = hashlib.sha1(usedforsecurity=False)  # the sha changes with the content, as before
        for path in sorted(data):
            digest.update(path.encode() + b"\0" + data[path] + b"\0")
        commit = HubCommit(digest.hexdigest(), "initial commit", "", None, data, added=sorted(data))
        repo = HubRepo(repo_id, repo_type, gated=gated, private=private, token=token, commits=[commit],
                       lfs_paths={p for p in data if p.lower().endswith(_LFS_SUFFIXES)})
        with self._lock:
            self.repos[(repo_type, repo_id)] = repo
            if token and token not in self.tokens:
                self.tokens[token] = HubUser(f"reader-{len(self.tokens)}", write=False)
        return repo

    def repo(self, repo_id: str, repo_type: str = "model") -> HubRepo | None:
        with self._lock:
            return self.repos.get((repo_type, repo_id))

    def commits(self, repo_id: str, repo_type: str = "model") -> list[HubCommit]:
        """The repo's commits, oldest first ([] when there is no such repo)."""
        repo = self.repo(repo_id, repo_type)
        with self._lock:
            return list(repo.commits) if repo else []

    def fail_next(self, n: int = 1, status: int = 500, retry_after: int | None = None, *,
                  match: str | None = None) -> None:
        """Answer the next `n` requests (matching regex `match` on "METHOD /path", if given) with `status`."""
        with self._lock:
            self._faults.append(_Fault(n, status, retry_after, re.compile(match) if match else None))

    def drop_next(self, n: int = 1, *, match: str | None = None) -> None:
        """Close the connection, unanswered, on the next `n` requests (matching `match`, if given)."""
        with self._lock:
            self._faults.append(_Fault(n, None, None, re.compile(match) if match else None))

    def delay_next(self, n: int = 1, seconds: float = 5.0, *, match: str | None = None) -> None:
        """Hold the next `n` requests (matching `match`, if given) for `seconds`, then answer them normally:
        a slow Hub, so a test can kill the client mid-request (the request is logged when it arrives)."""
        with self._lock:
            self._faults.append(_Fault(n, None, None, re.compile(match) if match else None, float(seconds)))

    def clear_faults(self) -> None:
        """Forget every pending fail/drop/delay: the Hub behaves again."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.match is None or fault.match.search(f"{method} {path}")):
                    fault.remaining -= 1
                    return fault
        return None

    def downloads(self) -> list[str]:
        """'repo_id/path' of every file body served (GET on /resolve), in order."""
        out = []
        for r in self.requests:
            m = _RESOLVE_DATASET.match(r.path) or _RESOLVE_MODEL.match(r.path)
            if r.method == "GET" and m and r.status in (200, 206):
                out.append(f"{unquote(m['repo'])}/{unquote(m['path'])}")
        return out

    def token_leaks(self, secret: str) -> list[str]:
        """Where `secret` shows anywhere but an Authorization header: request URLs, other headers, bodies
        (commit file contents decoded), or stored files. Empty when it never leaked."""
        needle = secret.encode()
        found: list[str] = []
        with self._lock:
            records = list(self.requests)
            repos = list(self.repos.values())
        for i, r in enumerate(records):
            where = f"request {i} {r.method} {r.path}"
            if secret in r.path or secret in unquote(r.query) or secret in r.query:
                found.append(f"{where}: URL")
            found += [f"{where}: header {name}" for name, value in r.headers.items() if secret in value]
            if needle in r.body or any(needle in blob for blob in _decoded_contents(r.body)):
                found.append(f"{where}: body")
        for repo in repos:
            for commit in repo.commits:
                found += [f"{repo.repo_type}s/{repo.repo_id}@{commit.oid[:8]}: file {path}"
                          for path, data in commit.files.items() if needle in data]
        return found

    # --- lifecycle ---------------------------------------------------------------------------------------

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

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)


def _decoded_contents(body: bytes) -> list[bytes]:
    """The base64 file contents of an NDJSON commit body (a token inside a file hides in base64 there)."""
    out = []
    for line in body.splitlines():
        try:
            item = json.loads(line)
            out.append(base64.b64decode(item["value"]["content"]))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _front_matter(text: str) -> tuple[bool, Any]:
    """(has front matter, parsed YAML); raises yaml.YAMLError when it does not parse."""
    import yaml

    m = re.match(r"^---\s*\n(.*?)\n---\s*(?:\n|$)", text, re.S)
    if not m:
        return False, None
    return True, yaml.safe_load(m[1])


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer  # set on the subclass made by HubServer.start
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled connections expect
    _record: RequestRecord

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `hub.requests` instead
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # --- routing ---------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        token = self._bearer()
        body = self._read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() != "authorization"}
        self._record = RequestRecord(self.command, url.path, token is not None, url.query, headers, body)
        self.hub._record(self._record)
        fault = self.hub._take_fault(self.command, url.path)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)  # a slow Hub: then answered as usual
            fault = None
        if fault is not None and fault.status is None:
            self.close_connection = True  # dropped: the client sees the connection close unanswered
            return
        if fault is not None and fault.status is not None:
            self._fault(fault.status, fault.retry_after)
            return
        user = None
        if token is not None:
            user = self.hub.tokens.get(token)
            if user is None:
                self._error(401, None, "Invalid credentials in Authorization header")
                return
        self._route(url.path, parse_qs(url.query), body, token, user)

    def _route(self, path: str, query: dict[str, list[str]], body: bytes, token: str | None,
               user: HubUser | None) -> None:
        method = self.command
        if method == "GET" and path == "/api/whoami-v2":
            self._whoami(token, user)
        elif method == "POST" and path == "/api/repos/create":
            self._create_repo(self._json(body), user)
        elif method == "DELETE" and path == "/api/repos/delete":
            self._delete_repo(self._json(body), user)
        elif method == "POST" and path == "/api/validate-yaml":
            self._validate_yaml(self._json(body))
        elif method == "GET" and (m := _API_INFO.match(path)):
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            self._repo_info(self._key(m), unquote(m["rev"] or "main"), blobs, token, user)
        elif method == "GET" and (m := _API_TREE.match(path)):
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            expand = query.get("expand", ["false"])[0].lower() == "true"
            self._tree(self._key(m), unquote(m["rev"]), unquote(m["path"] or ""), recursive, expand, token, user)
        elif method == "POST" and (m := _API_PATHS_INFO.match(path)):
            self._paths_info(self._key(m), unquote(m["rev"]), body, token, user)
        elif method == "GET" and (m := _API_COMMITS.match(path)):
            self._list_commits(self._key(m), unquote(m["rev"]), token, user)
        elif method == "GET" and (m := _API_REFS.match(path)):
            self._refs(self._key(m), token, user)
        elif method == "PUT" and (m := _API_SETTINGS.match(path)):
            self._settings(self._key(m), self._json(body), token, user)
        elif method == "POST" and (m := _API_PREUPLOAD.match(path)):
            self._preupload(self._key(m), unquote(m["rev"]), self._json(body), token, user, query)
        elif method == "POST" and (m := _API_COMMIT.match(path)):
            self._commit(self._key(m), unquote(m["rev"]), body, token, user, query)
        elif method == "POST" and (m := _LFS_BATCH.match(path)):
            key = ("dataset" if m["prefix"] else "model", unquote(m["repo"]))
            if m["op"] == "batch":
                self._lfs_batch(key, self._json(body), token, user)
            else:
                self._lfs_verify(key, self._json(body), token, user)
        elif method == "PUT" and (m := _LFS_UPLOAD.match(path)):
            self._lfs_upload(m["oid"], body)
        elif method in ("GET", "HEAD") and (m := _RESOLVE_DATASET.match(path)):
            self._resolve(("dataset", unquote(m["repo"])), unquote(m["rev"]), unquote(m["path"]), token, user)
        elif method in ("GET", "HEAD") and (m := _RESOLVE_MODEL.match(path)) and not path.startswith("/api/"):
            self._resolve(("model", unquote(m["repo"])), unquote(m["rev"]), unquote(m["path"]), token, user)
        else:
            self._error(404, None, f"Not found: {method} {path}")

    @staticmethod
    def _key(m: re.Match[str]) -> tuple[str, str]:
        return _KINDS[m["kind"]], unquote(m["repo"])

    # --- access ----------------------------------------------------------------------------------------

    def _may_read(self, repo: HubRepo, token: str | None, user: HubUser | None) -> bool:
        return (not repo.private or (token is not None and token == repo.token)
                or (user is not None and user.is_member(repo.namespace)))

    def _readable(self, key: tuple[str, str], token: str | None, user: HubUser | None) -> HubRepo | None:
        repo = self.hub.repo(key[1], key[0])
        if repo is None or not self._may_read(repo, token, user):
            # The Hub hides private repos: 401 without a token, 404 with the wrong one, both "RepoNotFound".
            status = 401 if repo is not None and token is None else 404
            self._error(status, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _writable(self, key: tuple[str, str], token: str | None, user: HubUser | None) -> HubRepo | None:
        repo = self._readable(key, token, user)
        if repo is None:
            return None
        if user is None:
            self._error(401, None, "You must be authenticated to write to this repository")
            return None
        if not user.may_write(repo.namespace):
            why = ("This token is read-only: writing needs a token with the write role" if not user.write
                   else f"You don't have the rights to push to {repo.repo_type} {repo.repo_id}")
            self._error(403, None, why)
            return None
        return repo

    def _revision(self, repo: HubRepo, rev: str) -> HubCommit | None:
        commit = repo.snapshot(rev)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return commit

    # --- endpoints ---------------------------------------------------------------------------------------

    def _whoami(self, token: str | None, user: HubUser | None) -> None:
        if user is None:
            self._error(401, None, "Invalid credentials in Authorization header")
            return
        body = {
            "type": "user", "id": hashlib.sha1(user.name.encode(), usedforsecurity=False).hexdigest()[:24],
            "name": user.name, "fullname": user.name, "email": f"{user.name}@example.com",
            "emailVerified": True, "isPro": False, "canPay": False, "periodEnd": None,
            "avatarUrl": "", "orgs": [{"type": "org", "name": org, "fullname": org} for org in user.orgs],
            "auth": {"type": "access_token", "accessToken": {
                "displayName": "test token", "role": "write" if user.write else "read", "createdAt": _TIMESTAMP}},
        }
        self._json_response(200, body)

    def _create_repo(self, payload: dict[str, Any], user: HubUser | None) -> None:
        if user is None:
            self._error(401, None, "You must be authenticated to create a repository")
            return
        repo_type = payload.get("type") or "model"
        name, namespace = payload.get("name"), payload.get("organization") or user.name
        if repo_type not in ("model", "dataset") or not isinstance(name, str) or not _NAME.match(name) \
                or "--" in name or ".." in name:
            self._error(400, None, f"Invalid repo name or type: {name!r} ({repo_type})")
            return
        repo_id = f"{namespace}/{name}"
        url = self._repo_url(repo_type, repo_id)
        with self.hub._lock:
            existing = self.hub.repos.get((repo_type, repo_id))
            if not user.write:
                self._error(403, None, "This token is read-only: creating a repo needs a token with the write role")
                return
            if not user.may_write(namespace):
                self._error(403, None, f"You don't have the rights to create a {repo_type} under the namespace "
                            f'"{namespace}"')
                return
            if existing is not None:
                self._error(409, None, f"You already created this {repo_type} repo", body={
                    "error": f"You already created this {repo_type} repo", "url": url})
                return
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            files = {".gitattributes": _GITATTRIBUTES}
            commit = HubCommit(self._new_oid(repo_id, None, files), "initial commit", "", user.name, files,
                               added=[".gitattributes"], date=_now())
            self.hub.repos[(repo_type, repo_id)] = HubRepo(repo_id, repo_type, private=private, commits=[commit])
        self._json_response(200, {"url": url, "name": repo_id, "id": commit.oid[:24]})

    def _delete_repo(self, payload: dict[str, Any], user: HubUser | None) -> None:
        if user is None:
            self._error(401, None, "You must be authenticated to delete a repository")
            return
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or user.name
        key = (repo_type, f"{namespace}/{payload.get('name')}")
        with self.hub._lock:
            repo = self.hub.repos.get(key)
            if repo is None or not self._may_read(repo, None, user):
                self._error(404, "RepoNotFound", "Repository not found")
                return
            if not user.may_write(namespace):
                self._error(403, None, f"You don't have the rights to delete {key[1]}")
                return
            del self.hub.repos[key]
        self._send(200, b"", {})

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        import yaml

        try:
            present, meta = _front_matter(str(payload.get("content", "")))
        except yaml.YAMLError as exc:
            self._json_response(400, {"errors": [{"message": f"Invalid YAML in the front matter: {exc}"}]},
                                {"X-Error-Message": "Invalid metadata"})
            return
        if present and meta is not None and not isinstance(meta, dict):
            self._json_response(400, {"errors": [{"message": "The front matter must be a YAML mapping"}]},
                                {"X-Error-Message": "Invalid metadata"})
            return
        warnings = [] if present and meta else [{"message": "Empty or missing yaml metadata in repo card"}]
        self._json_response(200, {"errors": [], "warnings": warnings})

    def _repo_info(self, key: tuple[str, str], rev: str, blobs: bool, token: str | None,
                   user: HubUser | None) -> None:
        repo = self._readable(key, token, user)
        if repo is None or (commit := self._revision(repo, rev)) is None:
            return
        card: dict[str, Any] = {}
        if "README.md" in commit.files:
            try:
                _, meta = _front_matter(commit.files["README.md"].decode("utf-8", "replace"))
                card = meta if isinstance(meta, dict) else {}
            except Exception:  # a broken card shows no cardData, as on the Hub
                card = {}
        tags = card.get("tags") if isinstance(card.get("tags"), list) else []
        body: dict[str, Any] = {
            "_id": commit.oid[:24], "id": repo.repo_id, "author": repo.namespace, "sha": commit.oid,
            "lastModified": commit.date, "createdAt": repo.commits[0].date, "private": repo.private,
            "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": tags, "cardData": card,
            "siblings": [repo.sibling(path, blobs, commit.files) for path in sorted(commit.files)],
        }
        if repo.repo_type == "model":
            body["modelId"] = repo.repo_id
            for name in ("library_name", "pipeline_tag"):
                if isinstance(card.get(name), str):
                    body[name] = card[name]
        if blobs:
            body["usedStorage"] = sum(len(d) for d in commit.files.values())
        self._json_response(200, body)

    def _tree(self, key: tuple[str, str], rev: str, path: str, recursive: bool, expand: bool,
              token: str | None, user: HubUser | None) -> None:
        repo = self._readable(key, token, user)
        if repo is None or (commit := self._revision(repo, rev)) is None:
            return
        path = path.strip("/")
        prefix = f"{path}/" if path else ""
        if path and not any(p.startswith(prefix) for p in commit.files):
            self._error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"")
            return
        names: set[str] = set()
        for p in commit.files:
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            if recursive:  # every folder on the way, and the file
                names.update(prefix + "/".join(parts[: i + 1]) for i in range(len(parts)))
            else:
                names.add(prefix + parts[0])
        last = commit if expand else None
        entries = [repo.tree_entry(n, commit.files, last) for n in sorted(names)]
        self._json_response(200, entries)

    def _paths_info(self, key: tuple[str, str], rev: str, body: bytes, token: str | None,
                    user: HubUser | None) -> None:
        repo = self._readable(key, token, user)
        if repo is None or (commit := self._revision(repo, rev)) is None:
            return
        form = self._form_or_json(body)
        paths = form.get("paths", [])
        paths = [paths] if isinstance(paths, str) else paths
        expand = str(form.get("expand", ["false"])[0] if isinstance(form.get("expand"), list)
                     else form.get("expand", "false")).lower() == "true"
        out = []
        for p in paths:
            p = p.strip("/")
            if p in commit.files or any(f.startswith(p + "/") for f in commit.files):
                out.append(repo.tree_entry(p, commit.files, commit if expand else None))
        self._json_response(200, out)

    def _list_commits(self, key: tuple[str, str], rev: str, token: str | None, user: HubUser | None) -> None:
        repo = self._readable(key, token, user)
        if repo is None or (commit := self._revision(repo, rev)) is None:
            return
        history = repo.commits[: repo.commits.index(commit) + 1]
        self._json_response(200, [
            {"id": c.oid, "title": c.title, "message": c.description, "date": c.date,
             "authors": [{"user": c.author}] if c.author else []}
            for c in reversed(history)])

    def _refs(self, key: tuple[str, str], token: str | None, user: HubUser | None) -> None:
        repo = self._readable(key, token, user)
        if repo is None:
            return
        self._json_response(200, {"branches": [{"name": "main", "ref": "refs/heads/main",
                                                "targetCommit": repo.sha}], "converts": [], "tags": []})

    def _settings(self, key: tuple[str, str], payload: dict[str, Any], token: str | None,
                  user: HubUser | None) -> None:
        repo = self._writable(key, token, user)
        if repo is None:
            return
        with self.hub._lock:
            if "private" in payload:
                repo.private = bool(payload["private"])
            if payload.get("visibility") in ("private", "public"):
                repo.private = payload["visibility"] == "private"
            if "gated" in payload:
                repo.gated = payload["gated"] not in (False, "false", None)
        self._json_response(200, {"private": repo.private})

    def _preupload(self, key: tuple[str, str], rev: str, payload: dict[str, Any], token: str | None,
                   user: HubUser | None, query: dict[str, list[str]]) -> None:
        repo = self._writable(key, token, user)
        if repo is None:
            return
        if query.get("create_pr"):
            self._error(400, None, "Pull requests are not supported by this test server")
            return
        if (commit := self._revision(repo, rev)) is None:
            return
        files = payload.get("files")
        if not isinstance(files, list):
            self._error(400, None, "Invalid preupload payload: 'files' must be a list")
            return
        answer = []
        for item in files:
            path = item.get("path") if isinstance(item, dict) else None
            if not isinstance(path, str):
                self._error(400, None, "Invalid preupload payload: every file needs a 'path'")
                return
            existing = commit.files.get(path)
            lfs = path.lower().endswith(_LFS_SUFFIXES)  # what the Hub's default .gitattributes sends to LFS
            oid = None
            if existing is not None:  # the client skips a file whose oid matches (sha256 for LFS, else blob id)
                oid = hashlib.sha256(existing).hexdigest() if lfs else git_blob_oid(existing)
            answer.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                           "oid": oid})
        self._json_response(200, {"files": answer, "commitOid": commit.oid})

    def _commit(self, key: tuple[str, str], rev: str, body: bytes, token: str | None, user: HubUser | None,
                query: dict[str, list[str]]) -> None:
        repo = self._writable(key, token, user)
        if repo is None or user is None:
            return
        if query.get("create_pr"):
            self._error(400, None, "Pull requests are not supported by this test server")
            return
        if rev != "main":
            self._error(400, None, f"Commits go to main only on this test server, not {rev!r}")
            return
        try:
            items = [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError:
            self._error(400, None, "Invalid NDJSON commit payload")
            return
        if not items or items[0].get("key") != "header":
            self._error(400, None, "The commit payload must start with a header line")
            return
        header = items[0].get("value") or {}
        with self.hub._lock:
            parent = repo.commits[-1] if repo.commits else None
            wanted = header.get("parentCommit")
            if wanted and (parent is None or not parent.oid.startswith(wanted)):
                self._error(412, None, "A commit has happened since. Please refresh and try again.")
                return
            files = dict(parent.files) if parent else {}
            added: list[str] = []
            deleted: list[str] = []
            lfs_paths = set(repo.lfs_paths)
            for item in items[1:]:
                kind, value = item.get("key"), item.get("value") or {}
                path = str(value.get("path", "")).strip("/")
                if kind == "file":
                    if not path or value.get("encoding", "base64") != "base64":
                        self._error(400, None, f"Invalid file operation for {path!r}")
                        return
                    try:
                        files[path] = base64.b64decode(value.get("content", ""), validate=True)
                    except ValueError:
                        self._error(400, None, f"Invalid base64 content for {path}")
                        return
                    lfs_paths.discard(path)
                    added.append(path)
                elif kind == "deletedFile":
                    if path not in files:
                        self._error(404, "EntryNotFound", f"A file with this name doesn't exist: {path}")
                        return
                    del files[path]
                    deleted.append(path)
                elif kind == "deletedFolder":
                    inner = [p for p in files if p.startswith(path + "/")]
                    if not inner:
                        self._error(404, "EntryNotFound", f"A folder with this name doesn't exist: {path}")
                        return
                    for p in inner:
                        del files[p]
                    deleted.extend(inner)
                elif kind == "lfsFile":
                    blob = self.hub.lfs_objects.get(str(value.get("oid", "")))
                    if not path or blob is None:
                        self._error(422, None, f"LFS object for {path} was not uploaded: {value.get('oid')}")
                        return
                    files[path] = blob
                    lfs_paths.add(path)
                    added.append(path)
                else:
                    self._error(400, None, f"Unknown commit operation {kind!r}")
                    return
            oid = self._new_oid(repo.repo_id, parent.oid if parent else None, files, header)
            commit = HubCommit(oid, str(header.get("summary", "")), str(header.get("description", "")),
                               user.name, files, added=added, deleted=deleted, date=_now())
            repo.commits.append(commit)
            repo.lfs_paths = lfs_paths & set(files)
        url = self._repo_url(repo.repo_type, repo.repo_id)
        self._json_response(200, {"success": True, "commitOid": oid, "commitUrl": f"{url}/commit/{oid}",
                                  "hookOutput": ""})

    def _lfs_batch(self, key: tuple[str, str], payload: dict[str, Any], token: str | None,
                   user: HubUser | None) -> None:
        """The git-lfs batch API: an upload href (and verify) per object we do not hold yet ("basic")."""
        repo = self._writable(key, token, user)
        if repo is None:
            return
        if payload.get("operation") != "upload" or not isinstance(payload.get("objects"), list):
            self._error(400, None, "Only LFS 'upload' batches are supported by this test server")
            return
        prefix = "datasets/" if repo.repo_type == "dataset" else ""
        answer = []
        for obj in payload["objects"]:
            oid, size = str(obj.get("oid", "")), obj.get("size")
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int):
                entry["error"] = {"code": 422, "message": "Invalid oid or size"}
            elif oid not in self.hub.lfs_objects:  # no "actions": the client skips the upload
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{oid}", "header": {}},
                    "verify": {"href": f"{self.hub.url}/{prefix}{repo.repo_id}.git/info/lfs/objects/verify",
                               "header": {}},
                }
            answer.append(entry)
        self._json_response(200, {"transfer": "basic", "objects": answer},
                            {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_upload(self, oid: str, body: bytes) -> None:
        """The storage PUT (a presigned URL on the Hub: no Authorization); the bytes must hash to the oid."""
        if hashlib.sha256(body).hexdigest() != oid:
            self._error(400, None, "The uploaded bytes do not match the LFS oid")
            return
        with self.hub._lock:
            self.hub.lfs_objects[oid] = body
        self._send(200, b"", {"ETag": f'"{oid}"'})

    def _lfs_verify(self, key: tuple[str, str], payload: dict[str, Any], token: str | None,
                    user: HubUser | None) -> None:
        if self._writable(key, token, user) is None:
            return
        blob = self.hub.lfs_objects.get(str(payload.get("oid", "")))
        if blob is None or len(blob) != payload.get("size"):
            self._error(404, None, "LFS object not found")
            return
        self._json_response(200, {"success": True})

    def _new_oid(self, repo_id: str, parent: str | None, files: dict[str, bytes],
                 header: dict[str, Any] | None = None) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(f"{repo_id}\0{parent}\0{json.dumps(header or {}, sort_keys=True)}\0{len(self.hub.requests)}"
                      .encode())
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path] + b"\0")
        return digest.hexdigest()

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "datasets/" if repo_type == "dataset" else ""
        return f"{self.hub.url}/{prefix}{repo_id}"

    def _resolve(self, key: tuple[str, str], rev: str, path: str, token: str | None,
                 user: HubUser | None) -> None:
        repo = self._readable(key, token, user)
        if repo is None:
            return
        if repo.gated and token != repo.token and not (user is not None and user.is_member(repo.namespace)):
            status = 401 if token is None else 403
            self._error(status, "GatedRepo", f"Access to {repo.repo_type} {repo.repo_id} is restricted. You must "
                        "have access to it and be authenticated to access it. Please log in.")
            return
        if (commit := self._revision(repo, rev)) is None:
            return
        data = commit.files.get(path)
        if data is None:
            self._error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"", {"X-Repo-Commit": commit.oid})
            return
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,  # the client refuses a file without it ("not a Hub endpoint")
            "ETag": f'"{repo.etag(path, data)}"',  # the cache key: sha256 for LFS files, else the git blob id
            "Accept-Ranges": "bytes",
        }
        if repo.is_lfs(path):  # what the Hub adds on LFS files (it would also redirect to a CDN)
            headers["X-Linked-Etag"] = headers["ETag"]
            headers["X-Linked-Size"] = str(len(data))
        status, body = 200, data
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if ranged and self.command == "GET":  # the client resumes cut-off downloads with Range
            start = int(ranged[1])
            end = min(int(ranged[2]) if ranged[2] else len(data) - 1, len(data) - 1)
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(status, body, headers)

    # --- requests and responses ----------------------------------------------------------------------------

    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return auth[len("Bearer ") :].strip() or None

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()  # the blank line after the last chunk
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    @staticmethod
    def _json(body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @staticmethod
    def _form_or_json(body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body)
            if isinstance(value, dict):
                return value
        except ValueError:
            pass
        return parse_qs(body.decode("utf-8", "replace"))

    def _fault(self, status: int, retry_after: int | None) -> None:
        headers: dict[str, str] = {}
        message = {429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "Internal Error")
        if status == 429:  # the Hub's rate-limit headers (IETF draft), which the client reads on 429
            headers["RateLimit"] = f'"api";r=0;t={retry_after or 0}'
            headers["RateLimit-Policy"] = '"fixed window";"api";q=500;w=300'
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        self._error(status, None, message, headers)

    def _error(self, status: int, code: str | None, message: str, extra: dict[str, str] | None = None,
               body: dict[str, Any] | None = None) -> None:
        headers = {"X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._json_response(status, body or {"error": message}, headers)

    def _json_response(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(extra or {})})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self._record.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))  # on HEAD too: the client reads the size from it
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def isolate_hf_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str | None = None) -> Path:
    """Point `huggingface_hub` at a private HF_HOME under `tmp_path`, plain HTTP, and no token; returns HF_HOME.

    With `endpoint` (a `HubServer.url`), calls that take no endpoint argument go there too: HF_ENDPOINT,
    the `huggingface_hub` constants, and `datasets.config` (push_to_hub, load_dataset and its cache under
    `tmp_path`). huggingface_hub and datasets read their environment once, at import, so setting the
    variables is not enough once they are imported: the matching constants are patched too.
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
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "HF_HUB_DISABLE_XET": "1",  # no Xet protocol: files come over the plain /resolve route above
        "HF_HUB_DISABLE_TELEMETRY": "1",  # else the User-Agent code fetches huggingface.co/api/agent-harnesses
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_HUB_ETAG_TIMEOUT", "HF_DATASETS_OFFLINE"):
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
    if endpoint is not None:
        endpoint = endpoint.rstrip("/")
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        _isolate_datasets(monkeypatch, home, endpoint)
    return home


def _isolate_datasets(monkeypatch: pytest.MonkeyPatch, home: Path, endpoint: str) -> None:
    """`datasets` keeps its own copy of the endpoint and cache paths (datasets.config, read at import)."""
    import fsspec
    from datasets import config
    from huggingface_hub import HfFileSystem

    datasets_cache = home / "datasets"
    monkeypatch.setattr(config, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(config, "HUB_DATASETS_HFFS_URL", "hf://datasets/{repo_id}@{revision}/{path}",
                        raising=False)
    monkeypatch.setattr(config, "HF_DATASETS_CACHE", datasets_cache)
    monkeypatch.setattr(config, "DOWNLOADED_DATASETS_PATH", datasets_cache / "downloads")
    monkeypatch.setattr(config, "EXTRACTED_DATASETS_PATH", datasets_cache / "downloads" / "extracted")
    monkeypatch.setattr(config, "HF_MODULES_CACHE", home / "modules", raising=False)
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(config, "HF_DATASETS_OFFLINE", False, raising=False)
    # HfFileSystem instances are cached by fsspec with their listings: a fresh server needs fresh ones.
    HfFileSystem.clear_instance_cache()
    fsspec.get_filesystem_class("hf").clear_instance_cache()
