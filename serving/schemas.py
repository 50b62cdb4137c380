"""API request/response models (pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.types import Channel, Citation, Decision, ScoreKind, Turn


class AnswerRequest(BaseModel):
    """A question to answer from the knowledge base."""

    question: str = Field(min_length=1, max_length=2000, description="the customer's latest message")
    history: list[Turn] = Field(default_factory=list, max_length=50,
                                description="earlier turns, oldest first")
    locale: str | None = Field(None, max_length=16, description="restrict to articles in this locale")
    channel: Channel = Channel.CHAT
    conversation_id: str | None = Field(None, max_length=200)
    top_k: int | None = Field(None, ge=1, le=50, description="hits to retrieve (default from settings)")


class HitOut(BaseModel):
    """A retrieved chunk, as reported with an answer."""

    article_id: str
    title: str
    url: str | None
    locale: str
    chunk_index: int
    content_hash: str
    updated_at: int
    score: float
    score_kind: ScoreKind
    cosine: float | None = Field(None, description="dense cosine similarity query↔chunk")
    rerank: float | None = Field(None, description="cross-encoder probability")


class AnswerResponse(BaseModel):
    """A grounded answer, or an escalation to a human.

    ``confidence`` is of kind ``confidence_kind`` (see retrieval.confidence). ``latency_ms`` has
    ``embed``, ``retrieve``, ``rerank``, ``first_token``, ``first_sentence``, ``total`` (milliseconds).
    """

    decision: Decision
    reason: str = Field(description="grounded | no_evidence | low_confidence | generator_declined | "
                                    "uncited_answer | invalid_citation | unsupported_citation | unsupported_claim | "
                                    "generator_unavailable")
    answer: str = Field("", description="answer text with [n] citation markers; empty on escalate")
    citations: list[Citation] = Field(default_factory=list)
    confidence: float
    confidence_kind: str
    handoff_summary: str | None = None
    hits: list[HitOut] = Field(default_factory=list)
    generator: str
    model: str
    latency_ms: dict[str, float] = Field(default_factory=dict)


class HealthResponse(BaseModel):
    """Liveness and dependency state."""

    status: str
    index: str
    index_reachable: bool
    generator: str
    points: int | None = None


class ErrorResponse(BaseModel):
    """Error body for 4xx/5xx."""

    detail: str
