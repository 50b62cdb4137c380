"""Grounding checks of drafted sentences: sanitising, lexical support against cited passages, quoted spans.

These are the checks :class:`~citedesk.serving.answer.pipeline.AnswerPipeline` runs on every sentence before it
is sent; the scores are lexical (share of BM25 terms), not model probabilities.
"""

from __future__ import annotations

import re

from citedesk.core.text import HTML_TAG, MD_IMAGE, MD_LINK, URL, sentence_spans, strip_markers, with_list_items
from citedesk.core.types import Hit
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

__all__ = ["best_quote", "sanitize", "support"]

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_CODE_BLOCK = re.compile(r"<(script|style|iframe|object)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_LINK_TARGETS = ("http:", "https:", "mailto:", "www.")


def _link_text(m: re.Match[str]) -> str:
    """A markdown link to the web or an email collapses to its text; other brackets stay as written."""
    return m.group(1) if m.group(2).startswith(_LINK_TARGETS) else m.group(0)


def sanitize(sentence: str) -> str:
    """Generated sentence without markup, images, links or URLs (citation markers kept)."""
    s = _CODE_BLOCK.sub("", sentence)
    s = MD_IMAGE.sub("", s)
    s = MD_LINK.sub(_link_text, s)
    s = URL.sub("", s)
    s = HTML_TAG.sub("", s)
    s = re.sub(r"[*`]+", "", s)  # emphasis and code marks
    s = re.sub(r"(?<!\w)_+|_+(?!\w)", "", s)  # _emphasis_, but not snake_case identifiers
    s = re.sub(r"(?m)^\s*[#>]+\s+", "", s)  # heading / quote marks at line start, not "C#" or "a > b"
    return re.sub(r"\s+", " ", s).strip()


def _quantities(text: str, sparse: BM25SparseEncoder, window: int = 3) -> tuple[set[str], set[tuple[str, str]]]:
    """Numbers of a text, and (number, stemmed word) pairs for words up to ``window`` tokens after it."""
    tokens = _TOKEN.findall(text.lower())
    numbers, pairs = set(), set()
    for i, tok in enumerate(tokens):
        if tok[0].isdigit():
            numbers.add(tok)
            for w in tokens[i + 1:i + 1 + window]:
                if not w[0].isdigit():
                    stems = sparse.terms(w)
                    pairs.add((tok, stems[0] if stems else w))
    return numbers, pairs


def support(sentence: str, passages: list[str], sparse: BM25SparseEncoder) -> float:
    """Share in [0, 1] of the sentence's terms found in the passages.

    0 when a quantity of the sentence is absent: every number must occur in the passages, and when a
    word follows it in the sentence ("3 bytes"), the same number must be followed by that word within
    three tokens in a passage.
    """
    claim = strip_markers(sentence)
    text = " ".join(passages)
    p_numbers, p_pairs = _quantities(text, sparse)
    tokens = _TOKEN.findall(claim.lower())
    for i, tok in enumerate(tokens):
        if not tok[0].isdigit():
            continue
        if tok not in p_numbers:
            return 0.0
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        stems = sparse.terms(nxt) if nxt and not nxt[0].isdigit() else []
        if stems and (tok, stems[0]) not in p_pairs:
            return 0.0
    terms = set(sparse.terms(claim))
    if not terms:
        return 1.0
    return len(terms & set(sparse.terms(text))) / len(terms)


def best_quote(hit: Hit, claims: list[str], sparse: BM25SparseEncoder, *,
               max_chars: int = 1000) -> tuple[str, int, int]:
    """The quoted span of ``hit.text`` backing the claims citing it: (quote, start, end).

    Each claim picks the sentence (or list item) of the chunk sharing most of its BM25 terms; the quote
    is the contiguous span from the first to the last picked sentence, so every claim finds its support
    in it. When that span is over ``max_chars`` characters, the single sentence best for all claims
    together is quoted instead. Offsets are characters into ``hit.text``.
    """
    spans = list(with_list_items(hit.text, sentence_spans(hit.text)))
    if not spans:
        return hit.text, 0, len(hit.text)
    span_terms = [set(sparse.terms(span.text)) for span in spans]

    def best(terms: set[str]) -> int:
        scores = [len(terms & st) / (1 + 0.01 * len(span.text)) for span, st in zip(spans, span_terms)]
        return scores.index(max(scores))

    claim_terms = [set(sparse.terms(strip_markers(c))) for c in claims]
    picked = [spans[best(t)] for t in claim_terms] or [spans[0]]
    start, end = min(p.start for p in picked), max(p.end for p in picked)
    if end - start > max_chars:
        one = spans[best(set().union(*claim_terms))]
        start, end = one.start, one.end
    return hit.text[start:end], start, end
