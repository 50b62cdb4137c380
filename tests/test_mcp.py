"""``citedesk mcp`` over stdio, driven by the official ``mcp`` SDK's client session.

The server runs as a real subprocess (``python -m citedesk.serving.cli mcp``) on a copy of the session's AWS
index (local Qdrant locks its folder to one process), with auth on and keys in the copy's database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from citedesk.serving.api.auth import KeyStore
from citedesk.serving.audit.filters import AuditFilter
from tests.conftest import REPO, make_container
from tests.test_api import ANSWERABLE, GOLD

pytestmark = pytest.mark.slow

OFF_TOPIC = "How do I bake a chocolate cake without eggs?"


@pytest.fixture(scope="module")
def mcp_data(aws_container, tmp_path_factory):
    """A data dir holding a copy of the AWS index; yields (env, keys by name, container on it)."""
    data = tmp_path_factory.mktemp("mcp-data")
    shutil.copytree(aws_container.settings.data_dir / "qdrant", data / "qdrant")
    c = make_container(data, aws_container.embedder, auth={"enabled": True})
    store = KeyStore(c.db)
    keys = {"bot": store.create("mcp-bot", ["answer"])[1],
            "other-tenant": store.create("other-bot", ["answer"], workspace="someone-else")[1],
            "reader": store.create("reader", ["audit-read"])[1]}
    env = {"CITEDESK_DATA_DIR": str(data), "CITEDESK_AUTH__ENABLED": "true", "HF_HUB_OFFLINE": "1",
           "PATH": os.environ["PATH"]}
    yield env, keys, c


def server(env: dict, key: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "citedesk.serving.cli", "mcp"],
                                 env={**env, "CITEDESK_API_KEY": key}, cwd=str(REPO))


async def call(params: StdioServerParameters, calls: list[tuple[str, dict]]) -> tuple[list, list]:
    """Start the server, list its tools and make the calls; returns (tools, results)."""
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        results = [await session.call_tool(name, args, read_timeout_seconds=120) for name, args in calls]
    return tools, results


def test_answer_and_search_over_stdio(mcp_data) -> None:
    env, keys, container = mcp_data
    tools, (answered, escalated, searched, bad) = anyio.run(call, server(env, keys["bot"]), [
        ("answer", {"question": ANSWERABLE}),
        ("answer", {"question": OFF_TOPIC, "history": [{"role": "user", "text": "Hello, a question about AWS."}]}),
        ("search_help_center", {"query": "size of a null attribute", "top_k": 3}),
        ("search_help_center", {"query": "null", "top_k": 99}),
    ])
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"answer", "search_help_center"}
    assert by_name["search_help_center"].input_schema["properties"]["top_k"]["maximum"] == 20
    assert by_name["answer"].input_schema["required"] == ["question"]

    a = answered.structured_content
    assert not answered.is_error and a["decision"] == "answer" and a["reason"] == "grounded"
    assert "null attribute" in a["answer"] and a["confidence_kind"] == "answerable_probability"
    assert GOLD in {s["article_id"] for s in a["sources"]} and all(s["quote"] for s in a["sources"])

    e = escalated.structured_content
    assert e["decision"] == "escalate" and e["answer"] == "" and e["sources"] == []
    assert OFF_TOPIC in e["handoff_summary"] and "a question about AWS" in e["handoff_summary"]

    hits = searched.structured_content["hits"]
    assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["article_id"] == GOLD
    assert "null" in hits[0]["quote"].lower() and hits[0]["score_kind"] == "rrf" and hits[0]["url"] is None
    assert bad.is_error and "top_k" in bad.content[0].text

    _, rows = container.audit.list(AuditFilter(text="null attribute"))
    assert rows and rows[0]["decision"] == "answer"  # recorded like an API answer


def test_the_key_binds_the_workspace_and_a_bad_key_is_refused(mcp_data) -> None:
    env, keys, _ = mcp_data
    _, (answered, searched) = anyio.run(call, server(env, keys["other-tenant"]), [
        ("answer", {"question": ANSWERABLE}), ("search_help_center", {"query": ANSWERABLE, "top_k": 5})])
    assert answered.structured_content["reason"] == "no_evidence"  # nothing of another tenant is searched
    assert searched.structured_content["hits"] == []
    for key in (keys["reader"], "cdk_000000000000_" + "x" * 43):
        done = subprocess.run([sys.executable, "-m", "citedesk.serving.cli", "mcp"], input="", text=True,
                              capture_output=True, env={**env, "CITEDESK_API_KEY": key}, cwd=REPO, timeout=120)
        assert done.returncode == 1 and ("lacks scope 'answer'" in done.stderr or "invalid API key" in done.stderr)
