"""What recording every answer (the audit trail) costs, measured against no recording in the same run.

Syncs a few real AWS pages into a temporary local Qdrant (real embedding model, extractive generator),
then answers the same questions alternately through a pipeline without a recorder (baseline) and one
whose recorder is :meth:`citedesk.serving.audit.log.AuditLog.record` on SQLite in the same temporary folder. Prints
p50 / p95 answer latency (ms) for both, the ratio, the p50 / p95 of the record call itself, and the
list / detail (with revision check) / report query times over the recorded answers.

    python bench/audit_overhead.py                 # 60 answers each way
    python bench/audit_overhead.py --answers 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PAGES = ["amazon-dynamodb-developer-guide/CapacityUnitCalculations.md", "amazon-kendra-developer-guide/how-it-works.md",
         "aws-iotanalytics-developer-guide/limits.md", "amazon-sagemaker-developer-guide/inter-network-privacy.md"]
QUESTIONS = ["What is the size of a null attribute in DynamoDB?", "What is a source repository in Amazon Kendra?",
             "What is the minimum SQL data set refresh interval in AWS IoT?", "How do I bake a chocolate cake?",
             "My email is jane@example.com: how big is a number attribute in DynamoDB?"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answers", type=int, default=60, help="answers per variant")
    args = ap.parse_args()

    from citedesk.config.settings import Settings
    from citedesk.connectors.folder import FolderConnector
    from citedesk.serving.audit.filters import AuditFilter
    from citedesk.serving.container import Container
    from citedesk.serving.answer.pipeline import AnswerPipeline
    from citedesk.serving.answer.schemas import AnswerRequest

    with tempfile.TemporaryDirectory(prefix="citedesk-bench-audit-") as tmp:
        docs = Path(tmp) / "docs"
        for rel in PAGES:
            (docs / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / "data" / "aws-docs" / rel, docs / rel)
        c = Container(Settings(data_dir=Path(tmp) / "data"))
        c.sync_engine.sync(FolderConnector(docs, workspace="default"))
        c.pipeline.warm_up()
        audit = c.audit
        record_ms: list[float] = []

        def timed_record(request, response, evidence):
            t = time.perf_counter()
            audit.record(request, response, evidence)
            record_ms.append((time.perf_counter() - t) * 1000)

        p = c.pipeline
        plain = AnswerPipeline(p.retriever, p.generator, p.sparse, p.policy)
        recorded = AnswerPipeline(p.retriever, p.generator, p.sparse, p.policy, recorder=timed_record)
        audit.db.migrate()
        times: dict[str, list[float]] = {"baseline (no recorder)": [], "recorded (SQLite)": []}

        async def run() -> None:
            for i in range(args.answers):
                req = AnswerRequest(question=QUESTIONS[i % len(QUESTIONS)], conversation_id=f"bench-{i}")
                for name, pipe in (("baseline (no recorder)", plain), ("recorded (SQLite)", recorded)):
                    t = time.perf_counter()
                    await pipe.answer(req)
                    times[name].append((time.perf_counter() - t) * 1000)

        asyncio.run(run())
        base = statistics.median(times["baseline (no recorder)"])
        print(f"{args.answers} answers per variant, {len(QUESTIONS)} questions, 4 real AWS pages, extractive generator")
        print(f"{'variant':28s} {'p50 ms':>9s} {'p95 ms':>9s} {'p50 ratio':>10s}")
        for name, xs in times.items():
            print(f"{name:28s} {statistics.median(xs):9.1f} {pct(xs, 0.95):9.1f} {statistics.median(xs) / base:10.3f}")
        print(f"{'record() call alone':28s} {statistics.median(record_ms):9.1f} {pct(record_ms, 0.95):9.1f}")

        for label, fn in [
            ("list 50 newest", lambda: audit.list(AuditFilter(), limit=50)),
            ("list escalated + low conf.", lambda: audit.list(AuditFilter(decision="escalate", max_confidence=0.7))),
            ("detail + revision check", lambda: audit.get(audit.list(AuditFilter(decision="answer"), limit=1)[1][0]["id"])),
            ("escalation-rate report", lambda: audit.escalation_rate()),
            ("answers-by-article report", lambda: audit.answers_by_article()),
            ("changed-articles report", lambda: audit.changed_articles()),
            ("content-gaps report", lambda: audit.content_gaps()),
        ]:
            xs = []
            for _ in range(5):
                t = time.perf_counter()
                fn()
                xs.append((time.perf_counter() - t) * 1000)
            print(f"{label:28s} {statistics.median(xs):9.1f} ms (median of 5, {audit.list()[0]} records)")
        c.index.close()


if __name__ == "__main__":
    main()
