"""Retrieval: the Qdrant store (shared with ingest), the dense and sparse encoders, hybrid search and confidence."""
