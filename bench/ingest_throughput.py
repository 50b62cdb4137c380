"""Ingest throughput: citedesk's sync vs raw ``SentenceTransformer.encode`` vs a LlamaIndex IngestionPipeline.

All three run in one process on the same articles (the first ``--limit`` pages of ``--docs``) with the
same embedding model, device and batch size; model loading is excluded from every timing.

1. citedesk: ``SyncEngine.sync`` into a fresh local Qdrant (clean → heading-aware chunk → dense + BM25
   embedding → upsert). Reports articles/s, chunks/s, the seconds spent inside the model's ``encode``
   and the share of wall time outside it (cleaning, chunking, BM25, Qdrant writes).
2. raw encode: the same backend's encoder on exactly the texts citedesk embedded, in one call
   (``SentenceTransformer.encode`` for torch, the onnxruntime runner for ``--backend onnx``; sentences/s) — the
   ceiling for any pipeline on this hardware.
3. LlamaIndex: ``IngestionPipeline([SentenceSplitter(chunk_size, overlap), HuggingFaceEmbedding])`` into
   an in-memory ``QdrantVectorStore``, over the same articles' clean text.

    python bench/ingest_throughput.py --docs data/aws-docs --limit 50
    python bench/ingest_throughput.py --docs data/aws-docs --limit 300 --device cuda   # GPU machine

Prints a table, the ratios, and optionally ``--json`` results. Peak RSS is the process's (all three).

Measured 2026-11-26 on 2 CPU cores, ``--limit 100 --backend onnx``: sync 3.13 articles/s, 0.92× raw encode (5.3 %
of its time outside encode), 1.15× LlamaIndex's articles/s (LlamaIndex 0.67× raw encode: both are encode-bound).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class ListConnector:
    """A connector over a fixed list of articles (the benchmark corpus)."""

    name = "folder"

    def __init__(self, articles, workspace: str = "default") -> None:
        self.articles = articles
        self.workspace = workspace

    def list_articles(self):
        yield from self.articles

    def fetch_article(self, article_id: str):
        return [a for a in self.articles if a.article_id == article_id]


def load_articles(docs: Path, limit: int):
    from citedesk.connectors.folder import FolderConnector
    from citedesk.core.types import Article

    articles = sorted((a for a in FolderConnector(docs).list_articles() if isinstance(a, Article)),
                      key=lambda a: a.article_id)
    return articles[:limit]


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=Path, default=Path("data/aws-docs"))
    ap.add_argument("--limit", type=int, default=50, help="articles")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--backend", default="torch", help="embedding.backend: torch | onnx | onnx-int8 (sync and raw "
                                                     "encode use the same one; fp16 on CUDA with torch)")
    ap.add_argument("--model", default=None, help="embedding model setting (default: citedesk's)")
    ap.add_argument("--skip-llamaindex", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    args = ap.parse_args()

    from citedesk.config.settings import DEFAULT_EMBEDDING_MODEL, Settings
    from citedesk.retrieval.embedding.inputs import embed_text
    from citedesk.serving.container import Container

    model = args.model or DEFAULT_EMBEDDING_MODEL
    articles = load_articles(args.docs, args.limit)
    if not articles:
        sys.exit(f"no articles under {args.docs}")
    results: dict = {"articles": len(articles), "device_setting": args.device, "batch_size": args.batch_size,
                     "model": model, "backend": args.backend}

    with tempfile.TemporaryDirectory(prefix="citedesk-bench-") as tmp:
        c = Container(Settings(data_dir=Path(tmp), embedding={"model": model, "device": args.device,
                                                              "batch_size": args.batch_size, "backend": args.backend}))
        emb = c.embedder
        c.sync_engine.warm_up()  # model, splitter, tokenizer, parsers: loading is outside every timing
        results["device"] = emb.device
        emb.embed(["warm up"] * 4)
        encode_s = [0.0]
        encoded = [0]
        orig = emb.embed

        def timed_embed(texts):
            t = time.perf_counter()
            out = orig(texts)
            encode_s[0] += time.perf_counter() - t
            encoded[0] += len(texts)
            return out

        emb.embed = timed_embed  # measure time inside encode during the sync
        report = c.sync_engine.sync(ListConnector(articles))
        emb.embed = orig
        if not report.ok:
            sys.exit(f"sync failed: {report.failed[:3]} {report.listing_error}")
        results["citedesk"] = {
            "seconds": report.seconds, "chunks": report.chunks_written,
            "articles_per_s": report.articles_per_s, "chunks_per_s": report.chunks_per_s,
            "encode_seconds": encode_s[0], "sentences_per_s_in_encode": encoded[0] / encode_s[0],
            "share_outside_encode": 1 - encode_s[0] / report.seconds,
        }
        # the exact texts the sync embedded
        texts = [embed_text(a.title, ch.heading, ch.text) for a in articles
                 for ch in c.sync_engine.pipeline.prepare(a).chunks]
        c.index.close()

        t = time.perf_counter()
        if args.backend == "torch":  # the underlying SentenceTransformer
            emb.model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                             show_progress_bar=False)
        else:  # the onnxruntime runner itself, all texts in one call
            emb.embed(texts)
        raw_s = time.perf_counter() - t
        results["raw_encode"] = {"seconds": raw_s, "sentences": len(texts), "sentences_per_s": len(texts) / raw_s}

    if not args.skip_llamaindex:
        from citedesk.ingest.clean import to_clean_text
        from citedesk.serving.evaluation.baseline import BaselineDoc, LlamaIndexBaseline

        docs = [BaselineDoc(a.article_id, f"{a.title}\n{to_clean_text(a.body, a.body_format)}") for a in articles]
        base = LlamaIndexBaseline(model, device=args.device, batch_size=args.batch_size)
        base.warm_up()
        cs = Settings().chunking
        r = base.ingest(docs, chunk_size=cs.chunk_size, chunk_overlap=cs.chunk_overlap)
        base.close()
        results["llamaindex"] = {"seconds": r["seconds"], "chunks": r["nodes"],
                                 "articles_per_s": r["documents"] / r["seconds"], "chunks_per_s": r["nodes"] / r["seconds"]}
    results["peak_rss_mib"] = peak_rss_mib()

    cd, raw = results["citedesk"], results["raw_encode"]
    print(f"ingest throughput: {len(articles)} articles from {args.docs}, model {model}, backend {args.backend}, "
          f"device {results['device']}, batch {args.batch_size}")
    print(f"{'pipeline':<28}{'seconds':>9}{'chunks':>8}{'articles/s':>12}{'chunks/s':>10}")
    print(f"{'citedesk sync':<28}{cd['seconds']:>9.2f}{cd['chunks']:>8}{cd['articles_per_s']:>12.2f}{cd['chunks_per_s']:>10.2f}")
    print(f"{'raw encode (' + args.backend + ')':<28}{raw['seconds']:>9.2f}{raw['sentences']:>8}{'-':>12}{raw['sentences_per_s']:>10.2f}")
    if "llamaindex" in results:
        li = results["llamaindex"]
        print(f"{'LlamaIndex IngestionPipeline':<28}{li['seconds']:>9.2f}{li['chunks']:>8}{li['articles_per_s']:>12.2f}"
              f"{li['chunks_per_s']:>10.2f}")
    print(f"citedesk: {cd['encode_seconds']:.2f}s inside encode ({cd['sentences_per_s_in_encode']:.1f} sentences/s), "
          f"share of time outside encode {cd['share_outside_encode']:.1%}")
    results["ratios"] = {"citedesk_chunks_per_s_vs_raw_encode": cd["chunks_per_s"] / raw["sentences_per_s"]}
    print(f"ratio citedesk chunks/s ÷ raw encode sentences/s: {results['ratios']['citedesk_chunks_per_s_vs_raw_encode']:.2f}")
    if "llamaindex" in results:
        li = results["llamaindex"]
        results["ratios"]["citedesk_vs_llamaindex_articles_per_s"] = cd["articles_per_s"] / li["articles_per_s"]
        results["ratios"]["llamaindex_chunks_per_s_vs_raw_encode"] = li["chunks_per_s"] / raw["sentences_per_s"]
        print(f"ratio citedesk articles/s ÷ LlamaIndex articles/s: "
              f"{results['ratios']['citedesk_vs_llamaindex_articles_per_s']:.2f}; LlamaIndex chunks/s ÷ raw encode: "
              f"{results['ratios']['llamaindex_chunks_per_s_vs_raw_encode']:.2f}")
    print(f"peak RSS {results['peak_rss_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
