"""The voice channel: speakable text, pacing with a signed state, fillers, cancellation on disconnect.

The LLM side uses a scripted OpenAI-compatible server on loopback (a real HTTP server speaking the
chat-completions streaming protocol, with configurable delays) that records whether each request ran to
its end or saw its connection closed; the real llama.cpp server is exercised in tests/test_llm.py and
bench/voice_latency.py.
"""

from __future__ import annotations

import json
import logging
import re
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from citedesk.connectors.folder import FolderConnector
from citedesk.serving.api.app import create_app
from citedesk.serving.answer.schemas import VoiceState
from citedesk.serving.channels.voice.pacing import Pacer, intent
from citedesk.serving.channels.voice.speech import speakable
from citedesk.serving.channels.voice.state import StateSigner, VoiceStateError
from tests.conftest import free_port, make_container
from tests.test_api import sse_events

HOURS = """# Support hours

Our support team is available from 9 am to 5 pm on weekdays.

## Weekends

On weekends the support team does not answer phone calls.
"""
PASSWORD = """# Reset your password

To reset the password of your account, follow these steps:

1. Open the sign-in page of the console.
2. Choose the Forgot password link below the sign-in form.
3. Enter the email address of your account.
4. Open the reset link in the email we send you.
5. Enter a new password twice and choose Save.
"""
HOURS_Q = "When is the support team available?"
PASSWORD_Q = "How do I reset the password of my account?"
HOURS_ANSWER = "Our support team is available from 9 am to 5 pm on weekdays [1]. "


# ---------------------------------------------------------------------------------------------- fast


@pytest.mark.parametrize("written, said", [
    ("The maximum item size is 400 KB [1].", "The maximum item size is 400 kilobytes."),
    ("A 1 KB item uses 1 WCU [2].", "A 1 kilobyte item uses 1 write capacity unit."),
    ("Support is open 9am-5pm on weekdays [1][2].", "Support is open 9 a.m. to 5 p.m. on weekdays."),
    ("Calls end at 17:30, or at 00:00 on Fridays.", "Calls end at 5:30 p.m., or at midnight on Fridays."),
    ("Use **v2.1** of the SDK, see [the guide](https://docs.example.com/sdk) or https://x.example.com/a.",
     "Use version 2 point 1 of the SDK, see the guide."),
    ("It costs $5 per month, 50% off until 2024-03-05 [3].",
     "It costs 5 dollars per month, 50 percent off until March 5, 2024."),
    ("Throughput is 1 GB/s and latency 10ms (e.g. for reads) [1, 2].",
     "Throughput is 1 gigabyte per second and latency 10 milliseconds (for example, for reads)."),
    ("Use 1-5 nodes, i.e. small `clusters` <b>now</b>.", "Use 1 to 5 nodes, that is, small clusters now."),
    ("## Limits\n| name | size |\n|---|---|\n| item | 400 KB |", "Limits."),
    ("| a | b |\n|---|---|", ""),
    ("[1]", ""),
])
def test_speakable_text_has_no_markup_and_says_numbers_and_units(written, said) -> None:
    assert speakable(written) == said


def test_procedure_is_split_into_numbered_steps_paced_per_turn() -> None:
    pacer = Pacer(max_sentences=3, steps_per_turn=2)
    units = pacer.units("To reset your password: Open the sign-in page; Choose Forgot password; Enter your email. [1]")
    units += pacer.units("4. Choose Save. [1]")
    assert [u.step for u in units] == [0, 1, 2, 3, 4]
    assert units[0].text == "To reset your password, follow these steps."
    assert units[3].text == "Step 3: Enter your email."
    said = [u for u in units if pacer.offer(u)]
    assert [u.step for u in said] == [0, 1, 2]
    assert [u.step for u in pacer.pending] == [3, 4]
    assert pacer.confirmation() == "Say next when you're ready for step 3."


def test_long_answers_stop_after_max_sentences_and_ask() -> None:
    pacer = Pacer(max_sentences=2, steps_per_turn=2)
    said = [pacer.offer(u) for s in ["One fact here.", "Two facts here.", "Three facts here."] for u in pacer.units(s)]
    assert said == [True, True, False] and pacer.confirmation() == "Would you like to hear more?"
    assert Pacer(max_sentences=3).confirmation() is None


@pytest.mark.parametrize("turn, kind", [
    ("yes", "continue"), ("Next.", "continue"), ("okay, go on", "continue"), ("I'm ready", "continue"),
    ("repeat that please", "repeat"), ("say that again", "repeat"), ("Sorry?", "repeat"),
    ("How do I delete my account?", "ask"), ("no", "ask"), ("yes but what about billing", "ask"),
])
def test_caller_intent_after_a_paused_answer(turn, kind) -> None:
    assert intent(turn) == kind


def test_voice_state_signature_rejects_any_change() -> None:
    signer = StateSigner(b"k" * 32)
    state = signer.sign(VoiceState(question="q", pending=["Step 3: Do it."], pending_steps=[3]))
    assert signer.verify(state) == state
    forged = state.model_copy(update={"pending": ["Step 3: Read your card number aloud."]})
    with pytest.raises(VoiceStateError):
        signer.verify(forged)
    with pytest.raises(VoiceStateError):
        StateSigner(b"other" * 8).verify(state)
    theirs = signer.sign(VoiceState(question="q", pending=["Step 3: Do it."]), "tenant-a")
    assert signer.verify(theirs, "tenant-a") == theirs
    with pytest.raises(VoiceStateError):
        signer.verify(theirs, "tenant-b")  # another tenant cannot replay it


# ------------------------------------------------------------------- a scripted OpenAI-compatible server


class ScriptedLLM:
    """``POST /v1/chat/completions`` streaming ``text`` word by word, after ``first_token_delay`` seconds
    and ``token_delay`` between words. ``requests`` records each request: ``sent`` (chunks written),
    ``total``, ``outcome`` (``finished`` | ``client_closed``), and ``ended`` (a threading.Event)."""

    def __init__(self, text: str, *, first_token_delay: float = 0.0, token_delay: float = 0.0,
                 port: int = 0) -> None:
        self.text, self.first_token_delay, self.token_delay = text, first_token_delay, token_delay
        self.requests: list[dict] = []
        self.received = threading.Event()  # set once the first request has arrived
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _closed(self, wait: float) -> bool:
                """Wait up to ``wait`` s; True as soon as the client has closed its end."""
                deadline = time.monotonic() + wait
                while True:
                    r, _, _ = select.select([self.connection], [], [], max(0.0, min(0.02, deadline - time.monotonic())))
                    if r:
                        try:
                            if self.connection.recv(1, socket.MSG_PEEK) == b"":
                                return True
                        except OSError:
                            return True
                    if time.monotonic() >= deadline:
                        return False

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                chunks = re.findall(r"\S+\s*", llm.text)
                rec = {"sent": 0, "total": len(chunks), "outcome": None, "ended": threading.Event()}
                llm.requests.append(rec)
                llm.received.set()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.flush()
                    if self._closed(llm.first_token_delay):
                        rec["outcome"] = "client_closed"
                        return
                    for i, chunk in enumerate(chunks):
                        data = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                                "choices": [{"index": 0, "delta": {"content": chunk}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                        self.wfile.flush()
                        rec["sent"] = i + 1
                        if llm.token_delay and self._closed(llm.token_delay):
                            rec["outcome"] = "client_closed"
                            return
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    rec["outcome"] = "finished"
                except OSError:
                    rec["outcome"] = "client_closed"
                finally:
                    rec["ended"].set()
                    self.close_connection = True

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------- slow


@pytest.fixture(scope="module")
def kb(tmp_path_factory, embedder):
    docs = tmp_path_factory.mktemp("voice-kb")
    (docs / "support-hours.md").write_text(HOURS)
    (docs / "reset-password.md").write_text(PASSWORD)
    c = make_container(tmp_path_factory.mktemp("voice-index"), embedder)
    assert c.sync_engine.sync(FolderConnector(docs)).added == 2
    yield c
    c.index.close()


def voice_app(kb, *, llm: str | None = None, voice: dict | None = None, answer: dict | None = None,
              embedder=None):
    """An app on the shared KB index: extractive, or an OpenAI-compatible LLM at ``llm`` (``embedder``
    replaces the KB's query embedder)."""
    update: dict = {"voice": kb.settings.voice.model_copy(update=voice or {}),
                    "answer": kb.settings.answer.model_copy(update={**(answer or {}),
                                                                   "generator": "openai" if llm else "extractive"})}
    if llm:
        update["llm"] = kb.settings.llm.model_copy(update={"base_url": llm, "model": "scripted", "timeout": 60,
                                                           "max_retries": 0})
    settings = kb.settings.model_copy(update=update)
    c = make_container(settings.data_dir, embedder or kb.embedder)
    c.settings = settings
    c.__dict__["index"] = kb.index
    return create_app(settings, container=c)


@pytest.mark.slow
def test_procedure_spoken_in_steps_then_continued_from_the_state(kb) -> None:
    # no filler however slow the machine (fillers have their own tests): the first event is the retrieval
    with TestClient(voice_app(kb, voice={"steps_per_turn": 2, "speak_source_titles": True,
                                         "filler_budget_ms": 60_000})) as client:
        with client.stream("POST", "/v1/answer/stream", json={"question": PASSWORD_Q, "channel": "voice"}) as r:
            assert r.status_code == 200
            events = sse_events(r.read().decode())
        names = [n for n, _ in events]
        assert names[0] == "retrieval" and names[-3:] == ["citations", "decision", "done"]
        spoken = [d for n, d in events if n == "sentence"]
        assert [d["kind"] for d in spoken] == ["sentence", "step", "step", "source", "confirm"], spoken
        assert spoken[1]["text"] == "Step 1: Open the sign-in page of the console."
        assert spoken[3]["text"] == "This is from the article Reset your password."
        assert spoken[4]["text"] == "Say next when you're ready for step 3."
        assert all("[" not in d["text"] and "http" not in d["text"] for d in spoken)
        assert all(re.search(r"\[1\]", d["written"]) for d in spoken[:3]), "written sentence keeps its citation"
        final = events[-1][1]["response"]
        assert final["decision"] == "answer" and final["citations"][0]["article_id"] == "reset-password.md"
        assert "[1]" in final["answer"], "the checked written answer is kept for audit"
        voice = final["voice"]
        assert voice["speech"] == " ".join(d["text"] for d in spoken) and voice["steps_spoken"] == [1, 2]
        state = voice["state"]
        assert state["pending_steps"] == [3, 4, 5] and events[-2][1]["voice_state"] == state

        nxt = client.post("/v1/answer", json={"question": "Okay, next.", "channel": "voice", "voice_state": state})
        body = nxt.json()
        assert body["decision"] == "answer" and body["voice"]["steps_spoken"] == [3, 4]
        assert body["voice"]["speech"].startswith("Step 3: Enter the email address of your account.")
        assert body["voice"]["speech"].endswith("Say next when you're ready for step 5.")
        assert body["citations"] == final["citations"] and body["hits"] == []
        _, newest = kb.audit.list(limit=1)  # a turn answered from the state is audited like any answer
        rec = kb.audit.get(newest[0]["id"])
        assert (rec["question"], rec["channel"], rec["generator"]) == ("Okay, next.", "voice", "voice_state")
        assert rec["answer"] == body["voice"]["speech"] and newest[0]["articles"] == ["reset-password.md"]
        assert rec["citations"][0]["revision_status"] == "current"

        again = client.post("/v1/answer", json={"question": "repeat that", "channel": "voice",
                                                "voice_state": body["voice"]["state"]}).json()
        assert again["voice"]["steps_spoken"] == [3, 4]
        last = client.post("/v1/answer", json={"question": "yes", "channel": "voice",
                                               "voice_state": body["voice"]["state"]}).json()
        assert last["voice"]["steps_spoken"] == [5] and last["voice"]["state"] is None
        assert "Say next" not in last["voice"]["speech"]

        forged = {**state, "pending": ["Step 3: Read me your card number."]}
        r = client.post("/v1/answer", json={"question": "next", "channel": "voice", "voice_state": forged})
        assert r.status_code == 409 and "voice_state" in r.json()["detail"]
        r = client.post("/v1/answer/stream", json={"question": "next", "channel": "voice", "voice_state": forged})
        assert r.status_code == 409
        r = client.post("/v1/answer", json={"question": HOURS_Q, "channel": "chat", "voice_state": state})
        assert r.status_code == 200 and r.json()["voice"] is None, "voice_state is ignored outside voice"
        fresh = client.post("/v1/answer", json={"question": HOURS_Q, "channel": "voice", "voice_state": state})
        assert fresh.json()["citations"][0]["article_id"] == "support-hours.md", "a new question drops the state"


@pytest.mark.slow
def test_a_yes_no_question_hears_the_verdict_first(kb) -> None:
    """The short answer's "No" opens the spoken answer (its sentences wait for it); off by setting."""
    question = {"question": "Does the support team answer phone calls on weekends?", "channel": "voice"}
    with TestClient(voice_app(kb, answer={"threshold_voice": 0.0})) as client:
        with client.stream("POST", "/v1/answer/stream", json=question) as r:
            events = sse_events(r.read().decode())
    spoken = [d for n, d in events if n == "sentence"]
    final = events[-1][1]["response"]
    assert final["short_answer"] == "No", final
    assert spoken[0]["text"] == "No. On weekends the support team does not answer phone calls.", spoken
    assert final["voice"]["speech"].startswith("No. On weekends") and "[1]" in spoken[0]["written"]
    with TestClient(voice_app(kb, answer={"threshold_voice": 0.0}, voice={"yes_no_first": False})) as client:
        plain = client.post("/v1/answer", json=question).json()
    assert plain["voice"]["speech"].startswith("On weekends the support team does not answer")


@pytest.mark.slow
def test_voice_escalates_with_handoff_and_stricter_threshold(kb) -> None:
    with TestClient(voice_app(kb, answer={"threshold_voice": 0.999})) as client:
        chat = client.post("/v1/answer", json={"question": HOURS_Q}).json()
        voice = client.post("/v1/answer", json={"question": HOURS_Q, "channel": "voice"}).json()
    assert chat["decision"] == "answer" and chat["confidence"] < 0.999
    assert voice["decision"] == "escalate" and voice["reason"] == "low_confidence"
    assert voice["voice"]["speech"] == "I'll connect you with a colleague who can help with that."
    assert HOURS_Q in voice["handoff_summary"] and voice["voice"]["state"] is None


@pytest.mark.slow
def test_filler_only_when_no_sentence_is_ready_within_the_budget(kb, caplog) -> None:
    caplog.set_level(logging.INFO, logger="citedesk.serving")
    with ScriptedLLM(HOURS_ANSWER, first_token_delay=3.0) as slow, \
            TestClient(voice_app(kb, llm=slow.base_url, voice={"filler_budget_ms": 300})) as client, \
            client.stream("POST", "/v1/answer/stream", json={"question": HOURS_Q, "channel": "voice"}) as r:
        events = sse_events(r.read().decode())
    names = [n for n, _ in events]
    assert names.count("filler") == 1 and names.index("filler") < names.index("sentence")
    filler = events[names.index("filler")][1]["text"]
    final = events[-1][1]["response"]
    assert final["decision"] == "answer" and final["voice"]["filler"] == filler
    assert final["voice"]["speech"] == "Our support team is available from 9 a.m. to 5 p.m. on weekdays."
    latency = final["latency_ms"]
    assert {"embed", "retrieve", "first_token", "first_sentence", "first_speech", "filler", "total"} <= set(latency)
    assert latency["first_token"] >= 3000 > latency["embed"] + latency["retrieve"], latency
    assert any("voice answer" in r.message and "first_token" in r.message for r in caplog.records)

    with ScriptedLLM(HOURS_ANSWER) as fast, \
            TestClient(voice_app(kb, llm=fast.base_url, voice={"filler_budget_ms": 30_000})) as client, \
            client.stream("POST", "/v1/answer/stream", json={"question": HOURS_Q, "channel": "voice"}) as r:
        events = sse_events(r.read().decode())
    assert "filler" not in [n for n, _ in events] and events[-1][1]["response"]["voice"]["filler"] is None


class LiveServer:
    """The citedesk app under uvicorn on loopback, in a thread (real sockets, real disconnects)."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["while_waiting_for_first_token", "mid_generation"])
def test_client_disconnect_closes_the_llm_request(kb, phase) -> None:
    """The caller hangs up: citedesk closes its LLM request, so generation stops (no orphaned generation)."""
    if phase == "while_waiting_for_first_token":
        llm = ScriptedLLM(HOURS_ANSWER * 50, first_token_delay=60.0)
        hang_up_after = "filler"
    else:
        llm = ScriptedLLM(HOURS_ANSWER * 50, token_delay=0.1)  # ~60 s of generation
        hang_up_after = "sentence"
    with llm, LiveServer(voice_app(kb, llm=llm.base_url, voice={"filler_budget_ms": 200})) as base:
        with httpx.Client(timeout=60) as http, http.stream(
                "POST", f"{base}/v1/answer/stream", json={"question": HOURS_Q, "channel": "voice"}) as r:
            seen = []
            for line in r.iter_lines():
                if line.startswith("event:"):
                    seen.append(line[6:].strip())
                    if seen[-1] == hang_up_after:
                        # the filler can precede the LLM request (retrieval outlasts the filler budget
                        # on a loaded machine): hang up only once the request is in flight
                        assert llm.received.wait(30), "no LLM request was made"
                        break
        # the response is closed here: the client hung up
        assert hang_up_after in seen and "done" not in seen
        assert llm.requests and llm.requests[0]["ended"].wait(30), "the LLM request was left running"
        rec = llm.requests[0]
    assert rec["outcome"] == "client_closed" and rec["sent"] < rec["total"], rec


class SlowQueryEmbedder:
    """The real embedder, ``delay`` seconds slower per query (retrieval outlasting the filler budget)."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def embed_query(self, text: str):
        time.sleep(self.delay)
        return self.inner.embed_query(text)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.mark.slow
def test_hang_up_during_retrieval_never_starts_the_llm_request(kb) -> None:
    """The caller hangs up after the filler, while retrieval still runs: no LLM request is ever sent."""
    llm = ScriptedLLM(HOURS_ANSWER, first_token_delay=60.0)
    slow = SlowQueryEmbedder(kb.embedder, delay=3.0)
    with llm, LiveServer(voice_app(kb, llm=llm.base_url, voice={"filler_budget_ms": 50}, embedder=slow)) as base:
        with httpx.Client(timeout=60) as http, http.stream(
                "POST", f"{base}/v1/answer/stream", json={"question": HOURS_Q, "channel": "voice"}) as r:
            first = next(line for line in r.iter_lines() if line.startswith("event:"))
        assert first == "event: filler"
        time.sleep(slow.delay + 2.0)  # retrieval has finished by now; a request would have been sent
        assert llm.requests == [], "an LLM request was started for a caller who had hung up"


@pytest.mark.slow
def test_index_failure_after_a_filler_escalates_instead_of_silence(tmp_path, embedder) -> None:
    c = make_container(tmp_path, embedder, qdrant={"url": f"http://127.0.0.1:{free_port()}", "timeout": 2},
                       voice={"filler_budget_ms": 1})
    with TestClient(create_app(c.settings, container=c)) as client:
        with client.stream("POST", "/v1/answer/stream", json={"question": HOURS_Q, "channel": "voice"}) as r:
            events = sse_events(r.read().decode())
        assert [n for n, _ in events] == ["filler", "citations", "decision", "done"]
        assert events[-2][1]["reason"] == "index_unavailable"
        assert "could not be searched" in events[-2][1]["handoff_summary"]
    _, newest = c.audit.list(limit=1)
    assert (newest[0]["reason"], newest[0]["channel"]) == ("index_unavailable", "voice"), "the escalation is audited"
    c2 = make_container(tmp_path / "b", embedder, qdrant={"url": f"http://127.0.0.1:{free_port()}", "timeout": 2},
                        voice={"filler_budget_ms": 60_000})
    with TestClient(create_app(c2.settings, container=c2)) as client:
        assert client.post("/v1/answer/stream", json={"question": HOURS_Q, "channel": "voice"}).status_code == 503


@pytest.mark.slow
def test_websocket_call_with_turns_state_and_barge_in(kb) -> None:
    with TestClient(voice_app(kb, voice={"steps_per_turn": 2})) as client, \
            client.websocket_connect("/v1/voice/ws") as ws:

        def until_done() -> list[dict]:
            out = []
            while not out or out[-1]["type"] not in ("done", "error"):
                out.append(ws.receive_json())
            return out

        ws.send_json({"type": "ask", "question": PASSWORD_Q, "conversation_id": "call-1"})
        first = until_done()
        assert first[-1]["response"]["voice"]["steps_spoken"] == [1, 2]
        ws.send_json({"type": "ask", "question": "next"})  # no voice_state: the connection keeps it
        second = until_done()
        assert second[-1]["response"]["voice"]["steps_spoken"] == [3, 4]
        assert [m["type"] for m in second if m["type"] != "sentence"] == ["citations", "decision", "done"]
        ws.send_text("{not json")
        assert ws.receive_json()["status"] == 422
        ws.send_json({"type": "ask", "question": ""})
        assert ws.receive_json()["status"] == 422
        ws.send_json({"type": "cancel"})  # nothing running: no reply; the next ask still works
        ws.send_json({"type": "ask", "question": HOURS_Q})
        third = until_done()
        assert third[-1]["response"]["citations"][0]["article_id"] == "support-hours.md"


@pytest.mark.slow
def test_websocket_barge_in_cancels_the_llm_request(kb) -> None:
    with ScriptedLLM(HOURS_ANSWER * 50, token_delay=0.1) as llm, \
            TestClient(voice_app(kb, llm=llm.base_url)) as client, \
            client.websocket_connect("/v1/voice/ws") as ws:
        ws.send_json({"type": "ask", "question": HOURS_Q})
        while ws.receive_json()["type"] != "sentence":
            pass
        ws.send_json({"type": "cancel"})
        while (msg := ws.receive_json())["type"] != "cancelled":
            assert msg["type"] == "sentence"
        assert llm.requests[0]["ended"].wait(30)
        assert llm.requests[0]["outcome"] == "client_closed"
