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
    def audit(self):
        """Audit trail of answers (recorder, queries, reports); see serving/audit.py."""
        from serving.audit import AuditLog, Redactor

        a = self.settings.audit
        return AuditLog(self.db, workspace=self.settings.workspace, redactor=Redactor(a.redact),
                        retention_days=a.retention_days, index=self.index, embedder=self.embedder,
                        gap_similarity=a.gap_similarity, low_confidence=a.low_confidence)

    @cached_property
    def authenticator(self):
        """Scoped API keys (serving/auth.py); lets everything through while ``auth.enabled`` is false."""
        from serving.auth import Authenticator, KeyStore

        return Authenticator(KeyStore(self.db), enabled=self.settings.auth.enabled,
                             workspace=self.settings.workspace)

    @cached_property
    def rate_limiter(self):
        """Per-key limiter for the answer routes, or None when disabled."""
        from serving.ratelimit import RateLimiter

        r = self.settings.rate_limit
        return RateLimiter(r.answer, r.storage_uri) if r.enabled else None

    @cached_property
    def embedder(self) -> SentenceEmbedder:
        e = self.settings.embedding
        if e.model.startswith("hash:"):
            from ingest.hash_embedder import HashEmbedder

            return HashEmbedder(int(e.model.split(":", 1)[1]))
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
                         prefetch_k=r.prefetch_k, rerank_k=r.rerank_k,
                         fusion_weights=(r.dense_weight, r.sparse_weight))

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
        return AnswerPipeline(self.retriever, self.generator, self.sparse, policy, workspace=self.settings.workspace,
                              recorder=self.audit.record if self.settings.audit.enabled else None)

    @cached_property
    def voice(self):
        """Voice-channel responder over :attr:`pipeline` (fillers, speakable text, pacing, signed state)."""
        from serving.voice import StateSigner, VoicePolicy, VoiceResponder

        v = self.settings.voice
        policy = VoicePolicy(filler_budget_ms=v.filler_budget_ms, filler_phrases=tuple(v.filler_phrases),
                             speak_source_titles=v.speak_source_titles, max_sentences=v.max_sentences,
                             steps_per_turn=v.steps_per_turn)
        key = v.state_secret.get_secret_value().encode() if v.state_secret else None
        return VoiceResponder(self.pipeline, policy, StateSigner(key))

    @cached_property
    def intercom_webhooks(self):
        """Intercom webhook middleware (serving/middleware.py) over :attr:`pipeline` and :attr:`sync_engine`;
        ``None`` unless ``intercom.client_secret`` is set and ``intercom.middleware.enabled``."""
        from serving.middleware import MiddlewareConfig, WebhookMiddleware

        i = self.settings.intercom
        if i.client_secret is None or not i.middleware.enabled:
            return None
        if i.token is None:
            raise ConfigError("Intercom webhooks need an access token (CITEDESK_INTERCOM__TOKEN)")
        return WebhookMiddleware(self.db, self.intercom_connector, self.pipeline, MiddlewareConfig.from_settings(i),
                                 sync_engine=self.sync_engine, workspace=i.workspace or self.settings.workspace)

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
