"""What every Qdrant engine behind :class:`~citedesk.retrieval.store.QdrantIndex` speaks.

The front (``retrieval/store.py``) owns the data model — collection schema, payload fields, the tenant filter —
and describes each call with the engine-neutral types below; an engine translates them to its own SDK:
``engines/edge.py`` (qdrant-edge, the embedded default), ``engines/client.py`` (qdrant-client: local mode and a
server or cluster over ``url``). The shape follows qdrant-client's own front over ``QdrantLocal`` /
``QdrantRemote``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from citedesk.retrieval.embedding.sparse import SparseVector

DENSE = "dense"
"""Name of the dense vector (cosine)."""
SPARSE = "bm25"
"""Name of the sparse vector (BM25 term weights, IDF modifier)."""

Value = str | int
"""A payload value a condition matches: a keyword or an integer."""


@dataclass
class ChunkPoint:
    """A point to write: dense float32 (dim,) L2-normalised, BM25 sparse vector, payload."""

    id: str
    dense: np.ndarray
    sparse: SparseVector
    payload: dict


@dataclass(frozen=True)
class PointFilter:
    """Conditions on payload fields: every ``must`` holds and no ``must_not`` does.

    Each condition is ``(key, value)`` (match that value) or ``(key, (v1, v2, ...))`` (match any of them).
    """

    must: tuple[tuple[str, Value | tuple[Value, ...]], ...] = ()
    must_not: tuple[tuple[str, Value | tuple[Value, ...]], ...] = ()


@dataclass(frozen=True)
class PayloadIndex:
    """One payload index: ``kind`` is ``keyword`` or ``integer``; ``is_tenant`` marks the tenant key."""

    field: str
    kind: str
    is_tenant: bool = False


@dataclass(frozen=True)
class ClusterParams:
    """Collection settings only a Qdrant server or cluster uses (ignored by the embedded engines).

    Attributes:
        shard_number: shards of the collection (spread over the cluster's nodes).
        replication_factor: copies of each shard.
        write_consistency_factor: replicas that must confirm a write before it returns.
        on_disk_payload: keep payloads on disk (mmap) rather than in RAM.
    """

    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1
    on_disk_payload: bool = True


@dataclass(frozen=True)
class CollectionSpec:
    """The collection citedesk creates: the named dense vector :data:`DENSE` (cosine), the named sparse vector
    :data:`SPARSE` with the IDF modifier, payload indexes, HNSW and search parameters, and cluster settings.

    Attributes:
        dim: dense size (e.g. 384).
        hnsw_m / hnsw_ef_construct: HNSW graph degree and build beam.
        full_scan_threshold_kb: below this much vector data (KiB) a segment, or a filtered subset, is
            searched exactly instead of through the graph.
    """

    dim: int
    payload_indexes: tuple[PayloadIndex, ...]
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    cluster: ClusterParams = field(default_factory=ClusterParams)


@dataclass(frozen=True)
class VectorQuery:
    """One query: dense, sparse, or both fused by RRF (each branch prefetches ``prefetch_k`` candidates).

    Attributes:
        dense: float32 (dim,) L2-normalised, or None.
        sparse: BM25 query vector with at least one term, or None.
        flt: applied to every branch and to the fused result.
        limit: hits returned.
        prefetch_k: candidates per branch before fusion (hybrid only).
        weights: (dense, sparse) RRF weights; None sends plain RRF.
        with_dense: return each hit's dense vector (to compute its cosine).
        hnsw_ef: HNSW search beam of the dense branch (None: the engine's default).
        exact: search the dense branch exactly (brute force).
    """

    dense: np.ndarray | None
    sparse: SparseVector | None
    flt: PointFilter
    limit: int
    prefetch_k: int = 40
    weights: tuple[float, float] | None = None
    with_dense: bool = False
    hnsw_ef: int | None = None
    exact: bool = False


@dataclass
class Record:
    """A point read back: id (uuid string), score (of the query's kind; 0 for scrolls), payload, and the dense
    and sparse vectors when asked for."""

    id: str
    payload: dict
    score: float = 0.0
    dense: list[float] | None = None
    sparse: SparseVector | None = None


def scrolled_record(point, with_vectors: bool) -> Record:
    """A scrolled point of either SDK (``id``, ``payload``, ``vector`` as ``{name: vector}``) as a :class:`Record`;
    the named dense and sparse vectors are read only when ``with_vectors``."""
    rec = Record(id=str(point.id), payload=dict(point.payload or {}))
    if with_vectors and isinstance(point.vector, dict):
        rec.dense = point.vector.get(DENSE)
        sv = point.vector.get(SPARSE)
        rec.sparse = SparseVector(list(sv.indices), list(sv.values)) if sv is not None else None
    return rec


class Engine(Protocol):
    """One collection in one Qdrant engine. Every method raises on failure; the front turns any error into
    :class:`~citedesk.core.errors.IndexUnavailableError`."""

    location: str

    def exists(self) -> bool:
        """True when the collection exists."""

    def dense_size(self) -> int | None:
        """Dense vector size of the existing collection."""

    def create(self, spec: CollectionSpec) -> None:
        """Create the collection and its payload indexes."""

    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Write points; durable when it returns."""

    def delete(self, flt: PointFilter) -> None:
        """Delete the points matching ``flt``."""

    def set_payload(self, flt: PointFilter | None, fields: dict, ids: Sequence[str] = ()) -> None:
        """Overwrite ``fields`` on the points matching ``flt`` (or with ``ids``)."""

    def count(self, flt: PointFilter, exact: bool) -> int:
        """Number of points matching ``flt``."""

    def scroll(self, flt: PointFilter | None, *, fields: Sequence[str] | bool, limit: int,
               offset: str | None = None, with_vectors: bool = False) -> tuple[list[Record], str | None]:
        """One page of points (any order) and the offset of the next page (None at the end)."""

    def query(self, q: VectorQuery) -> list[Record]:
        """Hits best first."""

    def optimize(self) -> None:
        """Build indexes and merge segments after writes (a no-op where the engine does it on its own)."""

    def close(self) -> None:
        """Release the engine (and the folder lock of an embedded one)."""
