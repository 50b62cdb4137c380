"""Webhook receiver latency under load, with a deliberately slow LLM behind the drafting worker.

A child process serves the full citedesk app (uvicorn, real embedding model, local Qdrant synced from the
Intercom test double, webhooks on) whose generator sleeps ``--llm-delay`` seconds before each answer, like a
slow LLM. The parent sends, open-loop, ``--rate`` signed ``conversation.user.created`` notifications per
second (each for a new conversation) to ``POST /v1/webhooks/intercom`` and, interleaved at the same rate, a
no-op baseline request (``GET /bench/noop`` on the same server) for ``--seconds``. Latency is measured from the
scheduled send time (so a stalled client or server shows up as latency, not as a lower rate).

Prints p50 / p95 / p99 / max (ms) for both endpoints, the webhook/baseline ratio, errors, and how many notes
the worker posted meanwhile (the backlog is expected: drafting is ~``--llm-delay`` s per note).

    python bench/webhook_latency.py                     # 50 req/s for 20 s, 2 s LLM delay
    python bench/webhook_latency.py --rate 50 --seconds 20 --llm-delay 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SECRET = "bench-secret"
TOKEN = "bench-token"
WS = "bench"

ARTICLES = [
    ("Refunds", "<p>A refund takes five to seven business days to reach your card after we approve it.</p>"),
    ("Reset your password", "<p>Click Forgot password on the sign-in page; the reset link expires after 24 hours.</p>"),
    ("Shipping times", "<p>Standard shipping takes three to five business days. Express shipping takes two.</p>"),
    ("Cancel your subscription", "<p>Open Settings, choose Billing and click Cancel subscription.</p>"),
]
QUESTIONS = ["How long does a refund take?", "How do I reset my password?", "How long is standard shipping?",
             "How do I cancel my subscription?", "What is the capital of France?"]


class SlowGenerator:
    """The extractive generator behind a fixed delay (a stand-in for a slow LLM; same stream protocol)."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.name, self.model = "slow-extractive", f"extractive+{delay:g}s"

    async def stream(self, question, history, evidence, *, voice: bool = False):
        await asyncio.sleep(self.delay)
        async for delta in self.inner.stream(question, history, evidence, voice=voice):
            yield delta


def serve(data_dir: str, n_conversations: int, llm_delay: float, ready) -> None:
    """Child process: double + synced index + app on a free port; sends (app_url, notifications) to ``ready``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    import uvicorn

    from citedesk.config.settings import Settings
    from citedesk.serving.api.app import create_app
    from citedesk.serving.container import Container
    from citedesk.serving.answer.generators import ExtractiveGenerator
    from tests.conftest import free_port
    from tests.intercom_double import IntercomDouble

    logging.basicConfig(level=logging.ERROR)
    api = IntercomDouble(token=TOKEN, workspace_id=WS, help_center_url="https://help.bench.test/x").start()
    for title, body in ARTICLES:
        api.add_article(title, body)
    settings = Settings(data_dir=Path(data_dir), workspace=WS, intercom={
        "token": TOKEN, "base_url": api.base_url, "workspace": WS, "client_secret": SECRET,
        "admin_id": api.admin_id, "middleware": {"help_center_domains": ["help.bench.test"], "workers": 2}})
    c = Container(settings)
    c.__dict__["generator"] = SlowGenerator(ExtractiveGenerator(c.embedder), llm_delay)
    report = c.sync_engine.sync(c.intercom_connector())
    assert report.ok, report
    app = create_app(settings, container=c)

    @app.get("/bench/noop", include_in_schema=False)
    async def noop() -> dict:
        return {}

    @app.get("/bench/notes", include_in_schema=False)
    async def notes() -> dict:
        return {"notes": sum(1 for cid in conversations for _ in api.parts(cid, "note")),
                "unfinished": app.state.intercom_webhooks.unfinished()}

    conversations = [api.add_conversation(f"<p>{QUESTIONS[i % len(QUESTIONS)]}</p>") for i in range(n_conversations)]
    bodies = [json.dumps(api.notification("conversation.user.created", conversation_id=cid)) for cid in conversations]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on"))
    ready.put((f"http://127.0.0.1:{port}", bodies))
    server.run()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


async def load(url: str, bodies: list[str], rate: float, seconds: float) -> dict[str, list[float]]:
    """Open-loop: webhook i at t0 + i/rate, baseline i at t0 + (i + 0.5)/rate; latency from the scheduled time."""
    from citedesk.serving.channels.intercom.webhooks import sign

    n = int(rate * seconds)
    lat: dict[str, list[float]] = {"webhook": [], "baseline": []}
    errors: dict[str, int] = {"webhook": 0, "baseline": 0}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        t0 = time.perf_counter() + 0.5

        async def one(kind: str, at: float, i: int) -> None:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            try:
                if kind == "webhook":
                    body = bodies[i].encode()
                    r = await client.post("/v1/webhooks/intercom", content=body,
                                          headers={"X-Hub-Signature": sign(body, SECRET),
                                                   "Content-Type": "application/json"})
                    ok = r.status_code == 200 and r.json()["status"] == "queued"
                else:
                    ok = (await client.get("/bench/noop")).status_code == 200
            except httpx.HTTPError:
                ok = False
            lat[kind].append((time.perf_counter() - at) * 1000)
            errors[kind] += not ok

        tasks = [one("webhook", t0 + i / rate, i) for i in range(n)]
        tasks += [one("baseline", t0 + (i + 0.5) / rate, i) for i in range(n)]
        await asyncio.gather(*tasks)
        notes = (await client.get("/bench/notes")).json()
    return {**lat, "errors": errors, "notes": notes, "elapsed": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="webhooks per second (and baseline requests)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--llm-delay", type=float, default=2.0, help="seconds the scripted LLM sleeps per answer")
    parser.add_argument("--data-dir", default=None, help="index + DB folder (default: a temp dir)")
    args = parser.parse_args()

    import tempfile

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="citedesk-bench-")
    ctx = mp.get_context("spawn")
    ready = ctx.Queue()
    n = int(args.rate * args.seconds)
    child = ctx.Process(target=serve, args=(data_dir, n, args.llm_delay, ready), daemon=True)
    child.start()
    url, bodies = ready.get(timeout=600)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/bench/noop", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)
    try:
        result = asyncio.run(load(url, bodies, args.rate, args.seconds))
    finally:
        child.terminate()
        child.join(10)

    print(f"webhook latency: {args.rate:g} req/s for {args.seconds:g} s, LLM delay {args.llm_delay:g} s/answer, "
          f"{os.cpu_count()} CPUs")
    print(f"{'endpoint':<10} {'n':>6} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    stats = {}
    for kind in ("webhook", "baseline"):
        v = result[kind]
        stats[kind] = {q: percentile(v, q) for q in (50, 95, 99)}
        print(f"{kind:<10} {len(v):>6} {result['errors'][kind]:>6} {stats[kind][50]:>8.1f} {stats[kind][95]:>8.1f} "
              f"{stats[kind][99]:>8.1f} {max(v):>8.1f}")
    print("ratio webhook/baseline: " + ", ".join(
        f"p{q} {stats['webhook'][q] / stats['baseline'][q]:.2f}x" for q in (50, 95, 99)))
    print(f"mean webhook {statistics.mean(result['webhook']):.1f} ms; notes posted during the run: "
          f"{result['notes']['notes']}, notifications still queued: {result['notes']['unfinished']} "
          f"(drafting is bounded by the {args.llm_delay:g} s LLM, not by the receiver)")


if __name__ == "__main__":
    main()
