"""What is embedded for a chunk (the same text for dense, sparse and rerank inputs)."""

from __future__ import annotations


def embed_text(title: str, heading: str, text: str) -> str:
    """Text that is embedded for a chunk: title and heading path give context to short chunks."""
    head = heading if heading and heading != title else ""
    return "\n".join(part for part in (title, head, text) if part)
