"""Pacing: how much of an answer is said per turn (sentences, procedure steps) and what the caller asked for."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from citedesk.core.text import LIST_MARK, procedure_steps, strip_markers
from citedesk.serving.channels.voice.speech import speakable

__all__ = ["Pacer", "Unit", "intent"]

_STEP_PREFIX = re.compile(r"^\s*(?:step\s+(\d+)\s*[:.)-]|(\d+)[.)])\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Unit:
    """One thing to say: a sentence (``step == 0``) or procedure step ``step`` (1-based)."""

    text: str
    step: int = 0


@dataclass
class Pacer:
    """Cuts a checked answer into speakable units and decides what is said this turn.

    Args:
        max_sentences: plain sentences per turn.
        steps_per_turn: procedure steps per turn.
    """

    max_sentences: int = 3
    steps_per_turn: int = 2
    next_step: int = 1
    spoken: list[Unit] = field(default_factory=list)
    pending: list[Unit] = field(default_factory=list)

    def units(self, sentence: str) -> list[Unit]:
        """Speakable units of one checked sentence (markers allowed).

        ``"1. Open the console."`` or ``"Step 2: ..."`` is a step; ``"To create a table: open the console;
        choose Create table."`` (a list joined by the extractive generator) is a lead sentence plus one
        step per item. Steps are numbered across the whole answer.
        """
        text = strip_markers(sentence)
        m = _STEP_PREFIX.match(text)
        if m:
            return [self._step(text[m.end():])]
        if LIST_MARK.match(text):  # a bullet line: an item, said as a sentence
            return [Unit(s)] if (s := speakable(LIST_MARK.sub("", text))) else []
        if steps := procedure_steps(text):
            lead, items = steps
            intro = lead if re.search(r"\bsteps?\b|\bfollowing\b|\bthese\b", lead, re.IGNORECASE) \
                else f"{lead}, follow these steps"
            out = [Unit(s)] if (s := speakable(intro + ".")) else []
            return out + [self._step(i) for i in items]
        return [Unit(s)] if (s := speakable(text)) else []

    def _step(self, text: str) -> Unit:
        said = speakable(text)
        if not said:
            return Unit("")
        unit = Unit(f"Step {self.next_step}: {said[0].upper()}{said[1:]}", self.next_step)
        self.next_step += 1
        return unit

    def offer(self, unit: Unit) -> bool:
        """True when ``unit`` is said now; False when it is kept for a later turn (everything after it too)."""
        if not unit.text:
            return False
        if self.pending:
            self.pending.append(unit)
            return False
        said_steps = sum(1 for u in self.spoken if u.step)
        said_sentences = len(self.spoken) - said_steps
        full = said_steps >= self.steps_per_turn if unit.step else said_sentences >= self.max_sentences
        if full:
            self.pending.append(unit)
            return False
        self.spoken.append(unit)
        return True

    def confirmation(self) -> str | None:
        """The question that ends a turn with more to say, or None."""
        if not self.pending:
            return None
        nxt = self.pending[0]
        if nxt.step:
            return f"Say next when you're ready for step {nxt.step}."
        return "Would you like to hear more?"


_CONTINUE = re.compile(r"^\s*(?:(?:yes|yeah|yep|yup|sure|ok(?:ay)?|go on|go ahead|continue|next|done|"
                       r"ready|please|i'?m ready|got it|and then|what'?s next|next step)\b[\s,.!]*)+$",
                       re.IGNORECASE)
_REPEAT = re.compile(r"^\s*(?:(?:can you |could you |please )?(?:repeat(?: that)?|say (?:that|it) again|"
                     r"again|pardon|sorry|what)\b[\s,.!?]*(?:please)?[\s.!?]*)$", re.IGNORECASE)


def intent(question: str) -> str:
    """``"continue"``, ``"repeat"`` or ``"ask"`` for a caller's turn that follows a paused answer."""
    if _CONTINUE.match(question):
        return "continue"
    if _REPEAT.match(question):
        return "repeat"
    return "ask"
