"""Metrics and request logs on real parts: /metrics scraped after real requests and parsed with prometheus_client's
own parser, sync runs through the real sync engine, webhook retries through the real worker and the Intercom double,
JSON access-log lines carrying the request id that the audit record stores."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import time

import anyio
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from citedesk.config.settings import IntercomDraftSettings, IntercomSettings, Settings
from citedesk.connectors.folder import FolderConnector
from citedesk.serving.api.app import create_app
from citedesk.serving.channels.intercom.drafting import WebhookWorker
from citedesk.serving.channels.intercom.webhooks import parse_notification
from citedesk.serving.container import Container, html_to_text
from citedesk.serving.db.engine import Database
from citedesk.serving.observability.logs import JsonFormatter, access_log
from citedesk.serving.observability.metrics import BoundedLabel, Metrics
from tests.intercom_double import IntercomDouble

ANSWERABLE = "What is the size of a null attribute in DynamoDB?"


def scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of one /metrics scrape, parsed by prometheus_client."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def label_values(samples: dict, name: str, label: str) -> set[str]:
    return {dict(ls)[label] for (n, ls), _ in samples.items() if n == name and label in dict(ls)}


@pytest.fixture()
def access_lines():
    """JSON lines written by the access logger during the test."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(JsonFormatter())
    level = access_log.level
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in buf.getvalue().splitlines()]
    access_log.removeHandler(handler)
    access_log.setLevel(level)


# -- fast: no model ---------------------------------------------------------------------------------


def test_bounded_label_keeps_the_first_values_then_other() -> None:
    label = BoundedLabel(2, keep=("default",))
    assert [label(w) for w in ("a", "b", "c", "a", "default", "d")] == ["a", "b", "_other", "a", "default", "_other"]


def test_routes_are_templates_and_unknown_paths_one_label(tmp_path, access_lines) -> None:
    app = create_app(Settings(data_dir=tmp_path, embedding={"model": "hash:32"}), warm_up=False)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        for i in range(5):
            assert client.get(f"/no/such/path/{i}").status_code == 404
        r = client.get("/v1/audit/answers/" + "0" * 32, headers={"X-Request-ID": "probe-42"})
        assert r.status_code == 404 and r.headers["x-request-id"] == "probe-42"
        bad = client.get("/healthz", headers={"X-Request-ID": "not ok;" * 20})
        assert len(bad.headers["x-request-id"]) == 32  # an unusable id is replaced, not echoed
        samples = scrape(client)
    routes = label_values(samples, "citedesk_http_requests_total", "route")
    assert routes == {"/healthz", "unmatched", "/v1/audit/answers/{answer_id}"}
    assert value(samples, "citedesk_http_requests_total", route="unmatched", status="404") == 5
    assert value(samples, "citedesk_http_request_duration_seconds_count", route="/healthz", method="GET") == 2
    assert math.isnan(value(samples, "citedesk_webhook_queue_depth"))  # no webhook worker in this app
    lines = access_lines()
    probe = [ln for ln in lines if ln.get("request_id") == "probe-42"]
    assert len(probe) == 1 and probe[0]["route"] == "/v1/audit/answers/{answer_id}" and probe[0]["status"] == 404
    assert probe[0]["message"] == "request" and probe[0]["duration_ms"] >= 0
    assert all(ln["level"] == "info" and "request_id" in ln for ln in lines)


def test_metrics_can_be_turned_off(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path, embedding={"model": "hash:32"}, metrics={"enabled": False}),
                     warm_up=False)
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/healthz").status_code == 200


def test_sync_runs_and_article_changes_are_counted(tmp_path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("a", "b", "c"):
        (docs / f"{name}.md").write_text(f"# Title {name}\n\nBody of article {name} about topic {name}.\n")
    c = Container(Settings(data_dir=tmp_path / "data", embedding={"model": "hash:32"}))
    connector = FolderConnector(docs, workspace="default")
    c.sync_engine.sync(connector)
    (docs / "b.md").write_text("# Title b\n\nA new revision of b.\n")
    (docs / "c.md").unlink()
    c.sync_engine.sync(connector)
    c.index.close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(c.metrics.render()[0].decode()) for s in f.samples}
    assert value(samples, "citedesk_sync_runs_total", scope="full", outcome="ok", source="folder") == 2
    counted = {ch: value(samples, "citedesk_sync_articles_total", change=ch)
               for ch in ("added", "updated", "deleted", "unchanged", "failed")}
    assert counted == {"added": 3, "updated": 1, "deleted": 1, "unchanged": 1, "failed": 0}


def test_webhook_retries_deliveries_and_queue_depth(tmp_path) -> None:
    """A notification for a conversation Intercom no longer has fails 3 times: 2 retries, 1 failed delivery; the
    queue depth gauge reads the durable store (1 while it is pending, 0 after)."""
    metrics = Metrics()
    db = Database(f"sqlite:///{tmp_path / 'mw.db'}")
    depth_seen: list[float] = []
    with IntercomDouble(token="t", admin_id="1") as api:
        payload = api.notification("conversation.user.created", conversation_id=api.add_conversation("<p>x</p>"))
        payload["data"]["item"]["id"] = "999999"
        cfg = IntercomSettings(admin_id="1", drafts=IntercomDraftSettings(retry_backoff=0.05, max_attempts=3))
        from citedesk.connectors.intercom import IntercomConnector

        worker = WebhookWorker(db, lambda: IntercomConnector("t", base_url=api.base_url, workspace="ws",
                                                             max_retries=0, timeout=5.0),
                               answerer=None, intercom=cfg, html_to_text=html_to_text, metrics=metrics)

        async def go() -> None:
            await anyio.to_thread.run_sync(db.migrate)
            raw = json.dumps(payload).encode()
            await worker.accept(parse_notification(raw), raw)  # recorded before start: still in the store
            depth_seen.append(_gauge(metrics))
            await worker.start()
            try:
                deadline = time.monotonic() + 30
                while await anyio.to_thread.run_sync(worker.unfinished):
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
            finally:
                await worker.stop()

        asyncio.run(go())
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics.render()[0].decode()) for s in f.samples}
    assert depth_seen == [1.0]
    assert value(samples, "citedesk_webhook_queue_depth") == 0
    assert value(samples, "citedesk_webhook_delivery_retries_total") == 2
    assert value(samples, "citedesk_webhook_deliveries_total", status="failed") == 1
    assert value(samples, "citedesk_webhook_deliveries_total", status="pending") == 2


def _gauge(metrics: Metrics) -> float:
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics.render()[0].decode())
               for s in f.samples}
    return samples["citedesk_webhook_queue_depth"]


def test_json_formatter_one_line_with_extras_and_traceback() -> None:
    fmt = JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    record.route = "/v1/answer"
    line = fmt.format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == "failed here" and out["level"] == "error" and out["route"] == "/v1/answer"
    assert "ValueError: boom" in out["exc"] and "request_id" not in out


# -- slow: the real answer pipeline -----------------------------------------------------------------


@pytest.mark.slow
def test_answers_metrics_and_request_id_in_the_audit_record(aws_container, access_lines) -> None:
    app = create_app(aws_container.settings, container=aws_container)
    with TestClient(app) as client:
        before = scrape(client)
        r = client.post("/v1/answer", json={"question": ANSWERABLE}, headers={"X-Request-ID": "req-obs-1"})
        assert r.status_code == 200 and r.json()["decision"] == "answer"
        assert r.headers["x-request-id"] == "req-obs-1"
        off = client.post("/v1/answer", json={"question": "How do I bake a chocolate cake without eggs?"})
        assert off.json()["reason"] == "low_confidence"
        stream = client.post("/v1/answer/stream", json={"question": ANSWERABLE, "channel": "voice"})
        assert stream.status_code == 200
        after = scrape(client)
        page = client.get("/v1/audit/answers", params={"request_id": "req-obs-1"}).json()
        other = client.get("/v1/audit/answers", params={"request_id": off.headers["x-request-id"]}).json()

    def delta(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("citedesk_answers_total", channel="chat", decision="answer", reason="grounded",
                 workspace="default") == 1
    assert delta("citedesk_answers_total", channel="chat", decision="escalate", reason="low_confidence") == 1
    assert delta("citedesk_answers_total", channel="voice") == 1
    assert delta("citedesk_answer_confidence_count") == 3
    assert delta("citedesk_answer_confidence_bucket", le="0.5", channel="chat") >= 1  # the cake question
    assert delta("citedesk_retrieval_duration_seconds_count", stage="retrieve") == 3
    assert delta("citedesk_retrieval_duration_seconds_count", stage="embed") == 3
    assert delta("citedesk_llm_first_token_seconds_count", generator="extractive") == 2  # escalation: no LLM
    assert delta("citedesk_http_request_duration_seconds_count", route="/v1/answer", method="POST") == 2
    assert delta("citedesk_http_request_duration_seconds_count", route="/v1/answer/stream") == 1
    assert page["total"] == 1 and page["items"][0]["question"] == ANSWERABLE
    assert other["total"] == 1 and other["items"][0]["reason"] == "low_confidence"
    line = next(ln for ln in access_lines() if ln.get("request_id") == "req-obs-1")
    assert (line["route"], line["method"], line["status"]) == ("/v1/answer", "POST", 200)
