"""Settings read from the environment, in one place.

Every knob a deployer can turn is an environment variable documented here and in README.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_UPLOAD_MB = 50.0


@dataclass(frozen=True)
class Settings:
    home: Path
    """STUDIO_HOME: the workspace folder (database, cached models, runs, exports)."""
    models_dir: Path
    """SEED_STUDIO_MODELS_DIR: converted model cache; defaults to STUDIO_HOME/models."""
    max_upload_mb: float
    """SEED_STUDIO_MAX_UPLOAD_MB: largest seed file accepted (default 50)."""
    space_id: str = ""
    """SPACE_ID: set by Hugging Face Spaces (owner/name); empty anywhere else."""

    @property
    def on_space(self) -> bool:
        return bool(self.space_id)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def load_settings(home: str | os.PathLike[str] | None = None) -> Settings:
    """Settings from the environment; `home` overrides STUDIO_HOME (tests, CLI --home)."""
    space_id = os.environ.get("SPACE_ID", "").strip()
    root = Path(home or os.environ.get("STUDIO_HOME") or default_home(space_id)).expanduser().resolve()
    models = os.environ.get("SEED_STUDIO_MODELS_DIR")
    raw_limit = os.environ.get("SEED_STUDIO_MAX_UPLOAD_MB", "")
    try:
        limit = float(raw_limit) if raw_limit.strip() else DEFAULT_MAX_UPLOAD_MB
    except ValueError:
        limit = DEFAULT_MAX_UPLOAD_MB
    return Settings(
        home=root,
        models_dir=Path(models).expanduser().resolve() if models else root / "models",
        max_upload_mb=limit if limit > 0 else DEFAULT_MAX_UPLOAD_MB,
        space_id=space_id,
    )


SPACE_PERSISTENT_DIR = Path("/data")


def default_home(space_id: str = "") -> Path:
    """Where the workspace lives without STUDIO_HOME: on a Space with persistent storage (mounted at /data),
    there, so projects survive a restart; else ./studio_home (a Space without it loses data on restart)."""
    if space_id and SPACE_PERSISTENT_DIR.is_dir() and os.access(SPACE_PERSISTENT_DIR, os.W_OK):
        return SPACE_PERSISTENT_DIR / "seed-studio"
    return Path("studio_home")
