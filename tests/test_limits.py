"""Request-body limits: 413 for oversized bodies, with or without Content-Length (no model needed)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from citedesk.config.settings import Settings
from citedesk.serving.api.app import create_app


@pytest.fixture()
def client(tmp_path):
    settings = Settings(data_dir=tmp_path, server={"max_body_bytes": 4096})
    with TestClient(create_app(settings, warm_up=False)) as c:
        yield c


def test_body_with_content_length_over_limit_gets_413(client) -> None:
    body = json.dumps({"question": "x" * 10_000}).encode()
    r = client.post("/v1/answer", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "4096-byte limit" in r.json()["detail"]


def test_chunked_body_without_content_length_over_limit_gets_413(client) -> None:
    sent = []

    def chunks():
        for _ in range(100):
            sent.append(1)
            yield b"x" * 1024

    r = client.post("/v1/answer", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "content-length" not in {k.lower() for k in r.request.headers}


def test_small_invalid_body_still_reaches_validation(client) -> None:
    r = client.post("/v1/answer", json={"question": ""})
    assert r.status_code == 422
