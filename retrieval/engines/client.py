"""qdrant-client engine: local mode (``path=``, every query scans every point) or a server/cluster (``url=``).

The only module that imports ``qdrant_client``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

from citedesk.retrieval.embedding.sparse import SparseVector
from citedesk.retrieval.engines.base import (DENSE, SPARSE, ChunkPoint, CollectionSpec, PointFilter,
                                             Record, VectorQuery, scrolled_record)

log = logging.getLogger(__name__)


def _models():
    from qdrant_client import models

    return models


class WeightedRrfRejected(Exception):
    """A server answered a weighted RRF query with HTTP 400 (Qdrant < 1.17)."""


class ClientEngine:
    """One collection through qdrant-client.

    Args:
        collection: collection name.
        path: local-mode folder (used when ``url`` is None).
        url: server or cluster URL (``http://host:6333``).
        api_key: for a secured server.
        timeout: seconds per request (remote).

    Raises:
        Exception: from the constructor when the local folder is locked or the URL is malformed.
    """

    def __init__(self, collection: str, *, path: Path | None = None, url: str | None = None,
                 api_key: str | None = None, timeout: float = 10.0) -> None:
        from qdrant_client import QdrantClient

        self.collection = collection
        self.location = url or f"local:{path}"
        self.remote = url is not None
        if url:
            self.client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout))
        else:
            path.mkdir(parents=True, exist_ok=True)
            self.client = QdrantClient(path=str(path))

    # -- translation ------------------------------------------------------------------------------
    @staticmethod
    def _condition(key: str, value):
        m = _models()
        match = m.MatchAny(any=list(value)) if isinstance(value, tuple) else m.MatchValue(value=value)
        return m.FieldCondition(key=key, match=match)

    @classmethod
    def _filter(cls, flt: PointFilter | None):
        if flt is None:
            return None
        return _models().Filter(must=[cls._condition(k, v) for k, v in flt.must] or None,
                                must_not=[cls._condition(k, v) for k, v in flt.must_not] or None)

    @staticmethod
    def _sparse(v: SparseVector):
        return _models().SparseVector(indices=v.indices, values=v.values)

    # -- schema ------------------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.collection))

    def dense_size(self) -> int | None:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        return vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None

    def create(self, spec: CollectionSpec) -> None:
        m = _models()
        kwargs = {}
        if self.remote:  # cluster layout and storage: only a server acts on them
            c = spec.cluster
            kwargs = dict(shard_number=c.shard_number, replication_factor=c.replication_factor,
                          write_consistency_factor=c.write_consistency_factor, on_disk_payload=c.on_disk_payload,
                          hnsw_config=m.HnswConfigDiff(m=spec.hnsw_m, ef_construct=spec.hnsw_ef_construct,
                                                       full_scan_threshold=spec.full_scan_threshold_kb))
        self.client.create_collection(
            self.collection,
            vectors_config={DENSE: m.VectorParams(size=spec.dim, distance=m.Distance.COSINE)},
            sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            **kwargs,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode: "payload indexes have no effect"
            for ix in spec.payload_indexes:
                if ix.kind == "keyword":
                    schema = (m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True)
                              if ix.is_tenant else m.PayloadSchemaType.KEYWORD)
                else:
                    schema = m.PayloadSchemaType.INTEGER
                self.client.create_payload_index(self.collection, ix.field, schema)

    # -- writes ------------------------------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        m = _models()
        structs = [m.PointStruct(id=p.id, vector={DENSE: p.dense.tolist(), SPARSE: self._sparse(p.sparse)},
                                 payload=p.payload) for p in points]
        self.client.upsert(self.collection, points=structs, wait=True)

    def delete(self, flt: PointFilter) -> None:
        self.client.delete(self.collection, points_selector=_models().FilterSelector(filter=self._filter(flt)),
                           wait=True)

    def set_payload(self, flt: PointFilter | None, fields: dict, ids: Sequence[str] = ()) -> None:
        self.client.set_payload(self.collection, payload=fields, points=list(ids) if ids else self._filter(flt),
                                wait=True)

    # -- reads -------------------------------------------------------------------------------------
    def count(self, flt: PointFilter, exact: bool) -> int:
        return int(self.client.count(self.collection, count_filter=self._filter(flt), exact=exact).count)

    def scroll(self, flt: PointFilter | None, *, fields: Sequence[str] | bool, limit: int,
               offset: str | None = None, with_vectors: bool = False) -> tuple[list[Record], str | None]:
        points, nxt = self.client.scroll(self.collection, scroll_filter=self._filter(flt), limit=limit,
                                         offset=offset, with_payload=list(fields) if not isinstance(fields, bool)
                                         else fields, with_vectors=with_vectors)
        return [scrolled_record(p, with_vectors) for p in points], (str(nxt) if nxt is not None else None)

    def query(self, q: VectorQuery) -> list[Record]:
        """Raises :class:`WeightedRrfRejected` when a server refuses a weighted RRF query (HTTP 400)."""
        m = _models()
        qfilter = self._filter(q.flt)
        # local mode always searches exactly (and warns about search params)
        params = (m.SearchParams(hnsw_ef=q.hnsw_ef, exact=q.exact) if self.remote and (q.hnsw_ef or q.exact)
                  else None)
        if q.dense is not None and q.sparse is not None:
            kwargs = dict(prefetch=[
                m.Prefetch(query=q.dense.tolist(), using=DENSE, limit=q.prefetch_k, filter=qfilter, params=params),
                m.Prefetch(query=self._sparse(q.sparse), using=SPARSE, limit=q.prefetch_k, filter=qfilter),
            ], query=(m.RrfQuery(rrf=m.Rrf(weights=list(q.weights))) if q.weights
                      else m.FusionQuery(fusion=m.Fusion.RRF)))
        elif q.dense is not None:
            kwargs = dict(query=q.dense.tolist(), using=DENSE, search_params=params)
        else:
            kwargs = dict(query=self._sparse(q.sparse), using=SPARSE)
        try:
            res = self.client.query_points(self.collection, query_filter=qfilter, limit=q.limit, with_payload=True,
                                           with_vectors=[DENSE] if q.with_dense else False, **kwargs)
        except Exception as exc:
            if q.weights and getattr(exc, "status_code", None) == 400:
                raise WeightedRrfRejected(str(exc)) from exc
            raise
        return [Record(id=str(p.id), payload=p.payload or {}, score=float(p.score),
                       dense=p.vector.get(DENSE) if isinstance(p.vector, dict) else None) for p in res.points]

    def optimize(self) -> None:
        """Nothing to do: local mode has no index, a server optimizes in the background."""

    def close(self) -> None:
        self.client.close()
