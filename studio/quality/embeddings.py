"""Sentence embeddings for semantic duplicates, nearest-neighbour similarity and the 2-D map.

One owner for "text -> unit vector": the embedded all-MiniLM-L6-v2 by default (offline), or any
sentence-transformers model ref. Vectors are L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.models.registry import EMBEDDED_EMBEDDER
from studio.workspace import Workspace

if TYPE_CHECKING:
    import numpy as np


def embed_texts(ws: Workspace, texts: list[str], *, model_ref: str = EMBEDDED_EMBEDDER,
                batch_size: int = 128) -> np.ndarray:
    """(len(texts), dim) float32 unit vectors. Empty input gives a (0, dim) array without loading anything."""
    import numpy as np

    from studio.models.loading import load_embedder

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_embedder(model_ref, ws.models_dir)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
