"""Weighted RRF in hybrid retrieval (``retrieval.dense_weight`` / ``retrieval.sparse_weight``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from citedesk.config.settings import Settings
from citedesk.core.types import ScoreKind
from citedesk.retrieval.store import SearchFilter
from citedesk.retrieval.search import Retriever
from citedesk.serving.container import Container

QUESTION = "How do I change the instance type of an Amazon EC2 instance?"


def top_ids(retriever: Retriever, mode: str, k: int = 10) -> list[str]:
    return [h.point_id for h in retriever.retrieve(QUESTION, SearchFilter("default"), top_k=k, mode=mode).hits]


def test_fusion_weights_move_the_hybrid_ranking_between_dense_and_sparse(aws_container) -> None:
    base = aws_container.retriever
    dense, sparse = top_ids(base, "dense"), top_ids(base, "sparse")
    assert dense != sparse, "the question must rank differently in the two branches"

    def hybrid(weights: tuple[float, float]) -> list[str]:
        r = Retriever(base.index, base.embedder, base.sparse, fusion_weights=weights)
        hits = r.retrieve(QUESTION, SearchFilter("default"), top_k=10).hits
        assert {h.score_kind for h in hits} == {ScoreKind.RRF}
        return [h.point_id for h in hits]

    # a vanishing weight leaves the other branch's order untouched
    assert hybrid((1.0, 1e-4)) == dense
    assert hybrid((1e-4, 1.0)) == sparse
    # in between, more sparse weight never brings the fused top 10 further from the sparse top 10
    overlaps = [len(set(hybrid((1.0, w))) & set(sparse)) for w in (0.25, 1.0, 4.0)]
    assert overlaps == sorted(overlaps) and overlaps[0] < overlaps[-1], overlaps


def test_fusion_weights_are_settings_and_must_be_positive(tmp_path) -> None:
    s = Settings(data_dir=tmp_path, retrieval={"dense_weight": 1.0, "sparse_weight": 2.5})
    assert (s.retrieval.dense_weight, s.retrieval.sparse_weight) == (1.0, 2.5)
    c = Container(s)
    try:
        assert c.retriever.fusion_weights == (1.0, 2.5)  # wired through the composition root
    finally:
        c.index.close()
    with pytest.raises(ValidationError, match="sparse_weight"):
        Settings(data_dir=tmp_path, retrieval={"sparse_weight": 0})



def test_a_server_without_weighted_rrf_gets_plain_rrf_instead_of_failing(tmp_path, caplog) -> None:
    """Against a server that reports Qdrant 1.15 (no weighted RRF): one warning, then plain RRF."""
    import logging

    import numpy as np

    from citedesk.retrieval.store import QdrantIndex
    from citedesk.retrieval.embedding.sparse import SparseVector
    from tests.conftest import free_port
    from tests.qdrant_facade import QdrantFacade

    dense, sparse = np.ones(4, dtype=np.float32) / 2, SparseVector(indices=[1, 7], values=[0.5, 0.8])
    with QdrantFacade(tmp_path / "engine", free_port(), version="1.15.0") as old:
        index = QdrantIndex(url=old.url, timeout=5)
        try:
            index.ensure_collection(4)
            with caplog.at_level(logging.WARNING, logger="citedesk.retrieval.store"):
                assert index.search(SearchFilter("default"), dense=dense, sparse=sparse,
                                    fusion_weights=(1.0, 1.5)) == []
                assert index.search(SearchFilter("default"), dense=dense, sparse=sparse,
                                    fusion_weights=(1.0, 1.5)) == []
            kinds = [next(iter(q["query"])) for q in old.queries]
            assert kinds == ["rrf", "fusion", "fusion"], kinds  # rejected once, plain RRF from then on
            assert [q["query"]["fusion"] for q in old.queries[1:]] == ["rrf", "rrf"]
            assert sum("rejected weighted RRF" in r.message for r in caplog.records) == 1
            assert index.weighted_rrf is False
        finally:
            index.close()
