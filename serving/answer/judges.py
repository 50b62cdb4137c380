"""Answerability judges: optional models that can only lower an answer's confidence.

A judge answers "does this evidence answer this question?" with a probability. With judges configured, the
pipeline's confidence (kind ``answerable_probability``) is the smallest of the fitted model's probability
(:mod:`citedesk.retrieval.confidence`) and each judge's; a judge that fails or runs past its timeout is
recorded as ``unavailable`` in the response's ``signals`` and the answer goes on without it (the fitted model
still gates it).

Two slots, each named by configuration and off by default:

* ``answer.answerability_model``: any sentence-transformers ``CrossEncoder``
  (:class:`citedesk.retrieval.embedding.dense.AnswerabilityModel`);
* ``answer.llm_answerability``: the configured OpenAI-compatible LLM (:class:`LLMAnswerabilityJudge`), one
  short call whose "yes" token probability is read from the logprobs (vLLM and llama.cpp return them).
"""

from __future__ import annotations

from typing import Protocol

import anyio

from citedesk.core.types import Hit


class AnswerabilityJudge(Protocol):
    """What the pipeline needs of a judge."""

    name: str

    def warm_up(self) -> None:
        """Load what the judge needs (models); cheap when there is nothing to load."""

    async def probability(self, question: str, evidence: list[Hit]) -> float:
        """Probability in [0, 1] that ``evidence`` answers ``question``; raises on failure."""


class CrossEncoderJudge:
    """Runs an :class:`~citedesk.retrieval.embedding.dense.AnswerabilityModel` in a worker thread.

    Args:
        model: the loaded-on-demand cross-encoder.
    """

    name = "cross_encoder"

    def __init__(self, model) -> None:
        self.model = model

    def warm_up(self) -> None:
        """Load the cross-encoder (raises ConfigError naming ``answer.answerability_model``)."""
        self.model.warm_up()

    async def probability(self, question: str, evidence: list[Hit]) -> float:
        """Best passage's probability (title, heading and text of each hit)."""
        passages = [f"{h.title}. {h.heading}. {h.text}" for h in evidence]
        return await anyio.to_thread.run_sync(self.model.probability, question, passages, abandon_on_cancel=True)


class LLMAnswerabilityJudge:
    """The configured LLM as judge: "Do these passages answer the question? yes/no", read as P(yes).

    Args:
        generator: an ``OpenAIGenerator`` (its endpoint and model).
        max_chars: evidence characters put in the prompt (the top hits, in rank order).
    """

    name = "llm"
    PROMPT = ("Passages from a help center:\n{passages}\n\nQuestion: {question}\n\n"
              "Do the passages state the answer to the question? Reply with one word: yes or no.")

    def __init__(self, generator, *, max_chars: int = 3000) -> None:
        self.generator = generator
        self.max_chars = max_chars

    def warm_up(self) -> None:
        """Nothing to load (the LLM is a server)."""

    def prompt(self, question: str, evidence: list[Hit]) -> str:
        """The judge's prompt: numbered passages cut to ``max_chars`` in all, then the question."""
        parts, left = [], self.max_chars
        for i, h in enumerate(evidence, 1):
            if left <= 0:
                break
            text = f"[{i}] {h.title}: {h.text}"[:left]
            parts.append(text)
            left -= len(text)
        return self.PROMPT.format(passages="\n".join(parts), question=question.strip()[:1000])

    async def probability(self, question: str, evidence: list[Hit]) -> float:
        """P(yes) from the LLM (raises GeneratorUnavailableError when it fails or says neither)."""
        return await self.generator.yes_probability(self.prompt(question, evidence))
