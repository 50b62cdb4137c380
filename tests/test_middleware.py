"""Intercom chat-draft middleware end to end: real uvicorn app, real embedding model, local Qdrant, extractive
generator, the Intercom double on loopback (articles, conversations, notes, tags, assignment).

One app and index per module; each test starts its own conversations. Article tests edit / delete their own
articles only.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from typing import Self
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from citedesk.config.settings import Settings
from citedesk.serving.channels.intercom.webhooks import sign
from citedesk.serving.api.app import create_app
from citedesk.config.settings import IntercomDraftSettings, IntercomSettings
from citedesk.serving.api.webhooks_app import create_webhooks_app
from citedesk.serving.channels.intercom.drafting import WebhookWorker
from citedesk.serving.container import html_to_text
from tests.conftest import free_port, make_container
from tests.intercom_double import IntercomDouble

pytestmark = pytest.mark.slow

TOKEN = "mw-token"
SECRET = "mw-client-secret"
WS = "acme"
HELP = "https://help.acme.test/acme"
DOMAINS = ["help.acme.test"]
ADMIN = "991267500"
TEAM = "5017691"

ARTICLES = {
    "refunds": ("Refunds", ("<h1>Refunds</h1><p>Refunds are issued to the original payment method. A refund takes "
                           "five to seven business days to reach your card after we approve it.</p><p>Refunds for "
                           "annual plans are prorated by the number of unused months.</p>")),
    "password": ("Reset your password", ("<p>To reset your password, click Forgot password on the sign-in page. "
                                        "We email you a reset link that expires after 24 hours.</p>")),
    "shipping": ("Shipping times", ("<p>Standard shipping takes three to five business days within the United "
                                   "States. Express shipping takes two business days.</p>")),
    "cancel": ("Cancel your subscription", ("<p>To cancel your subscription, open Settings, choose Billing and "
                                           "click Cancel subscription. Your plan stays active until the end of "
                                           "the billing period.</p>")),
    "gift": ("Gift cards", ('<p>Gift cards never expire and can be redeemed at checkout. '
                           '<img src="https://cdn.evil.test/pixel.png"> Gift card balances can be checked on the '
                           'account page. <a href="https://evil.test/phish">Buy more gift cards</a></p>')),
}
PARTNER_URL = "https://partner.example.org/warranty"  # an article whose URL is outside the help center
WARRANTY = ("Warranty", ("<p>Every device carries a two year limited warranty that covers manufacturing "
                        "defects. Accidental damage is not covered by the warranty.</p>"))


# ---------------------------------------------------------------------- harness


class Served:
    """A uvicorn server for ``app`` in a thread on a free loopback port (lifespan on)."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class NoteHTML(HTMLParser):
    """Tags and link targets of a note body."""

    def __init__(self, body: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self.feed(body)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k in {"href", "src"} and v]

    def handle_data(self, data):
        self.text.append(data)


def assert_clean_note(body: str) -> NoteHTML:
    """No image, no link (nor clickable URL text) outside the help-center domains."""
    note = NoteHTML(body)
    assert "img" not in note.tags and "<img" not in body.lower()
    assert set(note.tags) <= {"p", "b", "a"}, note.tags
    for href in note.hrefs:
        assert urlsplit(href).hostname.endswith(DOMAINS[0]), href
    text = "".join(note.text)
    for token in text.split():
        if token.startswith(("http://", "https://")):
            assert urlsplit(token).hostname.endswith(DOMAINS[0]), token
    return note


@pytest.fixture(scope="module")
def env(tmp_path_factory, embedder):
    """The double (seeded), a container synced from it, and the full app served by uvicorn."""
    with IntercomDouble(token=TOKEN, workspace_id=WS, help_center_url=HELP, admin_id=ADMIN) as api:
        ids = {k: api.add_article(t, b) for k, (t, b) in ARTICLES.items()}
        ids["warranty"] = api.add_article(*WARRANTY, url=PARTNER_URL)
        tag = api.add_tag("citedesk-escalated")
        c = make_container(tmp_path_factory.mktemp("mw"), embedder, workspace=WS, intercom={
            "token": TOKEN, "base_url": api.base_url, "workspace": WS, "max_retries": 3, "timeout": 1.0,
            "client_secret": SECRET, "admin_id": ADMIN,
            "drafts": {"help_center_domains": DOMAINS, "retry_backoff": 0.2, "escalation_tag_id": tag,
                           "escalation_team_id": TEAM, "workers": 2}})
        report = c.sync_engine.sync(c.intercom_connector())
        assert report.ok and report.added == len(ids), report
        app = create_app(c.settings, container=c)
        with Served(app) as served:
            yield {"api": api, "c": c, "ids": ids, "tag": tag, "url": served.url + "/v1/webhooks/intercom",
                   "mw": app.state.intercom_webhooks, "base": served.url}
        c.index.close()


def post(env, payload: dict | bytes, *, signature: str | None = None, timeout: float = 10.0) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return httpx.post(env["url"], content=body, timeout=timeout,
                      headers={"Content-Type": "application/json",
                               "X-Hub-Signature": signature or sign(body, SECRET)})


def wait_idle(mw: WebhookWorker, timeout: float = 90.0) -> None:
    """Poll until no notification is pending (a guard against hangs, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while mw.unfinished():
        assert time.monotonic() < deadline, "notifications still unfinished"
        time.sleep(0.05)


def notes(env, conversation_id: str) -> list[dict]:
    return env["api"].parts(conversation_id, "note")


def ask(env, question: str, **kw) -> tuple[str, dict]:
    """A customer writes ``question``; deliver conversation.user.created; return (conversation id, the note)."""
    api = env["api"]
    cid = api.add_conversation(f"<p>{question}</p>", **kw)
    r = post(env, api.notification("conversation.user.created", conversation_id=cid))
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    wait_idle(env["mw"])
    posted = notes(env, cid)
    assert len(posted) == 1, posted
    return cid, posted[0]


# ---------------------------------------------------------------------- conversations


def test_answer_note_with_help_center_citations(env) -> None:
    cid, note = ask(env, "How long does a refund take to reach my card?")

    assert note["author"] == {"type": "admin", "id": ADMIN, "name": "citedesk", "email": "bot@example.com"}
    body = note["body"]
    assert "citedesk draft" in body and "business days" in body
    parsed = assert_clean_note(body)
    refund_url = env["api"].article_payload(env["ids"]["refunds"])["url"]
    assert refund_url in parsed.hrefs
    points = env["c"].index.doc_points(WS, f"{WS}/intercom/{env['ids']['refunds']}/en")
    assert f"revision {points[0]['content_hash'][:12]}" in body
    (draft,) = env["mw"].drafts(cid)
    assert draft["status"] == "posted" and draft["decision"] == "answer" and draft["note_part_id"] == note["id"]
    payload = env["api"].conversation_payload(cid)
    assert payload["tags"]["tags"] == [] and "team_assignee_id" not in payload  # answers are not escalated


def test_history_comes_from_earlier_messages(env) -> None:
    api = env["api"]
    cid = api.add_conversation("<p>Hi, I ordered a <b>blender</b> last week.</p>")
    api.add_customer_reply(cid, "<p>How long does standard shipping take?</p>")
    r = post(env, api.notification("conversation.user.replied", conversation_id=cid))
    assert r.json()["status"] == "queued"
    wait_idle(env["mw"])
    (note,) = notes(env, cid)
    assert "three to five business days" in note["body"]
    (draft,) = env["mw"].drafts(cid)
    assert draft["part_id"] == api.parts(cid, "comment")[-1]["id"]  # keyed by the latest customer message


def test_off_topic_question_escalates_with_reason_handoff_tag_and_team(env) -> None:
    cid, note = ask(env, "What is the capital of France? See http://evil.test/x for context")

    body = note["body"]
    assert "needs a human" in body and "low_confidence" in body and "Handoff:" in body
    assert "capital of France" in body
    assert "evil[.]test" in body and "http://evil.test" not in body  # customer URLs are defanged
    assert_clean_note(body)
    payload = env["api"].conversation_payload(cid)
    assert [t["id"] for t in payload["tags"]["tags"]] == [env["tag"]]
    assert payload["team_assignee_id"] == int(TEAM)
    (draft,) = env["mw"].drafts(cid)
    assert draft["decision"] == "escalate" and draft["reason"] == "low_confidence"


def test_notes_never_link_outside_the_help_center(env) -> None:
    _, gift = ask(env, "Do gift cards expire?")
    assert "never expire" in gift["body"]
    parsed = assert_clean_note(gift["body"])
    assert all("evil" not in h for h in parsed.hrefs)

    _, warranty = ask(env, "Does the warranty cover accidental damage?")
    parsed = assert_clean_note(warranty["body"])
    assert "Warranty" in "".join(parsed.text)
    assert PARTNER_URL not in warranty["body"]  # cited by title only: partner.example.org is not allowed


def test_same_notification_five_times_in_parallel_gives_one_note(env) -> None:
    api = env["api"]
    cid = api.add_conversation("<p>How do I reset my password?</p>")
    body = json.dumps(api.notification("conversation.user.created", conversation_id=cid)).encode()

    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: post(env, body), range(5)))

    assert [r.status_code for r in responses] == [200] * 5
    assert sorted(r.json()["status"] for r in responses) == ["duplicate"] * 4 + ["queued"]
    wait_idle(env["mw"])
    assert len(notes(env, cid)) == 1
    ident = json.loads(body)["id"]
    assert env["mw"].delivery(ident)["deliveries"] == 5
    # Intercom retrying after a timeout, later: same id, delivery_attempts 2 → still one note
    retry = json.loads(body)
    retry["delivery_attempts"] = 2
    assert post(env, retry).json()["status"] == "duplicate"
    wait_idle(env["mw"])
    assert len(notes(env, cid)) == 1


def test_distinct_notifications_for_the_same_message_give_one_note(env) -> None:
    api = env["api"]
    cid = api.add_conversation("<p>How long does express shipping take?</p>")
    first = api.notification("conversation.user.created", conversation_id=cid)
    second = api.notification("conversation.user.created", conversation_id=cid)  # another id, same message
    assert post(env, first).json()["status"] == post(env, second).json()["status"] == "queued"
    wait_idle(env["mw"])
    assert len(notes(env, cid)) == 1
    outcomes = {env["mw"].delivery(n["id"])["outcome"].split(":")[0] for n in (first, second)}
    assert outcomes == {"note", "duplicate"}


def test_out_of_order_deliveries_draft_only_the_latest_message(env) -> None:
    api = env["api"]
    cid = api.add_conversation("<p>Hello</p>")
    created = api.notification("conversation.user.created", conversation_id=cid)
    api.add_customer_reply(cid, "<p>How do I cancel my subscription?</p>")
    replied = api.notification("conversation.user.replied", conversation_id=cid)

    assert post(env, replied).json()["status"] == "queued"  # the newer event arrives first
    wait_idle(env["mw"])
    assert post(env, created).json()["status"] == "queued"  # the older one arrives late
    wait_idle(env["mw"])

    (note,) = notes(env, cid)
    assert "Cancel subscription" in note["body"] or "cancel" in note["body"].lower()
    (draft,) = env["mw"].drafts(cid)
    assert draft["part_id"] == api.parts(cid, "comment")[-1]["id"]
    assert env["mw"].delivery(created["id"])["outcome"].startswith("duplicate")


def test_note_post_timeout_then_retry_does_not_duplicate(env) -> None:
    api = env["api"]
    cid = api.add_conversation("<p>How long do refunds for annual plans take?</p>")
    # Intercom creates the note but answers after the connector's 1 s timeout: the outcome is unknown
    api.delay_next(1, 2.5, method="POST", path=f"/conversations/{cid}/reply")
    n = api.notification("conversation.user.created", conversation_id=cid)

    assert post(env, n).json()["status"] == "queued"
    wait_idle(env["mw"])

    assert len(notes(env, cid)) == 1
    delivery = env["mw"].delivery(n["id"])
    assert delivery["status"] == "done" and delivery["attempts"] == 2
    assert delivery["outcome"].startswith("reconciled")
    assert [r.path for r in api.requests if r.method == "POST" and r.path.endswith(f"{cid}/reply")] == \
        [f"/conversations/{cid}/reply"]  # posted once, found again by its ref on the retry


def test_rate_limited_reply_waits_for_x_ratelimit_reset(env) -> None:
    api = env["api"]
    cid = api.add_conversation("<p>How do I reset my password?</p>")
    reset_at = int(time.time()) + 2
    api.fail_next(1, status=429, headers={"X-RateLimit-Reset": str(reset_at)}, path=f"/conversations/{cid}/reply")

    assert post(env, api.notification("conversation.user.created", conversation_id=cid)).status_code == 200
    wait_idle(env["mw"])

    assert len(notes(env, cid)) == 1
    first, retry = [r for r in api.requests if r.path == f"/conversations/{cid}/reply"]
    assert (first.status, retry.status) == (429, 200)
    assert retry.wall_time >= reset_at - 0.05
    assert retry.body["message_type"] == "note" and retry.body["admin_id"] == ADMIN


# ---------------------------------------------------------------------- articles


def test_article_update_webhook_then_question_cites_the_new_revision(env) -> None:
    api, c, ids = env["api"], env["c"], env["ids"]
    key = f"{WS}/intercom/{ids['shipping']}/en"
    old_hash = c.index.doc_points(WS, key)[0]["content_hash"]
    api.edit_article(ids["shipping"], body="<p>Standard shipping takes three to five business days within the "
                                           "United States. Express shipping now arrives in one business day.</p>")
    n = api.notification("article.updated", article_id=ids["shipping"])
    warm_ups: list[int] = []
    env["mw"].on_article_synced = lambda: warm_ups.append(1)  # the server's unit vector warm-up

    assert post(env, n).json()["status"] == "queued"
    wait_idle(env["mw"])

    assert env["mw"].delivery(n["id"])["outcome"].startswith(f"synced article {ids['shipping']}: added=0 updated=1")
    assert warm_ups == [1]
    new_hash = c.index.doc_points(WS, key)[0]["content_hash"]
    assert new_hash != old_hash
    _, note = ask(env, "How fast is express shipping now?")
    assert "one business day" in note["body"]
    assert f"revision {new_hash[:12]}" in note["body"] and f"revision {old_hash[:12]}" not in note["body"]

    # a stale article.created delivered late changes nothing (the current revision is fetched)
    late = api.notification("article.created", article_id=ids["shipping"])
    assert post(env, late).json()["status"] == "queued"
    wait_idle(env["mw"])
    assert "unchanged=1" in env["mw"].delivery(late["id"])["outcome"]
    assert c.index.doc_points(WS, key)[0]["content_hash"] == new_hash
    assert warm_ups == [1], "an unchanged article needs no warm-up"
    env["mw"].on_article_synced = None


def test_deleted_article_is_never_cited_afterwards(env) -> None:
    api, c, ids = env["api"], env["c"], env["ids"]
    key = f"{WS}/intercom/{ids['cancel']}/en"
    question = "How do I cancel my subscription in Settings?"
    before = asyncio.run(c.pipeline.answer(_request(question)))
    assert ids["cancel"] in {h.article_id for h in before.hits}

    api.delete_article(ids["cancel"])
    n = api.notification("article.deleted", article_id=ids["cancel"])
    assert post(env, n).json()["status"] == "queued"
    wait_idle(env["mw"])

    assert c.index.count(WS, doc_key=key) == 0
    after = asyncio.run(c.pipeline.answer(_request(question)))
    assert ids["cancel"] not in {h.article_id for h in after.hits}
    assert ids["cancel"] not in {x.article_id for x in after.citations}
    _, note = ask(env, question)
    assert "Cancel your subscription" not in note["body"]


def test_unpublished_article_is_removed(env) -> None:
    api, c, ids = env["api"], env["c"], env["ids"]
    api.unpublish_article(ids["gift"])
    n = api.notification("article.unpublished", article_id=ids["gift"])
    assert post(env, n).json()["status"] == "queued"
    wait_idle(env["mw"])
    assert c.index.count(WS, doc_key=f"{WS}/intercom/{ids['gift']}/en") == 0
    assert "deleted=1" in env["mw"].delivery(n["id"])["outcome"]


def _request(question: str):
    from citedesk.serving.answer.schemas import AnswerRequest

    return AnswerRequest(question=question)


# ---------------------------------------------------------------------- modes and split deployment


def test_reply_mode_sends_answers_to_the_customer_but_keeps_escalations_internal(env, tmp_path) -> None:
    from citedesk.serving.db.engine import Database

    api, c = env["api"], env["c"]
    config = IntercomSettings(admin_id=ADMIN, drafts=IntercomDraftSettings(
        mode="reply", help_center_domains=list(DOMAINS), retry_backoff=0.1))
    mw = WebhookWorker(Database(f"sqlite:///{tmp_path / 'reply.db'}"), c.intercom_connector, c.pipeline,
                       config, html_to_text=html_to_text, workspace=WS)
    answered = api.add_conversation("<p>How do I reset my password?</p>")
    escalated = api.add_conversation("<p>Who won the football world cup in 1998?</p>")

    async def run() -> None:
        await mw.start()
        try:
            for cid in (answered, escalated):
                note = api.notification("conversation.user.created", conversation_id=cid)
                await mw.accept(_parse(note), json.dumps(note).encode())
            while await asyncio.to_thread(mw.unfinished):
                await asyncio.sleep(0.05)
        finally:
            await mw.stop()

    asyncio.run(run())

    admin_comments = [p for p in api.parts(answered, "comment") if p["author"]["type"] == "admin"]
    assert len(admin_comments) == 1 and not api.parts(answered, "note")
    reply = admin_comments[0]["body"]
    assert "Forgot password" in reply and "[1]" not in reply and "ref cd-" not in reply
    assert_clean_note(reply)
    assert len(api.parts(escalated, "note")) == 1
    assert not [p for p in api.parts(escalated, "comment") if p["author"]["type"] == "admin"]


def test_standalone_middleware_drafts_through_a_remote_answer_api(env, tmp_path) -> None:
    api = env["api"]
    settings = Settings(data_dir=tmp_path, workspace=WS, intercom={
        "token": TOKEN, "base_url": api.base_url, "workspace": WS, "max_retries": 2, "timeout": 5.0,
        "client_secret": SECRET, "admin_id": ADMIN,
        "drafts": {"help_center_domains": DOMAINS, "answer_api_url": env["base"]}})
    app = create_webhooks_app(settings)
    cid = api.add_conversation("<p>How long does a refund take to reach my card?</p>")
    with Served(app) as served:
        body = json.dumps(api.notification("conversation.user.created", conversation_id=cid)).encode()
        r = httpx.post(served.url + "/v1/webhooks/intercom", content=body,
                       headers={"X-Hub-Signature": sign(body, SECRET)})
        assert r.status_code == 200 and r.json()["status"] == "queued"
        bad = httpx.post(served.url + "/v1/webhooks/intercom", content=body + b" ",
                         headers={"X-Hub-Signature": sign(body, SECRET)})
        assert bad.status_code == 401
        article = api.notification("article.updated", article_id=env["ids"]["refunds"])
        skipped = json.dumps(article).encode()
        assert httpx.post(served.url + "/v1/webhooks/intercom", content=skipped,
                          headers={"X-Hub-Signature": sign(skipped, SECRET)}).json()["status"] == "queued"
        wait_idle(app.state.intercom_webhooks)
        assert httpx.get(served.url + "/healthz").json()["unfinished"] == 0
    (note,) = notes(env, cid)
    assert "business days" in note["body"]
    assert app.state.intercom_webhooks.delivery(article["id"])["status"] == "skipped"


def _parse(payload: dict):
    from citedesk.serving.channels.intercom.webhooks import parse_notification

    return parse_notification(json.dumps(payload).encode())
