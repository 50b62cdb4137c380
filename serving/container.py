"""Composition root: builds every component from :class:`~citedesk.config.settings.Settings` (cheap; models load
in warm_up). The one serving module that imports ``ingest`` (the sync engine for ``citedesk sync`` and article
webhooks, and its HTML cleaner for conversation text)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from citedesk.config.settings import Settings
from citedesk.core.errors import ConfigError
from citedesk.core.types import Channel, GeneratorKind, ReaderKind
from citedesk.retrieval.confidence import (
    CROSS_ENCODER_READER_BIAS,
    CROSS_ENCODER_READER_THRESHOLDS,
    CROSS_ENCODER_READER_WEIGHTS,
    DEFAULT_THRESHOLDS,
    READER_THRESHOLDS,
    ConfidenceModel,
)
from citedesk.retrieval.embedding.dense import CrossEncoderReranker, SentenceEmbedder
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.retrieval.search import Retriever
from citedesk.retrieval.store import ClusterParams, QdrantIndex
from citedesk.serving.answer.generators import ExtractiveGenerator, OpenAIGenerator
from citedesk.serving.answer.pipeline import AnswerPipeline, AnswerPolicy

if TYPE_CHECKING:  # ingest (bs4, markdown-it, llama-index) loads only for a sync: `citedesk ask` starts faster
    from citedesk.ingest.sync import SyncEngine


def html_to_text(body: str) -> str:
    """Plain text of an HTML body (a conversation part), cleaned as ingest cleans articles."""
    from citedesk.ingest.clean import to_clean_text

    return to_clean_text(body, "html")


AUTO_READER = "auto"
"""``answer.reader_model``'s default: the bundled cross-encoder where it applies (:attr:`Container.reader_choice`)."""

BUNDLED_READERS = (Path(__file__).resolve().parents[1] / "data" / "models" / "reader-minilm",
                   Path("/opt/citedesk/models/reader-minilm"))
"""Where ``auto`` finds the cross-encoder reader fine-tuned from all-MiniLM-L6-v2 (``bench/train_reader.py``): the
project folder of a source checkout, then the container image's copy. The first folder that exists is used."""


def reader_kind_of(model: str) -> ReaderKind:
    """``answer.reader_kind`` when unset: a language model for a ``.gguf`` file or a folder or ``package:<module>``
    holding one; a cross-encoder otherwise."""
    if model.lower().endswith(".gguf"):
        return ReaderKind.LANGUAGE_MODEL
    from citedesk.retrieval.embedding.likelihood import resolve_gguf

    try:
        resolve_gguf(model)
    except ValueError:
        return ReaderKind.CROSS_ENCODER
    return ReaderKind.LANGUAGE_MODEL


@dataclass
class Container:
    """Lazily built components sharing one embedder and one index client."""

    settings: Settings

    @cached_property
    def index(self) -> QdrantIndex:
        q = self.settings.qdrant
        return QdrantIndex(q.collection, path=q.path or self.settings.data_dir / "qdrant", url=q.url,
                           api_key=q.api_key.get_secret_value() if q.api_key else None, timeout=q.timeout,
                           engine=q.engine, hnsw_ef=q.hnsw_ef, exact=q.exact, hnsw_m=q.hnsw_m,
                           hnsw_ef_construct=q.hnsw_ef_construct, full_scan_threshold_kb=q.full_scan_threshold_kb,
                           cluster=ClusterParams(shard_number=q.shards, replication_factor=q.replication_factor,
                                                 write_consistency_factor=q.write_consistency_factor,
                                                 on_disk_payload=q.on_disk_payload))

    @cached_property
    def db(self):
        """Relational store (audit, webhook idempotency, API keys); migrated on first session."""
        from citedesk.serving.db.engine import Database, default_url

        return Database(self.settings.database.url or default_url(self.settings.data_dir))

    @cached_property
    def audit(self):
        """Audit trail of answers (recorder, queries, reports); see ``serving/audit/``."""
        from citedesk.serving.audit.log import AuditLog
        from citedesk.serving.audit.redaction import Redactor

        a = self.settings.audit
        return AuditLog(self.db, workspace=self.settings.workspace, redactor=Redactor(a.redact),
                        retention_days=a.retention_days, index=self.index, embedder=self.embedder,
                        gap_similarity=a.gap_similarity, low_confidence=a.low_confidence)

    @cached_property
    def authenticator(self):
        """Scoped API keys (``serving/api/auth.py``); lets everything through while ``auth.enabled`` is false."""
        from citedesk.serving.api.auth import Authenticator, KeyStore

        return Authenticator(KeyStore(self.db), enabled=self.settings.auth.enabled,
                             workspace=self.settings.workspace)

    @cached_property
    def rate_limiter(self):
        """Per-key limiter for the answer routes, or None when disabled."""
        from citedesk.serving.api.ratelimit import RateLimiter

        r = self.settings.rate_limit
        return RateLimiter(r.answer, r.storage_uri) if r.enabled else None

    @cached_property
    def metrics(self):
        """Prometheus instruments of this process, or None when ``metrics.enabled`` is false."""
        from citedesk.serving.observability.metrics import Metrics

        m = self.settings.metrics
        return Metrics(max_workspaces=m.max_workspaces, workspace=self.settings.workspace) if m.enabled else None

    @cached_property
    def embedder(self) -> SentenceEmbedder:
        e = self.settings.embedding
        if e.model.startswith("hash:"):
            from citedesk.retrieval.embedding.hashing import HashEmbedder

            return HashEmbedder(int(e.model.split(":", 1)[1]))
        backend = self._backend(e.model)
        if backend in ("onnx", "onnx-int8"):
            from citedesk.retrieval.embedding.onnx import OnnxEmbedder

            return OnnxEmbedder(e.model, cache_dir=self.settings.data_dir / "onnx", quantize=backend == "onnx-int8",
                                batch_size=e.batch_size, max_seq_length=e.max_seq_length)
        return SentenceEmbedder(e.model, device=e.device, batch_size=e.batch_size, max_seq_length=e.max_seq_length,
                                backend=backend, fp16=e.fp16)

    def _backend(self, model: str) -> str:
        """``embedding.backend`` for ``model``, ``auto`` resolved: torch where an NVIDIA driver is present (or the
        device is cuda/mps) or the model has no local files to export, else onnx."""
        e = self.settings.embedding
        if e.backend != "auto":
            return e.backend
        from citedesk.retrieval.embedding.dense import nvidia_driver_present, resolve_model_path

        gpu = e.device.startswith("cuda") or (e.device == "auto" and nvidia_driver_present())
        local = Path(resolve_model_path(model)).is_dir()  # the export needs the model's files
        return "torch" if gpu or e.device == "mps" or not local else "onnx"

    @cached_property
    def sparse(self) -> BM25SparseEncoder:
        return BM25SparseEncoder()

    @cached_property
    def doc_lock(self):
        """Reader-writer lock: the sync engine writes each article under it, searches read under it, so an
        answer never sees an article half-replaced by a sync running in this process."""
        import fasteners

        return fasteners.ReaderWriterLock()

    @cached_property
    def sync_engine(self) -> "SyncEngine":
        from citedesk.ingest.chunk import Chunker
        from citedesk.ingest.sync import IngestPipeline, SyncEngine

        c = self.settings.chunking
        pipeline = IngestPipeline(self.embedder, Chunker(c.chunk_size, c.chunk_overlap), self.sparse,
                                  max_chars=c.max_article_chars)
        return SyncEngine(self.index, pipeline, state_dir=self.settings.data_dir,
                          write_batch=self.settings.qdrant.write_batch, doc_lock=self.doc_lock,
                          on_report=self.metrics.observe_sync if self.metrics is not None else None)

    @cached_property
    def sync_runner(self):
        """Sync jobs inside the serving process (``POST /v1/sync``, ``sync.interval``), one at a time."""
        from citedesk.serving.sync_jobs import SyncJobRunner

        warmer = self.unit_warmer
        return SyncJobRunner(lambda: self.sync_engine, location=self.index.location,
                             on_success=warmer.start if warmer is not None else None)

    @cached_property
    def unit_warmer(self):
        """Background warm-up of the extractive generator's unit vector cache (``answer.unit_cache_warm``), or None
        (no warm-up, no cache, or an LLM generator)."""
        from citedesk.serving.answer.unit_warm import UnitCacheWarmer

        a = self.settings.answer
        if not (a.unit_cache_warm and a.unit_cache_entries) or a.generator != GeneratorKind.EXTRACTIVE:
            return None
        return UnitCacheWarmer(self.generator, self.index)

    @cached_property
    def retriever(self) -> Retriever:
        r = self.settings.retrieval
        reranker = CrossEncoderReranker(r.rerank_model, device=self.settings.embedding.device) \
            if r.rerank_model else None
        return Retriever(self.index, self.embedder, self.sparse, reranker=reranker, mode=r.mode,
                         prefetch_k=r.prefetch_k, rerank_k=r.rerank_k,
                         fusion_weights=(r.dense_weight, r.sparse_weight), doc_lock=self.doc_lock)

    @cached_property
    def generator(self):
        a, llm = self.settings.answer, self.settings.llm
        if a.generator == GeneratorKind.OPENAI:
            if not llm.base_url:
                raise ConfigError("answer.generator=openai needs llm.base_url")
            return OpenAIGenerator(llm.base_url, model=llm.model, api_key=llm.api_key.get_secret_value(),
                                   timeout=llm.timeout, max_tokens=llm.max_tokens,
                                   temperature=llm.temperature, max_retries=llm.max_retries)
        units = self.embedder
        if a.unit_cache_entries:
            from citedesk.retrieval.embedding.cache import CachedEmbedder

            units = CachedEmbedder(self.embedder, a.unit_cache_entries)
        return ExtractiveGenerator(units, self.sparse, max_sentences=a.max_sentences)

    @cached_property
    def pipeline(self) -> AnswerPipeline:
        a = self.settings.answer
        policy = AnswerPolicy(thresholds=self.thresholds,
                              top_k=self.settings.retrieval.top_k, evidence_chunks=a.evidence_chunks,
                              entailment_min=a.entailment_min, judge_timeout=a.judge_timeout,
                              reader_timeout=a.reader_timeout, reader_channels=frozenset(a.reader_channels),
                              reader_escalates=(a.reader_escalates if a.reader_escalates is not None
                                                else self.reader_choice[1] == ReaderKind.LANGUAGE_MODEL))
        entailment = None
        if a.entailment_model:
            from citedesk.retrieval.embedding.dense import EntailmentModel

            entailment = EntailmentModel(a.entailment_model, device=self.settings.embedding.device)
        return AnswerPipeline(self.retriever, self.generator, self.sparse, policy, workspace=self.settings.workspace,
                              recorder=self.audit.record if self.settings.audit.enabled else None,
                              observer=self.metrics.observe_answer if self.metrics is not None else None,
                              entailment=entailment, judges=self.judges, guidance=self.guidance,
                              reader=self.reader, confidence=self.confidence)

    @cached_property
    def thresholds(self) -> dict[Channel, float]:
        """Minimum confidence to answer per channel: ``answer.threshold_chat`` / ``threshold_voice``, or where unset
        the values calibrated with the confidence model of the configured reader
        (:data:`~citedesk.retrieval.confidence.CROSS_ENCODER_READER_THRESHOLDS`, ``READER_THRESHOLDS``, or
        ``DEFAULT_THRESHOLDS`` without a reader)."""
        a = self.settings.answer
        model, kind = self.reader_choice
        calibrated = (DEFAULT_THRESHOLDS if not model else
                      CROSS_ENCODER_READER_THRESHOLDS if kind == ReaderKind.CROSS_ENCODER else READER_THRESHOLDS)
        chosen = {Channel.CHAT: a.threshold_chat, Channel.VOICE: a.threshold_voice}
        return {ch: calibrated[ch] if v is None else v for ch, v in chosen.items()}

    @cached_property
    def confidence(self) -> ConfidenceModel:
        """The confidence model, with the weights fitted for the configured reader kind (``answer.reader_kind``)."""
        if self.reader_choice[1] == ReaderKind.CROSS_ENCODER:
            return ConfidenceModel(reader_weights=dict(CROSS_ENCODER_READER_WEIGHTS),
                                   reader_bias=CROSS_ENCODER_READER_BIAS)
        return ConfidenceModel()

    @cached_property
    def guidance(self):
        """Workspace guidance versions (``serving/answer/guidance_store.py``), or None when ``guidance.enabled`` is
        false (the pipeline then ignores stored guidance)."""
        from citedesk.serving.answer.guidance_store import GuidanceStore

        g = self.settings.guidance
        return GuidanceStore(self.db, cache_seconds=g.cache_seconds) if g.enabled else None

    @cached_property
    def judges(self) -> list:
        """The configured answerability judges (``answer.answerability_model``, ``answer.llm_answerability``).

        Raises:
            ConfigError: ``answer.llm_answerability`` without ``llm.base_url``.
        """
        from citedesk.serving.answer.judges import CrossEncoderJudge, LLMAnswerabilityJudge

        a, llm = self.settings.answer, self.settings.llm
        judges: list = []
        if a.answerability_model:
            from citedesk.retrieval.embedding.dense import AnswerabilityModel

            judges.append(CrossEncoderJudge(AnswerabilityModel(a.answerability_model,
                                                               device=self.settings.embedding.device)))
        if a.llm_answerability:
            if not llm.base_url:
                raise ConfigError("answer.llm_answerability needs llm.base_url (an OpenAI-compatible endpoint)")
            judges.append(LLMAnswerabilityJudge(OpenAIGenerator(
                llm.base_url, model=llm.model, api_key=llm.api_key.get_secret_value(), timeout=a.judge_timeout,
                max_retries=0)))
        return judges

    @cached_property
    def reader_choice(self) -> tuple[str | None, ReaderKind]:
        """``(model, kind)`` of the reader check: ``answer.reader_model`` with ``auto`` resolved (the bundled
        :data:`BUNDLED_READERS` with the extractive generator where one exists, else None) and
        ``answer.reader_kind`` inferred when unset (:func:`reader_kind_of`)."""
        a = self.settings.answer
        model = a.reader_model
        if model == AUTO_READER:
            found = [p for p in BUNDLED_READERS if p.is_dir()]
            model = str(found[0]) if found and a.generator == GeneratorKind.EXTRACTIVE else None
        if not model:  # no reader: the kind only matters to a check injected later (tests), as before `auto`
            return None, a.reader_kind or ReaderKind.LANGUAGE_MODEL
        return model, a.reader_kind or reader_kind_of(model)

    @cached_property
    def reader(self):
        """The reader agreement check (:attr:`reader_choice`), or None.

        Raises:
            ConfigError: ``answer.reader_model`` named with a generator other than extractive.
        """
        a = self.settings.answer
        model_name, kind = self.reader_choice
        if not model_name:
            return None
        if a.generator != GeneratorKind.EXTRACTIVE:
            raise ConfigError("answer.reader_model checks the extractive generator's choice of answer unit; "
                              "it needs answer.generator=extractive")
        from citedesk.serving.answer.reader import ReaderAgreementCheck

        if kind == ReaderKind.CROSS_ENCODER:
            candidates = 12
            if self._backend(model_name) in ("onnx", "onnx-int8"):
                from citedesk.retrieval.embedding.onnx import OnnxCrossEncoderReaderModel  # fp32 either way

                model = OnnxCrossEncoderReaderModel(model_name, cache_dir=self.settings.data_dir / "onnx")
            else:
                from citedesk.retrieval.embedding.dense import CrossEncoderReaderModel

                model = CrossEncoderReaderModel(model_name, device=self.settings.embedding.device)
        else:
            from citedesk.retrieval.embedding.likelihood import QueryLikelihoodModel

            model, candidates = QueryLikelihoodModel(model_name, threads=a.reader_threads), 5
        return ReaderAgreementCheck(self.generator, model, candidates=a.reader_candidates or candidates)

    @cached_property
    def voice(self):
        """Voice-channel responder over :attr:`pipeline` (fillers, speakable text, pacing, signed state)."""
        from citedesk.serving.channels.voice.responder import VoiceResponder
        from citedesk.serving.channels.voice.state import StateSigner

        v = self.settings.voice
        key = v.state_secret.get_secret_value().encode() if v.state_secret else None
        return VoiceResponder(self.pipeline, v, StateSigner(key))

    @cached_property
    def chat_completions(self):
        """The OpenAI-compatible endpoint's responder over :attr:`pipeline` (profiles, transfer tool)."""
        from citedesk.serving.channels.chat_completions.responder import ChatCompletionsResponder

        return ChatCompletionsResponder(self.pipeline, self.settings.chat_completions)

    @cached_property
    def intercom_webhooks(self):
        """Intercom webhook worker (``serving/channels/intercom/drafting.py``) over :attr:`pipeline` and
        :attr:`sync_engine`; ``None`` unless ``intercom.client_secret`` is set and ``intercom.drafts.enabled``."""
        from citedesk.serving.channels.intercom.drafting import WebhookWorker

        i = self.settings.intercom
        if i.client_secret is None or not i.drafts.enabled:
            return None
        if i.token is None:
            raise ConfigError("Intercom webhooks need an access token (CITEDESK_INTERCOM__TOKEN)")
        return WebhookWorker(self.db, self.intercom_connector, self.pipeline, i, html_to_text=html_to_text,
                             sync_engine=self.sync_engine, workspace=i.workspace or self.settings.workspace,
                             metrics=self.metrics,
                             on_article_synced=self.unit_warmer.start if self.unit_warmer is not None else None)

    def remote_webhooks(self, answer_url: str | None = None, api_key: str | None = None):
        """The standalone receiver's worker (``citedesk webhooks``): drafts through a remote citedesk API, no index.

        Returns:
            ``(worker, answerer, url)``; close the answerer (``await answerer.aclose()``) after the worker stops.

        Raises:
            ConfigError: no answer API URL, no ``intercom.client_secret`` / ``token`` / ``admin_id``.
        """
        from citedesk.serving.channels.intercom.drafting import WebhookWorker
        from citedesk.serving.channels.intercom.remote import RemoteAnswerClient

        i, m = self.settings.intercom, self.settings.intercom.drafts
        url = answer_url or m.answer_api_url
        if not url:
            raise ConfigError("no answer API: pass --answer-url or set intercom.drafts.answer_api_url")
        if i.client_secret is None or i.token is None:
            raise ConfigError("the webhook receiver needs intercom.client_secret and intercom.token")
        answerer = RemoteAnswerClient(url, timeout=m.answer_timeout, api_key=api_key)
        worker = WebhookWorker(self.db, self.intercom_connector, answerer, i, html_to_text=html_to_text,
                               workspace=i.workspace or self.settings.workspace, metrics=self.metrics)
        return worker, answerer, url

    def folder_connector(self, path=None, *, workspace: str | None = None):
        """Folder connector from settings (``path`` overrides ``folder.path``, ``workspace`` the settings')."""
        from citedesk.connectors.folder import FolderConnector

        f = self.settings.folder
        root = path or f.path
        if root is None:
            raise ConfigError("no folder given (CITEDESK_FOLDER__PATH or --path)")
        return FolderConnector(root, workspace=workspace or self.settings.workspace, base_url=f.base_url)

    def intercom_connector(self):
        """Intercom connector from settings."""
        from citedesk.connectors.intercom import IntercomConnector

        i = self.settings.intercom
        if i.token is None:
            raise ConfigError("no Intercom token (CITEDESK_INTERCOM__TOKEN)")
        return IntercomConnector(i.token.get_secret_value(), base_url=i.base_url,
                                 workspace=i.workspace or self.settings.workspace, per_page=i.per_page,
                                 max_retries=i.max_retries, timeout=i.timeout, locales=i.locales)
