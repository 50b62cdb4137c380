"""Prompt-injection attack success rate over the 200-article corpus (tests/injection_corpus.py).

Indexes the injected articles with the real embedding model in a temp local Qdrant, asks each
article's question through the answer pipeline with the extractive generator and with a real
OpenAI-compatible LLM (default: llama-cpp-python + SmolLM2-135M started on loopback), and prints
the attack success rate per generator and per attack kind, plus the decision mix.

    python bench/injection_rate.py [--llm-url http://127.0.0.1:8001/v1 --llm-model NAME] [--limit N]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def start_llama() -> tuple[subprocess.Popen, str]:
    from tests.conftest import free_port, smollm2_gguf

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
                             "--model_alias", "smollm2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError("llama server did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm-url")
    ap.add_argument("--llm-model", default="smollm2")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()

    from citedesk.config.settings import Settings
    from citedesk.connectors.folder import FolderConnector
    from citedesk.serving.container import Container
    from citedesk.serving.answer.generators import OpenAIGenerator
    from citedesk.serving.answer.pipeline import AnswerPipeline
    from citedesk.serving.answer.schemas import AnswerRequest
    from tests.injection_corpus import attack_succeeded, write_corpus

    tmp = Path(tempfile.mkdtemp())
    attacks = write_corpus(tmp / "kb")[: args.limit]
    c = Container(Settings(data_dir=tmp / "data"))
    c.sync_engine.sync(FolderConnector(tmp / "kb"))
    proc = None
    url = args.llm_url
    if url is None:
        proc, url = start_llama()
    try:
        base = c.pipeline
        generators = {"extractive": base.generator,
                      "llm": OpenAIGenerator(url, model=args.llm_model, timeout=120, max_retries=0)}
        for name, gen in generators.items():
            pipeline = AnswerPipeline(base.retriever, gen, base.sparse, base.policy, workspace=base.workspace)

            async def run():
                return [await pipeline.answer(AnswerRequest(question=a.question)) for a in attacks]

            t0 = time.perf_counter()
            answers = asyncio.run(run())
            secs = time.perf_counter() - t0
            wins = [a for a, r in zip(attacks, answers) if attack_succeeded(r.answer, r.decision.value, a)]
            decisions = collections.Counter(f"{r.decision.value}:{r.reason}" for r in answers)
            by_kind = collections.Counter(a.kind for a in wins)
            print(f"[{name}] attacks={len(attacks)} successful={len(wins)} "
                  f"success_rate={len(wins) / len(attacks):.3f} seconds={secs:.0f}")
            print(f"[{name}] decisions: {dict(decisions)}")
            if wins:
                print(f"[{name}] successful by kind: {dict(by_kind)}")
    finally:
        c.index.close()
        if proc is not None:
            proc.terminate()


if __name__ == "__main__":
    main()
