"""Comparison baseline, not a product path: a plain LlamaIndex RAG pipeline.

``VectorStoreIndex`` over a ``QdrantVectorStore`` (a local in-process ``QdrantClient``, its own
collection) with ``HuggingFaceEmbedding`` of the same sentence-transformers model citedesk uses. It is
what "the usual stack" does, run in the same process as citedesk's own pipeline by ``citedesk eval
retrieval --llamaindex`` and by ``bench/ingest_throughput.py`` / ``bench/query_latency.py``.

This module is the single adapter for the baseline's SDKs (``llama_index.core`` indexes and ingestion,
``llama-index-vector-stores-qdrant``, ``llama-index-embeddings-huggingface``) and, for the baseline's own
in-memory store only, ``qdrant_client``. Product code never imports it; the ``eval`` extra installs them
(``pip install -e .[eval]``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from citedesk.core.errors import CitedeskError
from citedesk.core.types import Article
from citedesk.retrieval.embedding.dense import pick_device, resolve_model_path
from citedesk.serving.evaluation.retrieval import evaluate_ranker


@dataclass
class BaselineDoc:
    """Text to index: ``article_id`` travels in node metadata so hits map back to documents."""

    article_id: str
    text: str


class LlamaIndexBaseline:
    """LlamaIndex ``VectorStoreIndex`` + Qdrant + HuggingFace embedding of a sentence-transformers model.

    Args:
        model: embedding model setting (``package:...``, a path or a hub name; see
            :func:`citedesk.retrieval.embedding.dense.resolve_model_path`).
        device: ``auto`` | ``cpu`` | ``cuda`` ...
        batch_size: texts per embedding call (LlamaIndex ``embed_batch_size``).
        collection: Qdrant collection name in the in-memory client.

    Models load in :meth:`warm_up`; nothing is imported before.
    """

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 64,
                 collection: str = "llamaindex_baseline") -> None:
        self.model = model
        self.device_setting = device
        self.batch_size = batch_size
        self.collection = collection
        self._embed = None
        self._client = None
        self._index = None

    def warm_up(self) -> None:
        """Load the embedding model and open an in-memory Qdrant client (idempotent)."""
        if self._embed is not None:
            return
        path = resolve_model_path(self.model)
        if os.path.exists(path):
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from qdrant_client import QdrantClient

        self._embed = HuggingFaceEmbedding(model_name=path, device=pick_device(self.device_setting),
                                           embed_batch_size=self.batch_size, normalize=True)
        self._client = QdrantClient(location=":memory:")

    def _store(self):
        """A fresh vector store (any earlier collection of this baseline is dropped)."""
        from llama_index.vector_stores.qdrant import QdrantVectorStore

        if self._client.collection_exists(self.collection):
            self._client.delete_collection(self.collection)
        return QdrantVectorStore(collection_name=self.collection, client=self._client,
                                 batch_size=self.batch_size)

    def build(self, chunks: list[BaselineDoc], embeddings=None) -> float:
        """Index ready-made chunks (one node each, embedded by LlamaIndex) into ``VectorStoreIndex``.

        Args:
            chunks: texts to index.
            embeddings: optional float32 (len(chunks), dim) ready-made vectors (LlamaIndex then embeds nothing;
                the query benchmark's duplicated corpora).

        Returns:
            Seconds of wall time (embedding + writes).
        """
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.core.schema import TextNode

        self.warm_up()
        t = time.perf_counter()
        nodes = [TextNode(text=c.text, metadata={"article_id": c.article_id},
                          excluded_embed_metadata_keys=["article_id"], excluded_llm_metadata_keys=["article_id"],
                          embedding=None if embeddings is None else [float(x) for x in embeddings[i]])
                 for i, c in enumerate(chunks)]
        storage = StorageContext.from_defaults(vector_store=self._store())
        self._index = VectorStoreIndex(nodes, storage_context=storage, embed_model=self._embed,
                                       insert_batch_size=max(self.batch_size, 256))
        return time.perf_counter() - t

    def ingest(self, documents: list[BaselineDoc], *, chunk_size: int = 256, chunk_overlap: int = 32) -> dict:
        """LlamaIndex ``IngestionPipeline``: ``SentenceSplitter`` → embedding → Qdrant, over whole documents.

        Returns:
            ``documents``, ``nodes`` (chunks written), ``seconds`` (wall time).
        """
        from llama_index.core import Document, VectorStoreIndex
        from llama_index.core.ingestion import IngestionPipeline
        from llama_index.core.node_parser import SentenceSplitter

        self.warm_up()
        t = time.perf_counter()
        store = self._store()
        pipeline = IngestionPipeline(
            transformations=[SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap), self._embed],
            vector_store=store)
        docs = [Document(text=d.text, metadata={"article_id": d.article_id},
                         excluded_embed_metadata_keys=["article_id"], excluded_llm_metadata_keys=["article_id"])
                for d in documents]
        nodes = pipeline.run(documents=docs)
        seconds = time.perf_counter() - t
        self._index = VectorStoreIndex.from_vector_store(store, embed_model=self._embed)
        return {"documents": len(docs), "nodes": len(nodes), "seconds": seconds}

    def _require_index(self):
        if self._index is None:
            raise RuntimeError("LlamaIndex baseline has no index: call build() or ingest() first")
        return self._index

    def retrieve(self, query: str, top_k: int = 5) -> list[tuple[str, float]]:
        """Top ``top_k`` nodes for ``query`` as (article_id, cosine score), best first."""
        retriever = self._require_index().as_retriever(similarity_top_k=top_k)
        return [(n.node.metadata.get("article_id", ""), float(n.score or 0.0)) for n in retriever.retrieve(query)]

    def retrieve_by_vector(self, vector, top_k: int = 5) -> list[str]:
        """Top ``top_k`` node ids for a ready-made query vector: the vector store's own query, no embedding."""
        from llama_index.core.vector_stores.types import VectorStoreQuery

        store = self._require_index().vector_store
        return store.query(VectorStoreQuery(query_embedding=[float(x) for x in vector], similarity_top_k=top_k)).ids

    def query(self, query: str, top_k: int = 5) -> list[str]:
        """LlamaIndex's query engine (``response_mode="no_text"``: no LLM synthesis, as an extractive
        comparison) → the source nodes' texts, best first."""
        from llama_index.core import Settings as LlamaSettings
        from llama_index.core.llms import MockLLM

        # the no_text synthesizer never calls its LLM, but resolves LlamaIndex's global default (OpenAI) when
        # none is set (a falsy MockLLM passed as llm= is ignored): set an offline one once
        LlamaSettings.llm = MockLLM()
        engine = self._require_index().as_query_engine(similarity_top_k=top_k, response_mode="no_text")
        return [n.node.get_content() for n in engine.query(query).source_nodes]

    def close(self) -> None:
        """Drop the index and the in-memory store."""
        self._index = None
        if self._client is not None:
            self._client.close()
            self._client = None
        self._embed = None


def corpus_chunks(pipeline, articles) -> tuple[list[BaselineDoc], list[BaselineDoc]]:
    """Citedesk's own chunks of ``articles`` (clean → heading-aware chunk, no embedding) as baseline input.

    Args:
        pipeline: :class:`citedesk.ingest.sync.IngestPipeline`.
        articles: :class:`citedesk.core.types.Article` items.

    Returns:
        (chunks — the exact texts citedesk embeds, one per chunk; documents — each article's clean text).
    """
    from citedesk.retrieval.embedding.inputs import embed_text

    chunks, docs = [], []
    for a in articles:
        prepared = pipeline.prepare(a)
        chunks += [BaselineDoc(a.article_id, embed_text(a.title, c.heading, c.text)) for c in prepared.chunks]
        docs.append(BaselineDoc(a.article_id, f"{a.title}\n{pipeline.clean(a)}"))
    return chunks, docs


def llamaindex_row(c, folder: Path | None, questions: list[dict], chunks: int,
                   progress: Callable[[str], None] = lambda _: None) -> dict:
    """The LlamaIndex baseline row of the retrieval eval: its VectorStoreIndex over citedesk's chunks of ``folder``.

    Args:
        c: the composition root (folder connector, ingest pipeline, embedding settings).
        folder: the article folder.
        questions: rows of :func:`~citedesk.serving.evaluation.retrieval.load_questions`.
        chunks: chunks retrieved per question before reduction to articles.
        progress: called with a line when the baseline index is built.

    Raises:
        CitedeskError: no folder.
    """
    if folder is None:
        raise CitedeskError("--llamaindex needs the article folder: pass --docs (or set folder.path)")
    articles = [a for a in c.folder_connector(folder).list_articles() if isinstance(a, Article)]
    texts, _ = corpus_chunks(c.sync_engine.pipeline, articles)
    e = c.settings.embedding
    baseline = LlamaIndexBaseline(e.model, device=e.device, batch_size=e.batch_size)
    try:
        seconds = baseline.build(texts)
        progress(f"LlamaIndex baseline: {len(texts)} chunks of {len(articles)} articles embedded in {seconds:.1f}s")
        row = evaluate_ranker("llamaindex", lambda q: [a for a, _ in baseline.retrieve(q, chunks)], questions)
    finally:
        baseline.close()
    row["note"] = (f"LlamaIndex VectorStoreIndex + QdrantVectorStore (in-memory) + HuggingFaceEmbedding "
                   f"({e.model}), dense top {chunks}, same {len(texts)} chunks")
    return row
