"""A Qdrant REST server on loopback, backed by Qdrant's own local engine (no server binary installs here).

Serves the REST endpoints ``QdrantIndex`` uses over ``url=`` (collections: exists, get, create, payload
index; points: upsert, delete, set payload, scroll, count, query) by validating each body with
qdrant-client's REST models and running it on ``QdrantClient(path=...)``. So citedesk's remote code
path (REST serialisation of every call) runs against a real engine. It can be stopped and started again
on the same port, to play a Qdrant outage and its recovery.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path

from qdrant_client import QdrantClient, models

DONE = {"operation_id": 0, "status": "completed"}
ENGINE_VERSION = version("qdrant-client")  # the local engine speaks the client's own API version


def _dump(obj) -> object:
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj


def _create(client: QdrantClient, name: str, body: dict) -> bool:
    cc = models.CreateCollection.model_validate(body)
    return client.create_collection(name, vectors_config=cc.vectors, sparse_vectors_config=cc.sparse_vectors)


def _index(client: QdrantClient, name: str, body: dict) -> dict:
    fi = models.CreateFieldIndex.model_validate(body)
    client.create_payload_index(name, field_name=fi.field_name, field_schema=fi.field_schema)
    return DONE


def _upsert(client: QdrantClient, name: str, body: dict) -> dict:
    op = models.PointsList.model_validate(body) if "points" in body else models.PointsBatch.model_validate(body)
    client.upsert(name, points=op.points if isinstance(op, models.PointsList) else op.batch)
    return DONE


def _delete(client: QdrantClient, name: str, body: dict) -> dict:
    sel = (models.FilterSelector.model_validate(body) if "filter" in body
           else models.PointIdsList.model_validate(body))
    client.delete(name, points_selector=sel)
    return DONE


def _set_payload(client: QdrantClient, name: str, body: dict) -> dict:
    sp = models.SetPayload.model_validate(body)
    client.set_payload(name, payload=sp.payload, points=sp.points if sp.points is not None
                       else models.FilterSelector(filter=sp.filter), key=sp.key)
    return DONE


def _scroll(client: QdrantClient, name: str, body: dict) -> dict:
    sr = models.ScrollRequest.model_validate(body)
    points, nxt = client.scroll(name, scroll_filter=sr.filter, limit=sr.limit or 10, offset=sr.offset,
                                with_payload=sr.with_payload if sr.with_payload is not None else True,
                                with_vectors=sr.with_vector or False, order_by=sr.order_by)
    return {"points": [_dump(p) for p in points], "next_page_offset": nxt}


def _count(client: QdrantClient, name: str, body: dict) -> dict:
    c = models.CountRequest.model_validate(body)
    return {"count": client.count(name, count_filter=c.filter, exact=True).count}


def _query(client: QdrantClient, name: str, body: dict) -> dict:
    q = models.QueryRequest.model_validate(body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "local mode performs exact search, search_params have no effect"
        res = client.query_points(name, query=q.query, using=q.using, prefetch=q.prefetch, query_filter=q.filter,
                                  search_params=q.params, limit=q.limit or 10, offset=q.offset,
                                  with_payload=q.with_payload,
                                  with_vectors=q.with_vector if q.with_vector is not None else False,
                                  score_threshold=q.score_threshold)
    return _dump(res)


ROUTES = {
    ("GET", "/exists"): lambda client, name, body: {"exists": client.collection_exists(name)},
    ("GET", ""): lambda client, name, body: _dump(client.get_collection(name)),
    ("PUT", ""): _create,
    ("PUT", "/index"): _index,
    ("PUT", "/points"): _upsert,
    ("POST", "/points/delete"): _delete,
    ("POST", "/points/payload"): _set_payload,
    ("POST", "/points/scroll"): _scroll,
    ("POST", "/points/count"): _count,
    ("POST", "/points/query"): _query,
}


class QdrantFacade:
    """``with QdrantFacade(path, port) as q: q.url`` — a REST front of the local collection at ``path``.

    ``version`` is the server version it reports; below 1.17 it also answers a weighted ``rrf`` query
    with the 400 such servers give (qdrant/qdrant#8436). ``requests`` records ``"METHOD path"`` of each
    request, ``queries`` the body of each ``points/query``, ``bodies`` ``("METHOD path", body)`` of every request
    (e.g. the collection-creation request with its shard and replica settings).
    """

    def __init__(self, path: Path, port: int, *, version: str = ENGINE_VERSION) -> None:
        self.path, self.port, self.version = path, port, version
        self.url = f"http://127.0.0.1:{port}"
        self.weighted_rrf = tuple(int(n) for n in version.split(".")[:2]) >= (1, 17)
        self.requests: list[str] = []
        self.queries: list[dict] = []
        self.bodies: list[tuple[str, dict]] = []
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
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> dict:
                n = int(self.headers.get("content-length", 0))
                return json.loads(self.rfile.read(n)) if n else {}

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def _route(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                facade.requests.append(f"{method} {path}")
                body = self._body()
                facade.bodies.append((f"{method} {path}", body))
                if method == "GET" and path == "/":
                    return self._send(200, {"title": "qdrant - vector search engine", "version": facade.version})
                m = re.fullmatch(r"/collections/([^/]+)(/.*)?", path)
                route = (method, m.group(2) or "") if m else None
                if route == ("POST", "/points/query"):
                    facade.queries.append(body)
                    query = body.get("query")
                    if not facade.weighted_rrf and isinstance(query, dict) and "rrf" in query:
                        return self._send(400, {"status": {"error": "Format error in JSON body: Expected some "
                                                                     "form of vector, id, or a type of query"},
                                                "time": 0.0})
                handler = ROUTES.get(route)
                if handler is None:
                    return self._send(404, {"status": {"error": f"not served by the facade: {method} {path}"},
                                            "time": 0.0})
                try:
                    with facade._lock:
                        result = handler(facade._client, m.group(1), body)
                except (ValueError, KeyError) as exc:  # what the local engine raises for a bad request
                    status = 404 if "not found" in str(exc).lower() else 400
                    return self._send(status, {"status": {"error": str(exc)}, "time": 0.0})
                self._send(200, {"result": result, "status": "ok", "time": 0.0})

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
