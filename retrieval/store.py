"""The Qdrant front: one class over the embedded engines (qdrant-edge, qdrant-client's local mode) and a
server or cluster, delegating to ``retrieval/engines/`` (imports no Qdrant SDK itself).

One collection holds every workspace (tenant); each point is one chunk with a named dense vector ``dense``
(cosine) and a named sparse vector ``bm25`` (IDF modifier), and a payload (see :data:`PAYLOAD_FIELDS`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from citedesk.core.errors import IndexUnavailableError
from citedesk.core.types import Hit, QdrantEngine, ScoreKind
from citedesk.retrieval.embedding.sparse import SparseVector
from citedesk.retrieval.engines.base import (  # DENSE, SPARSE, ChunkPoint: re-exported for ingest and tests
    DENSE,
    SPARSE,
    ChunkPoint,
    ClusterParams,
    CollectionSpec,
    Engine,
    PayloadIndex,
    PointFilter,
    VectorQuery,
)
from citedesk.retrieval.engines.client import WeightedRrfRejected

log = logging.getLogger(__name__)

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
    """The one front over Qdrant: the data model here, the engine behind it chosen by configuration.

    Engines (``retrieval/engines/``): qdrant-edge in-process (``engine="edge"``, the embedded default),
    qdrant-client's local mode (``engine="local"``), or a Qdrant server or cluster (``url`` set, wins).
    Every engine gets the same collection (named vectors ``dense`` + ``bm25`` with IDF, payload indexes with
    the ``is_tenant`` workspace index), the same point ids and the same queries, so moving between them is a
    configuration change.

    Args:
        collection: collection name.
        path: index root folder of the embedded engines (local mode keeps ``collection/`` in it, edge ``edge/``).
        url: server or cluster URL (``http://host:6333``); wins over ``path``.
        api_key: for a secured server.
        timeout: seconds per request (remote).
        engine: embedded engine when ``url`` is None.
        hnsw_ef: HNSW search beam of dense queries (None: the engine's default).
        exact: search dense vectors exactly (brute force) instead of through HNSW.
        hnsw_m / hnsw_ef_construct / full_scan_threshold_kb: HNSW build parameters of a new collection.
        cluster: shard and replica layout of a new collection on a server.

    Raises:
        IndexUnavailableError: from any method when Qdrant cannot be reached, is locked by another process,
            or errors.
    """

    def __init__(self, collection: str = "citedesk", *, path: Path | str | None = None,
                 url: str | None = None, api_key: str | None = None, timeout: float = 10.0,
                 engine: QdrantEngine | str = QdrantEngine.EDGE, hnsw_ef: int | None = None, exact: bool = False,
                 hnsw_m: int = 16, hnsw_ef_construct: int = 100, full_scan_threshold_kb: int = 10_000,
                 cluster: ClusterParams | None = None) -> None:
        if path is None and url is None:
            raise ValueError("QdrantIndex needs path (embedded) or url (server)")
        self.collection = collection
        self.path = Path(path) if path is not None else None
        self.url = url
        self.api_key = api_key
        self.timeout = timeout
        self.engine_kind = QdrantEngine(engine)
        self.hnsw_ef = hnsw_ef
        self.exact = exact
        self.hnsw_m, self.hnsw_ef_construct = hnsw_m, hnsw_ef_construct
        self.full_scan_threshold_kb = full_scan_threshold_kb
        self.cluster = cluster or ClusterParams()
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self.weighted_rrf = True  # False once a server rejected weighted RRF (Qdrant < 1.17)

    # -- connection -------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Human-readable location: the URL, ``edge:<folder>`` or ``local:<folder>``."""
        if self.url:
            return self.url
        if self.engine_kind == QdrantEngine.EDGE:
            from citedesk.retrieval.engines.edge import shard_dir

            return f"edge:{shard_dir(self.path, self.collection)}"
        return f"local:{self.path}"

    @property
    def engine(self) -> Engine:
        """The engine, opened on first use."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._connect()
        return self._engine

    def _connect(self) -> Engine:
        try:
            if self.url or self.engine_kind == QdrantEngine.LOCAL:
                from citedesk.retrieval.engines.client import ClientEngine

                return ClientEngine(self.collection, path=self.path, url=self.url, api_key=self.api_key,
                                    timeout=self.timeout)
            from citedesk.retrieval.engines.edge import EdgeEngine

            self.path.mkdir(parents=True, exist_ok=True)
            engine = EdgeEngine(self.collection, self.path)
            if not engine.exists() and local_mode_collection(self.path, self.collection).exists():
                engine.close()
                self._migrate_local_mode()
                engine = EdgeEngine(self.collection, self.path)
            return engine
        except IndexUnavailableError:
            raise
        except Exception as exc:  # folder held by another process, bad URL, unreadable data...
            raise IndexUnavailableError(f"cannot open Qdrant at {self.location}: {exc}") from exc

    def _migrate_local_mode(self) -> None:
        """Copy a collection written by qdrant-client's local mode (citedesk before the edge engine) into an edge
        shard, vectors and payloads as they are (nothing is re-embedded). Written to a side folder and renamed
        when complete, so an interrupted copy starts again; the local-mode files are left in place."""
        from citedesk.retrieval.engines.client import ClientEngine
        from citedesk.retrieval.engines.edge import EdgeEngine, shard_dir

        staging = f"{self.collection}.migrating"
        shutil.rmtree(shard_dir(self.path, staging), ignore_errors=True)
        source = ClientEngine(self.collection, path=self.path)
        target = EdgeEngine(staging, self.path)
        try:
            target.create(self._spec(source.dense_size()))
            offset, copied = None, 0
            while True:
                records, offset = source.scroll(None, fields=True, limit=256, offset=offset, with_vectors=True)
                target.upsert([ChunkPoint(r.id, np.asarray(r.dense, dtype=np.float32), r.sparse or SparseVector([], []),
                                          r.payload) for r in records])
                copied += len(records)
                if offset is None:
                    break
            target.optimize()
        finally:
            source.close()
            target.close()
        shard_dir(self.path, staging).rename(shard_dir(self.path, self.collection))
        log.warning("copied %d points of collection %r from qdrant-client's local mode (%s) into the edge engine "
                    "(%s); the local-mode files are no longer read (set qdrant.engine = \"local\" to keep using "
                    "them, or delete %s)", copied, self.collection, self.path, shard_dir(self.path, self.collection),
                    local_mode_collection(self.path, self.collection))

    def close(self) -> None:
        """Close the engine (releases the embedded folder's lock)."""
        if self._engine is not None:
            try:
                self._engine.close()
            finally:
                self._engine = None

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (IndexUnavailableError, WeightedRrfRejected):
            raise
        except Exception as exc:
            raise IndexUnavailableError(f"Qdrant {what} failed at {self.location}: {exc}") from exc

    def ping(self) -> bool:
        """True when the collection is reachable (False when missing). Raises IndexUnavailableError."""
        return bool(self._call("ping", self.engine.exists))

    # -- schema -----------------------------------------------------------------------------
    def _spec(self, dim: int) -> CollectionSpec:
        indexes = (PayloadIndex("workspace", "keyword", is_tenant=True),
                   *(PayloadIndex(f, "keyword") for f in KEYWORD_FIELDS),
                   *(PayloadIndex(f, "integer") for f in INTEGER_FIELDS))
        return CollectionSpec(dim=dim, payload_indexes=indexes, hnsw_m=self.hnsw_m,
                              hnsw_ef_construct=self.hnsw_ef_construct,
                              full_scan_threshold_kb=self.full_scan_threshold_kb, cluster=self.cluster)

    def ensure_collection(self, dim: int) -> None:
        """Create the collection and payload indexes if missing.

        Args:
            dim: dense vector size (e.g. 384).

        Raises:
            IndexUnavailableError: unreachable, or the existing collection has another dense size.
        """
        engine = self.engine
        if self._call("collection_exists", engine.exists):
            size = self._call("get_collection", engine.dense_size)
            if size != dim:
                raise IndexUnavailableError(
                    f"collection {self.collection!r} has dense size {size}, embedding model gives {dim}; "
                    "use another collection name or re-create it")
            return
        self._call("create_collection", engine.create, self._spec(dim))

    def optimize(self) -> None:
        """Index what was written (HNSW, payload indexes) and drop deleted points: the edge engine does it only
        when asked, so the sync calls this after it wrote; a no-op for local mode and servers."""
        if self._call("collection_exists", self.engine.exists):
            self._call("optimize", self.engine.optimize)

    # -- filters ----------------------------------------------------------------------------
    @staticmethod
    def _filter(flt: SearchFilter, *extra_must: tuple[str, object], must_not=()) -> PointFilter:
        if not flt.workspace:
            raise ValueError("a workspace is required in every filter")
        must = [("workspace", flt.workspace)]
        for key, values in (("locale", flt.locales), ("source", flt.sources), ("article_id", flt.article_ids)):
            if values:
                must.append((key, tuple(values)))
        must.extend(extra_must)
        must_not = list(must_not)
        if flt.exclude_article_ids:
            must_not.append(("article_id", tuple(flt.exclude_article_ids)))
        return PointFilter(must=tuple(must), must_not=tuple(must_not))

    # -- writes -----------------------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Write points (durable when it returns: a server confirms with wait=True, edge has logged them)."""
        if points:
            self._call("upsert", self.engine.upsert, points)

    def delete_doc(self, workspace: str, doc_key: str, *, keep_version: str | None = None) -> None:
        """Delete a doc's points; with ``keep_version``, only those of another version (stale ones)."""
        must_not = [("version", keep_version)] if keep_version else []
        flt = self._filter(SearchFilter(workspace=workspace), ("doc_key", doc_key), must_not=must_not)
        self._call("delete", self.engine.delete, flt)

    # -- reads ------------------------------------------------------------------------------
    def count(self, workspace: str, *, doc_key: str | None = None, source: str | None = None,
              exact: bool = True) -> int:
        """Number of points in a workspace (optionally one doc or one source).

        ``exact=False`` lets a Qdrant server answer from its index estimate (cheap, for health
        checks); the embedded engines count exactly.
        """
        extra = [("doc_key", doc_key)] if doc_key else []
        flt = self._filter(SearchFilter(workspace=workspace, sources=(source,) if source else None), *extra)
        if not self._call("collection_exists", self.engine.exists):
            return 0
        return self._call("count", self.engine.count, flt, exact)

    def manifest(self, workspace: str, source: str) -> dict[str, DocState]:
        """What the index holds per doc_key for one workspace and source (scrolls payloads, no vectors)."""
        out: dict[str, DocState] = {}
        if not self._call("collection_exists", self.engine.exists):
            return out
        flt = self._filter(SearchFilter(workspace=workspace, sources=(source,)))
        offset = None
        while True:
            points, offset = self._call(
                "scroll", self.engine.scroll, flt, limit=1024, offset=offset,
                fields=["doc_key", "content_hash", "version", "pipeline", "chunk_count", "updated_at", "article_id"])
            for p in points:
                pl = p.payload
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
        flt = self._filter(SearchFilter(workspace=workspace), ("doc_key", doc_key))
        self._call("set_payload", self.engine.set_payload, flt, fields)

    def set_point_fields(self, point_ids: Sequence[str], fields: dict) -> None:
        """Overwrite payload fields on the given points (repair and test tooling)."""
        self._call("set_payload", self.engine.set_payload, None, fields, list(point_ids))

    def chunk_texts(self, workspace: str | None = None, *, page: int = 512) -> Iterator[tuple[str, str]]:
        """``(text, table_header)`` of every chunk of a workspace (None: of all workspaces), in no particular order
        (scrolls payloads, no vectors; an empty iterator when there is no collection)."""
        if not self._call("collection_exists", self.engine.exists):
            return
        flt = self._filter(SearchFilter(workspace=workspace)) if workspace is not None else None
        offset = None
        while True:
            points, offset = self._call("scroll", self.engine.scroll, flt, limit=page, offset=offset,
                                        fields=["text", "table_header"])
            for p in points:
                yield p.payload.get("text") or "", p.payload.get("table_header") or ""
            if offset is None:
                return

    def doc_points(self, workspace: str, doc_key: str) -> list[dict]:
        """Payloads of one doc's points, ordered by chunk_index (for tests and the audit view)."""
        flt = self._filter(SearchFilter(workspace=workspace), ("doc_key", doc_key))
        points, _ = self._call("scroll", self.engine.scroll, flt, fields=True, limit=10_000)
        return sorted((dict(p.payload, id=p.id) for p in points), key=lambda d: d["chunk_index"])

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
                RRF query (Qdrant ≥ 1.17, qdrant-edge). A server that rejects it (HTTP 400) gets plain RRF
                from then on, with one warning, instead of failing every query.

        Returns:
            Hits best first. ``score_kind`` is ``cosine`` (dense), ``bm25`` (sparse) or ``rrf``
            (hybrid); ``cosine`` is filled whenever a dense query was given.
        """
        if dense is None and sparse is None:
            raise ValueError("search needs a dense or a sparse query")
        if sparse is not None and not sparse.indices:
            sparse = None  # no terms: the sparse branch can match nothing
            if dense is None:
                return []
        hybrid = dense is not None and sparse is not None
        kind = ScoreKind.RRF if hybrid else ScoreKind.COSINE if dense is not None else ScoreKind.BM25
        weighted = hybrid and fusion_weights[0] != fusion_weights[1] and self.weighted_rrf
        query = VectorQuery(dense=dense, sparse=sparse, flt=self._filter(flt), limit=limit, prefetch_k=prefetch_k,
                            weights=tuple(fusion_weights) if weighted else None, with_dense=dense is not None,
                            hnsw_ef=self.hnsw_ef, exact=self.exact)
        try:
            records = self._call("query_points", self.engine.query, query)
        except WeightedRrfRejected as exc:
            self.weighted_rrf = False
            log.warning("Qdrant at %s rejected weighted RRF (a server older than 1.17?); hybrid search uses "
                        "equal weights from now on: %s", self.location, exc)
            records = self._call("query_points", self.engine.query, dataclasses.replace(query, weights=None))
        hits = []
        for r in records:
            cosine = None
            if dense is not None and r.dense is not None:
                cosine = float(np.dot(np.asarray(r.dense, dtype=np.float32), dense))
            hits.append(payload_to_hit(r.id, r.payload, r.score, kind, cosine))
        return hits


def local_mode_collection(root: Path, collection: str) -> Path:
    """Folder where qdrant-client's local mode keeps ``collection`` under ``root``."""
    return root / "collection" / collection


def payload_to_hit(pid: str, pl: dict, score: float, kind: ScoreKind, cosine: float | None) -> Hit:
    """Build a :class:`Hit` from a point's payload."""
    return Hit(
        point_id=pid, score=score, score_kind=kind, cosine=cosine,
        workspace=pl.get("workspace", ""), source=pl.get("source", ""), article_id=pl.get("article_id", ""),
        locale=pl.get("locale", ""), title=pl.get("title", ""), url=pl.get("url"),
        breadcrumbs=pl.get("breadcrumbs") or [], updated_at=int(pl.get("updated_at", 0)),
        content_hash=pl.get("content_hash", ""), chunk_index=int(pl.get("chunk_index", 0)),
        heading=pl.get("heading", ""), text=pl.get("text", ""), table_header=pl.get("table_header") or "",
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
