"""Qdrant adapter: one front class for local mode (``path=``) and server/cluster (``url=``).

The only module that imports ``qdrant_client``. One collection holds every workspace (tenant); each
point is one chunk with a named dense vector ``dense`` (cosine) and a named sparse vector ``bm25``
(IDF modifier), and a payload (see :data:`PAYLOAD_FIELDS`).
"""

from __future__ import annotations

import logging
import threading
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from citedesk.core.errors import IndexUnavailableError
from citedesk.core.types import Hit, ScoreKind
from citedesk.retrieval.embedding.sparse import SparseVector

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
POINT_NAMESPACE = uuid.UUID("6f1c1a52-3f7e-4c55-9b8e-2f3d1c0a7e11")

KEYWORD_FIELDS = ("source", "article_id", "locale", "doc_key", "content_hash", "version")
INTEGER_FIELDS = ("chunk_index", "updated_at")
PAYLOAD_FIELDS = (
    "workspace", "source", "article_id", "locale", "doc_key", "title", "url", "breadcrumbs",
    "updated_at", "content_hash", "version", "pipeline", "chunk_index", "chunk_count", "heading", "text",
    "start", "end",
)


def point_id(doc_key: str, ordinal: int) -> str:
    """Deterministic point id: uuid5 of ``workspace/source/article_id/locale/ordinal``."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{doc_key}/{ordinal}"))


@dataclass
class ChunkPoint:
    """A point to write: dense float32 (dim,) L2-normalised, BM25 sparse vector, payload."""

    id: str
    dense: np.ndarray
    sparse: SparseVector
    payload: dict


@dataclass
class DocState:
    """What the index holds for one article locale (from its points' payloads).

    Attributes:
        versions: ``version`` values (content hash + pipeline signature) seen among the doc's points;
            exactly one when the doc was written completely.
        content_hash: revision content hash recorded (of any point).
        pipeline: pipeline signature recorded (of any point).
        points: number of points.
        chunk_count: ``chunk_count`` recorded in the payloads (max seen).
        updated_at: source update time recorded (epoch seconds, max seen).
    """

    versions: set[str] = field(default_factory=set)
    content_hash: str = ""
    pipeline: str = ""
    points: int = 0
    chunk_count: int = 0
    updated_at: int = 0
    article_id: str = ""

    def is_complete(self, version: str | None = None) -> bool:
        """True when all points carry one version (``version`` if given) and none is missing or extra."""
        if len(self.versions) != 1 or self.points != self.chunk_count:
            return False
        return version is None or self.versions == {version}


@dataclass(frozen=True)
class SearchFilter:
    """Restricts a search. ``workspace`` is required: a query can never cross tenants.

    ``exclude_article_ids`` leaves articles out (a ``must_not`` condition): the leave-gold-out answer eval asks
    each question with its gold article excluded.
    """

    workspace: str
    locales: tuple[str, ...] | None = None
    sources: tuple[str, ...] | None = None
    article_ids: tuple[str, ...] | None = None
    exclude_article_ids: tuple[str, ...] | None = None


class QdrantIndex:
    """Front class over qdrant-client, local or remote, same code path.

    Args:
        collection: collection name.
        path: folder for local (embedded) mode; used when ``url`` is None.
        url: server or cluster URL (``http://host:6333``); wins over ``path``.
        api_key: for a secured server.
        timeout: seconds per request (remote).

    Raises:
        IndexUnavailableError: from any method when Qdrant cannot be reached or errors.
    """

    def __init__(self, collection: str = "citedesk", *, path: Path | str | None = None,
                 url: str | None = None, api_key: str | None = None, timeout: float = 10.0) -> None:
        if path is None and url is None:
            raise ValueError("QdrantIndex needs path (local mode) or url (server)")
        self.collection = collection
        self.path = Path(path) if path is not None else None
        self.url = url
        self.api_key = api_key
        self.timeout = timeout
        self._client = None
        self._lock = threading.Lock()
        self.weighted_rrf = True  # False once a server rejected weighted RRF (Qdrant < 1.17)

    # -- connection -------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Human-readable location (URL or local path)."""
        return self.url or f"local:{self.path}"

    @property
    def client(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self):
        from qdrant_client import QdrantClient

        try:
            if self.url:
                return QdrantClient(url=self.url, api_key=self.api_key, timeout=int(self.timeout))
            self.path.mkdir(parents=True, exist_ok=True)
            return QdrantClient(path=str(self.path))
        except Exception as exc:  # local lock held by another process, bad URL...
            raise IndexUnavailableError(f"cannot open Qdrant at {self.location}: {exc}") from exc

    def close(self) -> None:
        """Close the client (releases the local-mode folder lock)."""
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IndexUnavailableError:
            raise
        except Exception as exc:
            raise IndexUnavailableError(f"Qdrant {what} failed at {self.location}: {exc}") from exc

    def ping(self) -> bool:
        """True when the collection is reachable (False when missing). Raises IndexUnavailableError."""
        return bool(self._call("ping", self.client.collection_exists, self.collection))

    # -- schema -----------------------------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        """Create the collection and payload indexes if missing.

        Args:
            dim: dense vector size (e.g. 384).

        Raises:
            IndexUnavailableError: unreachable, or the existing collection has another dense size.
        """
        from qdrant_client import models

        client = self.client
        if self._call("collection_exists", client.collection_exists, self.collection):
            info = self._call("get_collection", client.get_collection, self.collection)
            vectors = info.config.params.vectors
            size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
            if size != dim:
                raise IndexUnavailableError(
                    f"collection {self.collection!r} has dense size {size}, embedding model gives {dim}; "
                    "use another collection name or re-create it")
            return
        self._call(
            "create_collection", client.create_collection, self.collection,
            vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode: "payload indexes have no effect"
            self._call("create_payload_index", client.create_payload_index, self.collection, "workspace",
                       models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True))
            for name in KEYWORD_FIELDS:
                self._call("create_payload_index", client.create_payload_index, self.collection, name,
                           models.PayloadSchemaType.KEYWORD)
            for name in INTEGER_FIELDS:
                self._call("create_payload_index", client.create_payload_index, self.collection, name,
                           models.PayloadSchemaType.INTEGER)

    # -- filters ----------------------------------------------------------------------------
    @staticmethod
    def _filter(flt: SearchFilter, *extra_must, must_not=()):
        from qdrant_client import models

        if not flt.workspace:
            raise ValueError("a workspace is required in every filter")
        must = [models.FieldCondition(key="workspace", match=models.MatchValue(value=flt.workspace))]
        for key, values in (("locale", flt.locales), ("source", flt.sources), ("article_id", flt.article_ids)):
            if values:
                must.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(values))))
        must.extend(extra_must)
        must_not = list(must_not)
        if flt.exclude_article_ids:
            must_not.append(models.FieldCondition(key="article_id",
                                                  match=models.MatchAny(any=list(flt.exclude_article_ids))))
        return models.Filter(must=must, must_not=must_not or None)

    @staticmethod
    def _match(key: str, value):
        from qdrant_client import models

        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    # -- writes -----------------------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Write points (wait=True: durable when it returns)."""
        from qdrant_client import models

        if not points:
            return
        structs = [
            models.PointStruct(
                id=p.id,
                vector={DENSE: p.dense.tolist(),
                        SPARSE: models.SparseVector(indices=p.sparse.indices, values=p.sparse.values)},
                payload=p.payload,
            )
            for p in points
        ]
        self._call("upsert", self.client.upsert, self.collection, points=structs, wait=True)

    def delete_doc(self, workspace: str, doc_key: str, *, keep_version: str | None = None) -> None:
        """Delete a doc's points; with ``keep_version``, only those of another version (stale ones)."""
        from qdrant_client import models

        must_not = [self._match("version", keep_version)] if keep_version else []
        flt = self._filter(SearchFilter(workspace=workspace), self._match("doc_key", doc_key), must_not=must_not)
        self._call("delete", self.client.delete, self.collection,
                   points_selector=models.FilterSelector(filter=flt), wait=True)

    # -- reads ------------------------------------------------------------------------------
    def count(self, workspace: str, *, doc_key: str | None = None, source: str | None = None,
              exact: bool = True) -> int:
        """Number of points in a workspace (optionally one doc or one source).

        ``exact=False`` lets a Qdrant server answer from its index estimate (cheap, for health
        checks); local mode always counts exactly.
        """
        extra = [self._match("doc_key", doc_key)] if doc_key else []
        flt = self._filter(SearchFilter(workspace=workspace, sources=(source,) if source else None), *extra)
        if not self._call("collection_exists", self.client.collection_exists, self.collection):
            return 0
        return int(self._call("count", self.client.count, self.collection, count_filter=flt, exact=exact).count)

    def manifest(self, workspace: str, source: str) -> dict[str, DocState]:
        """What the index holds per doc_key for one workspace and source (scrolls payloads, no vectors)."""
        out: dict[str, DocState] = {}
        if not self._call("collection_exists", self.client.collection_exists, self.collection):
            return out
        flt = self._filter(SearchFilter(workspace=workspace, sources=(source,)))
        offset = None
        while True:
            points, offset = self._call(
                "scroll", self.client.scroll, self.collection, scroll_filter=flt, limit=1024, offset=offset,
                with_payload=["doc_key", "content_hash", "version", "pipeline", "chunk_count", "updated_at",
                              "article_id"],
                with_vectors=False)
            for p in points:
                pl = p.payload or {}
                st = out.setdefault(pl.get("doc_key", ""), DocState(article_id=pl.get("article_id", "")))
                st.versions.add(pl.get("version", ""))
                st.content_hash = pl.get("content_hash", "")
                st.pipeline = pl.get("pipeline", "")
                st.points += 1
                st.chunk_count = max(st.chunk_count, int(pl.get("chunk_count", 0)))
                st.updated_at = max(st.updated_at, int(pl.get("updated_at", 0)))
            if offset is None:
                return out

    def set_doc_fields(self, workspace: str, doc_key: str, fields: dict) -> None:
        """Overwrite payload fields on all of a doc's points (e.g. a new ``updated_at``, same content)."""
        flt = self._filter(SearchFilter(workspace=workspace), self._match("doc_key", doc_key))
        self._call("set_payload", self.client.set_payload, self.collection, payload=fields, points=flt, wait=True)

    def doc_points(self, workspace: str, doc_key: str) -> list[dict]:
        """Payloads of one doc's points, ordered by chunk_index (for tests and the audit view)."""
        flt = self._filter(SearchFilter(workspace=workspace), self._match("doc_key", doc_key))
        points, _ = self._call("scroll", self.client.scroll, self.collection, scroll_filter=flt,
                               limit=10_000, with_payload=True, with_vectors=False)
        return sorted((dict(p.payload or {}, id=str(p.id)) for p in points), key=lambda d: d["chunk_index"])

    def search(self, flt: SearchFilter, *, dense: np.ndarray | None = None,
               sparse: SparseVector | None = None, limit: int = 5, prefetch_k: int = 40,
               fusion_weights: tuple[float, float] = (1.0, 1.0)) -> list[Hit]:
        """Dense, sparse or hybrid (both given: RRF fusion of the two prefetches) search.

        Args:
            flt: tenant and other filters (workspace always applied).
            dense: query embedding, float32 (dim,), L2-normalised.
            sparse: BM25 query vector.
            limit: hits returned (top_k).
            prefetch_k: candidates per branch before fusion (hybrid only).
            fusion_weights: (dense, sparse) weights of the two rankings in RRF (hybrid only). Equal
                weights send a plain RRF fusion query (any Qdrant ≥ 1.10); unequal ones a weighted
                ``RrfQuery`` (Qdrant ≥ 1.17). A server that rejects it (HTTP 400) gets plain RRF from
                then on, with one warning, instead of failing every query.

        Returns:
            Hits best first. ``score_kind`` is ``cosine`` (dense), ``bm25`` (sparse) or ``rrf``
            (hybrid); ``cosine`` is filled whenever a dense query was given.
        """
        from qdrant_client import models

        if dense is None and sparse is None:
            raise ValueError("search needs a dense or a sparse query")
        qfilter = self._filter(flt)
        with_vectors = [DENSE] if dense is not None else False
        sparse_q = (models.SparseVector(indices=sparse.indices, values=sparse.values)
                    if sparse is not None else None)
        if sparse_q is not None and not sparse.indices:
            sparse_q = None  # no terms: the sparse branch can match nothing
            if dense is None:
                return []
        weighted = False
        if dense is not None and sparse_q is not None:
            kind = ScoreKind.RRF
            weighted = fusion_weights[0] != fusion_weights[1] and self.weighted_rrf
            kwargs = dict(prefetch=[
                models.Prefetch(query=dense.tolist(), using=DENSE, limit=prefetch_k, filter=qfilter),
                models.Prefetch(query=sparse_q, using=SPARSE, limit=prefetch_k, filter=qfilter),
            ], query=(models.RrfQuery(rrf=models.Rrf(weights=list(fusion_weights))) if weighted
                      else models.FusionQuery(fusion=models.Fusion.RRF)))
        elif dense is not None:
            kind = ScoreKind.COSINE
            kwargs = dict(query=dense.tolist(), using=DENSE)
        else:
            kind = ScoreKind.BM25
            kwargs = dict(query=sparse_q, using=SPARSE)
        query = dict(query_filter=qfilter, limit=limit, with_payload=True, with_vectors=with_vectors)
        try:
            res = self._call("query_points", self.client.query_points, self.collection, **query, **kwargs)
        except IndexUnavailableError as exc:
            if not (weighted and getattr(exc.__cause__, "status_code", None) == 400):
                raise
            self.weighted_rrf = False
            log.warning("Qdrant at %s rejected weighted RRF (a server older than 1.17?); hybrid search uses "
                        "equal weights from now on: %s", self.location, exc)
            kwargs["query"] = models.FusionQuery(fusion=models.Fusion.RRF)
            res = self._call("query_points", self.client.query_points, self.collection, **query, **kwargs)
        hits = []
        for p in res.points:
            cosine = None
            if dense is not None:
                vec = p.vector.get(DENSE) if isinstance(p.vector, dict) else None
                cosine = float(np.dot(np.asarray(vec, dtype=np.float32), dense)) if vec is not None else None
            hits.append(payload_to_hit(str(p.id), p.payload or {}, float(p.score), kind, cosine))
        return hits


def payload_to_hit(pid: str, pl: dict, score: float, kind: ScoreKind, cosine: float | None) -> Hit:
    """Build a :class:`Hit` from a point's payload."""
    return Hit(
        point_id=pid, score=score, score_kind=kind, cosine=cosine,
        workspace=pl.get("workspace", ""), source=pl.get("source", ""), article_id=pl.get("article_id", ""),
        locale=pl.get("locale", ""), title=pl.get("title", ""), url=pl.get("url"),
        breadcrumbs=pl.get("breadcrumbs") or [], updated_at=int(pl.get("updated_at", 0)),
        content_hash=pl.get("content_hash", ""), chunk_index=int(pl.get("chunk_index", 0)),
        heading=pl.get("heading", ""), text=pl.get("text", ""),
    )


def batched(items: Iterable, size: int):
    """Yield lists of at most ``size`` items."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
