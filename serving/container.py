"""Composition root: builds every component from :class:`config.Settings` (cheap; models load in warm_up)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from config.settings import Settings
from core.errors import ConfigError
from core.types import Channel
from ingest.chunk import Chunker
from ingest.embedding import CrossEncoderReranker, SentenceEmbedder
from ingest.index import QdrantIndex
from ingest.sparse import BM25SparseEncoder
from ingest.sync import IngestPipeline, SyncEngine
from retrieval.search import Retriever
from serving.generators import ExtractiveGenerator, OpenAIGenerator
from serving.pipeline import AnswerPipeline, AnswerPolicy


@dataclass
class Container:
    """Lazily built components sharing one embedder and one index client."""

    settings: Settings

    @cached_property
    def index(self) -> QdrantIndex:
        q = self.settings.qdrant
        return QdrantIndex(q.collection, path=q.path or self.settings.data_dir / "qdrant", url=q.url,
                           api_key=q.api_key.get_secret_value() if q.api_key else None, timeout=q.timeout)

    @cached_property
    def db(self):
        """Relational store (audit, webhook idempotency, API keys); migrated on first session."""
        from serving.db import Database, default_url

        return Database(self.settings.database.url or default_url(self.settings.data_dir))

    @cached_property
    def embedder(self) -> SentenceEmbedder:
        e = self.settings.embedding
        return SentenceEmbedder(e.model, device=e.device, batch_size=e.batch_size, max_seq_length=e.max_seq_length)

    @cached_property
    def sparse(self) -> BM25SparseEncoder:
        return BM25SparseEncoder()

    @cached_property
    def sync_engine(self) -> SyncEngine:
        c = self.settings.chunking
        pipeline = IngestPipeline(self.embedder, Chunker(c.chunk_size, c.chunk_overlap), self.sparse,
                                  max_chars=c.max_article_chars)
        return SyncEngine(self.index, pipeline, state_dir=self.settings.data_dir,
                          write_batch=self.settings.qdrant.write_batch)

    @cached_property
    def retriever(self) -> Retriever:
        r = self.settings.retrieval
        reranker = CrossEncoderReranker(r.rerank_model, device=self.settings.embedding.device) \
            if r.rerank_model else None
        return Retriever(self.index, self.embedder, self.sparse, reranker=reranker, mode=r.mode,
                         prefetch_k=r.prefetch_k, rerank_k=r.rerank_k)

    @cached_property
    def generator(self):
        a, llm = self.settings.answer, self.settings.llm
        if a.generator == "openai":
            if not llm.base_url:
                raise ConfigError("answer.generator=openai needs llm.base_url")
            return OpenAIGenerator(llm.base_url, model=llm.model, api_key=llm.api_key.get_secret_value(),
                                   timeout=llm.timeout, max_tokens=llm.max_tokens,
                                   temperature=llm.temperature, max_retries=llm.max_retries)
        return ExtractiveGenerator(self.embedder, max_sentences=a.max_sentences)

    @cached_property
    def pipeline(self) -> AnswerPipeline:
        a = self.settings.answer
        policy = AnswerPolicy(thresholds={Channel.CHAT: a.threshold_chat, Channel.VOICE: a.threshold_voice},
                              top_k=self.settings.retrieval.top_k, evidence_chunks=a.evidence_chunks)
        return AnswerPipeline(self.retriever, self.generator, self.sparse, policy, workspace=self.settings.workspace)

    def folder_connector(self, path=None):
        """Folder connector from settings (``path`` overrides ``folder.path``)."""
        from connectors.folder import FolderConnector

        f = self.settings.folder
        root = path or f.path
        if root is None:
            raise ConfigError("no folder given (CITEDESK_FOLDER__PATH or --path)")
        return FolderConnector(root, workspace=self.settings.workspace, base_url=f.base_url)

    def intercom_connector(self):
        """Intercom connector from settings."""
        from connectors.intercom import IntercomConnector

        i = self.settings.intercom
        if i.token is None:
            raise ConfigError("no Intercom token (CITEDESK_INTERCOM__TOKEN)")
        return IntercomConnector(i.token.get_secret_value(), base_url=i.base_url,
                                 workspace=i.workspace or self.settings.workspace, per_page=i.per_page,
                                 max_retries=i.max_retries, timeout=i.timeout, locales=i.locales)
