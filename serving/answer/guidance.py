"""Workspace guidance: plain-language instructions for the generator and deterministic escalation rules.

Guidance is data from trusted admins (``PUT /v1/guidance`` with the ``admin`` scope, or ``citedesk guidance set``),
stored and versioned per workspace (:mod:`citedesk.serving.answer.guidance_store`). It never comes from articles:
the generator receives it in the system message after the fixed rules, while article text only ever travels
inside the user message's ``<source>`` blocks.

* ``instructions``: short sentences such as "Be warm and brief." or "Never promise refunds." — appended to the
  OpenAI-compatible generator's system prompt (the extractive generator quotes articles verbatim and has no
  style to steer).
* ``escalation_rules``: evaluated by the answer pipeline *before retrieval*; the first rule that matches escalates
  with reason ``guidance_rule`` (the rule's name and what matched are in ``signals.guidance`` and the handoff
  summary). Within one rule every condition given must hold (AND); a list condition holds when any item matches.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from citedesk.serving.answer.schemas import AnswerRequest

__all__ = ["ASKS_FOR_HUMAN", "EscalationRule", "Guidance", "GuidanceVersion", "RuleMatch", "guidance_prompt",
           "match_rule"]

Line = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"\S")]  # not blank
Term = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]
Scalar = str | int | float | bool

ASKS_FOR_HUMAN = re.compile(
    r"\b(?:(?:talk|speak|chat|connect me|put me through)\s+(?:to|with)\s+(?:a\s+|an\s+|some\s*one\s*|your\s+)?"
    r"(?:real\s+|live\s+)?(?:human|person|agent|representative|operator|someone|somebody|manager|staff)"
    r"|(?:real|live)\s+(?:human|person|agent)|human\s+(?:agent|being|support)|customer\s+service\s+rep"
    r"|(?:need|want|get)\s+(?:a\s+)?(?:human|representative|real\s+person))\b",
    re.IGNORECASE)
"""The customer asks for a person ("can I talk to a human", "real person please", "I want a representative")."""


class EscalationRule(BaseModel):
    """When the conversation always goes to a human.

    Attributes:
        name: shown in the handoff summary and ``signals.guidance.rule``.
        keywords: words or phrases (case-insensitive, whole words) of which the customer's message has one.
        asks_for_human: the customer's message asks for a person (:data:`ASKS_FOR_HUMAN`).
        tags: conversation tag names or ids (``AnswerRequest.tags``) of which the conversation has one.
        attributes: conversation attributes (``AnswerRequest.attributes``) that must all have these values
            (strings compare case-insensitively).
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [  # at least one condition
        {"required": ["keywords"], "properties": {"keywords": {"minItems": 1}}},
        {"required": ["asks_for_human"], "properties": {"asks_for_human": {"const": True}}},
        {"required": ["tags"], "properties": {"tags": {"minItems": 1}}},
        {"required": ["attributes"], "properties": {"attributes": {"minProperties": 1}}}]})

    name: Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"\S")]
    keywords: list[Term] = Field(default_factory=list, max_length=100)
    asks_for_human: bool = False
    tags: list[Term] = Field(default_factory=list, max_length=50)
    attributes: dict[Term, Scalar] = Field(default_factory=dict, max_length=20,
                                           json_schema_extra={"additionalProperties": False})  # keys: Term only

    @model_validator(mode="after")
    def _has_a_condition(self) -> "EscalationRule":
        if not (self.keywords or self.asks_for_human or self.tags or self.attributes):
            raise ValueError(f"escalation rule {self.name!r} has no condition (keywords, asks_for_human, tags "
                             "or attributes)")
        return self


class Guidance(BaseModel):
    """A workspace's guidance: instructions for the generator and escalation rules (see module docstring)."""

    model_config = ConfigDict(extra="forbid")

    instructions: list[Line] = Field(default_factory=list, max_length=20,
                                     description="plain-language instructions, appended to the system prompt")
    escalation_rules: list[EscalationRule] = Field(default_factory=list, max_length=50,
                                                   description="evaluated before retrieval; the first match escalates")



class GuidanceVersion(Guidance):
    """One stored version of a workspace's guidance (versions count up from 1; the newest is in force)."""

    workspace: str
    version: int
    created_at: str = Field(description="ISO 8601 UTC")
    created_by: str


class RuleMatch(BaseModel):
    """The rule that escalated and what matched (e.g. ``keyword 'lawyer'``, ``tag 'vip'``)."""

    rule: str
    matched: str


def _has_phrase(text: str, phrase: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(phrase.lower()) + r"(?!\w)", text) is not None


def _same(have: Scalar | None, want: Scalar) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return have is want or (isinstance(have, str) and have.strip().lower() == str(want).lower())
    if isinstance(want, str) or isinstance(have, str):
        return str(have).strip().lower() == str(want).strip().lower()
    return have == want


def _match(rule: EscalationRule, request: AnswerRequest) -> str | None:
    text = request.question.lower()
    why: list[str] = []
    if rule.keywords:
        hit = next((k for k in rule.keywords if _has_phrase(text, k.strip())), None)
        if hit is None:
            return None
        why.append(f"keyword '{hit}'")
    if rule.asks_for_human:
        m = ASKS_FOR_HUMAN.search(request.question)
        if m is None:
            return None
        why.append(f"asks for a human ('{m.group(0)}')")
    if rule.tags:
        have = {t.strip().lower() for t in request.tags}
        hit = next((t for t in rule.tags if t.strip().lower() in have), None)
        if hit is None:
            return None
        why.append(f"tag '{hit}'")
    for key, want in rule.attributes.items():
        if not _same(request.attributes.get(key), want):
            return None
        why.append(f"{key}={want}")
    return ", ".join(why)


def match_rule(guidance: Guidance | None, request: AnswerRequest) -> RuleMatch | None:
    """The first escalation rule the request meets, or None.

    Args:
        guidance: the workspace's guidance (None: no rules).
        request: the question with the conversation's ``tags`` and ``attributes``.
    """
    for rule in guidance.escalation_rules if guidance is not None else ():
        why = _match(rule, request)
        if why is not None:
            return RuleMatch(rule=rule.name, matched=why)
    return None


def guidance_prompt(instructions: list[str]) -> str:
    """The system-prompt section for ``instructions`` ("" when there are none): one line each, markup of source
    blocks escaped, under a heading that ranks them below the fixed rules."""
    lines = [" ".join(i.split()).replace("<source", "&lt;source").replace("</source", "&lt;/source")
             for i in instructions if i.strip()]
    if not lines:
        return ""
    return ("\n\nWorkspace guidance from the support team (follow it as long as it does not conflict with the "
            "rules above):\n" + "\n".join(f"- {line}" for line in lines))
