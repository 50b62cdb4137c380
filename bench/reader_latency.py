"""The cross-encoder reader's cost per answer: onnxruntime (the CPU default) against torch, in one process.

Each dev question's candidate units (the top ``--candidates`` of ``ExtractiveGenerator.rank``, as the reader check
scores them) are scored by both runners, alternating, ``--repeats`` times; it prints p50/p90 per answer, the
ratio, and the largest probability difference and argmax agreement between the two (the confidence weights were
fitted with torch's scores).

    python bench/reader_eval.py --data-dir .citedesk --dump DIR      # the candidate units (once)
    python bench/reader_latency.py --rows DIR/rows.json [--threads 2]

Measured 2026-11-26 on a 2-core machine, 60 questions × ≤12 units, 3 repeats, nothing else running: torch p50
311 ms (p90 450), onnx p50 250 ms (p90 350): 1.25×; largest probability difference 1.9e-06, the same best unit in
180 of 180. (A run beside a busy CI job gave 760 / 483 ms: 1.57×.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from citedesk.retrieval.embedding.dense import CrossEncoderReaderModel
    from citedesk.retrieval.embedding.onnx import OnnxCrossEncoderReaderModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=Path, required=True, help="rows.json of bench/reader_eval.py --dump")
    ap.add_argument("--model", default=str(ROOT / "data/models/reader-minilm"))
    ap.add_argument("--candidates", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: theirs)")
    args = ap.parse_args()

    by_q: dict[int, list[dict]] = {}
    for r in json.loads(args.rows.read_text()):
        by_q.setdefault(r["q"], []).append(r)
    sets = [(c[0]["question"], [r["text"] for r in c[: args.candidates]]) for c in by_q.values()]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    torch_reader = CrossEncoderReaderModel(args.model, device="cpu")
    onnx_reader = OnnxCrossEncoderReaderModel(args.model, cache_dir=Path(tempfile.mkdtemp()), threads=args.threads)
    runners = {"torch": torch_reader, "onnx": onnx_reader}
    for r in runners.values():
        r.warm_up()
        r.score_units(*sets[0])
    ms: dict[str, list[float]] = {k: [] for k in runners}
    diff, same = 0.0, 0
    for _ in range(args.repeats):
        for q, units in sets:
            got = {}
            for name, r in runners.items():
                t0 = time.perf_counter()
                got[name] = r.score_units(q, units)
                ms[name].append((time.perf_counter() - t0) * 1000)
            diff = max(diff, float(np.abs(got["torch"] - got["onnx"]).max()))
            same += int(got["torch"].argmax() == got["onnx"].argmax())

    def pct(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return xs[int(p * (len(xs) - 1))]

    for name, xs in ms.items():
        print(f"{name:6s} p50 {statistics.median(xs):7.1f} ms  p90 {pct(xs, 0.9):7.1f} ms  per answer "
              f"({len(sets)} questions × ≤{args.candidates} units, {args.repeats} repeats)")
    print(f"torch ÷ onnx, p50: {statistics.median(ms['torch']) / statistics.median(ms['onnx']):.2f}×")
    print(f"largest probability difference {diff:.1e}; same best unit {same}/{len(sets) * args.repeats}")


if __name__ == "__main__":
    main()
