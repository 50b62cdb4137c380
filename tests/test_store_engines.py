"""The QdrantIndex front over its engines: qdrant-edge, qdrant-client's local mode, a server (REST facade).

Same points, same queries → same hits on every engine; edge persists across reopen, holds its folder against a
second process, takes over data written by local mode; a server's collection is created with the cluster
settings of the configuration.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest

from citedesk.config.settings import Settings
from citedesk.core.errors import IndexUnavailableError
from citedesk.retrieval.embedding.sparse import SparseVector
from citedesk.retrieval.store import ChunkPoint, QdrantIndex, SearchFilter, point_id
from citedesk.serving.container import Container
from tests.conftest import free_port
from tests.qdrant_facade import QdrantFacade

DIM = 16
WORDS = 50


def make_points(n: int, seed: int = 0) -> list[ChunkPoint]:
    """``n`` chunks of ``n // 4`` articles (4 chunks each) in two workspaces, random unit vectors, sparse term vectors."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        article = f"a{i // 4}"
        ws = "acme" if (i // 4) % 3 else "globex"
        doc_key = f"{ws}/folder/{article}/en"
        v = rng.standard_normal(DIM).astype(np.float32)
        terms = sorted(rng.choice(WORDS, size=4, replace=False).tolist())
        points.append(ChunkPoint(
            id=point_id(doc_key, i % 4), dense=v / np.linalg.norm(v),
            sparse=SparseVector(indices=terms, values=rng.uniform(0.5, 2.0, 4).round(3).tolist()),
            payload={"workspace": ws, "source": "folder", "article_id": article, "locale": "en", "doc_key": doc_key,
                     "title": f"Article {article}", "updated_at": 1700000000 + i, "content_hash": "h",
                     "version": "v1", "pipeline": "p", "chunk_index": i % 4, "chunk_count": 4, "heading": "",
                     "text": f"chunk {i}", "start": 0, "end": 7}))
    return points


def queries(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        v = rng.standard_normal(DIM).astype(np.float32)
        terms = sorted(rng.choice(WORDS, size=2, replace=False).tolist())
        yield v / np.linalg.norm(v), SparseVector(indices=terms, values=[1.0, 1.0])


@pytest.fixture(params=["edge", "local", "server"])
def index(request, tmp_path):
    """A filled index on each engine (exact dense search, so every engine must return the same hits)."""
    if request.param == "server":
        with QdrantFacade(tmp_path / "engine", free_port()) as server:
            idx = QdrantIndex(url=server.url, exact=True)
            idx.ensure_collection(DIM)
            idx.upsert(make_points(200))
            yield idx
            idx.close()
        return
    idx = QdrantIndex(path=tmp_path / "qdrant", engine=request.param, exact=True)
    idx.ensure_collection(DIM)
    idx.upsert(make_points(200))
    idx.optimize()
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Hits of the reference engine (qdrant-client's local mode scans every point: brute force)."""
    idx = QdrantIndex(path=tmp_path_factory.mktemp("ref"), engine="local")
    idx.ensure_collection(DIM)
    idx.upsert(make_points(200))
    yield idx
    idx.close()


def ranked_groups(hits) -> list[set[str]]:
    """Point ids grouped by equal score, best first, without the last group (RRF ties are frequent, and which
    of several tied points makes the cut is the engine's choice)."""
    groups: list[tuple[float, set[str]]] = []
    for h in hits:
        if groups and abs(groups[-1][0] - h.score) < 1e-4:
            groups[-1][1].add(h.point_id)
        else:
            groups.append((h.score, {h.point_id}))
    return [ids for _, ids in groups[:-1]]


FILTERS = [SearchFilter(workspace="acme"),
           SearchFilter(workspace="acme", exclude_article_ids=("a1", "a2", "a4", "a5", "a7")),
           SearchFilter(workspace="globex", article_ids=("a0", "a3", "a9", "a12"))]


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid", "weighted"])
def test_every_engine_returns_the_reference_hits(index, reference, mode) -> None:
    for i, (dense, sparse) in enumerate(queries(30)):
        flt = FILTERS[i % len(FILTERS)]
        kw = dict(dense=dense if mode != "sparse" else None, sparse=sparse if mode != "dense" else None, limit=5,
                  prefetch_k=20, fusion_weights=(1.0, 2.5) if mode == "weighted" else (1.0, 1.0))
        got, want = index.search(flt, **kw), reference.search(flt, **kw)
        assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-4), (mode, i)
        assert ranked_groups(got) == ranked_groups(want), (mode, i)
        assert {h.score_kind for h in got} <= {{"dense": "cosine", "sparse": "bm25"}.get(mode, "rrf")}
        assert all(h.workspace == flt.workspace for h in got)
        assert not {h.article_id for h in got} & set(flt.exclude_article_ids or ())
        if mode != "sparse":
            assert all(h.cosine is not None for h in got)


def test_writes_deletes_counts_and_manifest_agree(index) -> None:
    assert index.count("acme") + index.count("globex") == 200
    manifest = index.manifest("acme", "folder")
    assert all(st.is_complete("v1") for st in manifest.values())
    key = next(iter(manifest))
    index.delete_doc("acme", key, keep_version="v1")  # nothing stale: nothing deleted
    assert index.count("acme", doc_key=key) == 4
    first = index.doc_points("acme", key)[0]["id"]
    index.set_point_fields([first], {"version": "old"})
    assert index.manifest("acme", "folder")[key].versions == {"v1", "old"}
    index.delete_doc("acme", key, keep_version="v1")
    assert index.count("acme", doc_key=key) == 3
    index.set_doc_fields("acme", key, {"updated_at": 5})
    assert {p["updated_at"] for p in index.doc_points("acme", key)} == {5}
    index.delete_doc("acme", key)
    assert index.count("acme", doc_key=key) == 0 and key not in index.manifest("acme", "folder")


def test_edge_persists_across_reopen(tmp_path) -> None:
    idx = QdrantIndex(path=tmp_path)
    idx.ensure_collection(DIM)
    idx.upsert(make_points(120))  # not optimized, not explicitly flushed: the write-ahead log has it
    dense, sparse = next(queries(1))
    flt = SearchFilter(workspace="acme")
    before = idx.search(flt, dense=dense, limit=10), idx.search(flt, sparse=sparse, limit=10)
    idx.close()
    again = QdrantIndex(path=tmp_path)
    assert again.count("acme") + again.count("globex") == 120
    assert (again.search(flt, dense=dense, limit=10), again.search(flt, sparse=sparse, limit=10)) == before
    again.close()


def test_edge_folder_open_in_another_process_is_a_clear_error(tmp_path) -> None:
    idx = QdrantIndex(path=tmp_path)
    idx.ensure_collection(DIM)
    idx.upsert(make_points(8))
    code = textwrap.dedent(f"""
        from citedesk.retrieval.store import QdrantIndex
        from citedesk.core.errors import IndexUnavailableError
        try:
            QdrantIndex(path={str(tmp_path)!r}).count("acme")
        except IndexUnavailableError as exc:
            print("ERROR", exc)
        else:
            print("OPENED")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("ERROR") and "open in another process" in out and "qdrant.url" in out, out
    idx.close()  # released: another process may open it now
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("OPENED"), out


def test_local_mode_data_is_taken_over_by_edge(tmp_path, caplog) -> None:
    old = QdrantIndex(path=tmp_path, engine="local")
    old.ensure_collection(DIM)
    old.upsert(make_points(150))
    dense, sparse = next(queries(1))
    flt = SearchFilter(workspace="acme", exclude_article_ids=("a3",))
    want = old.search(flt, dense=dense, sparse=sparse, limit=8)
    manifest = old.manifest("acme", "folder")
    old.close()

    with caplog.at_level(logging.WARNING, logger="citedesk.retrieval.store"):
        new = QdrantIndex(path=tmp_path, exact=True)  # the default engine: edge
        assert new.count("acme") + new.count("globex") == 150
    assert "copied 150 points" in caplog.text and 'qdrant.engine = "local"' in caplog.text
    got = new.search(flt, dense=dense, sparse=sparse, limit=8)
    assert np.allclose([h.score for h in got], [h.score for h in want]) and ranked_groups(got) == ranked_groups(want)
    assert [(h.text, h.cosine) for h in new.search(flt, dense=dense)] == [
        (h.text, h.cosine) for h in QdrantIndex(path=tmp_path, engine="local").search(flt, dense=dense)]
    assert new.manifest("acme", "folder") == manifest
    new.ensure_collection(DIM)  # the copied collection keeps its schema
    new.close()
    assert (tmp_path / "collection" / "citedesk").is_dir(), "local-mode files are left in place"
    assert not (tmp_path / "edge" / "citedesk.migrating").exists()
    reopened = QdrantIndex(path=tmp_path)  # copied once: opening again reads the edge shard
    assert reopened.count("acme") == sum(st.points for st in manifest.values())
    reopened.close()


def test_dense_size_mismatch_is_refused_on_edge(tmp_path) -> None:
    idx = QdrantIndex(path=tmp_path)
    idx.ensure_collection(DIM)
    with pytest.raises(IndexUnavailableError, match="dense size 16"):
        idx.ensure_collection(384)
    idx.close()


def test_server_collection_is_created_with_the_configured_cluster_settings(tmp_path) -> None:
    with QdrantFacade(tmp_path / "engine", free_port()) as server:
        settings = Settings(data_dir=tmp_path / "app", qdrant={
            "url": server.url, "shards": 6, "replication_factor": 2, "write_consistency_factor": 2,
            "on_disk_payload": True, "hnsw_m": 24, "hnsw_ef_construct": 200})
        c = Container(settings)
        c.index.ensure_collection(DIM)
        create = [b for r, b in server.bodies if r == "PUT /collections/citedesk"]
        assert len(create) == 1
        body = create[0]
        assert (body["shard_number"], body["replication_factor"], body["write_consistency_factor"],
                body["on_disk_payload"]) == (6, 2, 2, True)
        assert body["hnsw_config"]["m"] == 24 and body["hnsw_config"]["ef_construct"] == 200
        assert body["vectors"] == {"dense": {"size": DIM, "distance": "Cosine"}}
        assert body["sparse_vectors"] == {"bm25": {"modifier": "idf"}}
        indexes = {b["field_name"]: b["field_schema"] for r, b in server.bodies if r == "PUT /collections/citedesk/index"}
        assert indexes["workspace"] == {"type": "keyword", "is_tenant": True}
        assert indexes["doc_key"] == "keyword" and indexes["chunk_index"] == "integer"
        c.index.upsert(make_points(20))
        dense, _ = next(queries(1))
        c.index.search(SearchFilter(workspace="acme"), dense=dense)
        assert server.queries[-1]["params"]["hnsw_ef"] == settings.qdrant.hnsw_ef
        c.index.close()


def test_write_consistency_cannot_exceed_replication() -> None:
    with pytest.raises(ValueError, match="write_consistency_factor"):
        Settings(qdrant={"replication_factor": 1, "write_consistency_factor": 2})


def test_point_ids_are_uuid5() -> None:
    pid = point_id("acme/folder/a1/en", 3)
    assert uuid.UUID(pid).version == 5


def test_edge_serves_searches_while_a_writer_upserts_and_optimizes(tmp_path) -> None:
    """One process, one shard: searches from 4 threads run while another thread writes, deletes and optimizes."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    idx = QdrantIndex(path=tmp_path)
    idx.ensure_collection(DIM)
    points = make_points(400)
    idx.upsert(points[:200])
    stop = threading.Event()

    def writer() -> None:
        for start in range(200, 400, 20):
            idx.upsert(points[start:start + 20])
        idx.delete_doc("acme", points[4].payload["doc_key"])
        idx.optimize()
        stop.set()

    def reader(seed: int) -> int:
        n = 0
        for dense, sparse in queries(10_000, seed):
            assert all(h.workspace == "acme" for h in idx.search(SearchFilter(workspace="acme"), dense=dense,
                                                                  sparse=sparse))
            n += 1
            if stop.is_set():
                return n
        return n

    with ThreadPoolExecutor(5) as pool:
        w = pool.submit(writer)
        done = [pool.submit(reader, s) for s in range(4)]
        w.result(timeout=300)
        assert all(f.result(timeout=300) > 0 for f in done)
    assert idx.count("acme") + idx.count("globex") == 396
    idx.close()
