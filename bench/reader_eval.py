"""Held-out evaluation of the fine-tuned cross-encoder reader (``bench/train_reader.py``) for issue 11.

1. Unit selection: the dev questions' candidate units, exactly as ``ExtractiveGenerator.rank`` produces them
   (``bench/selection_fit.collect``, copied here to keep each unit's text), are labelled as there (a unit answers
   when it holds ≥ 80 % of the reference answer's words). The share of questions (among those with an answering
   candidate) whose top-ranked unit answers, ranked by (a) the reader's score alone, (b) the shipped weights with
   ``cosine`` replaced by the reader's probability, (c) the shipped score + w · reader probability, w picked by
   5-fold cross-validation grouped by question (held-out mean over 5 fold shuffles), next to the shipped weights.
2. Answerability (``--answerability``): the reader's max probability over the units of the top-3 evidence
   chunks (``rank``'s candidates) as a "the KB answers" signal, AUROC on the leave-gold-out cases of
   ``citedesk calibrate --gold-out``, next to the pipeline's confidence on the same cases.
3. Latency: reader scoring of one answer's candidates (up to 24 units), ms per answer.

    python bench/reader_eval.py --data-dir /tmp/idx2 --model data/models/reader-minilm \
        [--rows rows.json] [--answerability]
    python bench/reader_eval.py --data-dir /tmp/idx2 --dump DIR          # the texts, to score on another machine
    python bench/reader_eval.py --rows DIR/rows.json --scores S.json --answerability   # figures from those scores

Measured 2026-11-26 with ``data/models/reader-minilm`` (scores from the GPU run that chose the recipe; the shipped
weights differ by at most 0.006): 1,386 candidate units of 60 questions, 51 with an answering candidate; top-1
of the shipped ranking 0.863; (a) reader alone 0.549; (b) cosine := reader probability 0.784; (c) w by
cross-validation 0.863 (w = 0 in every fold). Answerability on the 120 leave-gold-out cases: the reader's best
probability 0.770 against the confidence's 0.843. The reader does not rank better than the ranking; whether it
agrees with it is what separates answerable from not (``bench/answerability_fit.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent

from selection_fit import top1  # noqa: E402  (bench/ is on the path when this script runs)


def _container(data_dir: Path):
    from citedesk.config.settings import Settings
    from citedesk.serving.container import Container

    c = Container(Settings(data_dir=data_dir))
    gen = c.generator if hasattr(c.generator, "rank") else None
    if gen is None:
        from citedesk.serving.answer.generators import ExtractiveGenerator

        gen = ExtractiveGenerator(c.embedder, c.sparse)
    return c, gen


def collect(data_dir: Path, csv_path: Path, min_recall: float) -> list[dict]:
    """``bench/selection_fit.collect``'s rows (one per candidate unit, labelled), each unit's text as ``text``."""
    from selection_fit import collect as candidate_rows  # bench/ is on the path when this script runs

    return [{**r, "text": r.pop("unit")} for r in candidate_rows(data_dir, csv_path, min_recall)]


def load_reader(path: Path, threads: int):
    import torch
    from sentence_transformers import CrossEncoder

    torch.set_num_threads(threads)
    return CrossEncoder(str(path), max_length=128, activation_fn=torch.nn.Identity(),
                        model_kwargs={"dtype": torch.float32})  # stored as float16


def logits(reader, pairs: list[tuple[str, str]], batch: int = 32) -> np.ndarray:
    return np.asarray(reader.predict(pairs, batch_size=batch, show_progress_bar=False), dtype=float).ravel()


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def selection(rows: list[dict], folds: int, seeds: int) -> dict:
    from citedesk.retrieval.selection import SelectionModel

    shipped = SelectionModel()
    qs = sorted({r["q"] for r in rows})
    out = {}
    for r in rows:
        r["shipped"] = shipped.score(r["features"])
        r["swapped"] = shipped.score({**r["features"], "cosine": r["prob"]})
    all_q = set(qs)
    for name, key in (("shipped weights", "shipped"), ("(a) reader alone", "logit"),
                      ("(b) shipped, cosine := reader prob", "swapped")):
        h, t = top1(rows, all_q, lambda r, k=key: r[k])
        out[name] = {"top1": h / t, "hit": h, "of": t}
    grid = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]
    in_sample = {}
    for w in grid:
        h, t = top1(rows, all_q, lambda r, w=w: r["shipped"] + w * r["prob"])
        in_sample[w] = h / t
    out["(c) in-sample top-1 by w (not held out)"] = in_sample
    held, picks = [], []
    for seed in range(seeds):
        order = list(qs)
        random.Random(seed).shuffle(order)
        fold_of = {q: i % folds for i, q in enumerate(order)}
        hit = tot = 0
        for f in range(folds):
            test_q = {q for q in qs if fold_of[q] == f}
            train_q = all_q - test_q
            scores = []
            for w in grid:
                h, t = top1(rows, train_q, lambda r, w=w: r["shipped"] + w * r["prob"])
                scores.append(h / t if t else 0.0)
            best = max(scores)
            w = next(w for w, s in zip(grid, scores) if s == best)  # smallest w among the best
            picks.append(w)
            h, t = top1(rows, test_q, lambda r, w=w: r["shipped"] + w * r["prob"])
            hit += h
            tot += t
        held.append(hit / tot)
    out["(c) shipped + w*reader prob, w by 5-fold CV (held out)"] = {
        "top1_mean": float(np.mean(held)), "top1_std": float(np.std(held)), "per_shuffle": held,
        "w_picked": picks}
    return out


def answerability_cases(data_dir: Path, csv_path: Path, top_chunks: int) -> list[dict]:
    """The leave-gold-out cases of ``citedesk calibrate --gold-out``: question, answerable, the pipeline's
    confidence, and the texts of ``rank``'s candidate units over the top ``top_chunks`` hits."""
    from citedesk.retrieval.store import SearchFilter
    from citedesk.serving.evaluation.calibration import calibration_questions
    from citedesk.serving.evaluation.qa import GoldOut

    answerable_anyway = GoldOut.load(ROOT / "data/eval/gold-out-answerable.csv").answerable
    cases = calibration_questions(csv_path, None, 0, 13, gold_out=True, gold_out_answerable=answerable_anyway)
    c, gen = _container(data_dir)
    conf_model = c.pipeline.confidence
    out = []
    try:
        for case in cases:
            flt = SearchFilter(workspace=c.settings.workspace, exclude_article_ids=case.exclude)
            hits = c.retriever.retrieve(case.question, flt, top_k=c.settings.retrieval.top_k).hits
            conf = float(conf_model.score(conf_model.features(case.question, hits, c.sparse)))
            ranked = gen.rank(case.question, hits[:top_chunks])
            out.append({"question": case.question, "gold_out": bool(case.exclude), "answerable": case.answerable,
                        "confidence": conf, "texts": [f"{m.unit.context} {m.unit.text}".strip()
                                                      for m, _, _ in ranked]})
    finally:
        c.index.close()
    return out


def answerability_from(cases: list[dict], probs: list[list[float]]) -> dict:
    """AUROC of the reader's max probability per case against ``answerable``, next to the confidence."""
    from citedesk.serving.evaluation.calibration import auroc

    labels = [c["answerable"] for c in cases]
    conf = [c["confidence"] for c in cases]
    rmax = [max(p) if p else 0.0 for p in probs]
    return {"cases": len(cases), "answerable": sum(labels), "auroc_confidence": auroc(conf, labels),
            "auroc_reader_max": auroc(rmax, labels),
            "auroc_mean_of_both": auroc([(a + b) / 2 for a, b in zip(conf, rmax)], labels),
            "per_case": [{"question": c["question"], "gold_out": c["gold_out"], "answerable": c["answerable"],
                          "confidence": c["confidence"], "reader_max": m} for c, m in zip(cases, rmax)]}


def answerability(data_dir: Path, csv_path: Path, reader, top_chunks: int) -> dict:
    """:func:`answerability_from` with ``reader`` (a loaded CrossEncoder) scoring :func:`answerability_cases`."""
    cases = answerability_cases(data_dir, csv_path, top_chunks)
    probs = [list(sigmoid(logits(reader, [(c["question"], t) for t in c["texts"]]))) if c["texts"] else []
             for c in cases]
    return answerability_from(cases, probs)


def latency(rows: list[dict], reader, repeats: int) -> dict:
    by_q: dict[int, list[dict]] = {}
    for r in rows:
        by_q.setdefault(r["q"], []).append(r)
    logits(reader, [(rows[0]["question"], rows[0]["text"])])  # warm
    ms, sizes = [], []
    for _ in range(repeats):
        for cands in by_q.values():
            t0 = time.perf_counter()
            logits(reader, [(r["question"], r["text"]) for r in cands], batch=32)
            ms.append((time.perf_counter() - t0) * 1000)
            sizes.append(len(cands))
    ms.sort()
    return {"answers_timed": len(ms), "mean_candidates": float(np.mean(sizes)), "median_ms": statistics.median(ms),
            "p90_ms": ms[int(0.9 * (len(ms) - 1))], "mean_ms": float(np.mean(ms))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/idx2"))
    ap.add_argument("--csv", type=Path, default=ROOT / "data/aws-docs-qa-dev.csv")
    ap.add_argument("--model", type=Path, default=ROOT / "data/models/reader-minilm")
    ap.add_argument("--rows", type=Path, help="candidate rows cache (written if missing)")
    ap.add_argument("--dump", type=Path, help="write rows.json and lgo.json (the texts to score) here and stop")
    ap.add_argument("--scores", type=Path, help="logits scored elsewhere ({'rows': [...], 'lgo': [[...]]}, in "
                                                "the order of --dump's files) instead of --model")
    ap.add_argument("--min-recall", type=float, default=0.8)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--answerability", action="store_true")
    ap.add_argument("--top-chunks", type=int, default=3)
    ap.add_argument("--latency-repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, help="write the figures (JSON) here")
    args = ap.parse_args()

    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        rows = collect(args.data_dir, args.csv, args.min_recall)
        (args.dump / "rows.json").write_text(json.dumps(rows))
        cases = answerability_cases(args.data_dir, args.csv, args.top_chunks)
        (args.dump / "lgo.json").write_text(json.dumps(cases))
        print(f"{len(rows)} candidate units, {len(cases)} leave-gold-out cases written to {args.dump}")
        return
    if args.rows and args.rows.is_file():
        rows = json.loads(args.rows.read_text())
    else:
        rows = collect(args.data_dir, args.csv, args.min_recall)
        if args.rows:
            args.rows.write_text(json.dumps(rows))
    print(f"{len({r['q'] for r in rows})} questions, {len(rows)} candidate units, "
          f"{len({r['q'] for r in rows if r['label']})} questions with an answering candidate", flush=True)
    scored = json.loads(args.scores.read_text()) if args.scores else None
    reader = None if scored else load_reader(args.model, args.threads)
    lg = scored["rows"] if scored else logits(reader, [(r["question"], r["text"]) for r in rows])
    for r, x in zip(rows, lg):
        r["logit"], r["prob"] = float(x), float(sigmoid(x))
    report = {"model": str(args.scores or args.model), "selection": selection(rows, args.folds, args.seeds)}
    print(json.dumps(report["selection"], indent=1), flush=True)
    if reader is not None:
        report["latency"] = latency(rows, reader, args.latency_repeats)
        print(json.dumps(report["latency"]), flush=True)
    if args.answerability:
        if scored:
            cases = json.loads((args.rows.parent / "lgo.json").read_text())
            a = answerability_from(cases, [list(sigmoid(x)) if len(x) else [] for x in scored["lgo"]])
        else:
            a = answerability(args.data_dir, args.csv, reader, args.top_chunks)
        report["answerability"] = a
        print(json.dumps({k: v for k, v in a.items() if k != "per_case"}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
