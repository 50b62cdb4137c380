"""The answer-unit vector cache: same vectors as the model, texts embedded once, bounded, and used by answers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from citedesk.retrieval.embedding.cache import CachedEmbedder
from citedesk.serving.answer.schemas import AnswerRequest

from .conftest import make_container, qa_rows

pytestmark = pytest.mark.slow


class Counting:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.embedded: list[str] = []

    def __getattr__(self, name):
        return getattr(self.embedder, name)

    def embed(self, texts):
        self.embedded.extend(texts)
        return self.embedder.embed(texts)


TEXTS = ["Amazon S3 stores objects in buckets.", "A bucket name must be globally unique.",
         "Lambda functions time out after 900 seconds at most."]


def test_cached_vectors_are_the_models_and_each_text_is_embedded_once(embedder) -> None:
    inner = Counting(embedder)
    cache = CachedEmbedder(inner, max_entries=10)
    first = cache.embed(TEXTS)
    assert first.dtype == np.float32 and first.shape == (3, embedder.dim)
    assert np.array_equal(first, embedder.embed(TEXTS))
    again = cache.embed([TEXTS[2], "A new text.", TEXTS[0], "A new text."])
    assert inner.embedded == [*TEXTS, "A new text."], "cached texts and repeats must not be embedded again"
    assert np.array_equal(again[0], first[2]) and np.array_equal(again[2], first[0])
    assert np.array_equal(again[1], again[3])
    assert (cache.hits, cache.misses, len(cache)) == (2, 4, 4)
    assert cache.embed([]).shape == (0, embedder.dim)
    assert cache.dim == embedder.dim and cache.model_name == embedder.model_name
    assert np.array_equal(cache.embed_query(TEXTS[0]), embedder.embed_query(TEXTS[0]))


def test_cache_is_bounded_least_recently_used_first(embedder) -> None:
    inner = Counting(embedder)
    cache = CachedEmbedder(inner, max_entries=2)
    cache.embed(TEXTS[:2])
    cache.embed(TEXTS[:1])  # TEXTS[0] used last: TEXTS[1] is the one to go
    cache.embed(TEXTS[2:])
    assert len(cache) == 2
    inner.embedded.clear()
    cache.embed(TEXTS)
    assert inner.embedded == [TEXTS[1]]
    with pytest.raises(ValueError, match="max_entries"):
        CachedEmbedder(embedder, max_entries=0)


def test_answers_reuse_unit_vectors_and_the_setting_turns_it_off(aws_container, embedder, tmp_path) -> None:
    question = qa_rows()[0]["question"]
    units = aws_container.generator.embedder
    assert isinstance(units, CachedEmbedder)
    first = asyncio.run(aws_container.pipeline.answer(AnswerRequest(question=question)))
    misses = units.misses
    assert misses > 0
    second = asyncio.run(aws_container.pipeline.answer(AnswerRequest(question=question)))
    assert units.misses == misses, "the same evidence's units come from the cache"
    assert (second.answer, second.confidence, second.decision) == (first.answer, first.confidence, first.decision)
    off = make_container(tmp_path, embedder, answer={"unit_cache_entries": 0})
    assert off.generator.embedder is embedder


@pytest.fixture()
def small_kb(tmp_path, embedder):
    """Three real AWS pages synced into a fresh index; the container warms its unit vector cache."""
    import shutil

    from citedesk.connectors.folder import FolderConnector

    from .conftest import AWS_DOCS

    root = tmp_path / "pages"
    for page in sorted(AWS_DOCS.glob("*/*.md"))[:3]:
        (root / page.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(page, root / page.parent.name / page.name)
    c = make_container(tmp_path / "data", embedder, answer={"unit_cache_warm": True})
    assert c.sync_engine.sync(FolderConnector(root, workspace="default")).ok
    yield c, FolderConnector(root, workspace="default")
    c.index.close()


def distinct_unit_texts(c) -> set[str]:
    from citedesk.core.text import answer_units
    from citedesk.serving.answer.generators import unit_text

    return {unit_text(u) for text, header in c.index.chunk_texts("default")
            for u in answer_units(text, table_header=header) if 3 <= len(u.text.split()) <= 150}


def test_warm_up_embeds_every_chunks_units_once_and_answers_then_embed_none(small_kb) -> None:
    c, _ = small_kb
    units = c.generator.embedder
    expected = distinct_unit_texts(c)
    assert len(expected) > 20
    assert c.unit_warmer.run() == len(expected) == len(units)
    assert c.unit_warmer.run() == 0, "a second pass finds every unit cached"
    misses, hits = units.misses, units.hits
    title = c.index.doc_points("default", next(iter(c.index.manifest("default", "folder"))))[0]["title"]
    r = asyncio.run(c.pipeline.answer(AnswerRequest(question=f"What is {title}?")))
    assert units.hits > hits, r  # the generator ranked units
    assert units.misses == misses, "every unit of the evidence was embedded by the warm-up"


def test_warm_up_stops_when_the_cache_is_full(tmp_path, embedder, small_kb) -> None:
    c, _ = small_kb
    small = make_container(c.settings.data_dir, embedder, answer={"unit_cache_warm": True, "unit_cache_entries": 5})
    small.__dict__["index"] = c.index  # the same open index (the embedded engine locks its folder)
    assert small.unit_warmer.run() == 5 and len(small.generator.embedder) == 5
    assert make_container(tmp_path / "off", embedder, answer={"unit_cache_warm": False}).unit_warmer is None


def test_healthz_says_when_there_is_no_unit_cache(tmp_path, embedder) -> None:
    from fastapi.testclient import TestClient

    from citedesk.serving.api.app import create_app

    c = make_container(tmp_path, embedder, answer={"unit_cache_entries": 0})
    with TestClient(create_app(c.settings, container=c, warm_up=False)) as client:
        body = client.get("/healthz").json()
    assert body["unit_cache"] is None and body["generator"] == "extractive"


def test_server_warms_at_start_and_after_each_sync_it_runs(small_kb) -> None:
    from fastapi.testclient import TestClient

    from citedesk.serving.api.app import create_app

    c, connector = small_kb
    with TestClient(create_app(c.settings, container=c)) as client:
        assert client.get("/healthz").status_code == 200
        c.unit_warmer.join()
        assert c.unit_warmer.passes == 1 and c.unit_warmer.embedded == len(distinct_unit_texts(c))
        status = client.get("/healthz").json()["unit_cache"]
        assert status == {"entries": c.unit_warmer.embedded, "capacity": c.settings.answer.unit_cache_entries,
                          "warming": False, "warm_passes": 1}
        job = c.sync_runner.start(connector)
        events = [*job.follow(poll_s=0.1)]
        assert events[-1]["event"] == "done" and job.error is None, events[-1]
        c.unit_warmer.join()
        assert c.unit_warmer.passes == 2 and c.unit_warmer.embedded == 0, "nothing changed: every unit was cached"


def test_intercom_article_webhooks_start_the_warm_up(tmp_path, embedder) -> None:
    intercom = {"token": "tok", "client_secret": "secret", "admin_id": "1", "base_url": "http://127.0.0.1:9"}
    on = make_container(tmp_path / "on", embedder, answer={"unit_cache_warm": True}, intercom=intercom)
    assert on.intercom_webhooks.on_article_synced == on.unit_warmer.start
    off = make_container(tmp_path / "off", embedder, intercom=intercom)
    assert off.unit_warmer is None and off.intercom_webhooks.on_article_synced is None
