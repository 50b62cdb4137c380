"""IBM MT-RAG conversations as an evaluation set: loading, seeded sampling, and their passages as a source."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from citedesk.core.types import Article, Turn

ANSWERABLE_LABELS = frozenset({"ANSWERABLE", "PARTIAL"})
"""MT-RAG answerability labels counted as answerable; UNANSWERABLE and UNDERSPECIFIED should escalate."""


@dataclass
class Conversation:
    """One MT-RAG task: the last user turn to answer, its history and gold passages.

    Attributes:
        label: MT-RAG answerability label (ANSWERABLE, PARTIAL, UNANSWERABLE, UNDERSPECIFIED).
        contexts: gold passages as (document_id, text).
    """

    conversation_id: str
    collection: str
    label: str
    question: str
    history: list[Turn]
    contexts: list[tuple[str, str]]

    @property
    def answerable(self) -> bool:
        """True for labels in :data:`ANSWERABLE_LABELS`."""
        return self.label in ANSWERABLE_LABELS


def load_mtrag(path: Path) -> list[Conversation]:
    """Conversations of an MT-RAG ``reference.jsonl`` (tasks whose last turn is the user's).

    Raises:
        FileNotFoundError: no such file. ValueError: no usable conversation.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MT-RAG file not found: {path}")
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            turns = row.get("input") or []
            if not turns or turns[-1].get("speaker") != "user" or not turns[-1].get("text", "").strip():
                continue
            history = [Turn(role="user" if t["speaker"] == "user" else "agent", text=t["text"][:8000])
                       for t in turns[:-1]]
            out.append(Conversation(
                conversation_id=row.get("task_id") or row["conversation_id"], collection=row.get("Collection", ""),
                label=(row.get("answerability") or ["UNKNOWN"])[0], question=turns[-1]["text"].strip()[:2000],
                history=history[-50:],
                contexts=[(c["document_id"], c["text"]) for c in row.get("contexts") or [] if c.get("text")]))
    if not out:
        raise ValueError(f"{path}: no conversation ending with a user turn")
    return out


def sample_conversations(conversations: list[Conversation], limit: int | None, *, seed: int = 13) -> list[Conversation]:
    """A seeded random sample of at most ``limit`` conversations (all, shuffled, when None)."""
    rows = list(conversations)
    random.Random(seed).shuffle(rows)
    return rows[:limit] if limit else rows


class PassageConnector:
    """A connector over MT-RAG passages: one plain-text article per passage (document id = article id).

    Args:
        workspace: tenant the passages go to (one per MT-RAG collection).
        passages: (document_id, text).
    """

    name = "mtrag"

    def __init__(self, workspace: str, passages: list[tuple[str, str]]) -> None:
        self.workspace = workspace
        self.passages = passages

    @property
    def total_hint(self) -> int:
        return len(self.passages)

    def list_articles(self) -> Iterator[Article]:
        for doc_id, text in self.passages:
            title = " ".join(text.split()[:8])
            yield Article(source=self.name, workspace=self.workspace, article_id=doc_id, title=title,
                          body=text.strip(), body_format="text", updated_at=1)

    def fetch_article(self, article_id: str) -> list[Article]:
        return [a for a in self.list_articles() if a.article_id == article_id]


def passages_by_collection(sample: list[Conversation], everything: list[Conversation], *,
                           pool: int, seed: int = 13) -> dict[str, list[tuple[str, str]]]:
    """Passages to index per collection: every sampled conversation's gold passages plus up to ``pool``
    passages of other conversations of the same collection (distractors), deduplicated by document id."""
    rng = random.Random(seed)
    out: dict[str, dict[str, str]] = {}
    for conv in sample:
        out.setdefault(conv.collection, {}).update(dict(conv.contexts))
    chosen = {c.conversation_id for c in sample}
    for coll, passages in out.items():
        others = [p for c in everything if c.collection == coll and c.conversation_id not in chosen
                  for p in c.contexts if p[0] not in passages]
        others = list(dict(others).items())
        rng.shuffle(others)
        passages.update(dict(others[:pool]))
    return {coll: sorted(p.items()) for coll, p in out.items()}
