"""``citedesk mcp``: the knowledge tools as an MCP server (the official ``mcp`` SDK; the only module importing it).

Tools: ``answer(question, history?)`` and ``search_help_center(query, top_k)`` (see
:mod:`citedesk.serving.channels.mcp.tools`), bound to the workspace of the API key the server starts with.
Transports: stdio (an agent runs ``citedesk mcp`` as a subprocess) and streamable HTTP (``--transport http``,
path ``/mcp``). Over HTTP with ``auth.enabled`` each request must also carry ``Authorization: Bearer <key>``, a
key with scope ``answer`` of the bound workspace (401 otherwise).
"""

from __future__ import annotations

import logging
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from citedesk.core.types import Turn
from citedesk.serving.channels.mcp.tools import AnswerResult, KnowledgeTools, SearchResult, ToolCallError, bind_caller
from citedesk.serving.container import Container

__all__ = ["build_server", "run"]

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Help-center knowledge for customer support. Use `answer` for a customer's question: it returns a grounded "
    "answer with sources, or decision=escalate with a handoff_summary — then hand the conversation to a human "
    "and do not answer from your own knowledge. Use `search_help_center` to look up articles and passages.")


def build_server(tools: KnowledgeTools) -> MCPServer:
    """An MCP server exposing ``tools`` (nothing runs until a transport is started)."""
    server = MCPServer("citedesk", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(name="answer", title="Answer from the help center")
    async def answer(
        question: Annotated[str, Field(min_length=1, max_length=2000, description="the customer's latest message")],
        history: Annotated[list[Turn] | None, Field(
            description="earlier turns, oldest first: {role: user|assistant, text}")] = None,
    ) -> AnswerResult:
        """A grounded answer to a customer's question, with sources (article, URL, quoted span) and a
        confidence — or decision=escalate with the reason and a handoff summary for a human."""
        try:
            return await tools.answer(question, history)
        except ToolCallError as exc:  # anticipated: the client sees the message (is_error)
            raise ToolError(str(exc)) from None

    @server.tool(name="search_help_center", title="Search the help center")
    async def search_help_center(
        query: Annotated[str, Field(min_length=1, max_length=2000, description="what to look for")],
        top_k: Annotated[int, Field(ge=1, le=20, description="passages to return")] = 5,
    ) -> SearchResult:
        """The help-center passages closest to the query, best first: article title, URL, section and a
        verbatim quote, with the ranking score and its kind."""
        try:
            return await tools.search_help_center(query, top_k)
        except ToolCallError as exc:
            raise ToolError(str(exc)) from None

    return server


class _RequireKey:
    """ASGI middleware: every HTTP request needs a key with scope ``answer`` of the bound workspace."""

    def __init__(self, app: ASGIApp, container: Container, workspace: str) -> None:
        self.app, self.container, self.workspace = app, container, workspace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            auth = self.container.authenticator
            token = auth.token(Request(scope))
            principal = auth.store.verify(token) if token else None
            if principal is None or "answer" not in principal.scopes or principal.workspace != self.workspace:
                response = JSONResponse({"error": "send 'Authorization: Bearer <key>' with a key of scope 'answer' "
                                                  f"in workspace '{self.workspace}'"}, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def run(container: Container, api_key: str | None, *, transport: str = "stdio", host: str = "127.0.0.1",
        port: int = 8001) -> None:
    """Bind to the key's caller, load the models, and serve until the client closes stdio or the process stops.

    Args:
        container: the composition root (the index must be reachable; local mode locks its folder).
        api_key: a key with scope ``answer`` (required when ``auth.enabled``).
        transport: ``stdio`` or ``http`` (streamable HTTP at ``http://host:port/mcp``).
        host, port: where the HTTP transport listens.

    Raises:
        ToolCallError: the key is missing or invalid.
        ValueError: unknown transport.
    """
    caller = bind_caller(container, api_key)
    container.pipeline.warm_up()
    server = build_server(KnowledgeTools(container, caller))
    log.info("citedesk mcp: workspace %s, key %s, transport %s", caller.workspace, caller.key_id or "-", transport)
    if transport == "stdio":
        server.run("stdio")
        return
    if transport != "http":
        raise ValueError(f"unknown transport {transport!r}: stdio or http")
    import uvicorn

    app = server.streamable_http_app(host=host)
    if container.authenticator.enabled:
        app = _RequireKey(app, container, caller.workspace)
    uvicorn.run(app, host=host, port=port, log_level="warning")

