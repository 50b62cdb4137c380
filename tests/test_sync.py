"""Sync of an OpenAPI-shaped Intercom double into Qdrant (edge, local mode and over REST) with the real embedding model."""

from __future__ import annotations

import pytest

from citedesk.connectors.intercom import IntercomConnector
from citedesk.retrieval.store import point_id
from tests.conftest import free_port, make_container
from tests.intercom_double import IntercomDouble
from tests.qdrant_facade import QdrantFacade

TOKEN = "sync-token"
WS = "acme"


def section(n: int, words: int = 120) -> str:
    body = " ".join(f"word{n}_{i} details about topic {n}." for i in range(words // 5))
    return f"<h2>Section {n}</h2><p>{body}</p>"


LONG_BODY = "<h1>Billing guide</h1>" + "".join(section(n) for n in range(8))
SHORT_BODY = "<h1>Billing guide</h1><p>Invoices are emailed on the first day of each month.</p>"


@pytest.fixture()
def api():
    with IntercomDouble(token=TOKEN, workspace_id=WS) as double:
        yield double


@pytest.fixture(params=["edge", "local", "server"])
def container(request, tmp_path, embedder):
    """The same sync tests against each engine: qdrant-edge and qdrant-client's local mode (both embedded at
    ``qdrant.path``), and a server (``qdrant.url``): Qdrant's engine behind its REST API (tests/qdrant_facade.py)."""
    if request.param in ("edge", "local"):
        c = make_container(tmp_path, embedder, workspace=WS, qdrant={"engine": request.param})
        yield c
        c.index.close()
        return
    with QdrantFacade(tmp_path / "engine", free_port()) as server:
        c = make_container(tmp_path / "app", embedder, workspace=WS, qdrant={"url": server.url, "timeout": 10})
        yield c
        c.index.close()
        assert any(r.startswith("PUT /collections/") for r in server.requests), "writes went over REST"


def connector(api: IntercomDouble, **kw) -> IntercomConnector:
    return IntercomConnector(TOKEN, base_url=api.base_url, workspace=WS, per_page=2, **kw)


def seed(api: IntercomDouble) -> dict[str, str]:
    ids = {
        "long": api.add_article("Billing guide", LONG_BODY),
        "refund": api.add_article("Refunds", "<p>Refunds take five business days to reach your card.</p>"),
        "multi": api.add_article(translations={
            "en": {"title": "Reset your password", "body": "<p>Click Forgot password on the sign-in page.</p>"},
            "fr": {"title": "Réinitialiser le mot de passe", "body": "<p>Cliquez sur Mot de passe oublié.</p>"},
        }, default_locale="en"),
        "draft": api.add_article("Secret roadmap", "<p>Not public yet.</p>", state="draft"),
    }
    return ids


def doc_key(article_id: str, locale: str = "en") -> str:
    return f"{WS}/intercom/{article_id}/{locale}"


def test_first_sync_then_noop_then_edit_then_delete_and_unpublish(api, container) -> None:
    ids = seed(api)
    engine, index = container.sync_engine, container.index

    first = engine.sync(connector(api))
    assert first.ok, first
    assert (first.added, first.updated, first.deleted, first.unchanged) == (4, 0, 0, 0)
    assert first.embeddings_computed == first.chunks_written == index.count(WS) > 4
    long_points = index.doc_points(WS, doc_key(ids["long"]))
    assert len(long_points) >= 3, "8 sections of ~120 words make several chunks"
    assert [p["id"] for p in long_points] == [point_id(doc_key(ids["long"]), i) for i in range(len(long_points))]
    assert index.count(WS, doc_key=doc_key(ids["draft"])) == 0
    fr = index.doc_points(WS, doc_key(ids["multi"], "fr"))
    assert fr and fr[0]["title"] == "Réinitialiser le mot de passe" and fr[0]["locale"] == "fr"

    second = engine.sync(connector(api))
    assert second.ok
    assert (second.added, second.updated, second.deleted, second.unchanged) == (0, 0, 0, 4)
    assert second.embeddings_computed == 0
    assert index.count(WS) == first.chunks_written

    api.edit_article(ids["long"], body=SHORT_BODY)
    third = engine.sync(connector(api))
    assert (third.added, third.updated, third.unchanged) == (0, 1, 3)
    after = index.doc_points(WS, doc_key(ids["long"]))
    assert 0 < len(after) < len(long_points)
    assert third.embeddings_computed == len(after)
    assert {p["content_hash"] for p in after} == {after[0]["content_hash"]} != {long_points[0]["content_hash"]}
    assert all(p["chunk_count"] == len(after) for p in after)
    assert "Invoices are emailed" in " ".join(p["text"] for p in after)
    assert index.count(WS) == first.chunks_written - len(long_points) + len(after), "stale chunks left"

    api.delete_article(ids["refund"])
    api.unpublish_article(ids["multi"])
    fourth = engine.sync(connector(api))
    assert fourth.ok and fourth.deleted == 3  # refund/en, multi/en, multi/fr
    for key in (doc_key(ids["refund"]), doc_key(ids["multi"]), doc_key(ids["multi"], "fr")):
        assert index.count(WS, doc_key=key) == 0
    assert index.count(WS) == len(after)


def test_unpublishing_one_locale_removes_only_that_locale(api, container) -> None:
    ids = seed(api)
    container.sync_engine.sync(connector(api))
    api.unpublish_article(ids["multi"], locale="fr")
    report = container.sync_engine.sync(connector(api))
    assert report.deleted == 1
    assert container.index.count(WS, doc_key=doc_key(ids["multi"], "fr")) == 0
    assert container.index.count(WS, doc_key=doc_key(ids["multi"], "en")) > 0


def test_429_with_retry_after_is_honoured_during_sync(api, container) -> None:
    seed(api)
    api.fail_next(1, status=429, headers={"Retry-After": "1"}, path="/articles")
    report = container.sync_engine.sync(connector(api, max_retries=2))
    assert report.ok and report.added == 4
    listing = [r for r in api.requests if r.path == "/articles"]
    assert listing[0].status == 429 and listing[1].status == 200
    assert listing[1].time - listing[0].time >= 0.95


def test_failed_listing_deletes_nothing(api, container) -> None:
    seed(api)
    first = container.sync_engine.sync(connector(api))
    api.fail_next(50, status=500, path="/articles")
    report = container.sync_engine.sync(connector(api, max_retries=0))
    assert report.listing_error and not report.ok
    assert report.deleted == 0
    assert container.index.count(WS) == first.chunks_written


def test_one_bad_article_is_reported_and_the_rest_synced(api, container) -> None:
    seed(api)
    api.add_raw_article({"id": "999", "type": "article", "workspace_id": WS, "state": "published",
                         "updated_at": "not-a-time", "body": None})
    report = container.sync_engine.sync(connector(api))
    assert report.added == 4
    assert [f.article_id for f in report.failed] == ["999"]
    assert not report.ok


def test_interrupted_write_is_repaired_on_next_sync(api, container) -> None:
    """A crash between upserting a new version and deleting the old one leaves mixed versions:
    the next sync must detect and rewrite the doc (resumable, idempotent)."""
    ids = seed(api)
    engine, index = container.sync_engine, container.index
    engine.sync(connector(api))
    key = doc_key(ids["long"])
    before = index.doc_points(WS, key)
    # simulate the crash: the last chunk still carries the previous version
    index.set_point_fields([before[-1]["id"]], {"version": "old"})
    report = engine.sync(connector(api))
    assert report.updated == 1 and report.embeddings_computed == len(before)
    after = index.doc_points(WS, key)
    assert len(after) == len(before) and len({p["version"] for p in after}) == 1
