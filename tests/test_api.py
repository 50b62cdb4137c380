"""Answer API on real AWS pages: real embedding model, local Qdrant, extractive generator."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from citedesk.core.types import Channel
from citedesk.serving.api.app import create_app
from tests.conftest import free_port, make_container

pytestmark = pytest.mark.slow

ANSWERABLE = "What is the size of a null attribute in DynamoDB?"
GOLD = "amazon-dynamodb-developer-guide/CapacityUnitCalculations.md"


@pytest.fixture(scope="module")
def client(aws_container):
    app = create_app(aws_container.settings, container=aws_container)
    with TestClient(app) as c:
        yield c


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name:
            events.append((name, json.loads("\n".join(data))))
    return events


def assert_quotes_verbatim(container, citations: list[dict]) -> None:
    for c in citations:
        points = container.index.doc_points("default", f"default/folder/{c['article_id']}/en")
        chunk = next(p for p in points if p["chunk_index"] == c["chunk_index"])
        assert chunk["content_hash"] == c["content_hash"]
        assert chunk["text"][c["quote_start"]:c["quote_end"]] == c["quote"]


def test_answerable_question_is_answered_with_verbatim_citations(client, aws_container) -> None:
    r = client.post("/v1/answer", json={"question": ANSWERABLE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "answer" and body["reason"] == "grounded"
    assert body["confidence_kind"] == "answerable_probability"
    assert body["confidence"] >= aws_container.thresholds[Channel.CHAT]
    assert GOLD in {c["article_id"] for c in body["citations"]}
    assert "null attribute" in body["answer"] and "[" in body["answer"]
    markers = {int(m) for m in __import__("re").findall(r"\[(\d+)\]", body["answer"])}
    assert markers == {c["marker"] for c in body["citations"]}
    assert_quotes_verbatim(aws_container, body["citations"])
    assert {h["score_kind"] for h in body["hits"]} == {"rrf"}
    assert all(-1 <= h["cosine"] <= 1 for h in body["hits"])
    assert {"embed", "retrieve", "first_sentence", "total"} <= set(body["latency_ms"])


@pytest.mark.parametrize("question", [
    "How do I bake a chocolate cake without eggs?",
    "Who won the football world cup in 1998?",
    "What is the capital of France?",
])
def test_off_topic_question_escalates_with_handoff(client, question) -> None:
    body = client.post("/v1/answer", json={"question": question}).json()
    assert body["decision"] == "escalate" and body["reason"] == "low_confidence"
    assert body["answer"] == "" and body["citations"] == []
    assert question in body["handoff_summary"] and "Closest articles" in body["handoff_summary"]


def test_voice_threshold_is_stricter_than_chat(aws_container) -> None:
    t = aws_container.thresholds
    assert t[Channel.VOICE] > t[Channel.CHAT] and aws_container.pipeline.policy.thresholds == t


def test_locale_without_articles_escalates_no_evidence(client) -> None:
    body = client.post("/v1/answer", json={"question": ANSWERABLE, "locale": "fr"}).json()
    assert body["decision"] == "escalate" and body["reason"] == "no_evidence" and body["hits"] == []


def test_stream_events_in_order_and_match_the_final_answer(client, aws_container) -> None:
    with client.stream("POST", "/v1/answer/stream", json={"question": ANSWERABLE}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    names = [n for n, _ in events]
    assert names[0] == "retrieval" and names[-3:] == ["citations", "decision", "done"]
    assert set(names[1:-3]) == {"sentence"}
    final = events[-1][1]["response"]
    assert final["decision"] == "answer"
    assert " ".join(d["text"] for n, d in events if n == "sentence") == final["answer"]
    assert events[-2][1]["decision"] == "answer"
    assert_quotes_verbatim(aws_container, events[-3][1]["citations"])


def test_bad_requests_get_422_with_a_message(client) -> None:
    assert client.post("/v1/answer", json={"question": ""}).status_code == 422
    assert client.post("/v1/answer", json={"question": "x" * 2001}).status_code == 422
    assert client.post("/v1/answer", json={"question": "hi", "channel": "fax"}).status_code == 422
    r = client.post("/v1/answer", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "detail" in r.json()


def test_healthz_and_openapi(client) -> None:
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json()["index_reachable"] and h.json()["points"] > 0
    spec = client.get("/openapi.json").json()
    assert {"/v1/answer", "/v1/answer/stream", "/healthz"} <= set(spec["paths"])


def test_unreachable_qdrant_gives_503_not_500(tmp_path, embedder) -> None:
    c = make_container(tmp_path, embedder, qdrant={"url": f"http://127.0.0.1:{free_port()}", "timeout": 2})
    with TestClient(create_app(c.settings, container=c)) as client:
        r = client.post("/v1/answer", json={"question": ANSWERABLE})
        assert r.status_code == 503 and "index unavailable" in r.json()["detail"]
        s = client.post("/v1/answer/stream", json={"question": ANSWERABLE})
        assert s.status_code == 503
        assert client.get("/healthz").status_code == 503


@pytest.mark.slow
def test_qdrant_server_outage_and_recovery_without_restart(tmp_path, embedder, aws_subset) -> None:
    """Over ``qdrant.url``: down → 503 (never a 500 or a made-up answer); back → answers again, same app."""
    import shutil

    from citedesk.connectors.folder import FolderConnector
    from tests.qdrant_facade import QdrantFacade

    root, _ = aws_subset
    docs = tmp_path / "docs"
    for rel in [GOLD, *sorted(str(p.relative_to(root)) for p in root.glob("*/*.md"))[:5]]:
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, docs / rel)
    local = make_container(tmp_path / "local", embedder, qdrant={"engine": "local"})  # the facade's engine
    assert local.sync_engine.sync(FolderConnector(docs)).ok
    local.index.close()  # the facade's engine takes over the folder

    facade = QdrantFacade(tmp_path / "local" / "qdrant", free_port())
    c = make_container(tmp_path / "remote", embedder, qdrant={"url": facade.url, "timeout": 2})
    with TestClient(create_app(c.settings, container=c)) as client:

        def ask():
            return client.post("/v1/answer", json={"question": ANSWERABLE})

        down = ask()
        assert down.status_code == 503 and "index unavailable" in down.json()["detail"]
        assert client.get("/healthz").status_code == 503
        for _ in range(2):  # up, down, up again: the same running app follows
            with facade:
                up = ask()
                assert up.status_code == 200, up.text
                assert up.json()["decision"] == "answer" and up.json()["citations"][0]["article_id"] == GOLD
                health = client.get("/healthz").json()
                assert health["index_reachable"] and health["points"] > 0
            assert ask().status_code == 503
    assert any(r.endswith("/points/query") for r in facade.requests), "the answers went through the server"
