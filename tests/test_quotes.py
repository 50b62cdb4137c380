"""Quoted spans of citations (fast: no model, no index)."""

from __future__ import annotations

from citedesk.core.types import Hit, ScoreKind
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.serving.answer.grounding import best_quote


def _hit(text: str):
    return Hit(point_id="p", score=1.0, score_kind=ScoreKind.COSINE, workspace="default", source="folder",
               article_id="a.md", locale="en", title="A", content_hash="h", chunk_index=0, text=text)


def test_quote_spans_every_claim_citing_the_chunk() -> None:
    text = ("Refunds are issued within five business days. Our office is in Dublin. "
            "Refunds go back to the original payment card. Gift cards are never refunded.")
    sparse = BM25SparseEncoder()
    claims = ["Refunds are issued within five business days [1].", "They go back to the original payment card [1]."]
    quote, start, end = best_quote(_hit(text), claims, sparse)
    assert text[start:end] == quote
    assert quote == ("Refunds are issued within five business days. Our office is in Dublin. "
                     "Refunds go back to the original payment card.")
    one, *_ = best_quote(_hit(text), claims[:1], sparse)
    assert one == "Refunds are issued within five business days."
    # a span over max_chars falls back to the one sentence best for all claims together
    short, s2, e2 = best_quote(_hit(text), claims, sparse, max_chars=60)
    assert text[s2:e2] == short and len(short) <= 60 and short.startswith("Refunds")


def test_quote_of_a_lead_in_join_reaches_the_items_it_names() -> None:
    text = ("Amazon Forecast reserves the following names. You can't use these names for your schema fields.\n\n"
            "- A\n- ABORT\n- ADMIN\n- ALIAS\n- ALL\n- ALTER")
    quote, start, end = best_quote(_hit(text), ["Amazon Forecast reserves the following names: ALIAS. [1]"],
                                   BM25SparseEncoder())
    assert text[start:end] == quote
    assert quote.startswith("Amazon Forecast reserves") and quote.endswith("ALIAS")
