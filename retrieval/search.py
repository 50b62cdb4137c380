"""Hybrid retriever over the Qdrant index."""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

from citedesk.core.types import Hit, ScoreKind
from citedesk.retrieval.store import QdrantIndex, SearchFilter
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.retrieval.embedding.inputs import embed_text

Mode = Literal["hybrid", "dense", "sparse"]


@dataclass
class Retrieval:
    """Hits for one query and what it cost.

    Attributes:
        hits: best first; scores of kind ``hits[i].score_kind``.
        timings: seconds per stage: ``embed``, ``retrieve``, ``rerank``.
    """

    query: str
    hits: list[Hit]
    mode: str
    timings: dict[str, float] = field(default_factory=dict)


class Retriever:
    """Dense, sparse or hybrid (RRF) retrieval with optional cross-encoder rerank.

    Args:
        index: Qdrant front.
        embedder: ``embed_query(str) -> float32 (dim,)`` L2-normalised.
        sparse: BM25 encoder (same as used at ingest).
        reranker: optional ``score(query, passages) -> float32 (n,)`` probabilities.
        mode: default mode.
        prefetch_k: candidates per branch before fusion.
        rerank_k: fused candidates rescored by the reranker.
        fusion_weights: (dense, sparse) weights of Qdrant's weighted RRF in hybrid mode, both > 0; a
            larger weight gives that ranking more say (fused scores stay of kind ``rrf``).
        doc_lock: the reader-writer lock the sync engine writes articles under (``read_lock()`` context
            manager); each search holds its read side, so it never sees an article half-replaced.
    """

    def __init__(self, index: QdrantIndex, embedder, sparse: BM25SparseEncoder, *, reranker=None,
                 mode: Mode = "hybrid", prefetch_k: int = 40, rerank_k: int = 20,
                 fusion_weights: tuple[float, float] = (1.0, 1.0), doc_lock=None) -> None:
        self.index = index
        self.doc_lock = doc_lock
        self.embedder = embedder
        self.sparse = sparse
        self.reranker = reranker
        self.mode = mode
        self.prefetch_k = prefetch_k
        self.rerank_k = rerank_k
        self.fusion_weights = fusion_weights

    def warm_up(self) -> None:
        """Load models (embedder, reranker)."""
        self.embedder.warm_up()
        if self.reranker is not None:
            self.reranker.warm_up()

    def retrieve(self, query: str, flt: SearchFilter, *, top_k: int = 5, mode: Mode | None = None,
                 rerank: bool = True) -> Retrieval:
        """Retrieve the top_k chunks for ``query`` within ``flt`` (the workspace is always enforced).

        Raises:
            IndexUnavailableError: Qdrant unreachable.
        """
        mode = mode or self.mode
        timings: dict[str, float] = {}
        t = time.perf_counter()
        dense = self.embedder.embed_query(query) if mode in ("hybrid", "dense") else None
        sparse = self.sparse.encode_query(query) if mode in ("hybrid", "sparse") else None
        timings["embed"] = time.perf_counter() - t
        use_rerank = rerank and self.reranker is not None
        t = time.perf_counter()
        with self.doc_lock.read_lock() if self.doc_lock is not None else nullcontext():
            hits = self.index.search(flt, dense=dense, sparse=sparse,
                                     limit=max(top_k, self.rerank_k) if use_rerank else top_k,
                                     prefetch_k=self.prefetch_k, fusion_weights=self.fusion_weights)
        timings["retrieve"] = time.perf_counter() - t
        if use_rerank and hits:
            t = time.perf_counter()
            probs = self.reranker.score(query, [embed_text(h.title, h.heading, h.text) for h in hits])
            for h, p in zip(hits, probs):
                h.rerank = float(p)
                h.score, h.score_kind = float(p), ScoreKind.RERANK_PROBABILITY
            hits.sort(key=lambda h: h.score, reverse=True)
            timings["rerank"] = time.perf_counter() - t
        return Retrieval(query=query, hits=hits[:top_k], mode=mode, timings=timings)
