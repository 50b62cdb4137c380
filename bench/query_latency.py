"""Query latency at growing point counts: citedesk's hybrid retrieval on qdrant-edge and on qdrant-client's local
mode vs LlamaIndex's dense query, at 1/8/32 concurrent clients, with index build time, recall and memory.

The corpus (``--docs``, ``--limit`` articles) is chunked and embedded once by citedesk's own pipeline (cached in
``--cache``). A size of N points takes the corpus's points and, past its size, copies of them with new ids,
new article ids and dense vectors moved by a little noise (so HNSW and recall are not degenerate). Each engine
and size runs in a child process of its own, so its peak memory (model included) is its own:

- ``edge`` / ``local``: a :class:`~citedesk.retrieval.store.QdrantIndex` on that engine gets the points (then
  ``optimize``: HNSW + payload indexes); ``search`` is the index alone (hybrid RRF, ready-made query vectors,
  workspace filter, top 5); ``retrieve`` is ``Retriever.retrieve`` (query embedding + BM25 + search); edge also
  runs ``answer`` (``AnswerPipeline.answer``, extractive, without the answer-unit vector cache: every answer
  embeds its candidate units), ``answer_warm`` (after the warm-up ``citedesk serve`` runs at start: every
  chunk's units embedded once; copies of a chunk share its text, so the larger sizes warm as fast as the
  corpus) and dense recall@10 of HNSW against exact search;
- ``llamaindex``: ``VectorStoreIndex`` over an in-memory ``QdrantVectorStore`` with the same dense vectors
  (citedesk's chunk texts); ``search`` is the vector store's query with a ready-made vector, ``retrieve`` its
  ``VectorIndexRetriever`` (embedding + dense search), ``query`` its query engine (``no_text``, no LLM).

    python bench/query_latency.py --sizes 3000,25000,250000 --clients 1,8,32 --requests 64

Measured 2026-11-26 on 2 CPU cores (p50, 1/8/32 clients): edge hybrid retrieve ÷ LlamaIndex query 0.34/0.26/0.08 at
3k points, 0.13/0.14/0.04 at 25k, 0.02/0.02/0.00 at 250k; extractive answer − retrieve 203–233 ms at 1 client.
Later that day, with ``hnsw_ef`` 512: answer − retrieve at 1 client 201 ms without the unit vector cache and 21 ms
with it warmed at 3k points (205 → 22 ms at 25k, 186 → 26 ms at 250k; warm-up 20,949 distinct units, 175–223 s).
``bench/capacity.py`` turns the ``--json`` outputs into points per GB and expected p50 at 1M/10M points.

Prints p50/p95 (ms) per operation and clients, build seconds, bytes per point (RSS growth, folder size), peak RSS,
and the ratios citedesk ÷ LlamaIndex and edge ÷ local mode. Engines above ``--local-max`` / ``--llamaindex-max``
points are skipped (local mode scans every point and writes slowly).
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


def prepare(docs: Path, limit: int, csv_path: Path, cache: Path) -> Path:
    """Chunk and embed the corpus and the questions once (citedesk's pipeline); returns the cache file."""
    import hashlib
    import pickle

    key = hashlib.sha256(f"{docs.resolve()}|{limit}|{csv_path.resolve()}".encode()).hexdigest()[:12]
    path = cache / f"corpus-{key}.pkl"
    if path.exists():
        return path
    from citedesk.config.settings import Settings
    from citedesk.serving.container import Container

    with csv_path.open(newline="", encoding="utf-8") as fh:
        questions = [r["question"] for r in csv.DictReader(fh) if r.get("question")]
    articles = load_articles(docs, limit)
    with tempfile.TemporaryDirectory(prefix="qbench-prep-") as tmp:
        c = Container(Settings(data_dir=Path(tmp), embedding={"device": "cpu"}))
        pipe = c.sync_engine.pipeline
        points = [p for per in pipe.points([pipe.prepare(a) for a in articles]) for p in per]
        qdense = [c.embedder.embed_query(q) for q in questions]
        qsparse = [c.sparse.encode_query(q) for q in questions]
    cache.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump({"points": points, "questions": questions, "qdense": qdense, "qsparse": qsparse}, fh)
    return path


def grow(points: list, n: int, seed: int = 0) -> list:
    """``n`` points: the corpus's own, then copies with new ids, article ids, doc keys and noisy dense vectors."""
    import dataclasses
    import uuid

    import numpy as np

    rng = np.random.default_rng(seed)
    out = list(points[:n])
    copy = 0
    while len(out) < n:
        copy += 1
        for p in points:
            if len(out) >= n:
                break
            v = p.dense + rng.standard_normal(p.dense.shape).astype(np.float32) * 0.02
            payload = dict(p.payload, article_id=f"{p.payload['article_id']}~{copy}",
                           doc_key=f"{p.payload['doc_key']}~{copy}")
            out.append(dataclasses.replace(p, id=str(uuid.uuid5(uuid.UUID(p.id), str(copy))),
                                           dense=v / np.linalg.norm(v), payload=payload))
    return out


def source_chunk(hit) -> tuple[str, int]:
    """The corpus chunk a (copied, see :func:`grow`) point was made from: (article id, chunk index)."""
    return hit.article_id.split("~")[0], hit.chunk_index


def recall(approx: list[list], exact: list[list], key=lambda h: h.point_id) -> float:
    """Share of the exact searches' results (by ``key``: point id, or :func:`source_chunk`) the approximate
    searches found, over all queries (lists of hits per query, in the same order)."""
    found = sum(len({key(h) for h in a} & {key(h) for h in e}) for a, e in zip(approx, exact))
    return found / sum(len({key(h) for h in e}) for e in exact)


def add_corpus_args(ap: argparse.ArgumentParser) -> None:
    """The corpus options (``--docs``, ``--limit``, ``--csv``, ``--sizes``, ``--cache``) that :func:`prepare` and
    :func:`grow` take; shared with ``bench/hnsw_ef.py`` so both read the same cached corpus."""
    ap.add_argument("--docs", type=Path, default=Path("data/aws-docs"))
    ap.add_argument("--limit", type=int, default=400, help="articles of the base corpus")
    ap.add_argument("--csv", type=Path, default=Path("data/aws-docs-qa-dev.csv"))
    ap.add_argument("--sizes", default="3000,25000,250000", help="point counts")
    ap.add_argument("--cache", type=Path, default=Path(".bench-cache"), help="embedded corpus cache")


def folder_bytes(path: Path) -> int:
    """Bytes the folder takes on disk (allocated blocks: edge's storage files are sparse, preallocated)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def rss_mib() -> float:
    """Current resident set size, MiB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def engine_citedesk(kind: str, data: dict, n: int, levels, requests: int, warmup: int) -> dict:
    from citedesk.config.settings import Settings
    from citedesk.retrieval.store import SearchFilter, batched
    from citedesk.serving.answer.schemas import AnswerRequest
    from citedesk.serving.container import Container

    out: dict = {"engine": kind, "points": n}
    questions = [data["questions"][i % len(data["questions"])] for i in range(requests)]
    qvec = [(data["qdense"][i % len(data["qdense"])], data["qsparse"][i % len(data["qsparse"])])
            for i in range(requests)]
    with tempfile.TemporaryDirectory(prefix=f"qbench-{kind}-") as tmp:
        c = Container(Settings(data_dir=Path(tmp), embedding={"device": "cpu"}, qdrant={"engine": kind}))
        c.pipeline.warm_up()
        c.embedder.embed_query("warm up")
        points = grow(data["points"], n)
        rss0 = rss_mib()
        t = time.perf_counter()
        c.index.ensure_collection(len(points[0].dense))
        for batch in batched(points, 256):
            c.index.upsert(batch)
        out["upsert_s"] = time.perf_counter() - t
        t = time.perf_counter()
        c.index.optimize()
        out["optimize_s"] = time.perf_counter() - t
        del points
        flt = SearchFilter(workspace=c.settings.workspace)
        search = lambda i: c.index.search(flt, dense=qvec[i][0], sparse=qvec[i][1], limit=5, prefetch_k=40)
        retrieve = lambda q: c.retriever.retrieve(q, flt, top_k=5)
        answer = lambda q: c.pipeline.answer(AnswerRequest(question=q))
        for i in range(warmup):
            search(i)
            retrieve(questions[i])
        out["rss_index_mib"] = rss_mib() - rss0
        out["disk_mib"] = folder_bytes(Path(tmp) / "qdrant") / 2**20
        out["search"] = {n_: run_threads(search, list(range(requests)), n_) for n_ in levels}
        out["retrieve"] = {n_: run_threads(retrieve, questions, n_) for n_ in levels}
        if kind == "edge":
            run_async(answer, questions[:warmup], 1)
            gen = c.generator
            cached = gen.embedder  # the answer-unit vector cache (answer.unit_cache_entries)
            gen.embedder = getattr(cached, "embedder", cached)  # without it: every answer embeds its units
            out["answer"] = {n_: run_async(answer, questions, n_) for n_ in levels}
            gen.embedder = cached
            out["unit_warm_units"] = c.unit_warmer.run()  # what `citedesk serve` does at start, in the background
            out["unit_warm_s"] = c.unit_warmer.seconds
            out["answer_warm"] = {n_: run_async(answer, questions, n_) for n_ in levels}
            approx, exact = [], []
            for dense, _ in qvec[: min(requests, len(data["qdense"]))]:
                c.index.exact = False
                approx.append(c.index.search(flt, dense=dense, limit=10))
                c.index.exact = True
                exact.append(c.index.search(flt, dense=dense, limit=10))
            c.index.exact = False
            out["dense_recall_at_10"] = recall(approx, exact)
            # copies of one chunk differ by noise only, so HNSW may return other copies of the same chunks than
            # exact search: recall of the source chunks says whether it finds the same content
            out["dense_source_recall_at_10"] = recall(approx, exact, source_chunk)
            out["hnsw_ef"] = c.index.hnsw_ef
        c.index.close()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def engine_llamaindex(data: dict, n: int, levels, requests: int, warmup: int) -> dict:
    import numpy as np

    from citedesk.config.settings import DEFAULT_EMBEDDING_MODEL
    from citedesk.retrieval.embedding.inputs import embed_text
    from citedesk.serving.evaluation.baseline import BaselineDoc, LlamaIndexBaseline

    out: dict = {"engine": "llamaindex", "points": n}
    questions = [data["questions"][i % len(data["questions"])] for i in range(requests)]
    qdense = [data["qdense"][i % len(data["qdense"])] for i in range(requests)]
    base = LlamaIndexBaseline(DEFAULT_EMBEDDING_MODEL, device="cpu")
    base.warm_up()
    base._embed.get_query_embedding("warm up")
    points = grow(data["points"], n)
    chunks = [BaselineDoc(p.payload["article_id"], embed_text(p.payload.get("title", ""), p.payload.get("heading", ""),
                                                              p.payload.get("text", ""))) for p in points]
    vectors = np.stack([p.dense for p in points])
    del points
    rss0 = rss_mib()
    out["upsert_s"] = base.build(chunks, vectors)
    out["optimize_s"] = 0.0
    del chunks, vectors
    search = lambda i: base.retrieve_by_vector(qdense[i], 5)
    retrieve = lambda q: base.retrieve(q, 5)
    query = lambda q: base.query(q, 5)
    for i in range(warmup):
        search(i)
        retrieve(questions[i])
        query(questions[i])
    out["rss_index_mib"] = rss_mib() - rss0
    out["search"] = {n_: run_threads(search, list(range(requests)), n_) for n_ in levels}
    out["retrieve"] = {n_: run_threads(retrieve, questions, n_) for n_ in levels}
    out["query"] = {n_: run_threads(query, questions, n_) for n_ in levels}
    base.close()
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def child(engine: str, args, n: int) -> dict | None:
    requests = min(args.requests, args.local_requests) if engine == "local" else args.requests
    cmd = [sys.executable, __file__, "--engine", engine, "--points", str(n), "--docs", str(args.docs),
           "--limit", str(args.limit), "--csv", str(args.csv), "--clients", args.clients, "--requests",
           str(requests), "--warmup", str(args.warmup), "--cache", str(args.cache)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(f"{engine} @ {n} points failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_args(ap)
    ap.add_argument("--clients", default="1,8,32", help="concurrency levels")
    ap.add_argument("--requests", type=int, default=64, help="requests per level")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--local-max", type=int, default=25_000, help="largest size run on local mode")
    ap.add_argument("--local-requests", type=int, default=16, help="requests per level on local mode (slow)")
    ap.add_argument("--llamaindex-max", type=int, default=250_000, help="largest size run on LlamaIndex")
    ap.add_argument("--engine", choices=["edge", "local", "llamaindex"], help="(internal) one run, prints JSON")
    ap.add_argument("--points", type=int, help="(internal) size of that run")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",") if x.strip()]

    if args.engine:
        import pickle

        with prepare(args.docs, args.limit, args.csv, args.cache).open("rb") as fh:
            data = pickle.load(fh)
        res = (engine_llamaindex(data, args.points, levels, args.requests, args.warmup) if args.engine == "llamaindex"
               else engine_citedesk(args.engine, data, args.points, levels, args.requests, args.warmup))
        print("RESULT " + json.dumps(res))
        return

    path = prepare(args.docs, args.limit, args.csv, args.cache)
    import pickle

    with path.open("rb") as fh:
        base_points = len(pickle.load(fh)["points"])
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    results: dict = {"base_points": base_points, "runs": []}
    print(f"query latency: base corpus {base_points} points ({args.limit} articles max), {args.requests} requests "
          f"per level, cpu")
    for n in sizes:
        for engine in ("edge", "local", "llamaindex"):
            if (engine == "local" and n > args.local_max) or (engine == "llamaindex" and n > args.llamaindex_max):
                continue
            r = child(engine, args, n)
            if r is None:
                continue
            results["runs"].append(r)
            print(f"\n{engine} @ {n} points: upsert {r['upsert_s']:.1f} s, optimize {r['optimize_s']:.1f} s, "
                  f"index RSS {r['rss_index_mib']:.0f} MiB ({r['rss_index_mib'] * 2**20 / n:.0f} B/point)"
                  + (f", folder {r['disk_mib']:.0f} MiB ({r['disk_mib'] * 2**20 / n:.0f} B/point)" if "disk_mib" in r else "")
                  + f", peak RSS {r['peak_rss_mib']:.0f} MiB"
                  + (f", unit warm-up {r['unit_warm_units']} units in {r['unit_warm_s']:.1f} s" if "unit_warm_s" in r else "")
                  + (f", dense recall@10 HNSW (ef {r['hnsw_ef']}) vs exact {r['dense_recall_at_10']:.3f} "
                     f"(of source chunks {r.get('dense_source_recall_at_10', float('nan')):.3f})"
                     if "dense_recall_at_10" in r else ""), flush=True)
            for op in ("search", "retrieve", "answer", "answer_warm", "query"):
                for lvl in levels:
                    if op not in r:
                        continue
                    x = r[op][str(lvl)]
                    print(f"  {op:<14}{lvl:>4} clients  p50 {x['p50_ms']:8.2f} ms  p95 {x['p95_ms']:8.2f} ms  "
                          f"{x['throughput_rps']:8.1f} req/s" + (f"  errors {x['errors']}: {x['first_error'][:80]}"
                                                                  if x["errors"] else ""), flush=True)
    print("\nratios (p50):")
    by = {(r["engine"], r["points"]): r for r in results["runs"]}
    for n in sizes:
        e, lo, li = by.get(("edge", n)), by.get(("local", n)), by.get(("llamaindex", n))
        for lvl in map(str, levels):
            parts = []
            if e and li:
                parts.append(f"edge hybrid retrieve ÷ LlamaIndex dense retrieve "
                             f"{e['retrieve'][lvl]['p50_ms'] / li['retrieve'][lvl]['p50_ms']:.2f}, ÷ its query "
                             f"{e['retrieve'][lvl]['p50_ms'] / li['query'][lvl]['p50_ms']:.2f}; search ÷ search "
                             f"{e['search'][lvl]['p50_ms'] / li['search'][lvl]['p50_ms']:.2f}")
            if e and lo:
                parts.append(f"edge ÷ local search {e['search'][lvl]['p50_ms'] / lo['search'][lvl]['p50_ms']:.3f}")
            if e and "answer" in e:
                parts.append(f"answer − retrieve {e['answer'][lvl]['p50_ms'] - e['retrieve'][lvl]['p50_ms']:.1f} ms"
                             + (f" (unit vectors warmed: "
                                f"{e['answer_warm'][lvl]['p50_ms'] - e['retrieve'][lvl]['p50_ms']:.1f} ms)"
                                if "answer_warm" in e else ""))
            if parts:
                print(f"  {n:>7} points, {lvl:>2} clients: " + "; ".join(parts))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
