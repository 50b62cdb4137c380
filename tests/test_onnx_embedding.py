"""The onnx embedding backend: exported once from the local model files, cached, and giving torch's vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from citedesk.config.settings import DEFAULT_EMBEDDING_MODEL, Settings
from citedesk.retrieval.embedding.dense import nvidia_driver_present
from citedesk.retrieval.embedding.onnx import OnnxEmbedder
from citedesk.serving.container import Container

pytestmark = pytest.mark.slow

AWS_DOCS = Path(__file__).resolve().parents[1] / "data" / "aws-docs"


def texts() -> list[str]:
    pages = [p.read_text(encoding="utf-8")[:1200] for p in sorted(AWS_DOCS.glob("*/*.md"))[::20]]
    return pages + ["What is the size of a null attribute in DynamoDB?", "refund", ""]


def test_onnx_export_matches_torch_and_int8_stays_close(tmp_path, embedder) -> None:
    ref = embedder.embed(texts())
    fp32 = OnnxEmbedder(DEFAULT_EMBEDDING_MODEL, cache_dir=tmp_path, batch_size=4)
    got = fp32.embed(texts())
    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert (got * ref).sum(1).min() > 0.9999, "fp32 export must reproduce torch's vectors"
    assert fp32.model_name == embedder.model_name, "same vectors: an index built with torch stays valid"
    assert np.allclose(fp32.embed_query(texts()[-3]), got[-3], atol=1e-5)
    exports = list(tmp_path.rglob("model.onnx"))
    assert len(exports) == 1

    runs: list[tuple[int, int]] = []
    bucketed = OnnxEmbedder(DEFAULT_EMBEDDING_MODEL, cache_dir=tmp_path, batch_size=64, batch_tokens=512)
    bucketed.warm_up()
    run = bucketed._run
    bucketed._run = lambda enc: (runs.append((len(enc), max(len(e.ids) for e in enc))), run(enc))[1]
    assert np.allclose(bucketed.embed(texts()), got, atol=1e-5), "batching must not change a text's vector"
    assert all(n * width <= 512 or n == 1 for n, width in runs), runs
    assert min(w for _, w in runs) < 32 < max(w for _, w in runs), "short texts are not padded to the longest"

    int8 = OnnxEmbedder(DEFAULT_EMBEDDING_MODEL, cache_dir=tmp_path, quantize=True)
    q = int8.embed(texts())
    assert (q * ref).sum(1)[:-1].min() > 0.98  # real texts (the empty string drifts most: 0.97)
    assert int8.model_name != embedder.model_name, "other vectors: the sync must re-embed"
    assert list(tmp_path.rglob("model.onnx")) == exports, "the fp32 export is reused, not redone"


@pytest.mark.skipif(nvidia_driver_present(), reason="auto picks torch where an NVIDIA driver is present")
def test_auto_backend_picks_onnx_on_a_cpu_only_machine(tmp_path) -> None:
    c = Container(Settings(data_dir=tmp_path))
    assert isinstance(c.embedder, OnnxEmbedder)
    torch_c = Container(Settings(data_dir=tmp_path, embedding={"backend": "torch"}))
    assert type(torch_c.embedder).__name__ == "SentenceEmbedder"
