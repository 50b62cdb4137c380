"""Sync while serving: ``POST /v1/sync`` runs the sync inside the server (local-mode Qdrant, real embedding model,
uvicorn on loopback) while clients keep asking; ``citedesk sync`` / ``ask`` find the server and hand it their work.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from citedesk.serving.answer.schemas import AnswerResponse
from citedesk.serving.api.app import create_app
from citedesk.serving.api.auth import KeyStore
from citedesk.serving.cli import app as cli_app
from citedesk.serving.discovery import SERVER_FILE, find_server
from citedesk.serving.remote_sync import RemoteSyncError, remote_sync
from tests.conftest import free_port, make_container
from tests.test_middleware import Served

pytestmark = pytest.mark.slow

CLIENTS = 4
REVISION_NOTE = "\n\nRevision two: this page was reviewed by the documentation team.\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory, embedder, aws_subset):
    """A server on a local-mode index of the AWS subset (synced before the server starts); yields
    (url, container, docs folder, questions). ``write_batch=2`` spreads each article's write over many requests,
    so a reader without the per-article lock would see old and new chunks of one article side by side."""
    root, questions = aws_subset
    docs = tmp_path_factory.mktemp("served-docs")
    shutil.copytree(root, docs, dirs_exist_ok=True)
    data = tmp_path_factory.mktemp("served-data")
    c = make_container(data, embedder, qdrant={"write_batch": 2}, sync={"folder_roots": [str(docs)]},
                       rate_limit={"enabled": False},
                       answer={"reader_model": None})  # answers as fast as they come: more of them overlap the sync
    first = c.sync_engine.sync(c.folder_connector(docs))
    assert first.ok and first.added > 10
    srv = Served(None)
    c.settings.server.port = srv.port  # what the server announces in <data_dir>/server.json
    srv.server.config.app = create_app(c.settings, container=c)
    with srv:
        yield srv.url, c, docs, questions
    c.index.close()


def test_sync_through_the_endpoint_while_four_clients_ask(served) -> None:
    url, c, docs, questions = served
    for f in sorted(docs.rglob("*.md")):
        f.write_text(f.read_text(encoding="utf-8") + REVISION_NOTE, encoding="utf-8")
    done = threading.Event()
    answers: list[tuple[float, float, httpx.Response]] = []
    errors: list[BaseException] = []

    def ask(worker: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            i = worker
            while not done.is_set():
                q = questions[i % len(questions)]["question"]
                t = time.monotonic()
                try:
                    r = client.post("/v1/answer", json={"question": q, "top_k": 20})
                except httpx.HTTPError as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return
                answers.append((t, time.monotonic(), r))
                i += CLIENTS

    threads = [threading.Thread(target=ask, args=(w,)) for w in range(CLIENTS)]
    for t in threads:
        t.start()
    events: list[dict] = []
    conflict: list[httpx.Response] = []

    def on_event(e: dict) -> None:
        events.append({**e, "at": time.monotonic()})
        if e["event"] == "started":  # a second sync while this one runs is refused
            conflict.append(httpx.post(f"{url}/v1/sync", json={"path": str(docs)}, timeout=30))

    try:
        report = remote_sync(url, path=str(docs), on_event=on_event)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors
    assert report["ok"] and report["updated"] == report["seen"] > 10 and report["added"] == 0, report
    assert [e["event"] for e in events][0] == "started" and events[-1]["event"] == "done"
    total = next(e["n"] for e in events if e["event"] == "total")
    assert sum(e["n"] for e in events if e["event"] == "advance") == total == report["seen"]
    assert conflict[0].status_code == 409 and "already running" in conflict[0].json()["detail"]

    started, finished = events[0]["at"], events[-1]["at"]
    during = [r for t0, t1, r in answers if t0 > started and t1 < finished]
    assert during, "no answer was served while the sync ran"
    revisions: dict[str, set[str]] = defaultdict(set)
    for _, _, r in answers:
        assert r.status_code == 200, r.text  # no lock error, no 503
        resp = AnswerResponse.model_validate(r.json())
        assert resp.decision.value in ("answer", "escalate")
        if resp.decision.value == "answer":
            assert resp.citations and resp.answer
        per_article: dict[str, set[str]] = defaultdict(set)
        for h in resp.hits:
            per_article[h.article_id].add(h.content_hash)
            revisions[h.article_id].add(h.content_hash)
        for cit in resp.citations:
            per_article[cit.article_id].add(cit.content_hash)
        mixed = {a: v for a, v in per_article.items() if len(v) > 1}
        assert not mixed, f"an answer saw two revisions of one article: {mixed}"
    assert any(len(v) == 2 for v in revisions.values()), "answers saw only one revision: did they overlap the sync?"
    status = httpx.get(f"{url}/v1/sync", timeout=10).json()
    assert status["running"] is False and status["report"]["updated"] == report["updated"]


def test_cli_sync_and_ask_hand_their_work_to_the_running_server(served) -> None:
    url, c, docs, _ = served
    assert (c.settings.data_dir / SERVER_FILE).is_file() and find_server(c.settings.data_dir) == url
    env = {n: None for n in os.environ if n.startswith("CITEDESK_")}
    env.update(CITEDESK_CONFIG=None, CITEDESK_DATA_DIR=str(c.settings.data_dir), COLUMNS="200", NO_COLOR="1")
    runner = CliRunner()
    r = runner.invoke(cli_app, ["sync", "--path", str(docs)], env=env)
    assert r.exit_code == 0, r.output
    assert f"handing the sync to the citedesk server at {url}" in r.output
    assert "unchanged" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli_app, ["ask", "What is the size of a null attribute in DynamoDB?", "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert AnswerResponse.model_validate_json(r.stdout).decision.value in ("answer", "escalate")
    # a folder outside sync.folder_roots is refused with a message, and the CLI says so
    r = runner.invoke(cli_app, ["sync", "--path", str(Path(docs).parent)], env=env)
    assert r.exit_code == 1 and "outside sync.folder_roots" in r.output


def test_sync_route_needs_the_sync_scope(tmp_path, embedder) -> None:
    c = make_container(tmp_path, embedder, auth={"enabled": True})
    keys = KeyStore(c.db)
    _, answer_key = keys.create("bot", ["answer"])
    _, sync_key = keys.create("content team", ["sync"])
    with TestClient(create_app(c.settings, container=c, warm_up=False)) as client:
        assert client.post("/v1/sync", json={}).status_code == 401
        r = client.post("/v1/sync", json={}, headers={"Authorization": f"Bearer {answer_key}"})
        assert r.status_code == 403 and "lacks scope 'sync'" in r.json()["detail"]
        r = client.post("/v1/sync", json={}, headers={"Authorization": f"Bearer {sync_key}"})
        assert r.status_code == 409 and "no folder" in r.json()["detail"]
        assert client.get("/v1/sync", headers={"Authorization": f"Bearer {sync_key}"}).status_code == 404
    c.index.close()


def test_remote_sync_reports_a_server_that_is_gone() -> None:
    with pytest.raises(RemoteSyncError, match="unreachable"):
        remote_sync(f"http://127.0.0.1:{free_port()}", path="/nowhere")


@pytest.mark.timeout(300)
def test_sync_interval_runs_a_scheduled_sync_at_startup(tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text("# Refunds\n\nRefunds take five business days to reach your card.\n")
    c = make_container(tmp_path / "data", embedding={"model": "hash:64"}, folder={"path": str(docs)},
                       sync={"interval": 3600})
    with TestClient(create_app(c.settings, container=c, warm_up=False)) as client:
        deadline = time.monotonic() + 240
        while True:
            r = client.get("/v1/sync")
            if r.status_code == 200 and not r.json()["running"]:
                break
            assert time.monotonic() < deadline, r.text
            time.sleep(0.2)
        assert r.json()["report"]["added"] == 1 and r.json()["error"] is None
        assert c.index.count("default") >= 1
    c.index.close()
