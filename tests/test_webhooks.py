"""Intercom webhooks without the embedding model: signatures (incl. a fuzz over the HTTP endpoint), notification
and conversation parsing, the double's conversation endpoints checked against the OpenAPI description, the
connector's conversation methods, qualification rules and note formatting."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time

import anyio
import pytest
from citedesk.config.settings import IntercomDraftSettings, IntercomSettings, Settings
from citedesk.connectors.intercom import IntercomConnector
from citedesk.core.errors import ConfigError, ConnectorError
from citedesk.core.types import Citation, Decision
from citedesk.serving.answer.schemas import AnswerResponse, HitOut
from citedesk.serving.api.app import create_app
from citedesk.serving.channels.intercom.conversations import IntercomConversations
from citedesk.serving.channels.intercom.drafting import WebhookWorker
from citedesk.serving.channels.intercom.notes import (
    allowed_link,
    format_customer_reply,
    format_note,
)
from citedesk.serving.channels.intercom.qualify import qualification_failure
from citedesk.serving.channels.intercom.webhooks import (
    Conversation,
    WebhookPayloadError,
    parse_conversation,
    parse_notification,
    sign,
    verify_signature,
)
from citedesk.serving.container import html_to_text
from citedesk.serving.db.engine import Database
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tests.intercom_double import IntercomDouble
from tests.test_intercom_connector import spec, validate  # noqa: F401 - fixtures

TOKEN = "wh-token"
SECRET = "wh-secret"
ADMIN = "991267500"


@pytest.fixture()
def api():
    with IntercomDouble(token=TOKEN, admin_id=ADMIN) as double:
        yield double


def connector(api: IntercomDouble, **kw) -> IntercomConnector:
    kw.setdefault("max_retries", 3)
    kw.setdefault("timeout", 5.0)
    return IntercomConnector(TOKEN, base_url=api.base_url, workspace="ws", **kw)


# ---------------------------------------------------------------------- signatures


def test_signature_is_sha1_hmac_of_the_raw_body() -> None:
    body = b'{"type":"notification_event","topic":"ping"}'
    expected = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    assert sign(body, SECRET) == expected and len(expected) == 45
    assert verify_signature(body, expected, SECRET)
    assert verify_signature(body, f"  {expected} ", SECRET)  # surrounding whitespace from proxies
    for bad in (None, "", "sha1=", expected[5:], expected.upper(), expected.replace("sha1=", "sha256="),
                expected[:-1], expected + "0", sign(body, "other-secret"), sign(body + b" ", SECRET), "sha1=é"):
        assert not verify_signature(body, bad, SECRET), bad
    assert not verify_signature(body, expected, "")  # no secret configured → nothing verifies


@pytest.fixture()
def app_env(api, tmp_path):
    """The full app (no model loaded) with webhooks on; conversations must be on ``email`` to be drafted,
    so messenger conversations are fetched and skipped without ever calling the answer pipeline."""
    settings = Settings(data_dir=tmp_path, intercom={
        "token": TOKEN, "base_url": api.base_url, "workspace": "ws", "client_secret": SECRET, "admin_id": ADMIN,
        "max_retries": 1, "timeout": 5.0, "drafts": {"qualify_channels": ["email"], "retry_backoff": 0.1}})
    app = create_app(settings, warm_up=False)
    with TestClient(app) as client:
        yield client, app.state.intercom_webhooks


def deliver(client: TestClient, body: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    return client.post("/v1/webhooks/intercom", content=body, headers=headers).status_code


def mutations(body: bytes, rng: random.Random) -> list[tuple[bytes, str | None]]:
    """(body, signature) pairs that must all be rejected: changed bodies with the original signature, and
    the original body with changed, missing or foreign signatures."""
    good = sign(body, SECRET)
    out: list[tuple[bytes, str | None]] = []
    for _ in range(120):
        data = bytearray(body)
        kind = rng.randrange(5)
        pos = rng.randrange(len(data))
        if kind == 0:
            data[pos] ^= 1 << rng.randrange(8)  # flip one bit
        elif kind == 1:
            del data[pos]  # drop a byte
        elif kind == 2:
            data.insert(pos, rng.randrange(256))  # insert a byte
        elif kind == 3:
            data = data[:pos]  # truncate
        else:
            data += b" "  # trailing whitespace (re-serialisation)
        out.append((bytes(data), good))
    out.append((json.dumps(json.loads(body), indent=1).encode(), good))  # same JSON, other bytes
    out.append((json.dumps(json.loads(body), sort_keys=True).encode(), good))
    hexchars = "0123456789abcdef"
    for _ in range(60):
        sig = list(good)
        i = rng.randrange(5, len(sig))
        sig[i] = rng.choice(hexchars.replace(sig[i], ""))
        out.append((body, "".join(sig)))
    out += [(body, s) for s in (None, "", "sha1=", good[5:], good.upper(), "sha256=" + good[5:], good[:-2],
                                sign(body, SECRET + "x"), sign(body, ""), "sha1=" + "0" * 40)]
    return out


def test_signature_fuzz_all_rejected_with_401_and_nothing_processed(api, app_env) -> None:
    client, mw = app_env
    cid = api.add_conversation("<p>How do I reset my password?</p>")
    article = api.add_article("Refunds", "<p>five days</p>")
    bodies = [json.dumps(api.notification("conversation.user.created", conversation_id=cid)).encode(),
              json.dumps(api.notification("article.updated", article_id=article)).encode(),
              json.dumps(api.notification("ping")).encode()]
    rng = random.Random(1234)
    cases = [case for body in bodies for case in mutations(body, rng)]
    assert len(cases) > 500

    statuses = [deliver(client, body, sig) for body, sig in cases]

    assert set(statuses) == {401}, [c for c, s in zip(cases, statuses) if s != 401][:3]
    assert mw.unfinished() == 0 and all(mw.delivery(json.loads(b)["id"]) is None for b in bodies)
    assert api.requests == []  # the worker never fetched anything
    # control: the untouched deliveries are accepted, so the 401s above were the signature's doing
    assert [deliver(client, b, sign(b, SECRET)) for b in bodies] == [200, 200, 200]


def test_endpoint_topics_head_and_bad_payloads(api, app_env) -> None:
    client, mw = app_env
    assert client.head("/v1/webhooks/intercom").status_code == 200
    ping = json.dumps(api.notification("ping")).encode()
    r = client.post("/v1/webhooks/intercom", content=ping, headers={"X-Hub-Signature": sign(ping, SECRET)})
    assert r.status_code == 200 and r.json()["status"] == "pong"
    other = json.dumps(dict(api.notification("ping"), topic="contact.user.created")).encode()
    r = client.post("/v1/webhooks/intercom", content=other, headers={"X-Hub-Signature": sign(other, SECRET)})
    assert r.json()["status"] == "ignored"
    for junk in (b"{not json", b"[]", b'{"topic": "ping"}', b'{"id": "n1", "topic": "ping", "data": {}}'):
        r = client.post("/v1/webhooks/intercom", content=junk, headers={"X-Hub-Signature": sign(junk, SECRET)})
        assert r.status_code == 400 and "not an Intercom notification" in r.json()["detail"], junk
    assert mw.unfinished() == 0 and api.requests == []


def test_unqualified_conversation_is_fetched_and_skipped(api, app_env) -> None:
    client, mw = app_env
    cid = api.add_conversation("<p>How do I reset my password?</p>", channel="messenger")
    body = json.dumps(api.notification("conversation.user.created", conversation_id=cid)).encode()
    assert client.post("/v1/webhooks/intercom", content=body,
                       headers={"X-Hub-Signature": sign(body, SECRET)}).json()["status"] == "queued"
    deadline = time.monotonic() + 30
    while mw.unfinished():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    row = mw.delivery(json.loads(body)["id"])
    assert (row["status"], row["outcome"], row["attempts"]) == ("skipped", "other_channel", 1)
    assert [(r.method, r.path) for r in api.requests] == [("GET", f"/conversations/{cid}")]
    assert api.parts(cid, "note") == []


def test_webhooks_answer_503_when_not_configured(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path), warm_up=False)
    with TestClient(app) as client:
        body = b'{"id": "n", "topic": "ping", "data": {"item": {}}}'
        r = client.post("/v1/webhooks/intercom", content=body, headers={"X-Hub-Signature": sign(body, "x")})
        assert r.status_code == 503 and "client_secret" in r.json()["detail"]


# ---------------------------------------------------------------------- parsing


def test_parse_notification_and_errors(api) -> None:
    cid = api.add_conversation("<p>hi</p>")
    n = parse_notification(json.dumps(api.notification("conversation.user.created", conversation_id=cid,
                                                       notification_id="notif_1", delivery_attempts=3)).encode())
    assert (n.id, n.topic, n.item_id, n.delivery_attempts, n.app_id) == (
        "notif_1", "conversation.user.created", cid, 3, api.app_id)
    for bad in (b"\xff", b"null", b"{}", b'{"topic": "x", "id": "", "data": {"item": {}}}',
                b'{"topic": "x", "id": true, "data": {"item": {}}}', b'{"topic": "x", "id": "1", "data": []}'):
        with pytest.raises(WebhookPayloadError):
            parse_notification(bad)


def test_parse_conversation_orders_messages_and_finds_the_latest_customer_message(api) -> None:
    tag = api.add_tag("vip")
    cid = api.add_conversation("<p>first</p>", tags=[tag], team_assignee_id=42, channel="email")
    api.add_customer_reply(cid, "<p>second</p>")
    conversation = parse_conversation(api.conversation_payload(cid))
    assert [m.part_type for m in conversation.messages] == ["source", "comment"]
    assert conversation.latest_customer_message().body == "<p>second</p>"
    assert (conversation.tag_ids, conversation.tag_names) == (frozenset({tag}), frozenset({"vip"}))
    assert (conversation.team_assignee_id, conversation.channel, conversation.state) == ("42", "email", "open")
    with pytest.raises(WebhookPayloadError):
        parse_conversation({"type": "conversation"})


# ---------------------------------------------------------------------- the double vs the spec, the connector


def test_double_conversation_endpoints_match_the_openapi_schemas(api, validate) -> None:  # noqa: F811
    tag = api.add_tag("escalated")
    cid = api.add_conversation("<p>Where is my order?</p>", team_assignee_id=7)
    api.add_customer_reply(cid, "<p>Hello?</p>")
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=api.base_url, headers=auth) as http:
        validate(http.get(f"/conversations/{cid}").json(), "conversation")
        note = {"message_type": "note", "type": "admin", "admin_id": ADMIN, "body": "<p>draft</p>"}
        validate(note, "admin_reply_conversation_request")
        reply = http.post(f"/conversations/{cid}/reply", json=note)
        assert reply.status_code == 200
        validate(reply.json(), "conversation")
        assert [p["part_type"] for p in reply.json()["conversation_parts"]["conversation_parts"]] == ["note"]
        tagged = http.post(f"/conversations/{cid}/tags", json={"id": tag, "admin_id": ADMIN})
        validate(tagged.json(), "tag")
        assign = {"message_type": "assignment", "type": "team", "admin_id": ADMIN, "assignee_id": "5017691"}
        validate(assign, "assign_conversation_request")
        assigned = http.post(f"/conversations/{cid}/parts", json=assign)
        validate(assigned.json(), "conversation")
        assert assigned.json()["team_assignee_id"] == 5017691
        validate(http.get(f"/conversations/{cid}").json(), "conversation")
        for path, body, status in ((f"/conversations/{cid}/reply", {"type": "admin", "message_type": "note"}, 400),
                                   ("/conversations/999999", None, 404),
                                   (f"/conversations/{cid}/tags", {"id": "424242", "admin_id": ADMIN}, 404)):
            r = http.post(path, json=body) if body is not None else http.get(path)
            assert r.status_code == status
            validate(r.json(), "error")


def test_connector_conversation_methods_send_spec_shaped_requests(api, validate) -> None:  # noqa: F811
    tag = api.add_tag("escalated")
    cid = api.add_conversation("<p>Where is my order?</p>")
    with connector(api) as source:
        c = IntercomConversations(source.api)
        conversation = c.fetch_conversation(cid)
        assert isinstance(conversation, Conversation) and conversation.id == cid
        part_id = c.reply(cid, admin_id=ADMIN, body="<p>draft</p>")
        comment_id = c.reply(cid, admin_id=ADMIN, body="<p>hello</p>", message_type="comment")
        c.tag_conversation(cid, tag_id=tag, admin_id=ADMIN)
        c.assign_conversation(cid, admin_id=ADMIN, team_id="5017691")
        with pytest.raises(ConfigError):
            c.reply(cid, admin_id=ADMIN, body="x", message_type="quick_reply")
        with pytest.raises(ConnectorError, match="HTTP 404 on GET /conversations/999999"):
            c.fetch_conversation("999999")
    assert [p["id"] for p in api.parts(cid, "note")] == [part_id]
    assert [p["id"] for p in api.parts(cid, "comment")] == [comment_id]
    posts = [r for r in api.requests if r.method == "POST"]
    validate(posts[0].body, "admin_reply_conversation_request")
    validate(posts[1].body, "admin_reply_conversation_request")
    assert posts[2].body == {"id": tag, "admin_id": ADMIN}
    validate(posts[3].body, "assign_conversation_request")
    assert all(r.headers["intercom-version"] == "2.16" for r in api.requests)
    assert [t["id"] for t in api.conversation_payload(cid)["tags"]["tags"]] == [tag]


def test_reply_rate_limited_waits_until_x_ratelimit_reset(api) -> None:
    cid = api.add_conversation("<p>hi</p>")
    reset_at = int(time.time()) + 2
    api.fail_next(1, status=429, headers={"X-RateLimit-Reset": str(reset_at)}, path=f"/conversations/{cid}/reply")
    with connector(api) as source:
        IntercomConversations(source.api).reply(cid, admin_id=ADMIN, body="<p>draft</p>")
    first, retry = [r for r in api.requests if r.path.endswith("/reply")]
    assert (first.status, retry.status) == (429, 200)
    assert retry.wall_time >= reset_at - 0.05
    assert len(api.parts(cid, "note")) == 1


# ---------------------------------------------------------------------- rules and formatting


def conv(**kw) -> Conversation:
    return Conversation(id="1", **kw)


def test_qualification_rules() -> None:
    base = {}
    assert qualification_failure(conv(), IntercomDraftSettings(**base)) is None
    tagged = IntercomDraftSettings(**base, qualify_tags=frozenset({"vip", "77"}))
    assert qualification_failure(conv(), tagged) == "not_tagged"
    assert qualification_failure(conv(tag_names=frozenset({"vip"})), tagged) is None
    assert qualification_failure(conv(tag_ids=frozenset({"77"})), tagged) is None
    excluded = IntercomDraftSettings(**base, exclude_tags=frozenset({"legal"}))
    assert qualification_failure(conv(tag_names=frozenset({"legal"})), excluded) == "excluded_tag"
    inbox = IntercomDraftSettings(**base, qualify_team_ids=frozenset({"5"}))
    assert qualification_failure(conv(team_assignee_id="6"), inbox) == "other_inbox"
    assert qualification_failure(conv(team_assignee_id="5"), inbox) is None
    channel = IntercomDraftSettings(**base, qualify_channels=frozenset({"email"}))
    assert qualification_failure(conv(channel="messenger"), channel) == "other_channel"
    with pytest.raises(ConfigError, match="admin_id"):
        WebhookWorker(None, lambda: None, None, IntercomSettings(admin_id=""), html_to_text=html_to_text)
    with pytest.raises(ValidationError, match="mode"):
        IntercomDraftSettings(mode="sms")


def test_allowed_link() -> None:
    domains = ("help.acme.com",)
    assert allowed_link("https://help.acme.com/en/articles/1", domains)
    assert allowed_link("http://eu.help.acme.com/x", domains)
    for url in ("https://help.acme.com.evil.com/x", "https://evilhelp.acme.com/x", "javascript:alert(1)",
                "https://user@help.acme.com/x", "ftp://help.acme.com/x", None, "", "https://[::1/x"):
        assert not allowed_link(url, domains), url
    assert not allowed_link("https://help.acme.com/x", ())


def response(decision: Decision, **kw) -> AnswerResponse:
    return AnswerResponse(decision=decision, reason=kw.pop("reason", "grounded"), confidence=0.9,
                          confidence_kind="answerable_probability", generator="extractive", model="extractive", **kw)


def test_note_formatting_escapes_and_filters_links() -> None:
    config = IntercomDraftSettings(help_center_domains=["help.acme.com"]).help_center_domains
    cites = [Citation(marker=1, article_id="1", title="Refunds <b>", url="https://help.acme.com/a/1",
                      content_hash="a" * 64, chunk_index=0, quote="Five days.", quote_start=0, quote_end=10),
             Citation(marker=2, article_id="2", title="Partner", url="https://partner.example.org/a",
                      content_hash="b" * 64, chunk_index=0, quote='<img src="x"> see https://evil.test',
                      quote_start=0, quote_end=9)]
    note = format_note(response(Decision.ANSWER, answer="Five days [1]. <script>x</script> [2]",
                                citations=cites), config, "cd-123")
    assert '<a href="https://help.acme.com/a/1">Refunds &lt;b&gt;</a>' in note
    assert "partner.example.org" not in note and "<img" not in note and "<script>" not in note
    assert "hxxps://evil[.]test" in note and note.endswith("<p>ref cd-123</p>")
    assert "Short answer" not in note
    valued = format_note(response(Decision.ANSWER, answer="Refunds take 5 days. [1]", short_answer="5 days <i>",
                                  citations=cites[:1]), config, "cd-124")
    assert "<p><b>Short answer:</b> 5 days &lt;i&gt;</p><p>Refunds take 5 days. [1]</p>" in valued
    escalation = format_note(response(Decision.ESCALATE, reason="low_confidence", handoff_summary="Customer asked: x",
                                      hits=[HitOut(article_id="1", title="Refunds", url="https://help.acme.com/a/1",
                                                   locale="en", chunk_index=0, content_hash="a", updated_at=0,
                                                   score=0.1, score_kind="rrf")]), config, "cd-9")
    assert "needs a human" in escalation and "low_confidence" in escalation and "Customer asked: x" in escalation
    reply = format_customer_reply(response(Decision.ANSWER, answer="Five days. [1]", citations=cites[:1]), config)
    assert "[1]" not in reply and "Five days." in reply and "ref cd-" not in reply
    steps = ("You can stop an instance. [1] To stop an instance: Open the console; Choose <b>Stop</b>; "
             "Confirm. [1]")
    procedure = format_note(response(Decision.ANSWER, answer=steps, citations=cites[:1]), config, "cd-125")
    assert ("<p>You can stop an instance. [1]</p><p>To stop an instance:</p><ol><li>Open the console</li>"
            "<li>Choose &lt;b&gt;Stop&lt;/b&gt;</li><li>Confirm. [1]</li></ol>") in procedure
    told = format_customer_reply(response(Decision.ANSWER, answer=steps, citations=cites[:1]), config)
    assert "<ol><li>Open the console</li>" in told and "[1]" not in told
    with pytest.raises(ValueError):
        format_customer_reply(response(Decision.ESCALATE, reason="no_evidence"), config)


# ---------------------------------------------------------------------- durability and retries (no model)


def run_middleware(api: IntercomDouble, tmp_path, payloads: list[dict], *, accept_before_start: bool,
                   **config) -> WebhookWorker:
    """Feed ``payloads`` to a middleware (answerer never reached: see the assertions) and wait until idle."""
    db = Database(f"sqlite:///{tmp_path / 'mw.db'}")
    cfg = IntercomSettings(admin_id=ADMIN, drafts=IntercomDraftSettings(retry_backoff=0.05, **config))
    mw = WebhookWorker(db, lambda: connector(api, max_retries=0), answerer=None, intercom=cfg, html_to_text=html_to_text)

    async def go() -> None:
        if accept_before_start:  # received by a process that stopped before working on them
            await anyio.to_thread.run_sync(db.migrate)
            for p in payloads:
                await mw.accept(parse_notification(json.dumps(p).encode()), json.dumps(p).encode())
        await mw.start()
        try:
            if not accept_before_start:
                for p in payloads:
                    await mw.accept(parse_notification(json.dumps(p).encode()), json.dumps(p).encode())
            deadline = time.monotonic() + 30
            while await anyio.to_thread.run_sync(mw.unfinished):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            await mw.stop()

    asyncio.run(go())
    return mw


def test_notifications_recorded_before_a_restart_are_processed_on_start(api, tmp_path) -> None:
    cid = api.add_conversation("<p>hi</p>", channel="messenger")
    payload = api.notification("conversation.user.created", conversation_id=cid)
    mw = run_middleware(api, tmp_path, [payload], accept_before_start=True, qualify_channels=frozenset({"email"}))
    assert mw.delivery(payload["id"])["outcome"] == "other_channel"
    assert [r.path for r in api.requests] == [f"/conversations/{cid}"]


def test_failing_notification_is_retried_then_marked_failed(api, tmp_path) -> None:
    payload = api.notification("conversation.user.created", conversation_id=api.add_conversation("<p>x</p>"))
    payload["data"]["item"]["id"] = "999999"  # a conversation Intercom no longer has: 404 every time
    mw = run_middleware(api, tmp_path, [payload], accept_before_start=False, max_attempts=3)
    row = mw.delivery(payload["id"])
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert "HTTP 404 on GET /conversations/999999" in row["error"]
    assert [r.status for r in api.requests] == [404, 404, 404]
