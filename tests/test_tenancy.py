"""Tenant isolation in one collection: every query is filtered by workspace; none can omit it."""

from __future__ import annotations

import random
import shutil

import pytest

from connectors.folder import FolderConnector
from ingest.index import SearchFilter
from tests.conftest import AWS_DOCS, make_container

pytestmark = pytest.mark.slow

QUERIES = 1000


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory, embedder):
    rng = random.Random(7)
    files = rng.sample(sorted(AWS_DOCS.glob("*/*.md")), 16)
    c = make_container(tmp_path_factory.mktemp("tenancy"), embedder)
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
