"""Model registry: what a model reference means (`registry`), the embedded models (`embedded`), and
loading weights (`loading`). Importing this package imports no torch; weights load only when asked."""

from studio.models.registry import (
    DEFAULT_BASE_MODEL,
    DEFAULT_EMBEDDER,
    DEFAULT_TEACHER,
    EMBEDDED_CHAT,
    EMBEDDED_EMBEDDER,
    ModelInfo,
    list_models,
    resolve,
)

__all__ = [
    "DEFAULT_BASE_MODEL",
    "DEFAULT_EMBEDDER",
    "DEFAULT_TEACHER",
    "EMBEDDED_CHAT",
    "EMBEDDED_EMBEDDER",
    "ModelInfo",
    "list_models",
    "resolve",
]
