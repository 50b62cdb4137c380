"""Sync: make the index match a source, incrementally, idempotently and crash-safely.

Strategy (LlamaIndex-style upsert-and-delete, with the index itself as the docstore):

1. Scroll the index's manifest for (workspace, source): per doc_key, the versions, point count and
   ``updated_at`` its points carry.
2. For each published article the connector yields: if the stored doc is complete, of the current
   pipeline, and has the same ``updated_at`` → unchanged, nothing is even cleaned. Otherwise clean and
   chunk it and compute its ``version`` (sha256 of the revision's content hash and the pipeline
   signature); same version and complete → unchanged (only ``updated_at`` is refreshed). Else embed,
   upsert its points (deterministic ids, ``wait=True``), then delete the doc's points of other versions.
3. After a complete listing, docs in the manifest that the source no longer yields (deleted or
   unpublished) are deleted. A failed listing deletes nothing; a failed article keeps its old points.

A crash at any point leaves docs that step 2 detects as incomplete (mixed versions or a wrong point
count) and rewrites on the next run; the sync cursor (``sync_state.json``) is written only after all
writes returned.

Readers in the same process (a sync run inside ``citedesk serve``) never see a half-written article: each
article's upsert-then-delete runs under the write side of ``doc_lock`` and searches take its read side (see
:class:`~citedesk.retrieval.search.Retriever`), so a search sees an article's old chunks or its new ones,
never a mix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from citedesk.core.errors import CitedeskError, ConnectorError
from citedesk.core.protocols import Connector, SourceFailure
from citedesk.core.types import Article, Chunk
from citedesk.ingest.chunk import Chunker
from citedesk.ingest.clean import to_clean_text
from citedesk.retrieval.store import ChunkPoint, DocState, QdrantIndex, point_id
from citedesk.retrieval.embedding.inputs import embed_text
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

log = logging.getLogger(__name__)

PIPELINE_VERSION = "4"  # 2: chunks that start inside a table carry its header row (table_header); 3: also a header
# with numbers for column names ("Extension | 10.1 | 10.3"); 4: tables of contents (nested lists of links) dropped


class FailedArticle(BaseModel):
    """An article the sync could not index (its previous points, if any, are kept)."""

    article_id: str
    locale: str | None = None
    error: str


class SyncReport(BaseModel):
    """Outcome of one sync run. Counts are article locales (docs) unless named chunks."""

    workspace: str
    source: str
    added: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: list[FailedArticle] = Field(default_factory=list)
    chunks_written: int = 0
    chunks_deleted_docs: int = 0
    embeddings_computed: int = 0
    seconds: float = 0.0
    listing_error: str | None = None

    @property
    def seen(self) -> int:
        """Docs the source yielded (indexed, unchanged or failed)."""
        return self.added + self.updated + self.unchanged + len(self.failed)

    @property
    def articles_per_s(self) -> float:
        """Docs processed per second of wall time."""
        return self.seen / self.seconds if self.seconds else 0.0

    @property
    def chunks_per_s(self) -> float:
        """Chunks embedded and written per second of wall time."""
        return self.chunks_written / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        """True when the listing completed and no article failed."""
        return self.listing_error is None and not self.failed

    def summary(self) -> dict:
        """Plain dict with the derived rates, for JSON output."""
        data = self.model_dump()
        data.update(seen=self.seen, articles_per_s=round(self.articles_per_s, 2),
                    chunks_per_s=round(self.chunks_per_s, 2), ok=self.ok)
        return data


@dataclass
class PreparedDoc:
    """An article cleaned and chunked, ready to embed."""

    article: Article
    content_hash: str
    version: str
    chunks: list[Chunk]
    is_new: bool


def content_hash(article: Article, clean_text: str) -> str:
    """sha256 hex of what a reader sees of one revision: title, url, breadcrumbs and clean text."""
    h = hashlib.sha256()
    for part in (article.title, article.url or "", " / ".join(article.breadcrumbs), clean_text):
        h.update(part.encode("utf-8", errors="replace"))
        h.update(b"\x00")
    return h.hexdigest()


class IngestPipeline:
    """clean → chunk → embed (dense + BM25) for articles.

    Args:
        embedder: object with ``embed(list[str]) -> float32 (n, dim)``, ``model_name`` and ``warm_up()``.
        chunker: heading-aware chunker.
        sparse: BM25 encoder.
        max_chars: clean-text cap per article (characters); longer articles are truncated.
    """

    def __init__(self, embedder, chunker: Chunker, sparse: BM25SparseEncoder, *,
                 max_chars: int = 2_000_000) -> None:
        self.embedder = embedder
        self.chunker = chunker
        self.sparse = sparse
        self.max_chars = max_chars

    @property
    def signature(self) -> str:
        """Changes when re-embedding is needed: pipeline version, model, chunking parameters."""
        raw = (f"{PIPELINE_VERSION}|{self.embedder.model_name}|{self.chunker.chunk_size}|"
               f"{self.chunker.chunk_overlap}|{self.max_chars}")
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def warm_up(self) -> None:
        """Load the embedding model, the chunker's splitter and tokenizer, and the cleaner's parsers."""
        self.embedder.warm_up()
        self.chunker.warm_up()
        to_clean_text("<p>warm up</p>", "html")
        to_clean_text("warm up", "markdown")

    def clean(self, article: Article) -> str:
        """The article's clean text (markdown-ish, at most ``max_chars`` characters), as it is chunked."""
        return to_clean_text(article.body, article.body_format, max_chars=self.max_chars)

    def prepare(self, article: Article, *, is_new: bool = True) -> PreparedDoc:
        """Clean and chunk one article (no embedding). Raises on content it cannot handle."""
        clean = self.clean(article)
        chash = content_hash(article, clean)
        version = hashlib.sha256(f"{chash}|{self.signature}".encode()).hexdigest()[:32]
        return PreparedDoc(article, chash, version, self.chunker.split(clean), is_new)

    def points(self, docs: list[PreparedDoc]) -> list[list[ChunkPoint]]:
        """Embed all chunks of ``docs`` in shared batches; returns the points per doc."""
        texts = [embed_text(d.article.title, c.heading, c.text) for d in docs for c in d.chunks]
        dense = self.embedder.embed(texts)
        sparse = self.sparse.encode_documents(texts)
        out, i = [], 0
        for d in docs:
            a, pts = d.article, []
            for c in d.chunks:
                pts.append(ChunkPoint(
                    id=point_id(a.doc_key, c.ordinal), dense=dense[i], sparse=sparse[i],
                    payload={
                        "workspace": a.workspace, "source": a.source, "article_id": a.article_id,
                        "locale": a.locale, "doc_key": a.doc_key, "title": a.title, "url": a.url,
                        "breadcrumbs": a.breadcrumbs, "updated_at": a.updated_at,
                        "content_hash": d.content_hash, "version": d.version, "pipeline": self.signature,
                        "chunk_index": c.ordinal, "chunk_count": len(d.chunks), "heading": c.heading,
                        "text": c.text, "start": c.start, "end": c.end, "table_header": c.table_header,
                    }))
                i += 1
            out.append(pts)
        return out


ProgressHook = Callable[[str, int], None]
"""Called as ``hook(event, n)``: ``("total", n)`` once if known, ``("advance", 1)`` per doc."""


class SyncEngine:
    """Runs syncs of connectors into one index.

    Args:
        index: the Qdrant front.
        pipeline: the ingest pipeline.
        state_dir: where ``sync_state.json`` (cursor and last report per workspace/source) is kept.
        embed_batch_chunks: chunks accumulated across articles before one embedding call.
        write_batch: points per upsert request.
        on_report: called with ``(report, scope)`` after each :meth:`sync` (scope ``full``), :meth:`sync_article`
            and :meth:`delete_article` (``article``), e.g. to count runs and articles in metrics; its exceptions
            are logged, never raised.
        doc_lock: a reader-writer lock shared with the retriever (``write_lock()`` / ``read_lock()`` context
            managers, e.g. ``fasteners.ReaderWriterLock``); each article's writes hold its write side, so
            searches in this process see whole articles. None: no locking (a sync alone in its process).
    """

    def __init__(self, index: QdrantIndex, pipeline: IngestPipeline, *, state_dir: Path | None = None,
                 embed_batch_chunks: int = 256, write_batch: int = 64,
                 on_report: Callable[[SyncReport, str], object] | None = None, doc_lock=None) -> None:
        self.index = index
        self.pipeline = pipeline
        self.state_dir = state_dir
        self.embed_batch_chunks = embed_batch_chunks
        self.write_batch = write_batch
        self.on_report = on_report
        self.doc_lock = doc_lock
        self._warm = False
        self._own_lock = threading.RLock()  # without doc_lock: still one writer at a time (the sync's writer thread)

    def _writing(self):
        """The write side of ``doc_lock`` (without one, a lock of this engine's own)."""
        return self.doc_lock.write_lock() if self.doc_lock is not None else self._own_lock

    def warm_up(self) -> None:
        """Load the pipeline's models and parsers (:meth:`IngestPipeline.warm_up`, once) and make sure the
        collection exists."""
        if not self._warm:
            self.pipeline.warm_up()
            self._warm = True
        self.index.ensure_collection(self.pipeline.embedder.dim)

    # -- public ---------------------------------------------------------------------------------
    def sync(self, connector: Connector, *, progress: ProgressHook | None = None) -> SyncReport:
        """Full sync of one connector (see module docstring).

        Returns:
            The :class:`SyncReport`; ``listing_error`` is set (and nothing deleted) when the source
            listing failed part-way.

        Raises:
            IndexUnavailableError: when Qdrant fails (the next run repairs any partial doc).
        """
        t0 = time.perf_counter()
        self.warm_up()
        report = SyncReport(workspace=connector.workspace, source=connector.name)
        manifest = self.index.manifest(connector.workspace, connector.name)
        seen: set[str] = set()
        max_updated = 0
        pending: list[PreparedDoc] = []
        writer = _Writer()  # a batch's writes overlap the next batch's cleaning, chunking and embedding
        try:
            if progress is not None:
                total = getattr(connector, "total_hint", None)
                if isinstance(total, int):
                    progress("total", total)
            for item in connector.list_articles():
                if isinstance(item, SourceFailure):
                    report.failed.append(FailedArticle(**item.model_dump()))
                    key = f"{connector.workspace}/{connector.name}/{item.article_id}/"
                    seen.update(k for k in manifest if k.startswith(key) and
                                (item.locale is None or k == key + item.locale))
                    self._tick(progress)
                    continue
                seen.add(item.doc_key)
                max_updated = max(max_updated, item.updated_at)
                doc = self._prepare(item, manifest.get(item.doc_key), report)
                if doc is not None:
                    pending.append(doc)
                    if sum(len(d.chunks) for d in pending) >= self.embed_batch_chunks:
                        self._flush(pending, report, progress, writer)
                        pending = []
                else:
                    self._tick(progress)
        except ConnectorError as exc:
            report.listing_error = str(exc)
            log.error("listing failed, no deletion this run: %s", exc)
        finally:
            writer.close()  # waits for the batch in flight
        writer.drain()  # raises its error, if any
        self._flush(pending, report, progress)
        if report.listing_error is None:
            self._delete_missing(connector.workspace, manifest, seen, report)
        self._optimize(report)
        report.seconds = time.perf_counter() - t0
        if report.listing_error is None:
            self._save_state(report, max_updated)
        self._report(report, "full")
        return report

    def sync_article(self, connector: Connector, article_id: str) -> SyncReport:
        """Re-sync one article (all its locales) through the same path; deletes locales no longer published.

        Used by webhooks. Raises ConnectorError when the source cannot be reached.
        """
        t0 = time.perf_counter()
        self.warm_up()
        report = SyncReport(workspace=connector.workspace, source=connector.name)
        articles = connector.fetch_article(article_id)
        manifest = {k: v for k, v in self.index.manifest(connector.workspace, connector.name).items()
                    if v.article_id == article_id}
        docs = [d for a in articles if (d := self._prepare(a, manifest.get(a.doc_key), report)) is not None]
        self._flush(docs, report, None)
        self._delete_missing(connector.workspace, manifest, {a.doc_key for a in articles}, report)
        self._optimize(report)
        report.seconds = time.perf_counter() - t0
        self._report(report, "article")
        return report

    def delete_article(self, workspace: str, source: str, article_id: str) -> int:
        """Delete every locale of an article; returns the number of docs removed."""
        manifest = self.index.manifest(workspace, source)
        keys = [k for k, v in manifest.items() if v.article_id == article_id]
        for key in keys:
            with self._writing():
                self.index.delete_doc(workspace, key)
        if keys:
            self.index.optimize()
        self._report(SyncReport(workspace=workspace, source=source, deleted=len(keys)), "article")
        return len(keys)

    def _report(self, report: SyncReport, scope: str) -> None:
        if self.on_report is None:
            return
        try:
            self.on_report(report, scope)
        except Exception:  # noqa: BLE001 - metrics must never fail a sync
            log.exception("sync report hook failed")

    # -- internals ------------------------------------------------------------------------------
    def _delete_missing(self, workspace: str, manifest: dict[str, DocState], keep: set[str],
                        report: SyncReport) -> None:
        """Delete the docs of ``manifest`` not in ``keep`` (deleted or unpublished at the source)."""
        for key, state in manifest.items():
            if key not in keep:
                with self._writing():
                    self.index.delete_doc(workspace, key)
                report.deleted += 1
                report.chunks_deleted_docs += state.points

    def _optimize(self, report: SyncReport) -> None:
        """After writes, let the index build its indexes (qdrant-edge does it only when asked)."""
        if report.chunks_written or report.deleted:
            self.index.optimize()

    @staticmethod
    def _tick(progress: ProgressHook | None, n: int = 1) -> None:
        if progress is not None:
            progress("advance", n)

    def _prepare(self, article: Article, state: DocState | None, report: SyncReport) -> PreparedDoc | None:
        if (state is not None and state.is_complete() and state.pipeline == self.pipeline.signature
                and article.updated_at and state.updated_at == article.updated_at):
            report.unchanged += 1
            return None
        try:
            doc = self.pipeline.prepare(article, is_new=state is None)
        except Exception as exc:  # noqa: BLE001 - one bad article is reported, never aborts
            report.failed.append(FailedArticle(article_id=article.article_id, locale=article.locale,
                                               error=f"{type(exc).__name__}: {exc}"))
            return None
        if state is not None and state.is_complete(doc.version):
            if state.updated_at != article.updated_at:
                with self._writing():
                    self.index.set_doc_fields(article.workspace, article.doc_key, {"updated_at": article.updated_at})
            report.unchanged += 1
            return None
        return doc

    def _flush(self, docs: list[PreparedDoc], report: SyncReport, progress: ProgressHook | None,
                writer: "_Writer | None" = None) -> None:
        """Embed ``docs`` and write them: in ``writer``'s thread when given (after its previous batch is written),
        else here."""
        if not docs:
            return
        try:
            per_doc = self.pipeline.points(docs)
        except CitedeskError:
            raise
        except Exception as exc:  # noqa: BLE001 - an embedding failure fails these docs only
            for d in docs:
                report.failed.append(FailedArticle(article_id=d.article.article_id, locale=d.article.locale,
                                                   error=f"embedding failed: {exc}"))
            self._tick(progress, len(docs))
            return
        report.embeddings_computed += sum(len(p) for p in per_doc)
        if writer is not None:
            writer.submit(self._write, docs, per_doc, report, progress)
        else:
            self._write(docs, per_doc, report, progress)

    def _write(self, docs: list[PreparedDoc], per_doc: list[list[ChunkPoint]], report: SyncReport,
               progress: ProgressHook | None) -> None:
        for doc, points in zip(docs, per_doc):
            with self._writing():  # the article's new chunks replace the old ones as a unit for readers
                for start in range(0, len(points), self.write_batch):
                    self.index.upsert(points[start:start + self.write_batch])
                self.index.delete_doc(doc.article.workspace, doc.article.doc_key, keep_version=doc.version)
            report.chunks_written += len(points)
            if doc.is_new:
                report.added += 1
            else:
                report.updated += 1
            self._tick(progress)

    def _save_state(self, report: SyncReport, cursor: int) -> None:
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / "sync_state.json"
        state = json.loads(path.read_text()) if path.is_file() else {}
        state[f"{report.workspace}/{report.source}"] = {
            "cursor_updated_at": cursor, "finished_at": int(time.time()), "report": report.summary()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, path)



class _Writer:
    """One background thread writing embedded batches, at most one batch behind the caller.

    ``submit`` first waits for the previous batch (re-raising its error, e.g. IndexUnavailableError), so the order
    of writes, and what a crash can leave behind, are those of a synchronous sync; ``close`` waits for the last.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sync-write")
        self._last: Future | None = None

    def drain(self) -> None:
        """Wait for the batch in flight; raise its error."""
        last, self._last = self._last, None
        if last is not None:
            last.result()

    def submit(self, fn, *args) -> None:
        self.drain()
        self._last = self._pool.submit(fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
