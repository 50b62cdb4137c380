"""Capacity table from measured runs of ``bench/query_latency.py``: points per GB and expected latency per shard.

Reads the ``--json`` outputs of ``bench/query_latency.py`` (any number of files; runs of one engine at several
point counts) and prints, from what was measured:

- per point count: index RSS growth and folder size per point (bytes), HNSW search p50 and hybrid retrieve p50
  at 1 client (ms), upsert and optimize seconds;
- points per GB of RAM and of disk, from the bytes per point of the largest run (fixed costs weigh least there);
- search p50 at 1M and 10M points per shard, from a least-squares fit ``p50 = a + b·log10(points)`` over the
  measured sizes (HNSW search cost grows with the graph's depth, i.e. the log of the point count), and the
  retrieve p50 as that plus the measured non-search part of a retrieval (query embedding, BM25: the mean of
  ``retrieve − search`` over the runs).

Extrapolations hold for one shard on hardware like the one measured (the table says which), with the index in
RAM; they are estimates to size a cluster with, not promises.

    python bench/query_latency.py --sizes 3000,25000 --json a.json
    python bench/query_latency.py --sizes 250000 --llamaindex-max 25000 --local-max 0 --json b.json
    python bench/capacity.py a.json b.json [--engine edge]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def load_runs(paths: list[Path], engine: str) -> list[dict]:
    """The runs of ``engine`` in the files, one per point count (the last file wins), by point count."""
    by_n: dict[int, dict] = {}
    for p in paths:
        for r in json.loads(p.read_text())["runs"]:
            if r["engine"] == engine:
                by_n[int(r["points"])] = r
    return [by_n[n] for n in sorted(by_n)]


def fit_log(points: list[int], p50_ms: list[float]) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of ``p50 = a + b·log10(points)``; ``b = 0`` with a single size."""
    xs = [math.log10(n) for n in points]
    if len(xs) < 2:
        return (p50_ms[0], 0.0)
    mx, my = sum(xs) / len(xs), sum(p50_ms) / len(p50_ms)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, p50_ms)) / sum((x - mx) ** 2 for x in xs)
    return (my - b * mx, b)


def table(runs: list[dict]) -> dict:
    """The capacity figures (see module docstring) of one engine's runs, sorted by point count."""
    if not runs:
        raise ValueError("no runs of that engine in the files")
    sizes = [int(r["points"]) for r in runs]
    search = [r["search"]["1"]["p50_ms"] for r in runs]
    extra = [r["retrieve"]["1"]["p50_ms"] - r["search"]["1"]["p50_ms"] for r in runs if "retrieve" in r]
    a, b = fit_log(sizes, search)
    largest = runs[-1]
    ram_b = largest["rss_index_mib"] * 2**20 / largest["points"]
    disk_b = largest.get("disk_mib", float("nan")) * 2**20 / largest["points"]
    nonsearch = sum(extra) / len(extra) if extra else 0.0
    return {
        "rows": [{"points": int(r["points"]), "ram_bytes_per_point": r["rss_index_mib"] * 2**20 / r["points"],
                  "disk_bytes_per_point": r.get("disk_mib", float("nan")) * 2**20 / r["points"],
                  "search_p50_ms": r["search"]["1"]["p50_ms"],
                  "retrieve_p50_ms": r.get("retrieve", {}).get("1", {}).get("p50_ms", float("nan")),
                  "upsert_s": r["upsert_s"], "optimize_s": r["optimize_s"],
                  "peak_rss_mib": r.get("peak_rss_mib"), "recall_at_10": r.get("dense_recall_at_10")}
                 for r in runs],
        "points_per_gb_ram": 2**30 / ram_b, "points_per_gb_disk": 2**30 / disk_b,
        "fit": {"a_ms": a, "b_ms_per_decade": b},
        "nonsearch_ms": nonsearch,
        "expected": {n: {"search_p50_ms": a + b * math.log10(n), "retrieve_p50_ms": a + b * math.log10(n) + nonsearch,
                         "ram_gb": n * ram_b / 2**30, "disk_gb": n * disk_b / 2**30}
                     for n in (1_000_000, 10_000_000)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, help="bench/query_latency.py --json outputs")
    ap.add_argument("--engine", default="edge", choices=["edge", "local", "llamaindex"])
    args = ap.parse_args()
    t = table(load_runs(args.files, args.engine))
    print(f"capacity ({args.engine}, 1 client, measured on this machine):")
    print(f"{'points':>10} {'RAM B/pt':>9} {'disk B/pt':>10} {'search p50':>11} {'retrieve p50':>13} "
          f"{'upsert s':>9} {'optimize s':>11} {'recall@10':>10}")
    for r in t["rows"]:
        print(f"{r['points']:>10,} {r['ram_bytes_per_point']:>9,.0f} {r['disk_bytes_per_point']:>10,.0f} "
              f"{r['search_p50_ms']:>8.2f} ms {r['retrieve_p50_ms']:>10.2f} ms {r['upsert_s']:>9.1f} "
              f"{r['optimize_s']:>11.1f} {r['recall_at_10'] or float('nan'):>10.3f}")
    print(f"points per GB: RAM {t['points_per_gb_ram']:,.0f}, disk {t['points_per_gb_disk']:,.0f} "
          f"(largest run's bytes per point)")
    print(f"search p50 fit: {t['fit']['a_ms']:.2f} ms + {t['fit']['b_ms_per_decade']:.2f} ms per 10× points; "
          f"non-search part of a retrieval {t['nonsearch_ms']:.1f} ms")
    for n, e in t["expected"].items():
        print(f"expected per shard at {n:>12,} points: search p50 {e['search_p50_ms']:.1f} ms, retrieve p50 "
              f"{e['retrieve_p50_ms']:.1f} ms, RAM {e['ram_gb']:.1f} GB, disk {e['disk_gb']:.1f} GB")


if __name__ == "__main__":
    main()
