"""Encoders of chunks and queries: dense (sentence-transformers), sparse (BM25) and a model-free hashing embedder."""
