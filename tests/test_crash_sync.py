"""Crash-safe sync: kill -9 a real `citedesk sync` subprocess at 20 random points, rerun, verify the index.

After the final complete run there must be 0 missing and 0 duplicate/stale chunks: every article's
points are exactly its expected chunks (one version, ids 0..n-1) and nothing else is in the collection;
the sync cursor is only ever written by a completed run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from citedesk.config.settings import Settings
from citedesk.connectors.folder import FolderConnector
from citedesk.core.types import Article
from citedesk.retrieval.store import point_id
from citedesk.serving.container import Container
from tests.conftest import AWS_DOCS

pytestmark = pytest.mark.slow

KILLS = 20


def run_sync(env: dict, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "citedesk.serving.cli", "sync", "--path", str(folder), "--json"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def mutate(folder: Path, rng: random.Random, pool: list[Path]) -> None:
    """Edit every article (some shrink, most grow), delete one and add one: every run rewrites all."""
    files = sorted(folder.glob("*.md"))
    for f in files:
        text = f.read_text()
        f.write_text(text[: len(text) * 2 // 3] if rng.random() < 0.3 else text + f"\n\nAddendum {rng.random()}.\n")
    if len(files) > 10:
        rng.choice(files).unlink()
    src = rng.choice(pool)
    shutil.copy(src, folder / f"{rng.randrange(10**6)}-{src.name}")


def test_kill_minus_9_at_random_points_then_rerun_leaves_a_consistent_index(tmp_path) -> None:
    rng = random.Random(20261123)
    pool = sorted(AWS_DOCS.glob("*/*.md"))
    folder = tmp_path / "kb"
    folder.mkdir()
    for src in rng.sample(pool, 30):
        shutil.copy(src, folder / src.name)
    data = tmp_path / "data"
    env = dict(os.environ, CITEDESK_DATA_DIR=str(data), CITEDESK_EMBEDDING__MODEL="hash:64",
               CITEDESK_QDRANT__WRITE_BATCH="4", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    state_file = data / "sync_state.json"

    t0 = time.monotonic()
    first = run_sync(env, folder)
    assert first.wait(300) == 0, first.stderr.read().decode()[-2000:]
    duration = time.monotonic() - t0
    noop = run_sync(env, folder)  # nothing changed: nothing is written
    assert noop.wait(300) == 0
    t0 = time.monotonic()
    bare = subprocess.run([sys.executable, "-m", "citedesk.serving.cli", "--help"], env=env, capture_output=True)
    assert bare.returncode == 0
    startup = time.monotonic() - t0  # interpreter and CLI start: the sync has not begun before this
    finished = json.loads(state_file.read_text())["default/folder"]["finished_at"]

    killed_mid_run = 0
    for _ in range(KILLS):
        mutate(folder, rng, pool)
        proc = run_sync(env, folder)
        time.sleep(rng.uniform(startup, max(duration * 0.9, startup * 1.5)))  # while it reads, cleans or writes
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        proc.wait(60)
        state = json.loads(state_file.read_text())  # never torn: written atomically
        if proc.returncode == -signal.SIGKILL:
            assert state["default/folder"]["finished_at"] >= finished
        finished = state["default/folder"]["finished_at"]
    assert killed_mid_run >= KILLS // 2, "most kills must land while the sync runs"

    final = run_sync(env, folder)
    assert final.wait(300) == 0, final.stderr.read().decode()[-2000:]

    c = Container(Settings(data_dir=data, embedding={"model": "hash:64"}))
    try:
        expected = {}
        for art in FolderConnector(folder).list_articles():
            assert isinstance(art, Article)
            doc = c.sync_engine.pipeline.prepare(art)
            expected[art.doc_key] = doc
        manifest = c.index.manifest("default", "folder")
        assert set(manifest) == set(expected), "deleted articles left points, or articles are missing"
        total = 0
        for key, doc in expected.items():
            points = c.index.doc_points("default", key)
            assert [p["id"] for p in points] == [point_id(key, i) for i in range(len(doc.chunks))], key
            assert {p["version"] for p in points} == {doc.version}, f"stale chunks in {key}"
            assert [p["text"] for p in points] == [ch.text for ch in doc.chunks]
            total += len(doc.chunks)
        assert c.index.count("default") == total
    finally:
        c.index.close()
