"""The workspace: the single source of truth (SQLite database plus file areas under STUDIO_HOME)."""

from studio.workspace.store import Workspace, utc_now

__all__ = ["Workspace", "utc_now"]
