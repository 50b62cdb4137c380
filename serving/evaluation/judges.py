"""Citation-support judges of the answer eval: lexical term overlap offline, the configured LLM when there is one."""

from __future__ import annotations

from enum import StrEnum

from citedesk.core.text import strip_markers
from citedesk.core.types import Hit, ScoreKind
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

__all__ = ["JudgeKind", "LLMJudge", "LexicalJudge"]


class JudgeKind(StrEnum):
    """Citation-support judge of :func:`run_answer_eval`; ``auto`` is ``llm`` when ``llm.base_url`` is set."""

    AUTO = "auto"
    LEXICAL = "lexical"
    LLM = "llm"


class LexicalJudge:
    """Offline citation-support judge: a sentence is supported when at least ``min_overlap`` of its
    content terms (stemmed, stop words removed) occur in the quotes it cites. Score kind: ``term_overlap``."""

    name = "lexical"

    def __init__(self, sparse: BM25SparseEncoder, *, min_overlap: float = 0.6) -> None:
        self.sparse = sparse
        self.min_overlap = min_overlap

    def overlap(self, sentence: str, quotes: list[str]) -> float:
        """Share in [0, 1] of the sentence's terms found in the quotes (1 when it has no terms)."""
        terms = set(self.sparse.terms(strip_markers(sentence)))
        if not terms:
            return 1.0
        return len(terms & set(self.sparse.terms(" ".join(quotes)))) / len(terms)

    async def supports(self, sentence: str, quotes: list[str]) -> bool:
        """True when :meth:`overlap` ≥ ``min_overlap``."""
        return self.overlap(sentence, quotes) >= self.min_overlap


class LLMJudge:
    """LLM citation-support judge through the configured OpenAI-compatible generator.

    The quotes are given as sources and the model is asked whether they state the sentence; a reply
    starting with "yes" counts as supported. An unreachable LLM raises GeneratorUnavailableError.
    """

    def __init__(self, generator) -> None:
        self.generator = generator
        self.name = f"llm:{getattr(generator, 'model', 'default')}"

    async def supports(self, sentence: str, quotes: list[str]) -> bool:
        evidence = [Hit(point_id=str(i), score=1.0, score_kind=ScoreKind.COSINE, workspace="judge", source="judge",
                        article_id=f"quote-{i}", locale="en", title=f"quote {i}", content_hash="", chunk_index=0,
                        text=q) for i, q in enumerate(quotes, 1)]
        prompt = (f'Claim: "{strip_markers(sentence)}"\nDo the sources state this claim? '
                  "Reply with YES or NO only.")
        reply = ""
        async for delta in self.generator.stream(prompt, [], evidence):
            reply += delta
            if len(reply) > 40:
                break
        return reply.strip().lower().startswith("yes")
