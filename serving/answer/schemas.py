"""API request/response models (pydantic)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from citedesk.core.types import AnswerReason, Channel, Citation, Decision, ScoreKind, Turn


class VoiceState(BaseModel):
    """Where a spoken answer stopped (channel=voice): the client sends it back with the next turn.

    Signed by the server (``signature``, HMAC-SHA256); a changed state is rejected with 409.
    """

    question: str = Field(max_length=2000, description="the question this answer is for")
    pending: list[str] = Field(default_factory=list, max_length=200,
                               description="speakable units (sentences, steps) not spoken yet")
    pending_steps: list[int] = Field(default_factory=list, max_length=200,
                                     description="step number of each pending unit, 0 for a plain sentence")
    last: list[str] = Field(default_factory=list, max_length=50, description="units spoken in the last turn")
    citations: list[Citation] = Field(default_factory=list, max_length=50)
    confidence: float = 0.0
    signature: str = Field("", max_length=128)


class AnswerRequest(BaseModel):
    """A question to answer from the knowledge base."""

    question: str = Field(min_length=1, max_length=2000, description="the customer's latest message")
    history: list[Turn] = Field(default_factory=list, max_length=50,
                                description="earlier turns, oldest first")
    locale: str | None = Field(None, max_length=16, description="restrict to articles in this locale")
    channel: Channel = Channel.CHAT
    conversation_id: str | None = Field(None, max_length=200)
    top_k: int | None = Field(None, ge=1, le=50, description="hits to retrieve (default from settings)")
    tags: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=50,
        description="the conversation's tag names or ids (workspace guidance escalation rules)")
    attributes: dict[Annotated[str, Field(max_length=100)],
                     Annotated[str, Field(max_length=500)] | int | float | bool] = Field(
        default_factory=dict, max_length=50,
        description="the conversation's attributes, e.g. {\"vip\": true, \"priority\": \"high\"} (guidance rules)")
    voice_state: VoiceState | None = Field(
        None, description="channel=voice only (ignored otherwise): the `voice.state` of the previous response, sent back "
                          "unchanged; with an answer like \"yes\" or \"next\" the answer goes on where it stopped")

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _voice_state_needs_voice(self) -> "AnswerRequest":
        # ignored (not rejected) outside voice, so every schema-valid request is accepted
        if self.voice_state is not None and self.channel != Channel.VOICE:
            self.voice_state = None
        return self


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
    reason: AnswerReason = Field(description="why it answered (grounded) or escalated")
    answer: str = Field("", description="answer text with [n] citation markers; empty on escalate")
    citations: list[Citation] = Field(default_factory=list)
    short_answer: str | None = Field(None, description=(
        "the span of the answer that answers the question itself — a table cell (with its column's unit) or a "
        "quantity (\"900 seconds\", \"1.25 Gbps\") — verbatim from the answer, without markers (a bare number of a "
        "cell takes the unit its column names: \"Memory in GB\" | 4 → \"4 GB\"); for a yes/no question, \"Yes\" or "
        "\"No\" as the cited sentences' polarity or the row's Yes/No cell says it; null when the sentences are the "
        "answer (procedures, explanations, a yes/no they do not settle), when no single value answers, or on "
        "escalate"))
    confidence: float
    confidence_kind: str
    handoff_summary: str | None = None
    hits: list[HitOut] = Field(default_factory=list)
    generator: str
    model: str
    latency_ms: dict[str, float] = Field(default_factory=dict)
    signals: dict = Field(default_factory=dict, description=(
        "what decided: `confidence` (the answerability signals, name → value, that the answerable_probability "
        "model weighed) and `rejected` (drafted sentences the claim checks refused, each with the check's reason)"))
    voice: VoiceOut | None = Field(None, description="channel=voice: what was spoken and the state to send back")
    audit_id: str | None = Field(None, description="id of this answer's audit record (`GET /v1/audit/answers/{id}`); "
                                                   "null when the audit trail is off or recording failed")


class VoiceOut(BaseModel):
    """The spoken side of a voice answer.

    ``speech`` is everything said this turn (sentences, step prompts, the confirmation question) or, on
    escalation, the hand-over phrase; ``state`` is None when nothing is left to say.
    """

    speech: str
    filler: str | None = Field(None, description="holding phrase sent while the answer was not ready")
    steps_spoken: list[int] = Field(default_factory=list, description="procedure step numbers spoken this turn")
    state: VoiceState | None = None


class UnitCacheStatus(BaseModel):
    """The extractive generator's answer-unit vector cache (``answer.unit_cache_entries``)."""

    entries: int = Field(description="unit vectors cached")
    capacity: int = Field(description="unit vectors it can hold")
    warming: bool = Field(description="a warm-up pass is running (answers share the CPU with it)")
    warm_passes: int = Field(description="warm-up passes finished since the server started")


class HealthResponse(BaseModel):
    """Liveness and dependency state."""

    status: str
    index: str
    index_reachable: bool
    generator: str
    points: int | None = Field(None, description="points of the default workspace (a Qdrant server may "
                                                 "answer with its estimate)")
    unit_cache: UnitCacheStatus | None = Field(None, description="the unit vector cache of extractive answers; "
                                                                 "null when there is none")


class ErrorResponse(BaseModel):
    """Error body for 4xx/5xx."""

    detail: str
