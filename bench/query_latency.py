"""Query latency: citedesk retrieval and extractive answers vs LlamaIndex query, at 1/8/32 concurrent clients.

Both engines index the same chunks of the first ``--limit`` pages of ``--docs`` with the same model:
citedesk syncs them into a local Qdrant (hybrid dense + BM25), LlamaIndex gets citedesk's chunk texts
in a ``VectorStoreIndex`` over an in-memory ``QdrantVectorStore`` (dense). Each engine runs in its own
child process so its peak memory (RSS, model included) is its own.

Measured per concurrency level (``--requests`` requests, questions of ``--csv`` cycled, after a warm-up):
- citedesk ``retrieve``: ``Retriever.retrieve`` (hybrid, top_k 5) from N threads;
- citedesk ``answer``: ``AnswerPipeline.answer`` with the extractive generator (retrieve → confidence →
  sentence selection → citation checks), N concurrent requests on one event loop, as the API serves them;
- LlamaIndex ``retrieve``: ``VectorIndexRetriever.retrieve`` (top 5) from N threads;
- LlamaIndex ``query``: ``RetrieverQueryEngine.query`` with ``response_mode="no_text"`` (no LLM) from N threads.

    python bench/query_latency.py --docs data/aws-docs --limit 50 --requests 64

Prints p50/p95 latency (ms), throughput (requests/s), peak RSS per engine, and citedesk ÷ LlamaIndex ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.ingest_throughput import ListConnector, load_articles, peak_rss_mib


def pct(values: list[float], q: float) -> float:
    """q-th percentile (0–100) by linear interpolation."""
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(latencies_s: list[float | None], wall_s: float, errors: list[str] | None = None) -> dict:
    """p50/p95 (ms) of the successful requests; ``errors`` counts failed ones (first message kept)."""
    ms = [x * 1000 for x in latencies_s if x is not None]
    errors = errors or []
    return {"requests": len(latencies_s), "errors": len(errors), "first_error": errors[0] if errors else None,
            "p50_ms": statistics.median(ms) if ms else float("nan"), "p95_ms": pct(ms, 95) if ms else float("nan"),
            "throughput_rps": len(ms) / wall_s}


def run_threads(fn, questions: list[str], clients: int) -> dict:
    """Run ``fn(question)`` for every question from ``clients`` threads; per-request latency."""
    errors: list[str] = []

    def one(q):
        t = time.perf_counter()
        try:
            fn(q)
        except Exception as exc:  # noqa: BLE001 - a failed request is counted, not fatal
            errors.append(f"{type(exc).__name__}: {exc}")
            return None
        return time.perf_counter() - t

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        lat = list(pool.map(one, questions))
    return summarize(lat, time.perf_counter() - t0, errors)


def run_async(coro_fn, questions: list[str], clients: int) -> dict:
    """Run ``await coro_fn(question)`` for every question, at most ``clients`` at a time."""
    async def main():
        sem = asyncio.Semaphore(clients)
        lat: list[float | None] = []
        errors: list[str] = []

        async def one(q):
            async with sem:
                t = time.perf_counter()
                try:
                    await coro_fn(q)
                except Exception as exc:  # noqa: BLE001 - a failed request is counted, not fatal
                    errors.append(f"{type(exc).__name__}: {exc}")
                    lat.append(None)
                    return
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in questions))
        return summarize(lat, time.perf_counter() - t0, errors)

    return asyncio.run(main())


def engine_citedesk(articles, questions, levels, warmup) -> dict:
    from citedesk.config.settings import Settings
    from citedesk.retrieval.store import SearchFilter
    from citedesk.serving.container import Container
    from citedesk.serving.answer.schemas import AnswerRequest

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="citedesk-qbench-") as tmp:
        c = Container(Settings(data_dir=Path(tmp), embedding={"device": "cpu"}))
        c.pipeline.warm_up()
        report = c.sync_engine.sync(ListConnector(articles))
        out["chunks"] = report.chunks_written
        out["rss_after_index_mib"] = peak_rss_mib()
        flt = SearchFilter(workspace=c.settings.workspace)
        retrieve = lambda q: c.retriever.retrieve(q, flt, top_k=5)
        answer = lambda q: c.pipeline.answer(AnswerRequest(question=q))
        for q in questions[:warmup]:
            retrieve(q)
        run_async(answer, questions[:warmup], 1)
        out["retrieve"] = {n: run_threads(retrieve, questions, n) for n in levels}
        out["answer"] = {n: run_async(answer, questions, n) for n in levels}
        c.index.close()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def engine_llamaindex(articles, questions, levels, warmup) -> dict:
    from citedesk.config.settings import DEFAULT_EMBEDDING_MODEL, Settings
    from citedesk.serving.container import Container
    from citedesk.serving.evaluation.baseline import LlamaIndexBaseline, corpus_chunks

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="llamaindex-qbench-") as tmp:
        # citedesk's chunker only (no embedding, no index): the same chunk texts for LlamaIndex
        chunks, _ = corpus_chunks(Container(Settings(data_dir=Path(tmp))).sync_engine.pipeline, articles)
    base = LlamaIndexBaseline(DEFAULT_EMBEDDING_MODEL, device="cpu")
    base.build(chunks)
    out["chunks"] = len(chunks)
    out["rss_after_index_mib"] = peak_rss_mib()
    retrieve = lambda q: base.retrieve(q, 5)
    query = lambda q: base.query(q, 5)
    for q in questions[:warmup]:
        retrieve(q)
        query(q)
    out["retrieve"] = {n: run_threads(retrieve, questions, n) for n in levels}
    out["query"] = {n: run_threads(query, questions, n) for n in levels}
    base.close()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=Path, default=Path("data/aws-docs"))
    ap.add_argument("--limit", type=int, default=50, help="articles indexed")
    ap.add_argument("--csv", type=Path, default=Path("data/aws-docs-qa-dev.csv"))
    ap.add_argument("--clients", default="1,8,32", help="concurrency levels")
    ap.add_argument("--requests", type=int, default=64, help="requests per level")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--engine", choices=["citedesk", "llamaindex"], help="(internal) run one engine, print JSON")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",") if x.strip()]

    if args.engine:
        with args.csv.open(newline="", encoding="utf-8") as fh:
            qs = [r["question"] for r in csv.DictReader(fh) if r.get("question")]
        questions = [qs[i % len(qs)] for i in range(args.requests)]
        articles = load_articles(args.docs, args.limit)
        fn = engine_citedesk if args.engine == "citedesk" else engine_llamaindex
        print("RESULT " + json.dumps(fn(articles, questions, levels, args.warmup)))
        return

    results = {}
    for engine in ("citedesk", "llamaindex"):
        cmd = [sys.executable, __file__, "--engine", engine, "--docs", str(args.docs), "--limit", str(args.limit),
               "--csv", str(args.csv), "--clients", args.clients, "--requests", str(args.requests),
               "--warmup", str(args.warmup)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            sys.exit(f"{engine} run failed:\n{proc.stderr[-3000:]}")
        results[engine] = json.loads(line[len("RESULT "):])

    cd, li = results["citedesk"], results["llamaindex"]
    print(f"query latency: {args.limit} articles ({cd['chunks']} chunks citedesk, {li['chunks']} LlamaIndex), "
          f"{args.requests} requests per level, cpu")
    print(f"{'engine / operation':<34}{'clients':>8}{'p50 ms':>10}{'p95 ms':>10}{'req/s':>9}{'errors':>8}")
    rows = [("citedesk retrieve (hybrid)", cd["retrieve"]), ("citedesk answer (extractive)", cd["answer"]),
            ("LlamaIndex retrieve (dense)", li["retrieve"]), ("LlamaIndex query (no_text)", li["query"])]
    for name, per in rows:
        for n in levels:
            r = per[str(n)] if str(n) in per else per[n]
            print(f"{name:<34}{n:>8}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}{r['throughput_rps']:>9.1f}{r['errors']:>8}"
                  + (f"  first error: {r['first_error'][:80]}" if r["errors"] else ""))
    print(f"peak RSS: citedesk {cd['peak_rss_mib']:.0f} MiB, LlamaIndex {li['peak_rss_mib']:.0f} MiB "
          f"(ratio {cd['peak_rss_mib'] / li['peak_rss_mib']:.2f})")
    ratios = {}
    for n in levels:
        k = str(n)
        ratios[k] = {
            "retrieve_p50": cd["retrieve"][k]["p50_ms"] / li["retrieve"][k]["p50_ms"],
            "retrieve_p95": cd["retrieve"][k]["p95_ms"] / li["retrieve"][k]["p95_ms"],
            "answer_vs_query_p50": cd["answer"][k]["p50_ms"] / li["query"][k]["p50_ms"],
            "answer_vs_query_p95": cd["answer"][k]["p95_ms"] / li["query"][k]["p95_ms"],
        }
        r = ratios[k]
        print(f"ratio citedesk ÷ LlamaIndex @ {n} clients: retrieve p50 {r['retrieve_p50']:.2f}, p95 "
              f"{r['retrieve_p95']:.2f}; answer ÷ query p50 {r['answer_vs_query_p50']:.2f}, p95 {r['answer_vs_query_p95']:.2f}")
    results["ratios"] = ratios
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
