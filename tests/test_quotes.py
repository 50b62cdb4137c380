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


def test_a_claim_from_one_list_item_quotes_that_item_not_the_whole_list() -> None:
    text = ("6. In the Advanced Function Details window, configure the following options:\n"
            "  - Role Name (required) – The IAM role that AWS Lambda assumes when it executes your function.\n"
            "  - Memory – The amount of memory available to the function during execution. Choose an amount between "
            "128 MB and 3,008 MB in 64-MB increments.\n"
            "  - Timeout – The amount of time that Lambda allows a function to run before stopping it. The default is "
            "3 seconds. The maximum allowed value is 900 seconds.\n"
            "  - VPC – If your function needs network access to resources, configure it to connect to a VPC.")
    claims = ["Timeout – The amount of time that Lambda allows a function to run before stopping it. [1]",
              "The default is 3 seconds. [1]", "The maximum allowed value is 900 seconds. [1]"]
    quote, start, end = best_quote(_hit(text), claims, BM25SparseEncoder())
    assert text[start:end] == quote
    assert quote == ("- Timeout – The amount of time that Lambda allows a function to run before stopping it. The "
                     "default is 3 seconds. The maximum allowed value is 900 seconds.")
    one, *_ = best_quote(_hit(text), ["The maximum allowed value is 900 seconds. [1]"], BM25SparseEncoder())
    assert one == "The maximum allowed value is 900 seconds."
