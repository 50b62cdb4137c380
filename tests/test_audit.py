"""Audit trail, review marks, reports, retention, redaction and scoped API keys.

Real parts: a local Qdrant holding a few real AWS pages, the real embedding model, the extractive
generator, SQLite through SQLAlchemy + Alembic. Tests without the model (keys, schema, redaction rule)
are fast; the rest are ``slow``.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import html
import io
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from citedesk.config.settings import DEFAULT_REDACT
from citedesk.connectors.folder import FolderConnector
from citedesk.serving.api.app import create_app
from citedesk.serving.audit.log import AuditLog
from citedesk.serving.audit.models import AuditAnswer, AuditCitation
from citedesk.serving.audit.redaction import Redactor
from citedesk.serving.api.auth import ApiKey, KeyStore
from citedesk.serving.db.engine import Database, metadata
from citedesk.serving.answer.pipeline import AnswerPipeline
from citedesk.serving.answer.schemas import AnswerRequest
from tests.conftest import make_container

AWS_DOCS = Path(__file__).resolve().parents[1] / "data" / "aws-docs"
GOLD = "amazon-dynamodb-developer-guide/CapacityUnitCalculations.md"
KENDRA = "amazon-kendra-developer-guide/how-it-works.md"
PAGES = [GOLD, KENDRA, "aws-iotanalytics-developer-guide/limits.md",
         "amazon-sagemaker-developer-guide/inter-network-privacy.md"]
ANSWERABLE = "What is the size of a null attribute in DynamoDB?"
KENDRA_Q = "What is a source repository in Amazon Kendra?"
CAKE = ["How do I bake a chocolate cake without eggs?", "Can I make a chocolate cake with no eggs?"]
FOOTBALL = "Who won the football world cup in 1998?"


def copy_pages(root: Path, pages: list[str]) -> Path:
    for rel in pages:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(AWS_DOCS / rel, root / rel)
    return root


def synced_container(tmp: Path, embedder, pages: list[str], **overrides):
    docs = copy_pages(tmp / "docs", pages)
    c = make_container(tmp / "data", embedder, **overrides)
    report = c.sync_engine.sync(FolderConnector(docs, workspace="default"))
    assert report.ok and report.added == len(pages), report
    return c, docs


# -- fast: schema, redaction rule, keys ------------------------------------------------------------------


def test_migration_creates_exactly_the_declared_audit_and_key_tables(tmp_path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    db.migrate()
    mine = {AuditAnswer.__tablename__, AuditCitation.__tablename__, ApiKey.__tablename__}
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diffs if any(t in repr(d) for t in mine)] == []  # other teams' tables are theirs
    with db.engine.connect() as conn:
        names = set(conn.exec_driver_sql("select name from sqlite_master where type='table'").scalars())
    assert mine <= names


def test_the_first_requests_arriving_together_migrate_once(tmp_path) -> None:
    # a server's first answers open the database from several worker threads at the same moment; Alembic's
    # proxies are process-wide, so unserialised upgrades broke each other (seen with 4 clients and a sync)
    from concurrent.futures import ThreadPoolExecutor

    dbs = [Database(f"sqlite:///{tmp_path / 'shared.db'}")] * 4 + [Database(f"sqlite:///{tmp_path / f'{i}.db'}")
                                                                   for i in range(4)]

    def open_session(db: Database) -> int:
        with db.session() as session:
            return len(session.execute(AuditAnswer.__table__.select()).all())

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(open_session, dbs)) == [0] * 8


def test_redaction_rule_replaces_personal_data_and_keeps_product_numbers() -> None:
    r = Redactor(DEFAULT_REDACT)
    text, n = r("I'm jane.doe+x@example.co.uk, call +1 (555) 123-4567 or 020 7946 0958; card 4111 1111 1111 1111")
    assert text == "I'm [email], call [phone] or [phone]; card [card]" and n == 4
    keep = "Items up to 400 KB, 25 WCUs, version 2.0, in 2019 for 3 bytes at 5 pm; id 12345"
    assert r(keep) == (keep, 0)
    assert Redactor({})("mail a@b.com") == ("mail a@b.com", 0)
    with pytest.raises(ValueError, match=r"audit.redact\['bad'\]"):
        Redactor({"bad": "("})


def test_keys_are_hashed_at_rest_and_verified(tmp_path) -> None:
    db_path = tmp_path / "k.db"
    store = KeyStore(Database(f"sqlite:///{db_path}"))
    info, token = store.create("support managers", ["audit-read", "audit-write"], workspace="acme")
    prefix, key_id, secret = token.split("_", 2)
    assert prefix == "cdk" and key_id == info.key_id and len(secret) >= 40
    p = store.verify(token)
    assert p is not None and p.workspace == "acme" and p.scopes == {"audit-read", "audit-write"}
    with sqlite3.connect(db_path) as conn:
        salt, digest = conn.execute("select salt, hash from api_keys where id=?", (key_id,)).fetchone()
    assert digest == hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("k.db"))
    assert secret.encode() not in raw and token.encode() not in raw
    # a second key with the same secret would hash differently: salts are per key
    store.create("other", ["answer"])
    with sqlite3.connect(db_path) as conn:
        assert len({s for (s,) in conn.execute("select salt from api_keys")}) == 2
    assert store.verify(f"cdk_{key_id}_{secret[:-1]}x") is None
    assert store.verify("not-a-key") is None
    assert store.revoke(key_id) and not store.revoke(key_id)
    assert store.verify(token) is None
    with pytest.raises(ValueError, match="unknown scope"):
        store.create("x", ["root"])


@pytest.fixture()
def auth_app(tmp_path):
    """App with auth enabled (no model needed: every request here stops at the key check or the DB)."""
    c = make_container(tmp_path, auth={"enabled": True})
    store = c.authenticator.store
    keys = {name: store.create(name, scopes)[1] for name, scopes in {
        "reader": ["audit-read"], "writer": ["audit-read", "audit-write"], "bot": ["answer"]}.items()}
    with TestClient(create_app(c.settings, container=c, warm_up=False)) as client:
        yield client, keys, store


def test_missing_unknown_and_revoked_keys_get_401_with_a_message(auth_app) -> None:
    client, keys, store = auth_app
    r = client.post("/v1/answer", json={"question": "hi"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "missing API key" in r.json()["detail"] and "'answer'" in r.json()["detail"]
    r = client.get("/v1/audit/answers", headers={"Authorization": "Bearer cdk_000000000000_" + "x" * 43})
    assert r.status_code == 401 and "invalid API key" in r.json()["detail"]
    assert client.get("/v1/audit/answers", headers={"X-API-Key": "garbage"}).status_code == 401
    assert client.get("/v1/audit/answers", headers={"X-API-Key": keys["reader"]}).status_code == 200
    store.revoke(keys["reader"].split("_")[1])
    r = client.get("/v1/audit/answers", headers={"X-API-Key": keys["reader"]})
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_wrong_scope_gets_403_naming_the_missing_scope(auth_app) -> None:
    client, keys, _ = auth_app
    reader = {"Authorization": f"Bearer {keys['reader']}"}
    r = client.post("/v1/answer", json={"question": "hi"}, headers=reader)
    assert r.status_code == 403 and "lacks scope 'answer'" in r.json()["detail"] and "audit-read" in r.json()["detail"]
    r = client.post("/v1/answer/stream", json={"question": "hi"}, headers=reader)
    assert r.status_code == 403
    r = client.put(f"/v1/audit/answers/{'0' * 32}/feedback", json={"helpful": True}, headers=reader)
    assert r.status_code == 403 and "lacks scope 'audit-write'" in r.json()["detail"]
    bot = {"Authorization": f"Bearer {keys['bot']}"}
    for path in ("/v1/audit/answers", "/v1/audit/answers.csv", "/v1/audit/reports/escalation-rate", "/audit",
                 "/audit/reports"):
        r = client.get(path, headers=bot)
        assert r.status_code == 403 and "lacks scope 'audit-read'" in html.unescape(r.text), path
    writer = {"Authorization": f"Bearer {keys['writer']}"}
    r = client.put(f"/v1/audit/answers/{'0' * 32}/feedback", json={"helpful": True}, headers=writer)
    assert r.status_code == 404 and "no recorded answer" in r.json()["detail"]


SIGNED_BY_SENDER = ("/v1/webhooks/",)
"""Routes that authenticate their caller by its own signature (Intercom's HMAC), not by our API keys."""


OPENAI_SHAPED = ("/v1/chat/completions", "/v1/models")


def test_with_auth_on_every_v1_and_audit_route_refuses_a_missing_key(auth_app) -> None:
    from starlette.websockets import WebSocketDisconnect

    client, keys, _ = auth_app
    spec = client.get("/openapi.json").json()
    checked = []
    for path, ops in spec["paths"].items():
        if not path.startswith(("/v1/", "/audit")) or path.startswith(SIGNED_BY_SENDER):
            continue
        url = path.replace("{answer_id}", "0" * 32).replace("{marker}", "1")
        for method in ops:
            r = client.request(method.upper(), url)
            body = r.json()  # the OpenAI-compatible routes answer in OpenAI's error shape
            message = body["error"]["message"] if path.startswith(OPENAI_SHAPED) else body["detail"]
            assert r.status_code == 401 and "missing API key" in message, (method, path, r.text)
            checked.append(path)
    for url in ("/audit", "/audit/reports", f"/audit/answers/{'0' * 32}"):  # the page (not in the schema)
        assert client.get(url).status_code == 401, url
    assert len(checked) >= 11
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/v1/voice/ws") as ws:
            ws.receive_json()
    assert refused.value.code == 1008 and "missing API key" in refused.value.reason
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/v1/voice/ws", headers={"X-API-Key": keys["reader"]}) as ws:
            ws.receive_json()
    assert refused.value.code == 1008 and "lacks scope 'answer'" in refused.value.reason


def test_audit_page_asks_for_a_key_and_signs_in_with_a_cookie(auth_app) -> None:
    client, keys, _ = auth_app
    r = client.get("/audit?escalated=true")
    assert r.status_code == 401 and 'name="key"' in r.text and 'value="/audit?escalated=true"' in r.text
    r = client.post("/audit/login", content=f"key={keys['bot']}&next=/audit",
                    headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert r.status_code == 403 and "lacks scope" in r.text
    r = client.post("/audit/login", content="key=cdk_nope&next=/audit",
                    headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert r.status_code == 401 and "invalid API key" in r.text
    r = client.post("/audit/login", content=f"key={keys['reader']}&next=https://evil.example/",
                    headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/audit").status_code == 200  # the cookie now authenticates the page
    client.post("/audit/logout", follow_redirects=False)
    assert client.get("/audit").status_code == 401


def test_auth_off_by_default_lets_everything_through(tmp_path) -> None:
    c = make_container(tmp_path)
    assert c.settings.auth.enabled is False
    with TestClient(create_app(c.settings, container=c, warm_up=False)) as client:
        assert client.get("/v1/audit/answers").json()["total"] == 0
        assert client.get("/audit").status_code == 200


def test_keys_cli_create_list_revoke(tmp_path) -> None:
    from citedesk.serving.cli import app

    runner = CliRunner()
    env = {n: None for n in os.environ if n.startswith("CITEDESK_")}
    env.update(CITEDESK_CONFIG=None, CITEDESK_DATA_DIR=str(tmp_path), COLUMNS="200", NO_COLOR="1")
    r = runner.invoke(app, ["keys", "create", "--name", "managers", "-s", "audit-read,audit-write",
                            "--workspace", "acme", "--json"], env=env)
    assert r.exit_code == 0, r.output
    created = __import__("json").loads(r.stdout)
    assert created["key"].startswith(f"cdk_{created['id']}_") and created["scopes"] == ["audit-read", "audit-write"]
    r = runner.invoke(app, ["keys", "list", "--json"], env=env)
    listed = __import__("json").loads(r.stdout)
    assert [k["id"] for k in listed] == [created["id"]] and listed[0]["workspace"] == "acme"
    assert created["key"] not in r.stdout
    r = runner.invoke(app, ["keys", "create", "--name", "x", "-s", "root"], env=env)
    assert r.exit_code == 2 and "unknown scope" in r.output
    assert runner.invoke(app, ["keys", "revoke", created["id"]], env=env).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", created["id"]], env=env).exit_code == 1
    store = KeyStore(Database(f"sqlite:///{tmp_path / 'citedesk.db'}"))
    assert store.verify(created["key"]) is None


# -- slow: recording through the real pipeline -----------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory, embedder):
    """A container over four real pages, its app, and a few recorded answers."""
    # the chat threshold the audit's answers need: the Kendra question (about 0.6 with the default reader) answers
    c, _ = synced_container(tmp_path_factory.mktemp("audit"), embedder, PAGES, answer={"threshold_chat": 0.5})
    app = create_app(c.settings, container=c)
    with TestClient(app) as client:
        yield c, client
    c.index.close()


def ask(client, question: str, **kw) -> dict:
    r = client.post("/v1/answer", json={"question": question, **kw})
    assert r.status_code == 200, r.text
    return r.json()


def one(client, **params) -> dict:
    page = client.get("/v1/audit/answers", params=params).json()
    assert page["total"] == 1, page
    return client.get(f"/v1/audit/answers/{page['items'][0]['id']}").json()


@pytest.mark.slow
def test_an_answer_is_recorded_with_hits_evidence_citations_and_revisions(env) -> None:
    c, client = env
    body = ask(client, ANSWERABLE, conversation_id="conv-answer-1")
    assert body["decision"] == "answer"
    rec = one(client, conversation_id="conv-answer-1")
    assert rec["question"] == ANSWERABLE and rec["channel"] == "chat" and rec["decision"] == "answer"
    assert rec["answer"] == body["answer"] and rec["reason"] == "grounded"
    assert rec["confidence"] == body["confidence"] and rec["confidence_kind"] == "answerable_probability"
    assert rec["generator"] == rec["model"] == "extractive"
    assert set(rec["latency_ms"]) >= {"embed", "retrieve", "first_sentence", "total"}
    assert [h["article_id"] for h in rec["hits"]] == [h["article_id"] for h in body["hits"]]
    assert {h["score_kind"] for h in rec["hits"]} == {"rrf"} and all(h["cosine"] is not None for h in rec["hits"])
    ev = rec["evidence"]
    assert 1 <= len(ev) <= c.settings.answer.evidence_chunks and [e["marker"] for e in ev] == list(range(1, len(ev) + 1))
    assert all(e["point_id"] and e["text"] and e["score_kind"] == "rrf" for e in ev)
    assert len(rec["citations"]) == len(body["citations"]) >= 1
    for cit, sent in zip(rec["citations"], body["citations"], strict=True):
        assert (cit["article_id"], cit["content_hash"], cit["updated_at"], cit["quote"]) == \
               (sent["article_id"], sent["content_hash"], sent["updated_at"], sent["quote"])
        assert cit["passage"][cit["quote_start"]:cit["quote_end"]] == cit["quote"]
        assert cit["point_id"] == ev[cit["marker"] - 1]["point_id"] and cit["source"] == "folder"
        assert cit["revision_status"] == "current"
        current = c.index.doc_points("default", f"default/folder/{cit['article_id']}/en")
        assert current[0]["content_hash"] == cit["content_hash"]


@pytest.mark.slow
def test_stream_voice_and_escalations_are_recorded_once_each(env) -> None:
    _, client = env
    with client.stream("POST", "/v1/answer/stream", json={"question": ANSWERABLE, "conversation_id": "conv-s"}) as r:
        assert r.status_code == 200 and "event: done" in r.read().decode()
    assert one(client, conversation_id="conv-s")["decision"] == "answer"
    ask(client, ANSWERABLE, channel="voice", conversation_id="conv-v")
    assert one(client, conversation_id="conv-v")["channel"] == "voice"
    ask(client, FOOTBALL, conversation_id="conv-e")
    rec = one(client, conversation_id="conv-e")
    assert rec["decision"] == "escalate" and rec["reason"] == "low_confidence" and rec["citations"] == []
    assert rec["answer"] == "" and FOOTBALL in rec["handoff_summary"] and rec["hits"] and rec["evidence"] == []
    ask(client, ANSWERABLE, locale="fr", conversation_id="conv-n")
    rec = one(client, conversation_id="conv-n")
    assert rec["reason"] == "no_evidence" and rec["hits"] == [] and rec["locale"] == "fr"


@pytest.mark.slow
def test_personal_data_in_questions_is_redacted_before_storing(env) -> None:
    c, client = env
    q = "I am jane.doe@example.com, phone +1 (555) 123-4567: what is the size of a null attribute in DynamoDB?"
    ask(client, q, conversation_id="conv-pii")
    rec = one(client, conversation_id="conv-pii")
    assert rec["question"] == "I am [email], phone [phone]: what is the size of a null attribute in DynamoDB?"
    assert rec["redactions"] >= 2
    with sqlite3.connect(c.settings.data_dir / "citedesk.db") as conn:
        stored = " ".join(str(v) for row in conn.execute("select * from audit_answers") for v in row)
    assert "jane.doe@example.com" not in stored and "123-4567" not in stored
    ask(client, "Email me at bob@example.org about the 1998 world cup final", conversation_id="conv-pii-2")
    esc = one(client, conversation_id="conv-pii-2")
    assert esc["decision"] == "escalate" and "bob@example.org" not in esc["handoff_summary"]
    assert "[email]" in esc["handoff_summary"]


@pytest.mark.slow
def test_filters_marks_and_feedback(env) -> None:
    _, client = env
    ask(client, KENDRA_Q, conversation_id="conv-f")
    ask(client, FOOTBALL, conversation_id="conv-f")
    total = client.get("/v1/audit/answers").json()["total"]
    esc = client.get("/v1/audit/answers", params={"escalated": "true", "limit": 500}).json()
    ans = client.get("/v1/audit/answers", params={"escalated": "false", "limit": 500}).json()
    assert esc["total"] + ans["total"] == total and esc["total"] >= 1 and ans["total"] >= 1
    assert {i["decision"] for i in esc["items"]} == {"escalate"} and {i["decision"] for i in ans["items"]} == {"answer"}
    low = client.get("/v1/audit/answers", params={"low_confidence": "true", "limit": 500}).json()["items"]
    assert low and all(i["confidence"] < 0.7 for i in low)
    assert {i["id"] for i in low} < {i["id"] for i in client.get("/v1/audit/answers", params={"limit": 500}).json()["items"]}
    by_article = client.get("/v1/audit/answers", params={"article": "kendra", "limit": 500}).json()["items"]
    assert by_article and all(any("kendra" in a for a in i["articles"]) for i in by_article)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert client.get("/v1/audit/answers", params={"since": today, "until": today}).json()["total"] == total
    assert client.get("/v1/audit/answers", params={"since": "2099-01-01"}).json()["total"] == 0
    assert client.get("/v1/audit/answers", params={"until": "2000-01-01"}).json()["total"] == 0

    rec = one(client, conversation_id="conv-f", escalated="false")
    r = client.put(f"/v1/audit/answers/{rec['id']}/citations/1/mark", json={"mark": "incorrect"})
    assert r.status_code == 200 and r.json()["mark"] == "incorrect" and r.json()["mark_by"] == "anonymous"
    assert client.put(f"/v1/audit/answers/{rec['id']}/feedback", json={"helpful": False}).json()["feedback"] == "unhelpful"
    again = client.get(f"/v1/audit/answers/{rec['id']}").json()
    assert again["citations"][0]["mark"] == "incorrect" and again["feedback"] == "unhelpful"
    for state, expect_in in [("citation_incorrect", True), ("unhelpful", True), ("reviewed", True),
                             ("unreviewed", False), ("helpful", False), ("citation_correct", False)]:
        ids = {i["id"] for i in client.get("/v1/audit/answers", params={"feedback": state, "limit": 500}).json()["items"]}
        assert (rec["id"] in ids) is expect_in, state
    cleared = client.put(f"/v1/audit/answers/{rec['id']}/citations/1/mark", json={"mark": None}).json()
    assert cleared["mark"] is None
    assert client.put(f"/v1/audit/answers/{rec['id']}/citations/9/mark", json={"mark": "correct"}).status_code == 404
    assert client.put(f"/v1/audit/answers/{rec['id']}/citations/1/mark", json={"mark": "maybe"}).status_code == 422
    assert client.get("/v1/audit/answers/nothex").status_code == 422
    r = client.get("/v1/audit/answers", params={"feedback": "happy"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "feedback"]
    assert "citation_incorrect" in r.json()["detail"][0]["msg"]
    r = client.get("/v1/audit/answers", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "since"]
    assert client.get("/v1/audit/answers", params={"since": today, "until": "2024-02-01"}).json()["total"] == 0
    assert client.get("/v1/audit/answers", params={"until": "9999-12-31"}).json()["total"] == total
    r = client.get("/audit", params={"since": "yesterday"})  # the page's lenient parser says what is wrong
    assert r.status_code == 422 and "since must be a date" in r.json()["detail"]
    assert client.get("/audit", params={"since": "", "article": "", "escalated": ""}).status_code == 200


@pytest.mark.slow
def test_reports_json_and_page(env) -> None:
    _, client = env
    for q in CAKE + [FOOTBALL, FOOTBALL]:
        ask(client, q, conversation_id="conv-gap")
    items = client.get("/v1/audit/answers", params={"limit": 500}).json()["items"]
    rate = client.get("/v1/audit/reports/escalation-rate").json()
    escalated = sum(i["decision"] == "escalate" for i in items)
    assert rate["total"] == len(items) and rate["escalated"] == escalated
    assert rate["rate"] == pytest.approx(escalated / len(items), abs=1e-4)
    assert sum(rate["by_reason"].values()) == escalated and rate["by_reason"]["low_confidence"] >= 3
    assert sum(ch["total"] for ch in rate["by_channel"].values()) == len(items)
    chat_only = client.get("/v1/audit/reports/escalation-rate", params={"channel": "chat"}).json()
    assert chat_only["total"] == rate["by_channel"]["chat"]["total"]

    arts = client.get("/v1/audit/reports/answers-by-article").json()
    gold = next(a for a in arts if a["article_id"] == GOLD)
    assert gold["answers"] == sum(GOLD in i["articles"] for i in items)
    assert arts == sorted(arts, key=lambda a: -a["answers"])
    # a filter on citations inside the report's own join of citations
    kendra = {a["article_id"]: a for a in
              client.get("/v1/audit/reports/answers-by-article", params={"article": "kendra"}).json()}
    assert kendra[KENDRA]["answers"] == client.get("/v1/audit/answers", params={"article": "kendra"}).json()["total"] >= 1
    for name in ("answers-by-article", "changed-articles", "escalation-rate"):
        r = client.get(f"/v1/audit/reports/{name}", params={"feedback": "citation_incorrect", "article": "x"})
        assert r.status_code == 200, (name, r.text)

    gaps = client.get("/v1/audit/reports/content-gaps").json()
    cake = [g for g in gaps if {q["question"] for q in g["questions"]} & set(CAKE)]
    assert len(cake) == 1 and {q["question"] for q in cake[0]["questions"]} == set(CAKE)
    football = next(g for g in gaps if FOOTBALL in {q["question"] for q in g["questions"]})
    assert all(q["question"] not in CAKE for q in football["questions"]) and football["size"] >= 2
    assert all(set(g["reasons"]) <= {"low_confidence", "no_evidence", "generator_declined", "uncited_answer",
                                     "unsupported_claim", "unsupported_citation"} for g in gaps)
    assert client.get("/v1/audit/reports/changed-articles").json() == []  # nothing edited in this index

    page = client.get("/audit/reports")
    assert page.status_code == 200 and "Escalation rate" in page.text and CAKE[0].replace("'", "&#39;") in page.text
    assert f"{100 * rate['rate']:.1f} %" in page.text


@pytest.mark.slow
def test_csv_export_follows_filters_and_defuses_formulas(env) -> None:
    _, client = env
    ask(client, "=HYPERLINK(\"http://evil.example\",\"size of a null attribute in DynamoDB\")", conversation_id="conv-csv")
    r = client.get("/v1/audit/answers.csv", params={"conversation_id": "conv-csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1 and rows[0]["question"].startswith("'=HYPERLINK")
    full = list(csv.DictReader(io.StringIO(client.get("/v1/audit/answers.csv").text)))
    assert len(full) == client.get("/v1/audit/answers").json()["total"]
    answered = [row for row in full if row["decision"] == "answer"]
    assert answered and all(row["citations"].startswith("[1]") and "@" in row["citations"] for row in answered)


@pytest.mark.slow
def test_detail_page_shows_the_passage_with_the_quote_highlighted(env) -> None:
    _, client = env
    ask(client, ANSWERABLE, conversation_id="conv-page")
    rec = one(client, conversation_id="conv-page")
    doc = client.get(f"/audit/answers/{rec['id']}").text
    cit = rec["citations"][0]
    from markupsafe import escape

    assert f"<mark>{escape(cit['quote'])}</mark>" in doc
    assert "no longer current" not in doc and 'badge b-good">current' in doc
    listing = client.get("/audit", params={"escalated": "false", "q": "null attribute"}).text
    assert f"/audit/answers/{rec['id']}" in listing
    assert client.get(f"/audit/answers/{'f' * 32}").status_code == 404


@pytest.mark.slow
def test_the_short_answer_is_recorded_and_shown_above_the_answer(env) -> None:
    _, client = env
    body = ask(client, "What is the minimum SQL data set refresh interval in AWS IoT?", conversation_id="conv-short")
    assert body["decision"] == "answer" and body["short_answer"] == "1 minute", body
    rec = one(client, conversation_id="conv-short")
    assert rec["short_answer"] == "1 minute"
    assert 'id="short-answer">Short answer: <b>1 minute</b>' in client.get(f"/audit/answers/{rec['id']}").text
    ask(client, ANSWERABLE, conversation_id="conv-no-short")  # a formula: no single value answers
    assert one(client, conversation_id="conv-no-short")["short_answer"] is None
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/audit/answers.csv",
                                                      params={"conversation_id": "conv-short"}).text)))
    assert [r["short_answer"] for r in rows] == ["1 minute"]


@pytest.mark.slow
def test_a_reader_disagreement_is_recorded_and_shown_on_the_detail_page(env) -> None:
    import numpy as np

    from citedesk.serving.answer.reader import ReaderAgreementCheck

    class PrefersTheSecond:  # a reader that picks the ranking's second unit (the check's logic; no model)
        def warm_up(self) -> None:
            pass

        SCORE_KIND = "mean_question_logprob"

        def score_units(self, question, passages):
            return np.array([-3.0, -1.0] + [-5.0] * (len(passages) - 2))

    c, client = env
    before, policy = c.pipeline.reader, c.pipeline.policy
    c.pipeline.reader = ReaderAgreementCheck(c.pipeline.generator, PrefersTheSecond())
    c.pipeline.policy = dataclasses.replace(policy, reader_escalates=True)  # the language model's veto
    try:
        body = ask(client, ANSWERABLE, conversation_id="conv-reader")
    finally:
        c.pipeline.reader, c.pipeline.policy = before, policy
    assert body["decision"] == "escalate" and body["reason"] == "reader_disagreement"
    rec = one(client, conversation_id="conv-reader")
    reader = rec["signals"]["reader"]
    assert reader["agrees"] is False and reader["scores"][:2] == [-3.0, -1.0]
    assert reader["ranking_unit"] and reader["reader_unit"] and reader["ranking_unit"] != reader["reader_unit"]
    doc = client.get(f"/audit/answers/{rec['id']}").text
    from markupsafe import escape

    assert "Reader check: <b>disagrees</b>" in doc and str(escape(reader["reader_unit"])) in doc


@pytest.mark.slow
def test_recording_failure_never_fails_an_answer(env, caplog) -> None:
    c, client = env
    pipeline = c.pipeline
    broken = AuditLog(Database("sqlite:////dev/null/not-a-dir/audit.db"))
    saved, pipeline.recorder = pipeline.recorder, broken.record
    try:
        with caplog.at_level(logging.ERROR, logger="citedesk.serving.answer.pipeline"):
            body = ask(client, ANSWERABLE, conversation_id="conv-broken")
    finally:
        pipeline.recorder = saved
    assert body["decision"] == "answer" and body["citations"]
    assert "recording the answer failed" in caplog.text
    assert client.get("/v1/audit/answers", params={"conversation_id": "conv-broken"}).json()["total"] == 0


@pytest.mark.slow
def test_retention_purges_old_answers_with_their_citations(env, tmp_path) -> None:
    c, _ = env
    now = [time.time() - 40 * 86400]
    log_ = AuditLog(Database(f"sqlite:///{tmp_path / 'r.db'}"), retention_days=30, clock=lambda: now[0])
    pipeline = AnswerPipeline(c.retriever, c.generator, c.sparse, c.pipeline.policy, recorder=log_.record)
    asyncio.run(pipeline.answer(AnswerRequest(question=ANSWERABLE, conversation_id="old")))
    assert log_.list()[0] == 1  # the first record's purge ran at its own time: nothing was old yet
    now[0] = time.time()
    asyncio.run(pipeline.answer(AnswerRequest(question=ANSWERABLE, conversation_id="new")))
    total, items = log_.list()
    assert total == 1 and items[0]["conversation_id"] == "new"  # recording purged the 40-day-old answer
    with sqlite3.connect(tmp_path / "r.db") as conn:
        assert conn.execute("select count(distinct answer_id) from audit_citations").fetchone()[0] == 1
    assert log_.purge(older_than_days=0) == 0  # 0 keeps everything
    now[0] += 31 * 86400
    assert log_.purge() == 1 and log_.list()[0] == 0


@pytest.mark.slow
def test_article_edited_or_deleted_after_an_answer_shows_as_stale(tmp_path, embedder) -> None:
    c, docs = synced_container(tmp_path, embedder, [GOLD, KENDRA], answer={"threshold_chat": 0.5})  # as in `env`
    with TestClient(create_app(c.settings, container=c)) as client:
        first = ask(client, ANSWERABLE, conversation_id="stale-1")
        second = ask(client, KENDRA_Q, conversation_id="stale-2")
        assert GOLD in {x["article_id"] for x in first["citations"]}
        assert KENDRA in {x["article_id"] for x in second["citations"]}
        rec1, rec2 = one(client, conversation_id="stale-1"), one(client, conversation_id="stale-2")
        assert {x["revision_status"] for x in rec1["citations"] + rec2["citations"]} == {"current"}

        # the support team edits the DynamoDB article and unpublishes the Kendra one
        page = docs / GOLD
        page.write_text(page.read_text().replace("1 byte", "2 bytes"))
        os.utime(page, (time.time() + 60, time.time() + 60))
        (docs / KENDRA).unlink()
        report = c.sync_engine.sync(FolderConnector(docs, workspace="default"))
        assert report.updated == 1 and report.deleted == 1, report

        rec1 = client.get(f"/v1/audit/answers/{rec1['id']}").json()
        gold_cits = [x for x in rec1["citations"] if x["article_id"] == GOLD]
        current = c.index.doc_points("default", f"default/folder/{GOLD}/en")
        new_hash, new_text = current[0]["content_hash"], "\n".join(p["text"] for p in current)
        assert gold_cits
        for x in gold_cits:
            assert x["revision_status"] == "changed" and x["current_revision"] == new_hash != x["content_hash"]
            assert x["quote_in_current"] is (x["quote"] in new_text)
            assert x["passage_in_current"] is (x["passage"] in new_text)
        assert any("1 byte" in x["passage"] and not x["passage_in_current"] for x in gold_cits)
        rec2 = client.get(f"/v1/audit/answers/{rec2['id']}").json()
        assert {x["revision_status"] for x in rec2["citations"] if x["article_id"] == KENDRA} == {"deleted"}

        doc = client.get(f"/audit/answers/{rec1['id']}").text
        assert "This article changed after the answer" in doc and "no longer current" in doc
        assert 'id="stale-banner"' in doc and new_hash[:12] in doc
        assert "This article was deleted" in client.get(f"/audit/answers/{rec2['id']}").text

        changed = {a["article_id"]: a for a in client.get("/v1/audit/reports/changed-articles").json()}
        assert changed[GOLD]["status"] == "changed" and changed[GOLD]["current_revision"] == new_hash
        assert changed[KENDRA]["status"] == "deleted" and changed[KENDRA]["answers"] == 1
        c.audit.manifest_above = 0  # the many-articles path (one manifest scroll per source) agrees
        assert c.audit.changed_articles() == client.get("/v1/audit/reports/changed-articles").json() == \
               sorted(changed.values(), key=lambda a: (-a["answers"], a["article_id"]))
        assert "Articles changed after they were cited" in client.get("/audit/reports").text

        # an answer given after the edit cites the new revision: current again
        ask(client, ANSWERABLE, conversation_id="stale-3")
        rec3 = one(client, conversation_id="stale-3")
        assert {x["revision_status"] for x in rec3["citations"] if x["article_id"] == GOLD} <= {"current"}
    c.index.close()


@pytest.mark.slow
def test_same_code_path_on_postgresql(env) -> None:
    """Recording, marks, filters and reports on a real PostgreSQL (set CITEDESK_TEST_PG_URL, e.g.
    ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``; a scratch database is created and dropped)."""
    admin_url = os.environ.get("CITEDESK_TEST_PG_URL")
    if not admin_url:
        pytest.skip("set CITEDESK_TEST_PG_URL to run against PostgreSQL")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"citedesk_test_{os.getpid()}_{int(time.time())}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
    try:
        c, _ = env
        log_ = AuditLog(db, redactor=Redactor(DEFAULT_REDACT), retention_days=30, index=c.index,
                        embedder=c.embedder)
        pipeline = AnswerPipeline(c.retriever, c.generator, c.sparse, c.pipeline.policy, recorder=log_.record)
        for q in [ANSWERABLE, KENDRA_Q, "mail me at a@b.com: " + CAKE[0], CAKE[1]]:
            asyncio.run(pipeline.answer(AnswerRequest(question=q, conversation_id="pg")))
        total, items = log_.list()
        assert total == 4 and any(i["question"].startswith("mail me at [email]") for i in items)
        answered = [i for i in items if i["decision"] == "answer"]
        rec = log_.get(answered[0]["id"])
        assert {x["revision_status"] for x in rec["citations"]} == {"current"}
        log_.mark_citation(rec["id"], 1, "incorrect", by="pg")
        from citedesk.serving.audit.filters import AuditFilter as F

        assert log_.list(F(feedback="citation_incorrect"))[0] == 1
        assert log_.list(F(article="kendra", decision="answer"))[0] >= 1
        by_art = log_.answers_by_article(F(article="dynamodb"))
        assert sum(a["citations_incorrect"] for a in by_art) == (1 if GOLD in rec["articles"] else 0)
        assert log_.escalation_rate()["total"] == 4 and log_.changed_articles() == []
        assert any(len(g["questions"]) == 2 for g in log_.content_gaps())  # the two cake questions
        assert log_.export_csv().count("\n") == 5
        assert log_.purge(now=time.time() + 31 * 86400) == 4
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
