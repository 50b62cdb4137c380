"""Metrics overhead on answer latency: the same answers through the API with and without metrics, in one process.

Both apps share one container's index and embedding model (the first ``--limit`` pages of ``--docs``, synced once);
one app has the metrics (request middleware timing, the answer observer, ``GET /metrics`` scraped every
``--scrape-every`` requests), the other ``metrics.enabled = false`` (the request-id middleware and its access-log
check still run). Requests alternate between the two apps, questions of ``--csv`` cycled, after a warm-up, over
``httpx.ASGITransport`` (no network).

    python bench/metrics_overhead.py --limit 20 --requests 60

Prints p50 / mean answer latency (ms) per app and the ratios with ÷ without metrics, and the mean scrape time.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx

from bench.ingest_throughput import ListConnector, load_articles
from citedesk.config.settings import Settings
from citedesk.serving.api.app import create_app
from citedesk.serving.container import Container


async def run(args) -> None:
    questions = [r["question"] for r in csv.DictReader(open(args.csv, encoding="utf-8"))]
    with tempfile.TemporaryDirectory() as tmp:
        on = Container(Settings(data_dir=Path(tmp)))
        off = Container(Settings(data_dir=Path(tmp), metrics={"enabled": False}))
        report = on.sync_engine.sync(ListConnector(load_articles(Path(args.docs), args.limit)))
        print(f"synced {report.added} articles, {report.chunks_written} chunks in {report.seconds:.1f}s")
        for name in ("index", "embedder", "sparse", "db"):  # one index, one model, one audit database
            off.__dict__[name] = getattr(on, name)
        assert on.metrics is not None and off.metrics is None
        on.pipeline.warm_up()
        apps = {"metrics": create_app(on.settings, container=on, warm_up=False),
                "no metrics": create_app(off.settings, container=off, warm_up=False)}
        clients = {k: httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://bench")
                   for k, a in apps.items()}
        lat: dict[str, list[float]] = {k: [] for k in apps}
        scrapes: list[float] = []
        for i in range(args.warmup + args.requests):
            q = questions[i % len(questions)]
            order = list(clients) if i % 2 == 0 else list(reversed(clients))
            for name in order:
                t0 = time.perf_counter()
                r = await clients[name].post("/v1/answer", json={"question": q})
                dt = time.perf_counter() - t0
                r.raise_for_status()
                if i >= args.warmup:
                    lat[name].append(dt * 1000)
            if args.scrape_every and i % args.scrape_every == 0:
                t0 = time.perf_counter()
                (await clients["metrics"].get("/metrics")).raise_for_status()
                scrapes.append((time.perf_counter() - t0) * 1000)
        for c in clients.values():
            await c.aclose()
        on.index.close()
    stats = {k: (statistics.median(v), statistics.fmean(v)) for k, v in lat.items()}
    for k, (p50, mean) in stats.items():
        print(f"{k:>11}: p50 {p50:7.2f} ms   mean {mean:7.2f} ms   ({len(lat[k])} answers)")
    (p_on, m_on), (p_off, m_off) = stats["metrics"], stats["no metrics"]
    print(f"ratio with/without metrics: p50 {p_on / p_off:.3f}   mean {m_on / m_off:.3f}")
    if scrapes:
        print(f"GET /metrics: mean {statistics.fmean(scrapes):.2f} ms over {len(scrapes)} scrapes")


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", default=str(root / "data/aws-docs"))
    ap.add_argument("--csv", default=str(root / "data/aws-docs-qa-dev.csv"))
    ap.add_argument("--limit", type=int, default=20, help="pages indexed")
    ap.add_argument("--requests", type=int, default=60, help="measured answers per app")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--scrape-every", type=int, default=10, help="requests between scrapes (0: never)")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
