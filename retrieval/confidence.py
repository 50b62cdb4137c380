"""Answer confidence: how likely the retrieved hits can answer the question.

Kind: ``answerable_probability`` — a logistic calibration (Platt scaling) of two retrieval
features: the top hit's dense cosine similarity and the share of the question's BM25 terms found in
the top hits (plus the top rerank probability when a reranker ran). Default weights were fitted with
``citedesk eval`` on aws-docs-qa-dev questions (answerable) vs out-of-domain MT-RAG questions
(not answerable); refit with your own data (issue: threshold calibration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from citedesk.core.types import Hit
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

CONFIDENCE_KIND = "answerable_probability"


@dataclass(frozen=True)
class ConfidenceFeatures:
    """Inputs of the confidence model.

    Attributes:
        top_cosine: dense cosine of the best hit in [-1, 1] (0 when unknown).
        coverage: share in [0, 1] of distinct query terms present in the top hits' text.
        top_rerank: best rerank probability in [0, 1], or None.
    """

    top_cosine: float
    coverage: float
    top_rerank: float | None = None


@dataclass(frozen=True)
class ConfidenceModel:
    """``confidence = sigmoid(w_cosine·top_cosine + w_coverage·coverage [+ w_rerank·top_rerank] + bias)``."""

    w_cosine: float = 12.3
    w_coverage: float = 5.3
    w_rerank: float = 4.0
    bias: float = -10.9
    coverage_hits: int = 3

    def features(self, query: str, hits: list[Hit], sparse: BM25SparseEncoder) -> ConfidenceFeatures:
        """Compute features from the hits (best first)."""
        if not hits:
            return ConfidenceFeatures(0.0, 0.0, None)
        cosines = [h.cosine for h in hits if h.cosine is not None]
        q_terms = set(sparse.terms(query))
        found: set[str] = set()
        for h in hits[: self.coverage_hits]:
            found |= q_terms & set(sparse.terms(f"{h.title} {h.heading} {h.text}"))
        coverage = len(found) / len(q_terms) if q_terms else 0.0
        reranks = [h.rerank for h in hits if h.rerank is not None]
        return ConfidenceFeatures(max(cosines) if cosines else 0.0, coverage, max(reranks) if reranks else None)

    def score(self, f: ConfidenceFeatures) -> float:
        """Confidence in [0, 1] (kind ``answerable_probability``)."""
        z = self.w_cosine * f.top_cosine + self.w_coverage * f.coverage + self.bias
        if f.top_rerank is not None:
            z += self.w_rerank * (f.top_rerank - 0.5)
        return 1.0 / (1.0 + math.exp(-z))
