"""Generation through a real OpenAI-compatible server on loopback (llama-cpp-python + SmolLM2-135M)."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from fastapi.testclient import TestClient

from citedesk.connectors.folder import FolderConnector
from citedesk.serving.api.app import create_app
from citedesk.serving.answer.generators import OpenAIGenerator
from tests.conftest import free_port, make_container
from tests.test_api import assert_quotes_verbatim, sse_events

pytestmark = [pytest.mark.slow, pytest.mark.llm]

HOURS = """# Support hours

Our support team is available from 9 am to 5 pm on weekdays.

## Weekends

On weekends the support team does not answer phone calls.
"""
QUESTION = "When is the support team available?"


@pytest.fixture(scope="module")
def kb(tmp_path_factory, embedder):
    docs = tmp_path_factory.mktemp("kb")
    (docs / "support-hours.md").write_text(HOURS)
    c = make_container(tmp_path_factory.mktemp("kb-index"), embedder)
    assert c.sync_engine.sync(FolderConnector(docs)).added == 1
    yield c
    c.index.close()


def llm_app(kb, base_url: str, timeout: float = 60.0):
    settings = kb.settings.model_copy(update={
        "answer": kb.settings.answer.model_copy(update={"generator": "openai"}),
        "llm": kb.settings.llm.model_copy(update={"base_url": base_url, "model": "smollm2",
                                                   "timeout": timeout, "max_retries": 0}),
    })
    c = make_container(settings.data_dir, kb.embedder)
    c.settings = settings
    c.__dict__["index"] = kb.index
    return create_app(settings, container=c), c


def test_openai_generator_streams_deltas(llm_server, kb) -> None:
    gen = OpenAIGenerator(llm_server, model="smollm2", timeout=60)
    hits = kb.retriever.retrieve(QUESTION, __import__("citedesk.retrieval.store", fromlist=["x"]).SearchFilter("default")).hits

    async def collect():
        try:
            return [d async for d in gen.stream(QUESTION, [], hits)]
        finally:
            await gen.aclose()

    deltas = asyncio.run(collect())
    assert len(deltas) > 3, "a streamed completion arrives in several deltas"
    assert "".join(deltas).strip()


def test_grounded_answer_from_real_llm(llm_server, kb) -> None:
    app, c = llm_app(kb, llm_server)
    with TestClient(app) as client:
        body = client.post("/v1/answer", json={"question": QUESTION}).json()
    assert body["generator"] == "openai" and body["model"] == "smollm2"
    assert "first_token" in body["latency_ms"], "the LLM was called"
    assert body["decision"] == "answer", body
    assert "9" in body["answer"] and "5" in body["answer"]
    assert [cit["article_id"] for cit in body["citations"]] == ["support-hours.md"]
    assert_quotes_verbatim(c, body["citations"])


def test_streaming_answer_from_real_llm(llm_server, kb) -> None:
    app, _ = llm_app(kb, llm_server)
    with TestClient(app) as client, client.stream("POST", "/v1/answer/stream",
                                                  json={"question": QUESTION}) as r:
        assert r.status_code == 200
        events = sse_events(r.read().decode())
    names = [n for n, _ in events]
    assert names[0] == "retrieval" and names[-3:] == ["citations", "decision", "done"]
    final = events[-1][1]["response"]
    sentences = [d["text"] for n, d in events if n == "sentence"]
    if final["decision"] == "answer":
        assert sentences and " ".join(sentences) == final["answer"]
    else:  # a weak model may fail the citation check mid-stream: sentences so far are discarded
        assert final["reason"] in {"unsupported_claim", "unsupported_citation", "invalid_citation",
                                   "generator_declined", "uncited_answer"}


def test_unreachable_llm_escalates_not_500(kb) -> None:
    app, _ = llm_app(kb, f"http://127.0.0.1:{free_port()}/v1", timeout=5)
    with TestClient(app) as client:
        r = client.post("/v1/answer", json={"question": QUESTION})
        assert r.status_code == 200
        body = r.json()
        assert body["decision"] == "escalate" and body["reason"] == "generator_unavailable"
        assert "language model is unavailable" in body["handoff_summary"]
        with client.stream("POST", "/v1/answer/stream", json={"question": QUESTION}) as s:
            events = sse_events(s.read().decode())
        assert events[-2][1]["reason"] == "generator_unavailable"


def test_llm_that_hangs_times_out_into_escalation(kb) -> None:
    """A server that accepts connections and never answers: the request times out, the answer escalates."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        app, _ = llm_app(kb, f"http://127.0.0.1:{srv.getsockname()[1]}/v1", timeout=1.5)
        with TestClient(app) as client:
            body = client.post("/v1/answer", json={"question": QUESTION}).json()
        assert body["decision"] == "escalate" and body["reason"] == "generator_unavailable"
    finally:
        stop.set()
        t.join()
        for s in held:
            s.close()
        srv.close()


def test_llm_outage_then_recovery_without_restart(kb) -> None:
    """LLM down → escalation with a reason; the same running app answers again once the LLM is back."""
    from tests.test_voice import HOURS_ANSWER, ScriptedLLM

    port = free_port()
    app, _ = llm_app(kb, f"http://127.0.0.1:{port}/v1", timeout=5)
    with TestClient(app) as client:
        down = client.post("/v1/answer", json={"question": QUESTION}).json()
        assert down["decision"] == "escalate" and down["reason"] == "generator_unavailable"
        with ScriptedLLM(HOURS_ANSWER, port=port) as llm:
            up = client.post("/v1/answer", json={"question": QUESTION}).json()
            assert llm.requests, "the recovered LLM was called"
        assert up["decision"] == "answer" and up["citations"][0]["article_id"] == "support-hours.md"
        again = client.post("/v1/answer", json={"question": QUESTION}).json()
        assert again["reason"] == "generator_unavailable"
