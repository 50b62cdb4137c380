"""Qdrant engines behind the QdrantIndex front: qdrant-edge (embedded), qdrant-client (local mode, server)."""
