"""Draft adoption (chat-draft mode) on real parts without the embedding model: the full app (hashing embedder,
local Qdrant, extractive generator, SQLite), the Intercom double on loopback, signed webhook deliveries; the
report routes, the CSV export and the /audit reports page read what the worker recorded."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import time

import pytest
from fastapi.testclient import TestClient

from citedesk.config.settings import Settings
from citedesk.core.text import strip_markers
from citedesk.core.types import Channel
from citedesk.serving.api.app import create_app
from citedesk.serving.audit.models import DraftAdoption
from citedesk.serving.channels.intercom.adoption import compare, help_center_links, words
from citedesk.serving.channels.intercom.webhooks import sign
from citedesk.serving.container import Container
from citedesk.serving.db.engine import Database
from tests.intercom_double import IntercomDouble

TOKEN = "ad-token"
SECRET = "ad-secret"
ADMIN = "991267500"  # the bot admin authoring citedesk's notes
WS = "acme"
HELP = "https://help.acme.test/acme"
DOMAINS = ["help.acme.test"]
TEAM_BILLING, TEAM_SHIPPING = "5017691", "5017692"

ARTICLES = {
    "refunds": ("Refunds", "<p>A refund takes five to seven business days to reach your card after we approve it.</p>"),
    "shipping": ("Shipping times", "<p>Standard shipping takes three to five business days within the United "
                                   "States. Express shipping takes two business days.</p>"),
}


# ---------------------------------------------------------------------- the comparison (pure)


def test_compare_outcomes_and_scores_with_kinds() -> None:
    draft = "A refund takes five to seven business days to reach your card after we approve it. [1]"
    same = compare(draft, "A refund takes five to seven business days to reach your card after we approve it.")
    assert (same.outcome, same.similarity, same.retained) == ("sent_as_is", 1.0, 1.0)
    greeted = compare(draft, "Hi Joe! A refund takes five to seven business days to reach your card after we "
                             "approve it. Let me know if there is anything else I can help with today.")
    assert greeted.outcome == "edited" and greeted.retained == 1.0 and greeted.similarity < 0.9
    reworded = compare(draft, "Refunds take about a week (5-7 business days) to show on your card once approved.")
    assert reworded.outcome == "not_used" and reworded.retained < 0.5
    unrelated = compare(draft, "I have escalated this to our billing team, they will email you.")
    assert unrelated.outcome == "not_used" and unrelated.similarity < 0.3
    assert compare("", "anything").outcome == "not_used" and compare(draft, "").similarity == 0.0
    # markers, case, punctuation and URLs do not count as edits
    assert words("See [1][2] https://x.test/a, THE Refund!") == ["see", "the", "refund"]
    assert compare(draft, draft.upper().replace(".", "!") + " https://help.acme.test/a/1").outcome == "sent_as_is"


def test_help_center_links_from_html_and_plain_text() -> None:
    body = ('<p>See <a href="https://help.acme.test/acme/en/articles/1-refunds">Refunds</a> and '
            '<a href="https://evil.test/x">this</a>; also https://help.acme.test/acme/en/articles/2-shipping.</p>')
    assert help_center_links(body, DOMAINS) == ["https://help.acme.test/acme/en/articles/1-refunds",
                                                "https://help.acme.test/acme/en/articles/2-shipping"]
    assert help_center_links("no links here", DOMAINS) == [] and help_center_links(body, []) == []


# ---------------------------------------------------------------------- end to end through the webhook app


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with IntercomDouble(token=TOKEN, workspace_id=WS, help_center_url=HELP, admin_id=ADMIN) as api:
        ids = {k: api.add_article(t, b) for k, (t, b) in ARTICLES.items()}
        esc_tag = api.add_tag("citedesk-escalated")
        settings = Settings(
            data_dir=tmp_path_factory.mktemp("adoption"), workspace=WS, embedding={"model": "hash:256"},
            answer={"threshold_chat": 0.0},
            intercom={"token": TOKEN, "base_url": api.base_url, "workspace": WS, "client_secret": SECRET,
                      "admin_id": ADMIN, "max_retries": 1, "timeout": 5.0,
                      "drafts": {"help_center_domains": DOMAINS, "retry_backoff": 0.1, "escalation_tag_id": esc_tag}})
        c = Container(settings)
        report = c.sync_engine.sync(c.intercom_connector())
        assert report.ok and report.added == len(ids), report
        app = create_app(settings, container=c, warm_up=False)
        with TestClient(app) as client:
            yield {"api": api, "c": c, "ids": ids, "client": client, "mw": app.state.intercom_webhooks,
                   "tag": esc_tag}
        c.index.close()


def deliver(env, topic: str, cid: str) -> dict:
    body = json.dumps(env["api"].notification(topic, conversation_id=cid)).encode()
    r = env["client"].post("/v1/webhooks/intercom", content=body,
                           headers={"Content-Type": "application/json", "X-Hub-Signature": sign(body, SECRET)})
    assert r.status_code == 200 and r.json()["status"] == "queued", r.text
    deadline = time.monotonic() + 60
    while env["mw"].unfinished():
        assert time.monotonic() < deadline, "notifications still unfinished"
        time.sleep(0.02)
    return env["mw"].delivery(json.loads(body)["id"])


def drafted(env, question: str, **kw) -> tuple[str, dict]:
    """A customer asks; the worker posts a note; returns (conversation id, the draft row)."""
    cid = env["api"].add_conversation(f"<p>{question}</p>", **kw)
    assert deliver(env, "conversation.user.created", cid)["status"] == "done"
    (draft,) = env["mw"].drafts(cid)
    assert draft["status"] == "posted"
    return cid, draft


def answer_text(env, cid: str) -> str:
    """The drafted answer as the note shows it (the second paragraph), without markers."""
    note = env["api"].parts(cid, "note")[0]["body"]
    return strip_markers(re.findall(r"<p>(.*?)</p>", note)[1])


def report(env, **params) -> dict:
    r = env["client"].get("/v1/audit/reports/draft-adoption", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_agent_replies_are_recorded_as_sent_as_is_edited_or_not_used(env) -> None:
    api, ids = env["api"], env["ids"]
    billing = api.add_tag("billing")
    before = report(env)

    cid1, d1 = drafted(env, "How long does a refund take to reach my card?", tags=[billing],
                       team_assignee_id=TEAM_BILLING)
    assert d1["decision"] == "answer"
    api.add_admin_reply(cid1, f"<p>{answer_text(env, cid1)}</p>")
    row = deliver(env, "conversation.admin.replied", cid1)
    assert row["status"] == "done" and "sent_as_is" in row["outcome"], row

    cid2, d2 = drafted(env, "How many business days does standard shipping take?", team_assignee_id=TEAM_SHIPPING)
    assert d2["decision"] == "answer", (d2["reason"], env["api"].parts(cid2, "note"))
    api.add_admin_reply(cid2, f"<p>Hi Joe, thanks for waiting!</p><p>{answer_text(env, cid2)}</p>"
                              "<p>Anything else I can do for you today?</p>")
    assert "edited" in deliver(env, "conversation.admin.replied", cid2)["outcome"]

    cid3, _ = drafted(env, "How many business days does standard shipping take?", team_assignee_id=TEAM_SHIPPING)
    api.add_admin_reply(cid3, "<p>Internal: check the carrier first</p>", part_type="note")  # not a reply
    api.add_admin_reply(cid3, "<p>I have asked the warehouse; they will email you the tracking number.</p>")
    assert "not_used" in deliver(env, "conversation.admin.replied", cid3)["outcome"]

    # a redelivery, and a second reply in the same conversation, change nothing: one outcome per draft
    api.add_admin_reply(cid1, "<p>Anything else?</p>")
    again = deliver(env, "conversation.admin.replied", cid1)
    assert again["status"] == "done" and again["outcome"] == "adoption: no new reply to a draft"

    got = report(env)
    assert got["drafts"] - before["drafts"] == 3
    assert [got[k] - before[k] for k in ("sent_as_is", "edited", "not_used")] == [1, 1, 1]
    assert got["similarity_kind"] == "word_indel_similarity"
    by_article = {a["article_id"]: a for a in got["by_article"]}
    assert by_article[ids["refunds"]]["sent_as_is"] >= 1 and by_article[ids["refunds"]]["title"] == "Refunds"
    assert by_article[ids["shipping"]]["edited"] >= 1 and by_article[ids["shipping"]]["not_used"] >= 1
    by_team = {t["team_id"]: t for t in got["by_team"]}
    assert by_team[TEAM_BILLING]["sent_as_is"] >= 1 and by_team[TEAM_SHIPPING]["drafts"] >= 2
    by_topic = {t["topic"]: t for t in got["by_topic"]}
    assert by_topic["billing"]["sent_as_is"] == 1 and by_topic["(untagged)"]["drafts"] >= 2
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert got["by_day"][-1]["date"] == today and got["by_day"][-1]["drafts"] >= 3

    # the audit record of the draft is linked, and filters apply
    with env["c"].db.session() as s:
        stored = s.get(DraftAdoption, d1["key"])
        assert stored.answer_id and stored.admin_id == "814860" and stored.admin_name == "Ciara Agent"
        assert stored.similarity == 1.0 and stored.retained_kind == "draft_words_retained"
    assert env["client"].get(f"/v1/audit/answers/{stored.answer_id}").json()["conversation_id"] == cid1
    assert report(env, conversation_id=cid2)["edited"] == 1 and report(env, conversation_id=cid2)["drafts"] == 1
    assert report(env, channel="voice")["drafts"] == 0
    assert report(env, until="2000-01-01")["drafts"] == 0

    # CSV: one row per draft, with its outcome and scores
    r = env["client"].get("/v1/audit/reports/draft-adoption.csv", params={"conversation_id": cid3})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    (line,) = list(csv.DictReader(io.StringIO(r.text)))
    assert line["outcome"] == "not_used" and line["similarity_kind"] == "word_indel_similarity"
    assert float(line["similarity"]) < 0.5 and line["team_id"] == TEAM_SHIPPING and ids["shipping"] in line["articles"]


def test_an_escalation_answered_with_an_article_link_means_the_answer_existed(env) -> None:
    api, c = env["api"], env["c"]
    policy = c.pipeline.policy
    c.pipeline.policy = dataclasses.replace(policy, thresholds={Channel.CHAT: 1.0, Channel.VOICE: 1.0})
    try:
        cid_a, da = drafted(env, "Can I get my money back for the annual plan?")
        cid_b, db_ = drafted(env, "Do you ship to Mars?")
    finally:
        c.pipeline.policy = policy
    assert da["decision"] == db_["decision"] == "escalate"
    link = api.article_payload(env["ids"]["refunds"])["url"]
    api.add_admin_reply(cid_a, f'<p>Yes, see <a href="{link}">Refunds</a>.</p>')
    api.add_admin_reply(cid_b, '<p>Sorry, not yet. <a href="https://evil.test/mars">more</a></p>')
    assert "escalation_answered" in deliver(env, "conversation.admin.replied", cid_a)["outcome"]
    assert "escalation_answered" in deliver(env, "conversation.admin.replied", cid_b)["outcome"]

    esc = report(env)["escalations"]
    items = {e["conversation_id"]: e for e in esc["items"]}
    assert items[cid_a]["gap"] == "answer_existed" and items[cid_a]["links"] == [link]
    assert items[cid_a]["question"] == "Can I get my money back for the annual plan?"
    assert items[cid_b]["gap"] == "help_center_lacks" and items[cid_b]["links"] == []
    assert esc["answer_existed"] >= 1 and esc["help_center_lacks"] >= 1
    # escalations are not drafts: the adoption counts leave them out
    assert report(env, conversation_id=cid_a)["drafts"] == 0

    # the content-gap report (needs the embedder: the hashing one here) marks both questions
    gaps = env["client"].get("/v1/audit/reports/content-gaps").json()
    marked = {q["question"]: q["human_reply"] for g in gaps for q in g["questions"]}
    assert marked["Can I get my money back for the annual plan?"] == {"gap": "answer_existed", "links": [link]}
    assert marked["Do you ship to Mars?"]["gap"] == "help_center_lacks"
    assert sum(g["answer_existed"] for g in gaps) >= 1 and sum(g["help_center_lacks"] for g in gaps) >= 1

    page = env["client"].get("/audit/reports")
    assert page.status_code == 200
    html = page.text
    assert 'id="adoption"' in html and "Draft adoption" in html and "/v1/audit/reports/draft-adoption.csv" in html
    assert "answer existed" in html and "help center lacks it" in html and link in html


def test_replies_by_the_bot_or_without_a_draft_are_skipped(env) -> None:
    api = env["api"]
    cid = api.add_conversation("<p>Hello there</p>")  # no draft was ever posted here
    api.add_admin_reply(cid, "<p>Hi!</p>")
    row = deliver(env, "conversation.admin.replied", cid)
    assert (row["status"], row["outcome"]) == ("skipped", "no_draft")
    cid2, _ = drafted(env, "How long does a refund take?")
    api.add_admin_reply(cid2, "<p>bot text</p>", admin_id=ADMIN, name="citedesk")  # our own admin: not a teammate
    row = deliver(env, "conversation.admin.replied", cid2)
    assert row["outcome"] == "adoption: no new reply to a draft"
    assert report(env, conversation_id=cid2)["drafts"] == 0


def test_migration_0006_matches_the_declared_tables(tmp_path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from citedesk.serving.db.engine import metadata as all_tables

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), all_tables)
    mine = ("draft_adoptions", "conversation_drafts")
    assert [d for d in diffs if any(t in repr(d) for t in mine)] == []
