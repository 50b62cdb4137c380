"""The OpenAI-compatible endpoint, driven by the real ``openai`` SDK against citedesk under uvicorn on loopback.

Real AWS pages, the real embedding model, local Qdrant, the extractive generator, auth on with scoped keys.
"""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from citedesk.serving.api.app import create_app
from citedesk.serving.api.auth import KeyStore
from citedesk.serving.audit.filters import AuditFilter
from citedesk.serving.channels.voice.speech import speakable
from tests.conftest import free_port, make_container
from tests.test_api import ANSWERABLE, GOLD
from tests.test_voice import LiveServer

pytestmark = pytest.mark.slow

OFF_TOPIC = "How do I bake a chocolate cake without eggs?"
TRANSFER_TOOL = {"type": "function", "function": {
    "name": "transfer_to_human", "description": "Hand the caller to a human agent.",
    "parameters": {"type": "object", "properties": {"reason": {"type": "string"},
                                                    "handoff_summary": {"type": "string"}},
                   "required": ["reason", "handoff_summary"]}}}
HANDOFF = "I'll connect you with a colleague who can help with that."


@pytest.fixture(scope="module")
def api(aws_container, tmp_path_factory):
    """citedesk with auth on over the AWS index; yields (base URL, answer key, audit-only key, container)."""
    c = make_container(tmp_path_factory.mktemp("chat-api"), aws_container.embedder, auth={"enabled": True},
                       rate_limit={"answer": "1000/minute"})
    c.__dict__["index"] = aws_container.index
    store = KeyStore(c.db)
    key = store.create("voice-bot", ["answer"])[1]
    audit_only = store.create("manager", ["audit-read"])[1]
    with LiveServer(create_app(c.settings, container=c, warm_up=False)) as base:
        yield base, key, audit_only, c


@pytest.fixture(scope="module")
def client(api):
    base, key, _, _ = api
    with openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=120) as c:
        yield c


def extension(obj) -> dict:
    """The extra top-level ``citedesk`` object, as the SDK keeps it (unknown fields are preserved)."""
    return obj.model_extra["citedesk"]


def test_models_are_the_profiles(client) -> None:
    assert {m.id for m in client.models.list()} == {"citedesk-chat", "citedesk-voice"}
    assert client.models.retrieve("citedesk-voice").owned_by == "citedesk"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_blocking_answer_is_the_pipeline_answer_with_citations(client, api) -> None:
    base, key, _, container = api
    completion = client.chat.completions.create(
        model="citedesk-chat", metadata={"conversation_id": "conv-sdk-1"},
        messages=[{"role": "system", "content": "You are a helpful assistant."},
                  {"role": "user", "content": ANSWERABLE}],
        temperature=0.7, max_tokens=5)  # sampling parameters are ignored: the answer is the checked text
    choice = completion.choices[0]
    meta = extension(completion)
    assert completion.object == "chat.completion" and completion.model == "citedesk-chat"
    assert choice.finish_reason == "stop" and choice.message.role == "assistant" and not choice.message.tool_calls
    assert meta["decision"] == "answer" and meta["reason"] == "grounded"
    assert meta["confidence_kind"] == "answerable_probability"
    assert GOLD in {c["article_id"] for c in meta["citations"]}
    assert choice.message.content == meta["answer"] and "null attribute" in choice.message.content
    assert {int(m) for m in re.findall(r"\[(\d+)\]", choice.message.content)} == {c["marker"] for c in meta["citations"]}
    native = httpx.post(f"{base}/v1/answer", json={"question": ANSWERABLE},
                        headers={"Authorization": f"Bearer {key}"}, timeout=120).json()
    assert native["answer"] == choice.message.content  # same pipeline, same answer
    assert meta["short_answer"] == native["short_answer"]
    total, rows = container.audit.list(AuditFilter(conversation_id="conv-sdk-1"))
    assert total == 1 and rows[0]["decision"] == "answer" and rows[0]["channel"] == "chat"


def test_streamed_voice_answer_is_speakable_and_ends_with_the_extension(client, api) -> None:
    stream = client.chat.completions.create(model="citedesk-voice", stream=True,
                                            messages=[{"role": "user", "content": ANSWERABLE}])
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    meta = extension(last)
    assert last.choices[0].finish_reason == "stop" and meta["decision"] == "answer"
    assert "null attribute" in text and not re.search(r"\[\d", text)  # no [n] markers in speech
    assert text == speakable(meta["answer"]) and meta["citations"]
    assert all("citedesk" not in (c.model_extra or {}) for c in chunks[:-1])
    base, key, _, _ = api
    with httpx.stream("POST", f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "citedesk-voice", "stream": True,
                            "messages": [{"role": "user", "content": ANSWERABLE}]}, timeout=120) as r:
        data = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert r.headers["content-type"].startswith("text/event-stream")
    assert data[-1] == "[DONE]" and json.loads(data[-2])["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("stream", [False, True])
def test_escalation_is_a_transfer_tool_call_when_the_tool_is_declared(client, stream) -> None:
    kwargs = dict(model="citedesk-voice", tools=[TRANSFER_TOOL],
                  messages=[{"role": "user", "content": "Hi, I have a question about my database."},
                            {"role": "assistant", "content": "Sure, go ahead."},
                            {"role": "user", "content": OFF_TOPIC}])
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        calls = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
        finish, meta = chunks[-1].choices[0].finish_reason, extension(chunks[-1])
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
        name, arguments = calls[0].function.name, "".join(tc.function.arguments or "" for tc in calls)
    else:
        completion = client.chat.completions.create(**kwargs)
        message = completion.choices[0].message
        finish, meta, content = completion.choices[0].finish_reason, extension(completion), message.content or ""
        calls = message.tool_calls
        name, arguments = calls[0].function.name, calls[0].function.arguments
    assert finish == "tool_calls" and len(calls) == 1 and name == "transfer_to_human" and content == ""
    args = json.loads(arguments)
    assert args["reason"] == "low_confidence" == meta["reason"] and meta["decision"] == "escalate"
    assert OFF_TOPIC in args["handoff_summary"] and "question about my database" in args["handoff_summary"]
    assert meta["citations"] == []


@pytest.mark.parametrize("tools", [None, "choice_none"])
def test_escalation_without_the_tool_is_the_handoff_sentence(client, tools) -> None:
    extra = {"tools": [TRANSFER_TOOL], "tool_choice": "none"} if tools else {}
    completion = client.chat.completions.create(model="citedesk-chat", messages=[
        {"role": "user", "content": OFF_TOPIC}], **extra)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.content == HANDOFF and not choice.message.tool_calls
    assert extension(completion)["decision"] == "escalate" and extension(completion)["handoff_summary"]


def test_after_the_transfer_the_reply_is_the_handoff_sentence(client) -> None:
    completion = client.chat.completions.create(model="citedesk-voice", tools=[TRANSFER_TOOL], messages=[
        {"role": "user", "content": OFF_TOPIC},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "transfer_to_human", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "transferring"}])
    assert completion.choices[0].message.content == HANDOFF
    assert extension(completion)["reason"] == "transferred"


def test_auth_errors_are_openai_errors(api) -> None:
    base, _, audit_only, _ = api
    messages = [{"role": "user", "content": ANSWERABLE}]
    with openai.OpenAI(base_url=f"{base}/v1", api_key="cdk_000000000000_" + "x" * 43, max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as err:
            bad.chat.completions.create(model="citedesk-chat", messages=messages)
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert err.value.body["type"] == "authentication_error" and "invalid API key" in err.value.body["message"]
    with openai.OpenAI(base_url=f"{base}/v1", api_key=audit_only, max_retries=0) as wrong_scope:
        with pytest.raises(openai.PermissionDeniedError) as err:
            wrong_scope.chat.completions.create(model="citedesk-chat", messages=messages, stream=True)
        with pytest.raises(openai.PermissionDeniedError):
            wrong_scope.models.list()
    assert err.value.status_code == 403 and "lacks scope 'answer'" in err.value.message


def test_unknown_model_and_invalid_requests_are_openai_errors(client) -> None:
    user = [{"role": "user", "content": ANSWERABLE}]
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=user)
    assert err.value.code == "model_not_found" and err.value.body["param"] == "model"
    assert "citedesk-chat" in err.value.message
    cases = [
        (dict(model="citedesk-chat", messages=user, n=2), "unsupported_parameter", "n"),
        (dict(model="citedesk-chat", messages=user, response_format={"type": "json_object"}),
         "unsupported_parameter", "response_format"),
        (dict(model="citedesk-chat", messages=[{"role": "system", "content": "Be brief."}]), None, "messages"),
        (dict(model="citedesk-chat", messages=user + [{"role": "assistant", "content": "Yes."}]), None, "messages[1]"),
        (dict(model="citedesk-chat", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]),
         "unsupported_content", "messages[0].content"),
        (dict(model="citedesk-chat", messages=[{"role": "user", "content": "x" * 3000}]), None, "messages"),
        (dict(model="citedesk-chat", messages=[{"role": "robot", "content": "hi"}]), None, "messages.0.role"),
        (dict(model="citedesk-chat", messages=user, tools=[TRANSFER_TOOL],
              tool_choice={"type": "function", "function": {"name": "end_call"}}), None, "tool_choice"),
    ]
    for kwargs, code, param in cases:
        for stream in (False, True):
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(stream=stream, **kwargs)
            assert err.value.status_code == 400 and err.value.body["type"] == "invalid_request_error"
            assert err.value.code == code and err.value.body["param"] == param, err.value.body


def test_rate_limit_and_unreachable_index_are_openai_errors(aws_container, tmp_path) -> None:
    c = make_container(tmp_path / "limited", aws_container.embedder, rate_limit={"answer": "2/minute"})
    c.__dict__["index"] = aws_container.index
    with LiveServer(create_app(c.settings, container=c, warm_up=False)) as base, \
            openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as limited:
        user = [{"role": "user", "content": ANSWERABLE}]
        for _ in range(2):
            limited.chat.completions.create(model="citedesk-chat", messages=user)
        with pytest.raises(openai.RateLimitError) as err:
            limited.chat.completions.create(model="citedesk-chat", messages=user)
    assert err.value.code == "rate_limit_exceeded" and int(err.value.response.headers["retry-after"]) >= 1
    down = make_container(tmp_path / "down", aws_container.embedder,
                          qdrant={"url": f"http://127.0.0.1:{free_port()}", "timeout": 2})
    with LiveServer(create_app(down.settings, container=down, warm_up=False)) as base, \
            openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as sdk:
        for stream in (False, True):
            with pytest.raises(openai.InternalServerError) as err:
                sdk.chat.completions.create(model="citedesk-chat", messages=user, stream=stream)
            assert err.value.status_code == 503 and err.value.code == "service_unavailable"
            assert "index unavailable" in err.value.message


# ------------------------------------------------------------------- voice frameworks (optional test extras)


def pipecat_llm(api, model: str):
    from pipecat.services.openai.llm import OpenAILLMService

    base, key, _, _ = api
    return OpenAILLMService(api_key=key, base_url=f"{base}/v1", settings=OpenAILLMService.Settings(
        model=model, system_instruction="You are a phone support agent."))


def test_pipecat_text_pipeline_speaks_the_grounded_answer(api) -> None:
    """Pipecat's OpenAI LLM service pointed at citedesk, in a text-only pipeline (no transport, no audio)."""
    pytest.importorskip("pipecat")
    import asyncio

    from pipecat.frames.frames import LLMContextFrame, LLMFullResponseEndFrame, LLMFullResponseStartFrame, LLMTextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.tests.utils import run_test

    context = LLMContext(messages=[{"role": "user", "content": ANSWERABLE}])
    down, _ = asyncio.run(run_test(pipecat_llm(api, "citedesk-voice"), frames_to_send=[LLMContextFrame(context)]))
    kinds = [type(f) for f in down]
    assert LLMFullResponseStartFrame in kinds and LLMFullResponseEndFrame in kinds
    text = "".join(f.text for f in down if isinstance(f, LLMTextFrame))
    assert "null attribute" in text and not re.search(r"\[\d", text)


def test_pipecat_off_topic_turn_calls_the_transfer_function(api) -> None:
    pytest.importorskip("pipecat")
    import asyncio

    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.frames.frames import LLMContextFrame, LLMTextFrame
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.tests.utils import run_test

    calls = []

    async def transfer(params) -> None:
        calls.append((params.function_name, dict(params.arguments)))
        await params.result_callback({"transferred": True})

    llm = pipecat_llm(api, "citedesk-voice")
    llm.register_function("transfer_to_human", transfer)
    tool = TRANSFER_TOOL["function"]
    context = LLMContext(messages=[{"role": "user", "content": OFF_TOPIC}], tools=ToolsSchema(standard_tools=[
        FunctionSchema(name=tool["name"], description=tool["description"],
                       properties=tool["parameters"]["properties"], required=tool["parameters"]["required"])]))
    down, _ = asyncio.run(run_test(llm, frames_to_send=[LLMContextFrame(context)]))
    assert len(calls) == 1 and calls[0][0] == "transfer_to_human"
    assert calls[0][1]["reason"] == "low_confidence" and OFF_TOPIC in calls[0][1]["handoff_summary"]
    assert "".join(f.text for f in down if isinstance(f, LLMTextFrame)) == ""  # nothing said: the human takes over


def test_livekit_openai_plugin_streams_answers_and_the_transfer_call(api) -> None:
    """LiveKit Agents' OpenAI plugin: ``LLM(base_url=...)`` chat streams (text; the transfer tool call)."""
    pytest.importorskip("livekit.plugins.openai")
    import asyncio

    from livekit.agents import ChatContext, function_tool
    from livekit.plugins import openai as lk_openai

    base, key, _, _ = api

    @function_tool
    async def transfer_to_human(reason: str, handoff_summary: str) -> str:
        """Hand the caller to a human agent.

        Args:
            reason: why the assistant could not answer.
            handoff_summary: what the human needs to know.
        """
        return "transferring"

    async def turn(question: str) -> tuple[str, list]:
        llm = lk_openai.LLM(model="citedesk-voice", base_url=f"{base}/v1", api_key=key)
        ctx = ChatContext()
        ctx.add_message(role="user", content=question)
        text, calls = "", []
        try:
            async with llm.chat(chat_ctx=ctx, tools=[transfer_to_human]) as stream:
                async for chunk in stream:
                    if chunk.delta:
                        text += chunk.delta.content or ""
                        calls += chunk.delta.tool_calls or []
        finally:
            await llm.aclose()
        return text, calls

    text, calls = asyncio.run(turn(ANSWERABLE))
    assert "null attribute" in text and not re.search(r"\[\d", text) and calls == []
    text, calls = asyncio.run(turn(OFF_TOPIC))
    assert text == "" and [c.name for c in calls] == ["transfer_to_human"]
    args = json.loads(calls[0].arguments)
    assert args["reason"] == "low_confidence" and OFF_TOPIC in args["handoff_summary"]


def test_the_extension_carries_the_short_answer() -> None:
    from citedesk.serving.answer.schemas import AnswerResponse
    from citedesk.serving.channels.chat_completions.responder import ChatCompletionsResponder

    response = AnswerResponse(decision="answer", reason="grounded", answer="The maximum allowed value is 900 seconds. "
                              "[1]", short_answer="900 seconds", confidence=0.9, confidence_kind="answerable_probability",
                              generator="extractive", model="extractive")
    assert ChatCompletionsResponder.extension(response, "chat").short_answer == "900 seconds"
