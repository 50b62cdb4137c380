"""A fast, deterministic embedder with no model: the hashing trick over words and word bigrams.

For tests and smoke runs where the embedding model is not the point (e.g. crash-safety of the sync),
selected with ``embedding.model = "hash:<dim>"``. Not for production retrieval quality.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Signed feature hashing of lowercased words and bigrams into ``dim`` buckets, L2-normalised.

    Args:
        dim: output dimension.
    """

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.model_name = f"hash:{dim}"
        self.device = "cpu"

    def warm_up(self) -> None:
        """Nothing to load."""

    def _one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        words = _WORD.findall(text.lower())
        for feat in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
            h = zlib.crc32(feat.encode("utf-8"))
            v[h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        n = float(np.linalg.norm(v))
        return v / n if n else v

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array (n, dim), L2-normalised (all-zero rows for texts without words)."""
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """float32 array (dim,), L2-normalised."""
        return self._one(text)
