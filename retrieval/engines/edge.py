"""qdrant-edge engine: Qdrant's own embedded engine in-process (HNSW, sparse vectors with IDF, payload indexes,
RRF prefetch queries, a write-ahead log). The embedded default.

The only module that imports ``qdrant_edge`` (pinned: its Python API is beta). One collection is one edge shard,
in the folder ``<root>/edge/<collection>``. The shard holds a lock on its write-ahead log, so one process at a
time opens a folder. Edge builds indexes only when asked: :meth:`EdgeEngine.optimize` (called by the sync after
it wrote) turns the appendable segment into indexed ones.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from citedesk.retrieval.embedding.sparse import SparseVector
from citedesk.retrieval.engines.base import (DENSE, SPARSE, ChunkPoint, CollectionSpec, PointFilter,
                                             Record, VectorQuery, scrolled_record)

RRF_K = 2
"""RRF rank constant: Qdrant's default (server and qdrant-client's local mode), so fused scores agree."""


class FolderInUseError(RuntimeError):
    """Another process holds the edge shard's folder."""


def shard_dir(root: Path, collection: str) -> Path:
    """Folder of one collection's edge shard under the index root."""
    return root / "edge" / collection


class EdgeEngine:
    """One collection as one qdrant-edge shard.

    Args:
        collection: collection name.
        root: index root folder (``qdrant.path``, default ``<data_dir>/qdrant``).

    Raises:
        FolderInUseError: another process has the shard open.
        Exception: qdrant-edge's own errors (unreadable or incompatible shard).
    """

    def __init__(self, collection: str, root: Path) -> None:
        import qdrant_edge as qe

        self.qe = qe
        self.collection = collection
        self.path = shard_dir(root, collection)
        self.location = f"edge:{self.path}"
        self._create_lock = threading.Lock()
        self.shard = self._load() if (self.path / "edge_config.json").exists() else None

    def _load(self):
        try:
            return self.qe.EdgeShard.load(str(self.path))
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise FolderInUseError(
                    f"the index folder {self.path} is open in another process (qdrant-edge allows one process per "
                    "folder): stop the other citedesk process, send the sync to the running server, or set "
                    "qdrant.url to share a Qdrant server") from exc
            raise

    def _shard(self):
        if self.shard is None:
            raise RuntimeError(f"collection {self.collection!r} does not exist at {self.path}")
        return self.shard

    # -- translation ------------------------------------------------------------------------------
    def _condition(self, key: str, value):
        qe = self.qe
        match = qe.MatchAny(list(value)) if isinstance(value, tuple) else qe.MatchValue(value)
        return qe.FieldCondition(key=key, match=match)

    def _filter(self, flt: PointFilter | None):
        if flt is None:
            return None
        return self.qe.Filter(must=[self._condition(k, v) for k, v in flt.must] or None,
                              must_not=[self._condition(k, v) for k, v in flt.must_not] or None)

    def _sparse(self, v: SparseVector):
        return self.qe.SparseVector(indices=list(v.indices), values=list(v.values))

    # -- schema ------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.shard is not None

    def dense_size(self) -> int | None:
        """From the shard's persisted ``edge_config.json`` (the shard object does not expose its config)."""
        self._shard()
        config = json.loads((self.path / "edge_config.json").read_text())
        return ((config.get("vectors") or {}).get(DENSE) or {}).get("size")

    def create(self, spec: CollectionSpec) -> None:
        qe = self.qe
        with self._create_lock:
            if self.shard is not None:
                return
            hnsw = qe.HnswIndexConfig(m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct,
                                      full_scan_threshold=spec.full_scan_threshold_kb)
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=spec.dim, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                hnsw_config=hnsw,
            )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            shard = qe.EdgeShard.create(str(self.path), config)
            for ix in spec.payload_indexes:
                schema = (qe.KeywordIndexParams(is_tenant=True) if ix.is_tenant
                          else qe.PayloadSchemaType.Keyword if ix.kind == "keyword" else qe.PayloadSchemaType.Integer)
                shard.update(qe.UpdateOperation.create_field_index(ix.field, schema))
            shard.flush()
            self.shard = shard

    # -- writes ------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        qe = self.qe
        self._shard().update(qe.UpdateOperation.upsert_points([
            qe.Point(p.id, {DENSE: p.dense.tolist(), SPARSE: self._sparse(p.sparse)}, p.payload) for p in points]))

    def delete(self, flt: PointFilter) -> None:
        self._shard().update(self.qe.UpdateOperation.delete_points_by_filter(self._filter(flt)))

    def set_payload(self, flt: PointFilter | None, fields: dict, ids: Sequence[str] = ()) -> None:
        op = self.qe.UpdateOperation
        self._shard().update(op.set_payload(list(ids), fields) if ids
                             else op.set_payload_by_filter(self._filter(flt), fields))

    # -- reads -------------------------------------------------------------------------------------
    def count(self, flt: PointFilter, exact: bool) -> int:
        return int(self._shard().count(self.qe.CountRequest(exact=exact, filter=self._filter(flt))))

    def scroll(self, flt: PointFilter | None, *, fields: Sequence[str] | bool, limit: int,
               offset: str | None = None, with_vectors: bool = False) -> tuple[list[Record], str | None]:
        points, nxt = self._shard().scroll(self.qe.ScrollRequest(
            offset=offset, limit=limit, filter=self._filter(flt),
            with_payload=fields if isinstance(fields, bool) else list(fields), with_vector=with_vectors))
        return [scrolled_record(p, with_vectors) for p in points], (str(nxt) if nxt is not None else None)

    def query(self, q: VectorQuery) -> list[Record]:
        qe = self.qe
        qfilter = self._filter(q.flt)
        params = qe.SearchParams(hnsw_ef=q.hnsw_ef, exact=q.exact) if (q.hnsw_ef or q.exact) else None
        dense = qe.Query.Nearest(q.dense.tolist(), using=DENSE) if q.dense is not None else None
        sparse = qe.Query.Nearest(self._sparse(q.sparse), using=SPARSE) if q.sparse is not None else None
        with_vector = [DENSE] if q.with_dense else False
        if dense is not None and sparse is not None:
            req = qe.QueryRequest(
                limit=q.limit, filter=qfilter, with_payload=True, with_vector=with_vector,
                prefetches=[qe.Prefetch(limit=q.prefetch_k, query=dense, filter=qfilter, params=params),
                            qe.Prefetch(limit=q.prefetch_k, query=sparse, filter=qfilter)],
                query=qe.Fusion.Rrf(k=RRF_K, weights=list(q.weights) if q.weights else None))
        else:
            req = qe.QueryRequest(limit=q.limit, filter=qfilter, with_payload=True, with_vector=with_vector,
                                  query=dense if dense is not None else sparse,
                                  params=params if dense is not None else None)
        out = []
        for p in self._shard().query(req):
            vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
            out.append(Record(id=str(p.id), payload=dict(p.payload or {}), score=float(p.score), dense=vec))
        return out

    def optimize(self) -> None:
        """Build HNSW and payload indexes, merge segments, drop deleted points; blocks until done."""
        if self.shard is not None:
            self.shard.optimize()
            self.shard.flush()

    def close(self) -> None:
        if self.shard is not None:
            shard, self.shard = self.shard, None
            shard.close()
