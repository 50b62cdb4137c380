"""BM25 sparse vectors for Qdrant.

Documents get BM25 term-frequency weights ``tf·(k1+1) / (tf + k1·(1-b+b·len/avg_len))``; queries get
weight 1 per distinct term. The collection's sparse vector uses ``Modifier.IDF``, so Qdrant multiplies
by the corpus IDF at query time: the dot product is the BM25 score (kind ``bm25``).

Terms: lowercased word tokens, English stop words removed, Snowball-stemmed, hashed to a 31-bit index
(crc32; collisions are rare and harmless for ranking).
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from dataclasses import dataclass

import snowballstemmer

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just me
    more most my myself no nor not now of off on once only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why will
    with would you your yours yourself yourselves""".split()
)


@dataclass(frozen=True)
class SparseVector:
    """Sparse vector: parallel lists of term indices (uint31) and weights (float)."""

    indices: list[int]
    values: list[float]


class BM25SparseEncoder:
    """Encodes texts as BM25 sparse vectors (see module docstring).

    Args:
        k1: term-frequency saturation.
        b: length normalisation.
        avg_len: assumed average document length in terms (fixed so encoding needs no corpus pass).
        language: Snowball stemmer language.
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_len: float = 120.0,
                 language: str = "english") -> None:
        self.k1, self.b, self.avg_len = k1, b, avg_len
        self.language = language
        self._local = threading.local()  # snowballstemmer objects keep state: one per thread

    @property
    def _stemmer(self):
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            stemmer = self._local.stemmer = snowballstemmer.stemmer(self.language)
        return stemmer

    def terms(self, text: str) -> list[str]:
        """Tokens of ``text`` after lowercasing, stop-word removal and stemming."""
        words = [w for w in _TOKEN.findall(text.lower()) if w not in STOP_WORDS and len(w) < 40]
        return self._stemmer.stemWords(words)

    @staticmethod
    def _index(term: str) -> int:
        return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF

    def _vector(self, counts: Counter[int], doc_len: int, *, query: bool) -> SparseVector:
        if query:
            items = sorted((i, 1.0) for i in counts)
        else:
            norm = self.k1 * (1 - self.b + self.b * doc_len / self.avg_len)
            items = sorted((i, tf * (self.k1 + 1) / (tf + norm)) for i, tf in counts.items())
        return SparseVector(indices=[i for i, _ in items], values=[float(v) for _, v in items])

    def encode_documents(self, texts: list[str]) -> list[SparseVector]:
        """BM25 document vectors, one per text (may be empty for texts with no terms)."""
        out = []
        for text in texts:
            terms = self.terms(text)
            out.append(self._vector(Counter(self._index(t) for t in terms), len(terms), query=False))
        return out

    def encode_query(self, text: str) -> SparseVector:
        """Query vector: weight 1.0 per distinct term."""
        terms = self.terms(text)
        return self._vector(Counter(self._index(t) for t in terms), len(terms), query=True)
