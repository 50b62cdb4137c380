"""The voice channel: answers built for the ear and for latency (phone agents: STT → citedesk → TTS).

:class:`VoiceResponder` wraps :meth:`serving.pipeline.AnswerPipeline.stream` (same retrieval, thresholds,
citation checks) and reshapes its events for speech:

* ``filler`` — a short holding phrase, sent once, only when no sentence is ready ``filler_budget_ms``
  after the request arrived (a timer, so a fast answer never gets one);
* ``sentence`` — speakable text (:func:`speakable`: no markdown, URLs, citation markers or tables;
  numbers, units, times, dates and versions written the way they are said), with the checked written
  sentence and its markers as metadata;
* long answers and procedures are paced: at most ``max_sentences`` sentences and ``steps_per_turn``
  procedure steps per turn, then a confirmation question; the rest travels in a signed
  :class:`~serving.schemas.VoiceState` that the client sends back with "yes" / "next" (or "repeat");
* ``citations`` stay metadata; source titles are spoken only with ``speak_source_titles``;
* ``decision`` / ``done`` as in chat, with ``voice`` (speech, filler, state) on the response.

Closing the stream (client disconnect) cancels the producing task: retrieval is abandoned and the LLM
request's connection is closed, so no generation is left running.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from core.errors import CitedeskError
from core.text import HTML_TAG, LIST_MARK, MD_IMAGE, strip_markers
from core.types import Decision
from retrieval.confidence import CONFIDENCE_KIND
from serving.pipeline import AnswerPipeline, Event, handoff_summary
from serving.schemas import AnswerRequest, AnswerResponse, VoiceOut, VoiceState

log = logging.getLogger(__name__)

HANDOFF_PHRASE = "I'll connect you with a colleague who can help with that."


class VoiceStateError(CitedeskError):
    """A ``voice_state`` sent back by a client was altered or is not ours (the API answers 409)."""


# --------------------------------------------------------------------------------------------------
# Speakable text
# --------------------------------------------------------------------------------------------------

_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_URL = re.compile(r"\(?\b(?:https?://|www\.)[^\s)]+\)?", re.IGNORECASE)
_EMAIL = re.compile(r"\b([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b")
_CITATION = re.compile(r"\s*\[\s*\d{1,3}(?:\s*[,;-]\s*\d{1,3})*\s*\]")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$|^\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$")
_EMPHASIS = re.compile(r"[*_`#>~]+")
_STEP_PREFIX = re.compile(r"^\s*(?:step\s+(\d+)\s*[:.)-]|(\d+)[.)])\s*", re.IGNORECASE)

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b")
_AMPM = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?\s?m\b\.?", re.IGNORECASE)
_CLOCK = re.compile(r"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_VERSION = re.compile(r"(?<![\w.])[vV](\d+(?:\.\d+)*)\b")
_PERCENT = re.compile(r"(\d+(?:[.,]\d+)?)\s*%")
_CURRENCY = re.compile(r"([$€£])\s?(\d+(?:,\d{3})*(?:\.\d+)?)(\s?(?:[kKmM]|million|billion)\b)?")
_RANGE = re.compile(r"(\d)\s*[-–—]\s*(?=\d)")
_TIMES = re.compile(r"\b(\d+(?:\.\d+)?)x\b")

_CURRENCY_WORDS = {"$": "dollar", "€": "euro", "£": "pound"}
_UNITS: dict[str, str] = {
    "B": "byte", "KB": "kilobyte", "MB": "megabyte", "GB": "gigabyte", "TB": "terabyte", "PB": "petabyte",
    "KiB": "kibibyte", "MiB": "mebibyte", "GiB": "gibibyte", "TiB": "tebibyte", "PiB": "pebibyte",
    "kbps": "kilobit per second", "Kbps": "kilobit per second", "Mbps": "megabit per second",
    "Gbps": "gigabit per second", "KB/s": "kilobyte per second", "MB/s": "megabyte per second",
    "GB/s": "gigabyte per second", "ms": "millisecond", "µs": "microsecond", "us": "microsecond",
    "ns": "nanosecond", "s": "second", "sec": "second", "secs": "second", "min": "minute", "mins": "minute",
    "h": "hour", "hr": "hour", "hrs": "hour", "GHz": "gigahertz", "MHz": "megahertz", "kHz": "kilohertz",
    "vCPU": "virtual CPU", "vCPUs": "virtual CPU", "RCU": "read capacity unit", "RCUs": "read capacity unit",
    "WCU": "write capacity unit", "WCUs": "write capacity unit", "TPS": "transaction per second",
    "RPS": "request per second", "km": "kilometer", "kg": "kilogram",
}
# longest first so "KB/s" wins over "KB" and "ms" over "s"
_UNIT_RE = re.compile(
    r"(?<![\w.])(\d+(?:,\d{3})*(?:\.\d+)?)\s?("
    + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    + r")(?![\w/])")
_ABBREVIATIONS = [
    (re.compile(r"\be\.g\.,?", re.IGNORECASE), "for example,"),
    (re.compile(r"\bi\.e\.,?", re.IGNORECASE), "that is,"),
    (re.compile(r"\betc\.(?=\s+[a-z])"), "and so on"),
    (re.compile(r"\betc\."), "and so on."),
    (re.compile(r"\bvs\.?(?=\s)"), "versus"),
    (re.compile(r"\bapprox\.(?=\s)"), "approximately"),
    (re.compile(r"\s&\s"), " and "),
    (re.compile(r"\b24/7\b"), "around the clock"),
    (re.compile(r"\band/or\b"), "and or"),
]


def _plural(unit: str, number: str) -> str:
    if number == "1":
        return unit
    head, sep, tail = unit.partition(" per ")
    return (head + "s" + sep + tail) if sep else unit + "s"


def _spoken_time(hour: int, minute: int, meridiem: str | None) -> str:
    if meridiem is None:  # 24-hour clock
        if hour == 0 and minute == 0:
            return "midnight"
        if hour == 12 and minute == 0:
            return "noon"
        meridiem = "a" if hour < 12 else "p"
        hour = hour % 12 or 12
    clock = f"{hour}" if minute == 0 else f"{hour}:{minute:02d}"
    return f"{clock} {meridiem.lower()}.m."


def _spoken_date(m: re.Match) -> str:
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{_MONTHS[month - 1]} {day}, {year}"


def _spoken_currency(m: re.Match) -> str:
    word = _CURRENCY_WORDS[m.group(1)]
    amount, scale = m.group(2), (m.group(3) or "").strip()
    scale = {"k": "thousand", "m": "million"}.get(scale.lower(), scale)
    if scale:
        return f"{amount} {scale} {word}s"
    return f"{amount} {word if amount == '1' else word + 's'}"


def speakable(text: str) -> str:
    """Text as a TTS engine should read it.

    Removes markdown (emphasis, headings, code ticks, images; links keep their text), URLs, HTML tags,
    table rows and bracket citation markers (``[1]``, ``[1, 2]``); says units, times, dates, versions,
    percentages, currencies and ranges: ``"400 KB"`` → ``"400 kilobytes"``, ``"9am-5pm"`` →
    ``"9 a.m. to 5 p.m."``, ``"17:30"`` → ``"5:30 p.m."``, ``"2024-03-05"`` → ``"March 5, 2024"``,
    ``"v2.1"`` → ``"version 2 point 1"``, ``"50%"`` → ``"50 percent"``, ``"$5"`` → ``"5 dollars"``.

    Args:
        text: one written sentence (or a few), markers allowed.

    Returns:
        One line of plain text ending in punctuation, or ``""`` when nothing speakable is left.
    """
    lines = [line for line in text.splitlines() if not _TABLE_ROW.match(line)]
    s = " ".join(lines)
    s = MD_IMAGE.sub("", s)
    s = _MD_LINK.sub(r"\1", s)
    s = _URL.sub("", s)
    s = _EMAIL.sub(lambda m: f"{m.group(1)} at {m.group(2).replace('.', ' dot ')}", s)
    s = HTML_TAG.sub("", s)
    s = _CITATION.sub("", s)
    s = _EMPHASIS.sub("", s)
    s = s.replace("|", ", ")
    for pattern, words in _ABBREVIATIONS:
        s = pattern.sub(words, s)
    s = _ISO_DATE.sub(_spoken_date, s)
    s = _AMPM.sub(lambda m: _spoken_time(int(m.group(1)), int(m.group(2) or 0), m.group(3)), s)
    s = _CLOCK.sub(lambda m: _spoken_time(int(m.group(1)), int(m.group(2)), None), s)
    s = _VERSION.sub(lambda m: "version " + m.group(1).replace(".", " point "), s)
    s = _PERCENT.sub(r"\1 percent", s)
    s = _CURRENCY.sub(_spoken_currency, s)
    s = _UNIT_RE.sub(lambda m: f"{m.group(1)} {_plural(_UNITS[m.group(2)], m.group(1))}", s)
    s = _TIMES.sub(r"\1 times", s)
    s = re.sub(r"(\.m\.)\s*[-–—]\s*(?=\d)", r"\1 to ", s)  # "9 a.m.-5 p.m."
    s = _RANGE.sub(r"\1 to ", s)
    s = re.sub(r"\(\s*\)", "", s)
    s = re.sub(r"(?:,?\s+(?:or|and|at|see|visit|in))+\s*(?=[.,;!?)]|$)", "", s)  # left by a removed URL
    s = re.sub(r"\s+([,.;:!?])", r"\1", s)
    s = re.sub(r"([,;:])(?=[^\s\d])", r"\1 ", s)
    s = re.sub(r"\s+", " ", s).strip(" ,;")
    s = re.sub(r"\.(\s*\.)+$", ".", s)
    if not re.search(r"\w", s):
        return ""
    if s[-1] not in ".!?":
        s = s.rstrip(":") + "."
    return s


# --------------------------------------------------------------------------------------------------
# Pacing: sentences and procedure steps
# --------------------------------------------------------------------------------------------------

_PROCEDURE_LEAD = re.compile(r"\bsteps?\b|\bdo the following\b|\bfollow(?:ing)? these\b|^\s*to \w+|\bhow to\b",
                             re.IGNORECASE)


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
        lead, colon, rest = text.partition(": ")
        items = [i.strip() for i in rest.split("; ") if i.strip()] if colon else []
        if len(items) >= 2 and _PROCEDURE_LEAD.search(lead):
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


# --------------------------------------------------------------------------------------------------
# State signing
# --------------------------------------------------------------------------------------------------


class StateSigner:
    """HMAC-SHA256 over a :class:`VoiceState` (all fields but ``signature``).

    Args:
        key: secret bytes; a random per-process key when None (then a state is only valid on the
            replica that issued it).
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _mac(self, state: VoiceState, workspace: str) -> str:
        body = json.dumps([workspace, state.model_dump(mode="json", exclude={"signature"})], sort_keys=True,
                          separators=(",", ":"))
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def sign(self, state: VoiceState, workspace: str = "default") -> VoiceState:
        """The state with its signature set (bound to ``workspace``: another tenant cannot replay it)."""
        return state.model_copy(update={"signature": self._mac(state, workspace)})

    def verify(self, state: VoiceState, workspace: str = "default") -> VoiceState:
        """The state, when its signature matches (issued by this key for this workspace).

        Raises:
            VoiceStateError: altered or foreign state.
        """
        if not hmac.compare_digest(state.signature.encode("utf-8", "surrogatepass"),
                                   self._mac(state, workspace).encode("utf-8")):
            raise VoiceStateError("voice_state was altered or was issued by another server "
                                  "(send it back unchanged; set voice.state_secret on every replica)")
        return state


# --------------------------------------------------------------------------------------------------
# The responder
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoicePolicy:
    """Voice settings (see ``config.settings.VoiceSettings``)."""

    filler_budget_ms: float = 700.0
    filler_phrases: tuple[str, ...] = ("One moment, let me check that for you.",)
    speak_source_titles: bool = False
    max_sentences: int = 3
    steps_per_turn: int = 2
    handoff_phrase: str = HANDOFF_PHRASE


_END = object()


class VoiceResponder:
    """Voice answers on top of an :class:`~serving.pipeline.AnswerPipeline`.

    Args:
        pipeline: the shared answer pipeline (retrieval, voice threshold, citation checks).
        policy: filler budget and pacing.
        signer: signs and checks ``voice_state``.
    """

    def __init__(self, pipeline: AnswerPipeline, policy: VoicePolicy | None = None,
                 signer: StateSigner | None = None) -> None:
        self.pipeline = pipeline
        self.policy = policy or VoicePolicy()
        self.signer = signer or StateSigner()

    async def answer(self, request: AnswerRequest, *, workspace: str | None = None) -> AnswerResponse:
        """Blocking variant of :meth:`stream`: the ``done`` response (with ``voice``).

        Raises:
            VoiceStateError: altered ``voice_state``.
            IndexUnavailableError: Qdrant unreachable before anything was said.
        """
        final = None
        events = self.stream(request, workspace=workspace)
        try:
            async for event in events:
                if event.type == "done":
                    final = event.data["response"]
        finally:
            await events.aclose()
        assert final is not None
        return final

    def filler_phrase(self, request: AnswerRequest) -> str:
        """A holding phrase, stable per conversation (rotates with the question)."""
        key = f"{request.conversation_id or ''}/{request.question}"
        return self.policy.filler_phrases[zlib.crc32(key.encode()) % len(self.policy.filler_phrases)]

    async def stream(self, request: AnswerRequest, *, workspace: str | None = None) -> AsyncIterator[Event]:
        """Yield ``filler``?, ``retrieval``?, ``sentence``\\*, ``citations``, ``decision``, ``done``.

        ``sentence.data``: ``text`` (speakable), ``kind`` (``sentence`` | ``step`` | ``source`` |
        ``confirm``), ``step`` (number or 0), ``written`` (the checked sentence with markers, absent
        for ``source``/``confirm``) and ``markers``. Sentences are provisional until ``decision``.
        ``decision.data`` adds ``speech`` and ``voice_state``. A continuation turn ("yes", "next",
        "repeat" with a ``voice_state``) is answered from the state: no ``retrieval`` event.
        ``workspace``: tenant searched (default: the pipeline's); a state only continues in the
        workspace that issued it.

        Raises:
            VoiceStateError: altered ``voice_state`` (before any event).
            IndexUnavailableError: Qdrant unreachable before anything was said; after a filler the
                answer escalates with reason ``index_unavailable`` instead.
        """
        workspace = workspace or self.pipeline.workspace
        if request.voice_state is not None:
            state = self.signer.verify(request.voice_state, workspace)
            kind = intent(request.question)
            if kind != "ask":
                async for e in self._from_state(request, state, workspace, repeat=kind == "repeat"):
                    yield e
                return
        async for e in self._answer(request, workspace):
            yield e

    async def _from_state(self, request: AnswerRequest, state: VoiceState, workspace: str, *,
                          repeat: bool) -> AsyncIterator[Event]:
        t0 = time.perf_counter()
        pacer = self._pacer()
        if repeat:
            units = [Unit(t, int(m.group(1)) if (m := re.match(r"Step (\d+): ", t)) else 0) for t in state.last]
            pacer.spoken.extend(units)
            pacer.pending.extend(Unit(t, s) for t, s in zip(state.pending, state.pending_steps, strict=False))
        else:
            units = [Unit(t, s) for t, s in zip(state.pending, state.pending_steps, strict=False)]
            for u in units:
                pacer.offer(u)
        for u in pacer.spoken:
            yield Event("sentence", {"text": u.text, "kind": "step" if u.step else "sentence", "step": u.step,
                                     "markers": []})
        said = [u.text for u in pacer.spoken]
        extra = self._closing(pacer, [c.title for c in state.citations])
        for kind, text in extra:
            yield Event("sentence", {"text": text, "kind": kind, "step": 0, "markers": []})
        latency = {"first_sentence": round((time.perf_counter() - t0) * 1000, 2)}
        latency["total"] = round((time.perf_counter() - t0) * 1000, 2)
        voice = VoiceOut(speech=" ".join(said + [t for _, t in extra]),
                         steps_spoken=[u.step for u in pacer.spoken if u.step],
                         state=self._state(state.question, pacer, state.citations, state.confidence, workspace))
        response = AnswerResponse(
            decision=Decision.ANSWER, reason="grounded", answer=voice.speech, citations=state.citations,
            confidence=state.confidence, confidence_kind=CONFIDENCE_KIND, generator="voice_state",
            model="", latency_ms=latency, voice=voice)
        await self.pipeline.record(request, response, [], workspace)  # audited like any answer
        async for e in self._end(request, response):
            yield e

    def _pacer(self) -> Pacer:
        return Pacer(max_sentences=self.policy.max_sentences, steps_per_turn=self.policy.steps_per_turn)

    def _closing(self, pacer: Pacer, titles: list[str]) -> list[tuple[str, str]]:
        out = []
        titles = list(dict.fromkeys(t for t in titles if t))
        if self.policy.speak_source_titles and titles:
            said = speakable(" and ".join(titles))
            article = "the articles" if len(titles) > 1 else "the article"
            out.append(("source", f"This is from {article} {said.rstrip('.')}."))
        question = pacer.confirmation()
        if question:
            out.append(("confirm", question))
        return out

    def _state(self, question: str, pacer: Pacer, citations, confidence: float,
               workspace: str) -> VoiceState | None:
        if not pacer.pending:
            return None
        return self.signer.sign(VoiceState(
            question=question[:2000], pending=[u.text for u in pacer.pending],
            pending_steps=[u.step for u in pacer.pending], last=[u.text for u in pacer.spoken],
            citations=list(citations), confidence=confidence), workspace)

    async def _end(self, request: AnswerRequest, response: AnswerResponse) -> AsyncIterator[Event]:
        yield Event("citations", {"citations": [c.model_dump() for c in response.citations]})
        voice = response.voice
        yield Event("decision", {"decision": response.decision.value, "reason": response.reason,
                                 "confidence": response.confidence, "handoff_summary": response.handoff_summary,
                                 "speech": voice.speech if voice else "",
                                 "voice_state": voice.state.model_dump(mode="json") if voice and voice.state
                                 else None})
        log.info("voice answer conversation_id=%s decision=%s reason=%s filler=%s latency_ms=%s",
                 request.conversation_id, response.decision.value, response.reason,
                 bool(voice and voice.filler), response.latency_ms)
        yield Event("done", {"response": response})

    async def _failed(self, request: AnswerRequest, t0: float, filler: str | None,
                      error: str, workspace: str) -> AsyncIterator[Event]:
        """Escalate with ``index_unavailable`` when the index fails after the caller heard a filler."""
        reason = "index_unavailable"
        latency = {"filler": round(self.policy.filler_budget_ms, 2),
                   "total": round((time.perf_counter() - t0) * 1000, 2)}
        response = AnswerResponse(
            decision=Decision.ESCALATE, reason=reason, confidence=0.0, confidence_kind=CONFIDENCE_KIND,
            handoff_summary=handoff_summary(request, [], reason), generator=self.pipeline.generator.name,
            model=getattr(self.pipeline.generator, "model", ""), latency_ms=latency,
            voice=VoiceOut(speech=self.policy.handoff_phrase, filler=filler))
        log.warning("voice answer escalated: %s", error)
        await self.pipeline.record(request, response, [], workspace)
        async for e in self._end(request, response):
            yield e

    async def _answer(self, request: AnswerRequest, workspace: str) -> AsyncIterator[Event]:
        """A new question: the pipeline runs in its own task so the filler timer can fire meanwhile."""
        t0 = time.perf_counter()
        queue: asyncio.Queue = asyncio.Queue()

        async def produce() -> None:
            events = self.pipeline.stream(request, workspace=workspace)
            try:
                async for event in events:
                    await queue.put(event)
                await queue.put(_END)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised or turned into an escalation
                await queue.put(exc)
            finally:
                await events.aclose()

        task = asyncio.create_task(produce(), name="voice-answer")
        pacer = self._pacer()
        filler: str | None = None
        said_anything = False
        first_sentence: float | None = None
        budget = self.policy.filler_budget_ms / 1000
        try:
            while True:
                if not queue.empty():
                    item = queue.get_nowait()
                elif filler is None and not said_anything and budget > 0:
                    remaining = budget - (time.perf_counter() - t0)
                    try:
                        item = await asyncio.wait_for(queue.get(), timeout=max(remaining, 0))
                    except TimeoutError:
                        filler = self.filler_phrase(request)
                        said_anything = True
                        yield Event("filler", {"text": filler,
                                               "after_ms": round((time.perf_counter() - t0) * 1000, 2)})
                        continue
                else:
                    item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    if not said_anything or not isinstance(item, CitedeskError):
                        raise item
                    log.error("voice answer failed after a filler: %s", item)
                    async for e in self._failed(request, t0, filler, type(item).__name__, workspace):
                        yield e
                    return
                event: Event = item
                if event.type == "sentence":
                    for unit in pacer.units(event.data["text"]):
                        if not pacer.offer(unit):
                            continue
                        if first_sentence is None:
                            first_sentence = round((time.perf_counter() - t0) * 1000, 2)
                        said_anything = True
                        yield Event("sentence", {"text": unit.text, "kind": "step" if unit.step else "sentence",
                                                 "step": unit.step, "written": event.data["text"],
                                                 "markers": event.data.get("markers", [])})
                elif event.type in ("citations", "decision"):
                    continue  # re-emitted from "done", with the closing sentences and the speech
                elif event.type == "done":
                    response: AnswerResponse = event.data["response"]
                    latency = dict(response.latency_ms)
                    if filler is not None:
                        latency["filler"] = round(budget * 1000, 2)
                    if first_sentence is not None:
                        latency["first_speech"] = first_sentence
                    if response.decision == Decision.ESCALATE:
                        voice = VoiceOut(speech=self.policy.handoff_phrase, filler=filler)
                    else:
                        extra = self._closing(pacer, [c.title for c in response.citations])
                        for kind, text in extra:
                            yield Event("sentence", {"text": text, "kind": kind, "step": 0, "markers": []})
                        voice = VoiceOut(
                            speech=" ".join([u.text for u in pacer.spoken] + [t for _, t in extra]),
                            filler=filler, steps_spoken=[u.step for u in pacer.spoken if u.step],
                            state=self._state(request.question, pacer, response.citations, response.confidence,
                                              workspace))
                    response = response.model_copy(update={"voice": voice, "latency_ms": latency})
                    async for e in self._end(request, response):
                        yield e
                else:
                    yield event
        finally:
            task.cancel()  # client gone (or done): stop retrieval and close the LLM request
            try:
                await asyncio.shield(asyncio.wait({task}, timeout=5))
            except BaseException as exc:  # noqa: BLE001 - cleanup must not mask the original exit
                log.debug("voice answer task cleanup interrupted: %r", exc)


# --------------------------------------------------------------------------------------------------
# WebSocket variant (telephony bridges)
# --------------------------------------------------------------------------------------------------


def wire(event: Event) -> dict:
    """An event as a JSON-ready dict (the ``done`` response serialised)."""
    data = event.data
    if event.type == "done":
        data = {"response": data["response"].model_dump(mode="json")}
    return data


async def serve_websocket(websocket, responder: VoiceResponder, *, workspace: str | None = None) -> None:
    """Serve one call over a WebSocket: many turns, barge-in, state kept on the connection.

    Client → server (JSON text frames):
        ``{"type": "ask", "question": "...", "conversation_id"?, "history"?, "locale"?, "voice_state"?}``
        (channel is voice; without ``voice_state`` the state of this connection's last answer is used);
        ``{"type": "cancel"}`` stops the answer being spoken (the caller barged in). A new ``ask`` while
        an answer runs cancels that answer first.
    Server → client: ``{"type": <event>, ...event data}`` for ``filler``, ``retrieval``, ``sentence``,
        ``citations``, ``decision``, ``done``; ``{"type": "cancelled"}``; ``{"type": "error", "status":
        409 | 422 | 503, "detail": "..."}`` (the connection stays open; 409: altered voice_state).

    A closed connection cancels the running answer (retrieval abandoned, LLM request closed).
    ``workspace``: the tenant searched for this connection (default: the pipeline's).
    """
    from fastapi import WebSocketDisconnect
    from pydantic import ValidationError

    from core.errors import IndexUnavailableError

    await websocket.accept()
    running: asyncio.Task | None = None
    last_state: list[VoiceState | None] = [None]

    async def run(request: AnswerRequest) -> None:
        events = responder.stream(request, workspace=workspace)
        try:
            async for event in events:
                await websocket.send_json({"type": event.type, **wire(event)})
                if event.type == "done":
                    voice = event.data["response"].voice
                    last_state[0] = voice.state if voice else None
        except VoiceStateError as exc:
            await websocket.send_json({"type": "error", "status": 409, "detail": str(exc)})
        except IndexUnavailableError as exc:
            await websocket.send_json({"type": "error", "status": 503, "detail": f"search index unavailable: {exc}"})
        finally:
            await events.aclose()

    async def stop() -> bool:
        if running is None or running.done():
            return False
        running.cancel()
        await asyncio.wait({running})
        return True

    try:
        while True:
            raw = await websocket.receive_text()
            try:
                msg = json.loads(raw)
                if not isinstance(msg, dict):
                    raise TypeError("a message is a JSON object")
                kind = msg.pop("type", None)
                if kind == "cancel":
                    if await stop():
                        await websocket.send_json({"type": "cancelled"})
                    continue
                if kind != "ask":
                    raise ValueError('"type" must be "ask" or "cancel"')
                msg["channel"] = "voice"
                if "voice_state" not in msg and last_state[0] is not None:
                    msg["voice_state"] = last_state[0].model_dump(mode="json")
                request = AnswerRequest.model_validate(msg)
            except (ValueError, TypeError, ValidationError) as exc:  # JSONDecodeError is a ValueError
                await websocket.send_json({"type": "error", "status": 422, "detail": str(exc)})
                continue
            if await stop():
                await websocket.send_json({"type": "cancelled"})
            running = asyncio.create_task(run(request), name="voice-ws-answer")
    except WebSocketDisconnect:
        pass
    finally:
        await stop()
