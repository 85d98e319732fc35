"""One workspace per visitor, for a studio hosted for many people (a Hugging Face Space).

Every tab is written against one `Workspace`. On a Space (SPACE_ID set) or with SEED_STUDIO_PER_VISITOR=1, the
tabs get a `VisitorWorkspaces` instead: it stands in for a Workspace and, on each Gradio event, resolves to the
workspace of the person who sent it, a folder of its own under STUDIO_HOME/visitors/ with its own database,
runs and exports (the converted-model cache is shared: it holds no one's data). Visitors never see each
other's projects, because they never open each other's database.

Who the visitor is: the Hugging Face account when signed in ("Sign in with Hugging Face", OAuth), else a random
id the page keeps in a cookie (set by a script in the page head, before the app sends its first event), so a
reload or a return visit from the same browser finds the same work. Without either (a script client that sends
no cookie) the Gradio session is used: that work lives as long as the session.

Work that goes on after an event returns (a generation batch, an evaluation thread) must be handed the
visitor's real workspace: `concrete(ws)` gives it; outside an event the stand-in refuses anything but the
shared settings, so a missed spot fails loudly instead of writing into the wrong place.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from studio.workspace import Workspace

COOKIE = "seed_studio_visitor"
VISITORS_DIR = "visitors"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# Shared by every visitor: reading them needs no visitor.
_SHARED = {"settings", "models_dir"}

# Runs in the page head, before the Gradio app starts: a random id per browser, kept a year. On https (a Space
# is shown in an iframe on huggingface.co) the cookie must be SameSite=None; Secure, and Partitioned so browsers
# that block third-party cookies keep it for this embedding.
HEAD = f"""<script>
(function () {{
  if (document.cookie.split('; ').some(function (c) {{ return c.indexOf('{COOKIE}=') === 0; }})) return;
  var bytes = new Uint8Array(18); crypto.getRandomValues(bytes);
  var id = btoa(String.fromCharCode.apply(null, bytes)).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=/g, '');
  var attrs = location.protocol === 'https:' ? '; SameSite=None; Secure; Partitioned' : '; SameSite=Lax';
  document.cookie = '{COOKIE}=' + id + '; Path=/; Max-Age=31536000' + attrs;
}})();
</script>"""


def per_visitor(ws: Workspace) -> bool:
    """One workspace per visitor? On a Space by default; SEED_STUDIO_PER_VISITOR=1 / 0 forces it on / off."""
    forced = os.environ.get("SEED_STUDIO_PER_VISITOR", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return ws.settings.on_space


def _mapping(value: Any) -> dict[str, Any]:
    """A plain dict from what gr.Request hands back (a dict, or Gradio's attribute-style Obj copy of one)."""
    if isinstance(value, dict):
        return value
    try:
        return {k: value[k] for k in value}
    except (TypeError, KeyError):
        return {}


def _part(request: Any, name: str) -> dict[str, Any]:
    raw = getattr(request, "request", None)  # the underlying Starlette request, when Gradio kept it
    try:
        return _mapping(getattr(raw if raw is not None else request, name))
    except (AssertionError, AttributeError, KeyError, TypeError):  # e.g. no session middleware: not OAuth
        return {}


def visitor_key(request: Any) -> str | None:
    """'user:<hf name>' when signed in, else 'browser:<cookie>', else 'session:<hash>'; None without a request."""
    if request is None:
        return None
    info = _mapping(_part(request, "session").get("oauth_info"))
    name = _mapping(info.get("userinfo")).get("preferred_username")
    if isinstance(name, str) and name:
        return f"user:{name}"
    cookie = _part(request, "cookies").get(COOKIE)
    if isinstance(cookie, str) and _COOKIE_VALUE.match(cookie):
        return f"browser:{cookie}"
    session = getattr(request, "session_hash", None)
    return f"session:{session}" if session else None


def folder_name(key: str) -> str:
    """A folder name that says nothing about who it is (a user name or a cookie is not a path)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class VisitorWorkspaces:
    """Stands in for a Workspace; see the module docstring."""

    def __init__(self, root: Workspace) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._open: dict[str, Workspace] = {}

    @property
    def root(self) -> Workspace:
        return self._root

    def current(self) -> Workspace:
        """The workspace of the visitor of the Gradio event being handled."""
        from gradio.context import LocalContext

        key = visitor_key(LocalContext.request.get(None))
        if key is None:
            raise RuntimeError("No visitor: this workspace is only known while an event of the page is handled. "
                               "Pass concrete(ws) to work that goes on after the event.")
        return self.for_key(key)

    def for_key(self, key: str) -> Workspace:
        with self._lock:
            ws = self._open.get(key)
            if ws is None:
                home = self._root.home / VISITORS_DIR / folder_name(key)
                # Same settings (upload limit, model cache, Space), own folder.
                ws = Workspace(replace(self._root.settings, home=home))
                self._open[key] = ws
            return ws

    def __getattr__(self, name: str) -> Any:
        if name in _SHARED:
            return getattr(self._root, name)
        return getattr(self.current(), name)


def concrete(ws: Workspace | VisitorWorkspaces) -> Workspace:
    """The real workspace behind `ws` for the current event (itself when it is one)."""
    return ws.current() if isinstance(ws, VisitorWorkspaces) else ws


def host(ws: Workspace | VisitorWorkspaces) -> Workspace:
    """The host's own workspace (for what belongs to the installation, like the BrowserState secret)."""
    return ws.root if isinstance(ws, VisitorWorkspaces) else ws


def visitor_homes(root: Workspace) -> list[Path]:
    """Every visitor workspace folder that exists (for reconciling jobs and runs at start)."""
    folder = root.home / VISITORS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "studio.db").exists())
