"""A Qdrant REST server on loopback, backed by Qdrant's own local engine (no server binary installs here).

Serves the endpoints citedesk's answer path and health check use over ``url=`` — ``GET /``,
``GET /collections/{name}/exists``, ``POST /collections/{name}/points/query`` and
``POST /collections/{name}/points/count`` — by validating each body with qdrant-client's REST models and
running it on ``QdrantClient(path=...)``. It can be stopped and started again on the same port, to play
a Qdrant outage and its recovery.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from qdrant_client import QdrantClient, models


def send_json(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
    """Write ``body`` as a JSON response with a Content-Length (keep-alive safe)."""
    raw = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


class QdrantFacade:
    """``with QdrantFacade(path, port) as q: q.url`` — a REST front of the local collection at ``path``."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.url = f"http://127.0.0.1:{port}"
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._client: QdrantClient | None = None
        self._lock = threading.Lock()

    def start(self) -> QdrantFacade:
        self._client = QdrantClient(path=str(self.path))
        facade = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                send_json(self, status, body)

            def _body(self) -> dict:
                n = int(self.headers.get("content-length", 0))
                return json.loads(self.rfile.read(n)) if n else {}

            def do_GET(self) -> None:
                facade.requests.append(f"GET {self.path}")
                if self.path == "/":
                    return self._send(200, {"title": "qdrant - vector search engine", "version": "1.17.0"})
                if m := re.fullmatch(r"/collections/([^/]+)/exists", self.path):
                    with facade._lock:
                        exists = facade._client.collection_exists(m.group(1))
                    return self._send(200, {"result": {"exists": exists}, "status": "ok", "time": 0.0})
                self._send(404, {"status": {"error": f"not served by the facade: {self.path}"}, "time": 0.0})

            def do_POST(self) -> None:
                path = self.path.split("?", 1)[0]
                facade.requests.append(f"POST {path}")
                body = self._body()
                if m := re.fullmatch(r"/collections/([^/]+)/points/query", path):
                    q = models.QueryRequest.model_validate(body)
                    with facade._lock:
                        res = facade._client.query_points(
                            m.group(1), query=q.query, using=q.using, prefetch=q.prefetch, query_filter=q.filter,
                            limit=q.limit or 10, offset=q.offset, with_payload=q.with_payload,
                            with_vectors=q.with_vector if q.with_vector is not None else False,
                            score_threshold=q.score_threshold)
                    return self._send(200, {"result": res.model_dump(mode="json"), "status": "ok", "time": 0.0})
                if m := re.fullmatch(r"/collections/([^/]+)/points/count", path):
                    c = models.CountRequest.model_validate(body)
                    with facade._lock:
                        n = facade._client.count(m.group(1), count_filter=c.filter, exact=True).count
                    return self._send(200, {"result": {"count": n}, "status": "ok", "time": 0.0})
                self._send(404, {"status": {"error": f"not served by the facade: {path}"}, "time": 0.0})

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> QdrantFacade:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
