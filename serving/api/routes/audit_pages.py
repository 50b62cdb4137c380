"""The server-rendered ``/audit`` page for support managers: list, detail, reports, login (cookie) and logout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlencode

import anyio
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from citedesk.core.errors import CitedeskError
from citedesk.serving.api.auth import COOKIE, AuthError
from citedesk.serving.api.routes.audit import PAGE_SIZE, AnswerId, Audit, PageFilter, Reader, _not_found, tenant
from citedesk.serving.api.routes.audit import api as audit_api
from citedesk.serving.audit.filters import iso
from citedesk.serving.audit.models import FEEDBACK_STATES

__all__ = ["install", "page"]

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

page = APIRouter(prefix="/audit", include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters["when"] = lambda ts: (iso(ts) or "").replace("T", " ").replace("Z", " UTC") if ts else "unknown"
templates.env.filters["day"] = lambda ts: (iso(ts) or "")[:10]
templates.env.filters["pct"] = lambda x: "–" if x is None else f"{100 * x:.1f} %"


def _query(request: Request, **changes) -> str:
    """The current query string with some parameters replaced (None removes)."""
    params = {k: v for k, v in request.query_params.items() if v}
    for k, v in changes.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = str(v)
    return urlencode(params)


templates.env.globals["FEEDBACK_STATES"] = FEEDBACK_STATES


def _render(request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
    auth = request.app.state.container.authenticator
    return templates.TemplateResponse(request, name, {"auth_enabled": auth.enabled, **context},
                                      status_code=status_code)


def _sentences(answer: str) -> list[str]:
    """Answer sentences (each ends with its ``[n]`` markers)."""
    return [s for s in re.split(r"(?<=\])\s+(?=[^\[\s])", answer.strip()) if s]


def _passage_parts(c: dict) -> tuple[str, str, str]:
    """(before, quote, after) of the cited passage, for highlighting the quoted span."""
    text, s, e = c.get("passage") or "", c["quote_start"], c["quote_end"]
    if not (0 <= s <= e <= len(text) and text[s:e] == c["quote"]):
        s = text.find(c["quote"])
        if s < 0:
            return "", c["quote"], ""
        e = s + len(c["quote"])
    return text[:s], text[s:e], text[e:]


@page.get("", response_class=HTMLResponse)
def audit_list(request: Request, who: Reader, audit: Audit, flt: PageFilter,
               offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> HTMLResponse:
    total, items = audit.list(flt, limit=PAGE_SIZE, offset=offset)
    p = request.query_params
    return _render(request, "audit_list.html", who=who, items=items, total=total, offset=offset,
                   page_size=PAGE_SIZE, f={k: p.get(k, "") for k in (
                       "escalated", "low_confidence", "since", "until", "article", "feedback", "channel", "q",
                       "reason", "conversation_id", "max_confidence")},
                   low_confidence=audit.low_confidence, query=_query(request, offset=None),
                   prev_query=_query(request, offset=max(0, offset - PAGE_SIZE) or None),
                   next_query=_query(request, offset=offset + PAGE_SIZE))


@page.get("/reports", response_class=HTMLResponse)
def audit_reports(request: Request, who: Reader, audit: Audit, flt: PageFilter) -> HTMLResponse:
    try:
        gaps, gaps_error = audit.content_gaps(flt), None
    except CitedeskError as exc:
        gaps, gaps_error = [], str(exc)
    p = request.query_params
    return _render(request, "audit_reports.html", who=who, rate=audit.escalation_rate(flt),
                   by_article=audit.answers_by_article(flt, limit=25), changed=audit.changed_articles(flt),
                   gaps=gaps, gaps_error=gaps_error, adoption=audit.draft_adoption(flt, limit=25), f={k: p.get(k, "") for k in ("since", "until", "channel")},
                   query=_query(request))


@page.get("/answers/{answer_id}", response_class=HTMLResponse)
def audit_detail(request: Request, who: Reader, answer_id: AnswerId, audit: Audit) -> HTMLResponse:
    record = audit.get(answer_id, workspace=tenant(who))
    if record is None:
        return _render(request, "audit_message.html", status_code=404, title="Not found",
                       message=_not_found(answer_id).detail)
    sentences = _sentences(record["answer"])
    rows = [{"c": c, "parts": _passage_parts(c),
             "claims": [s for s in sentences if f"[{c['marker']}]" in s]} for c in record["citations"]]
    return _render(request, "audit_detail.html", who=who, r=record, rows=rows,
                   can_write="audit-write" in who.scopes,
                   stale=[c for c in record["citations"] if c.get("revision_status") in ("changed", "deleted")])


@page.get("/login", response_class=HTMLResponse)
def login_form(request: Request, target: Annotated[str, Query(alias="next")] = "/audit") -> HTMLResponse:
    return _render(request, "audit_login.html", next=_safe_next(target), message=None)


def _safe_next(target: str) -> str:
    """Only local /audit paths (no open redirect)."""
    return target if target.startswith("/audit") and "//" not in target and "\\" not in target else "/audit"


@page.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/audit"])[0])
    auth = request.app.state.container.authenticator
    principal = await anyio.to_thread.run_sync(auth.store.verify, key) if key else None
    if principal is None or "audit-read" not in principal.scopes:
        message = ("invalid API key: it is malformed, unknown or revoked" if principal is None else
                   f"API key '{principal.name}' lacks scope 'audit-read'")
        return _render(request, "audit_login.html", status_code=401 if principal is None else 403,
                       next=target, message=message)
    resp = RedirectResponse(target, status_code=303)
    resp.set_cookie(COOKIE, key, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                    path="/", max_age=12 * 3600)
    return resp


@page.post("/logout")
def logout() -> Response:
    resp = RedirectResponse("/audit/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


async def _auth_error(request: Request, exc: AuthError) -> Response:
    """JSON ``{"detail": ...}`` for the API; the login form (401) or a message page (403) for /audit."""
    if request.url.path.startswith("/audit"):
        if exc.status_code == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return _render(request, "audit_login.html", status_code=401, next=_safe_next(target),
                           message=exc.detail if request.cookies.get(COOKIE) else None)
        return _render(request, "audit_message.html", status_code=exc.status_code, title="Not allowed",
                       message=exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Add the audit JSON routes, the /audit page and the auth error handler to ``app``."""
    app.include_router(audit_api)
    app.include_router(page)
    app.add_exception_handler(AuthError, _auth_error)
