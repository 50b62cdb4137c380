"""Typed records passed between layers: connectors → ingest → index → retrieval → serving."""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BodyFormat = Literal["html", "markdown", "text"]


class Article(BaseModel):
    """One published article in one locale, as a connector yields it.

    Attributes:
        source: connector name, e.g. ``"intercom"`` or ``"folder"``.
        workspace: tenant / Intercom workspace id; every point carries it.
        article_id: id at the source (Intercom article id, or a folder-relative path).
        locale: BCP-47-ish locale code as the source gives it (``"en"``, ``"fr"``).
        title: article title (plain text).
        body: raw body in ``body_format`` (HTML, markdown or plain text).
        url: public URL of the article, or ``None`` when the source has none.
        breadcrumbs: collection/section names from the root down, e.g. ``["Billing", "Invoices"]``.
        updated_at: last update at the source, Unix epoch seconds.
    """

    source: str
    workspace: str
    article_id: str
    locale: str = "en"
    title: str
    body: str
    body_format: BodyFormat = "html"
    url: str | None = None
    breadcrumbs: list[str] = Field(default_factory=list)
    updated_at: int = 0

    @property
    def doc_key(self) -> str:
        """Stable key of this article version-independent: ``workspace/source/article_id/locale``."""
        return f"{self.workspace}/{self.source}/{self.article_id}/{self.locale}"


class Chunk(BaseModel):
    """A retrievable span of one article's clean text.

    Attributes:
        ordinal: 0-based position of the chunk in its article.
        text: chunk text (clean, no markup), what is shown and quoted.
        heading: heading path of the section the chunk came from, ``" > "``-joined ("" at top level).
        start: character offset of ``text`` in the article's clean text.
        end: end offset (exclusive) in the article's clean text.
        table_header: the header row of the table the chunk starts inside, when that row is in an earlier
            chunk ("" otherwise): the chunk's first rows are read with it.
    """

    ordinal: int
    text: str
    heading: str = ""
    start: int = 0
    end: int = 0
    table_header: str = ""


class ScoreKind(str, Enum):
    """What a score number means; every score travels with its kind."""

    COSINE = "cosine"
    BM25 = "bm25"
    RRF = "rrf"
    RERANK_PROBABILITY = "rerank_probability"


class Hit(BaseModel):
    """One retrieved chunk with its payload and scores.

    Attributes:
        point_id: Qdrant point id (uuid5 string).
        score: ranking score of kind ``score_kind``.
        score_kind: kind of ``score`` (rrf for hybrid, cosine for dense only, ...).
        cosine: dense cosine similarity query↔chunk in [-1, 1], when known.
        rerank: cross-encoder probability in [0, 1], when a reranker ran.
        table_header: the chunk's ``table_header`` payload (see :class:`Chunk`).
    """

    point_id: str
    score: float
    score_kind: ScoreKind
    cosine: float | None = None
    rerank: float | None = None
    workspace: str
    source: str
    article_id: str
    locale: str
    title: str
    url: str | None = None
    breadcrumbs: list[str] = Field(default_factory=list)
    updated_at: int = 0
    content_hash: str
    chunk_index: int
    heading: str = ""
    text: str
    table_header: str = ""


class Channel(str, Enum):
    """Who asks: a chat-draft client or a voice (phone) client."""

    CHAT = "chat"
    VOICE = "voice"


class Decision(str, Enum):
    """Answer, or hand the conversation to a human."""

    ANSWER = "answer"
    ESCALATE = "escalate"


class AnswerReason(StrEnum):
    """Why an answer was given (``grounded``) or escalated (``AnswerResponse.reason``, audit ``reason``)."""

    GROUNDED = "grounded"
    NO_EVIDENCE = "no_evidence"
    LOW_CONFIDENCE = "low_confidence"
    GENERATOR_DECLINED = "generator_declined"
    UNCITED_ANSWER = "uncited_answer"
    UNSUPPORTED_CLAIM = "unsupported_claim"
    INVALID_CITATION = "invalid_citation"
    UNSUPPORTED_CITATION = "unsupported_citation"
    GENERATOR_UNAVAILABLE = "generator_unavailable"
    INDEX_UNAVAILABLE = "index_unavailable"
    GUIDANCE_RULE = "guidance_rule"
    GUIDANCE_UNAVAILABLE = "guidance_unavailable"
    READER_DISAGREEMENT = "reader_disagreement"

    @property
    def text(self) -> str:
        """What the reason means, for people (handoff summaries, Intercom notes)."""
        return _REASON_TEXT[self]

    @property
    def is_content_gap(self) -> bool:
        """True for escalations that point at missing content, not at an unavailable or misbehaving model."""
        return self in _CONTENT_GAPS


_REASON_TEXT = {
    AnswerReason.GROUNDED: "every sentence is supported by the passages it cites",
    AnswerReason.NO_EVIDENCE: "no article matches the question",
    AnswerReason.LOW_CONFIDENCE: "the closest articles are unlikely to answer the question",
    AnswerReason.GENERATOR_DECLINED: "the model found no answer in the articles",
    AnswerReason.UNCITED_ANSWER: "the model drafted no usable answer",
    AnswerReason.UNSUPPORTED_CLAIM: "a sentence of the drafted answer is not supported by any retrieved passage",
    AnswerReason.INVALID_CITATION: "the drafted answer cited a source that was not retrieved",
    AnswerReason.UNSUPPORTED_CITATION: "the drafted answer is not supported by the passages it cites",
    AnswerReason.GENERATOR_UNAVAILABLE: "the language model is unavailable",
    AnswerReason.INDEX_UNAVAILABLE: "the knowledge base could not be searched",
    AnswerReason.GUIDANCE_RULE: "a workspace guidance rule sends this conversation to a human",
    AnswerReason.GUIDANCE_UNAVAILABLE: "the workspace guidance could not be read",
    AnswerReason.READER_DISAGREEMENT: "a second reading of the articles picked a different sentence as the answer",
}

_CONTENT_GAPS = frozenset({AnswerReason.NO_EVIDENCE, AnswerReason.LOW_CONFIDENCE, AnswerReason.GENERATOR_DECLINED,
                           AnswerReason.UNCITED_ANSWER, AnswerReason.UNSUPPORTED_CLAIM,
                           AnswerReason.UNSUPPORTED_CITATION})


def reason_text(reason: str) -> str:
    """The people-facing text of a reason value; an unknown value is returned as it is."""
    try:
        return AnswerReason(reason).text
    except ValueError:
        return reason


class QdrantEngine(StrEnum):
    """Which engine holds the embedded index (``qdrant.engine``; ``qdrant.url`` set means a server instead)."""

    EDGE = "edge"
    """qdrant-edge: Qdrant's own embedded engine (HNSW, payload indexes, WAL); one process per folder."""
    LOCAL = "local"
    """qdrant-client's local mode: every query scans every point (fine for a few thousand chunks)."""


class GeneratorKind(StrEnum):
    """Which generator drafts answers (``answer.generator``)."""

    EXTRACTIVE = "extractive"
    OPENAI = "openai"


class ReaderKind(StrEnum):
    """What reads the extractive answer's candidate units a second time (``answer.reader_kind``)."""

    LANGUAGE_MODEL = "language_model"  # a GGUF causal LM scoring query likelihood (llama.cpp, the `llm` extra)
    CROSS_ENCODER = "cross_encoder"  # a sentence-transformers CrossEncoder scoring (question, unit) pairs


class TextStyle(StrEnum):
    """How a chat-completions profile writes the answer text (``chat_completions.profiles.<name>.text``)."""

    WRITTEN = "written"      # the checked sentences with their [n] citation markers
    PLAIN = "plain"          # the same without markers
    SPEAKABLE = "speakable"  # for a TTS engine: no markers, markdown or URLs; numbers and units said as words


class StreamPolicy(StrEnum):
    """When a streamed chat completion sends answer text (``chat_completions.profiles.<name>.stream``)."""

    SENTENCES = "sentences"  # each sentence as soon as it passed its own claim checks (lowest latency)
    DECISION = "decision"    # nothing until the whole answer passed (a later escalation never follows text)


class Citation(BaseModel):
    """Where a claim of the answer comes from.

    Attributes:
        marker: the number used in the answer text, ``[marker]``.
        article_id / title / url / locale: the cited article.
        source: the connector it was synced from (``intercom``, ``folder``...).
        updated_at: the cited revision's update time (epoch seconds).
        content_hash: sha256 of the cited revision's clean text (the revision id).
        chunk_index: which chunk of the article was cited.
        quote: the quoted span, verbatim from the chunk text.
        quote_start / quote_end: character offsets of ``quote`` in the chunk text.
    """

    marker: int
    article_id: str
    title: str
    url: str | None = None
    locale: str = "en"
    source: str = ""
    updated_at: int = 0
    content_hash: str
    chunk_index: int
    quote: str
    quote_start: int
    quote_end: int


class Turn(BaseModel):
    """One message of the conversation history."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant", "agent"] = "user"
    text: str = Field(max_length=8000)
