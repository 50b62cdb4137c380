"""Retrieval: hybrid search (dense + BM25, RRF), optional rerank, and answer confidence."""
