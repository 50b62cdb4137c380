"""Tenant isolation in one collection: every query is filtered by workspace; none can omit it."""

from __future__ import annotations

import contextlib
import random
import shutil

import pytest

from citedesk.connectors.folder import FolderConnector
from citedesk.retrieval.store import SearchFilter
from tests.conftest import AWS_DOCS, free_port, make_container
from tests.qdrant_facade import QdrantFacade

pytestmark = pytest.mark.slow

QUERIES = 1000


@pytest.fixture(scope="module", params=["edge", "local", "server"])
def two_tenants(request, tmp_path_factory, embedder):
    """Two tenants in one collection: qdrant-edge, local mode, and behind Qdrant's REST API (tests/qdrant_facade.py)."""
    rng = random.Random(7)
    files = rng.sample(sorted(AWS_DOCS.glob("*/*.md")), 16)
    with contextlib.ExitStack() as stack:
        qdrant = {"qdrant": {"engine": request.param}} if request.param != "server" else {}
        if request.param == "server":
            server = stack.enter_context(QdrantFacade(tmp_path_factory.mktemp("engine"), free_port()))
            qdrant = {"qdrant": {"url": server.url, "timeout": 10}}
        c = make_container(tmp_path_factory.mktemp("tenancy"), embedder, **qdrant)
        for name, part in (("tenant-a", files[:8]), ("tenant-b", files[8:])):
            root = tmp_path_factory.mktemp(name)
            for f in part:
                shutil.copy(f, root / f.name)
            assert c.sync_engine.sync(FolderConnector(root, workspace=name)).added == 8
        yield c
        c.index.close()


def test_thousand_random_queries_never_cross_tenants(two_tenants) -> None:
    c = two_tenants
    rng = random.Random(11)
    b_texts = [p["text"] for key in c.index.manifest("tenant-b", "folder")
               for p in c.index.doc_points("tenant-b", key)]
    words = " ".join(b_texts).split()
    modes = ["hybrid", "dense", "sparse"]
    leaked = hits_seen = 0
    for i in range(QUERIES):
        # queries made of tenant B's own words: the strongest pull towards B's chunks
        query = " ".join(rng.sample(words, rng.randint(2, 12)))
        r = c.retriever.retrieve(query, SearchFilter(workspace="tenant-a"), top_k=10, mode=modes[i % 3])
        hits_seen += len(r.hits)
        leaked += sum(h.workspace != "tenant-a" for h in r.hits)
    assert hits_seen > QUERIES  # the queries do find tenant A's chunks
    assert leaked == 0


def test_a_query_cannot_omit_the_tenant(two_tenants) -> None:
    c = two_tenants
    with pytest.raises(ValueError, match="workspace"):
        c.retriever.retrieve("instances", SearchFilter(workspace=""), top_k=5)
    with pytest.raises(TypeError):
        SearchFilter()  # type: ignore[call-arg]
    assert c.index.count("tenant-a") > 0 and c.index.count("tenant-b") > 0
    assert c.index.count("tenant-c") == 0


@pytest.fixture(scope="module")
def tenant_api(two_tenants, tmp_path_factory):
    """The API over the two-tenant index with auth on, one answer key per tenant."""
    from fastapi.testclient import TestClient

    from citedesk.serving.api.app import create_app
    from citedesk.serving.api.auth import KeyStore

    base = two_tenants
    c = make_container(tmp_path_factory.mktemp("tenant-api"), base.embedder, auth={"enabled": True},
                       rate_limit={"answer": "1000/minute"})
    c.__dict__["index"] = base.index
    store = KeyStore(c.db)
    keys = {ws: store.create(f"{ws}-bot", ["answer"], workspace=ws)[1] for ws in ("tenant-a", "tenant-b")}
    with TestClient(create_app(c.settings, container=c, warm_up=False)) as client:
        yield client, keys, base


def test_api_key_is_bound_to_its_workspace(tenant_api) -> None:
    client, keys, c = tenant_api
    a_articles = {v.article_id for v in c.index.manifest("tenant-a", "folder").values()}
    b_points = [p for key in c.index.manifest("tenant-b", "folder") for p in c.index.doc_points("tenant-b", key)]
    rng = random.Random(5)
    answered_from_a = 0
    for p in rng.sample(b_points, 25):  # questions made of tenant B's own text
        question = " ".join(p["text"].split()[:25])
        for path in ("/v1/answer", "/v1/answer/stream"):
            r = client.post(path, json={"question": question},
                            headers={"Authorization": f"Bearer {keys['tenant-a']}"})
            assert r.status_code == 200, r.text
            if path == "/v1/answer":
                body = r.json()
                assert {h["article_id"] for h in body["hits"]} <= a_articles
                assert {c_["article_id"] for c_ in body["citations"]} <= a_articles
                answered_from_a += bool(body["hits"])
            else:
                assert all(f'"{aid}"' not in r.text for aid in
                           {q["article_id"] for q in b_points} - a_articles)
    assert answered_from_a > 0
    r = client.post("/v1/answer", json={"question": "instances"})
    assert r.status_code == 401  # no key → no tenant → no answer


def test_rate_limit_per_key_gives_429_with_retry_after(two_tenants, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from citedesk.serving.api.app import create_app
    from citedesk.serving.api.auth import KeyStore

    c = make_container(tmp_path, two_tenants.embedder, auth={"enabled": True}, rate_limit={"answer": "3/minute"})
    c.__dict__["index"] = two_tenants.index
    store = KeyStore(c.db)
    k1 = store.create("one", ["answer"], workspace="tenant-a")[1]
    k2 = store.create("two", ["answer"], workspace="tenant-a")[1]
    with TestClient(create_app(c.settings, container=c, warm_up=False)) as client:
        codes = [client.post("/v1/answer", json={"question": "volumes"},
                             headers={"Authorization": f"Bearer {k1}"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = client.post("/v1/answer", json={"question": "volumes"}, headers={"Authorization": f"Bearer {k1}"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "rate limit" in r.json()["detail"]
        other = client.post("/v1/answer", json={"question": "volumes"}, headers={"Authorization": f"Bearer {k2}"})
        assert other.status_code == 200  # limits are per key


def test_audit_keys_only_see_their_own_tenant(tenant_api) -> None:
    client, keys, _ = tenant_api
    from citedesk.serving.api.auth import KeyStore

    store = KeyStore(client.app.state.container.db)
    readers = {ws: store.create(f"{ws}-manager", ["audit-read", "audit-write"], workspace=ws)[1]
               for ws in ("tenant-a", "tenant-b")}
    for ws in ("tenant-a", "tenant-b"):
        r = client.post("/v1/answer", json={"question": f"instances volumes {ws}", "conversation_id": ws},
                        headers={"Authorization": f"Bearer {keys[ws]}"})
        assert r.status_code == 200
    seen = {}
    for ws, key in readers.items():
        page = client.get("/v1/audit/answers", params={"limit": 500}, headers={"Authorization": f"Bearer {key}"})
        assert page.status_code == 200
        seen[ws] = {item["id"]: item["conversation_id"] for item in page.json()["items"]}
        assert ws in seen[ws].values()
    assert not set(seen["tenant-a"]) & set(seen["tenant-b"])
    b_record = next(i for i, conv in seen["tenant-b"].items() if conv == "tenant-b")
    a_key = {"Authorization": f"Bearer {readers['tenant-a']}"}
    assert client.get(f"/v1/audit/answers/{b_record}", headers=a_key).status_code == 404
    assert client.put(f"/v1/audit/answers/{b_record}/feedback", json={"helpful": False},
                      headers=a_key).status_code == 404
    b_key = {"Authorization": f"Bearer {readers['tenant-b']}"}
    assert client.get(f"/v1/audit/answers/{b_record}", headers=b_key).status_code == 200
