"""The voice channel: answers built for the ear and for latency (phone agents: STT → citedesk → TTS).

:class:`VoiceResponder` wraps :meth:`citedesk.serving.answer.pipeline.AnswerPipeline.stream` (same retrieval, thresholds,
citation checks) and reshapes its events for speech:

* ``filler`` — a short holding phrase, sent once, only when no sentence is ready ``filler_budget_ms``
  after the request arrived (a timer, so a fast answer never gets one);
* ``sentence`` — speakable text (:func:`speakable`: no markdown, URLs, citation markers or tables;
  numbers, units, times, dates and versions written the way they are said), with the checked written
  sentence and its markers as metadata;
* long answers and procedures are paced: at most ``max_sentences`` sentences and ``steps_per_turn``
  procedure steps per turn, then a confirmation question; the rest travels in a signed
  :class:`~citedesk.serving.answer.schemas.VoiceState` that the client sends back with "yes" / "next" (or "repeat");
* a yes/no question answered by the extractive generator (its sentences come at once) is answered "Yes." or
  "No." first when its short answer says so (``yes_no_first``; the sentences wait for the short answer, which
  needs them all);
* ``citations`` stay metadata; source titles are spoken only with ``speak_source_titles``;
* ``decision`` / ``done`` as in chat, with ``voice`` (speech, filler, state) on the response.

Closing the stream (client disconnect) cancels the producing task: retrieval is abandoned and the LLM
request's connection is closed, so no generation is left running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator, Iterator

from citedesk.config.settings import VoiceSettings
from citedesk.core.errors import CitedeskError
from citedesk.core.types import AnswerReason, Decision, GeneratorKind
from citedesk.retrieval.answerability import QuestionType, question_type
from citedesk.retrieval.confidence import CONFIDENCE_KIND
from citedesk.serving.answer.pipeline import AnswerPipeline, Event, handoff_summary
from citedesk.serving.answer.schemas import (
    AnswerRequest,
    AnswerResponse,
    VoiceOut,
    VoiceState,
)
from citedesk.serving.answer.short_answer import NO, YES
from citedesk.serving.channels.voice.pacing import Pacer, Unit, intent
from citedesk.serving.channels.voice.speech import speakable
from citedesk.serving.channels.voice.state import StateSigner

__all__ = ["VoiceResponder"]

log = logging.getLogger(__name__)


_END = object()


class VoiceResponder:
    """Voice answers on top of an :class:`~citedesk.serving.answer.pipeline.AnswerPipeline`.

    Args:
        pipeline: the shared answer pipeline (retrieval, voice threshold, citation checks).
        policy: ``settings.voice``: filler budget and phrases, pacing, handoff phrase.
        signer: signs and checks ``voice_state``.
    """

    def __init__(self, pipeline: AnswerPipeline, policy: VoiceSettings | None = None,
                 signer: StateSigner | None = None) -> None:
        self.pipeline = pipeline
        self.policy = policy or VoiceSettings()
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
            decision=Decision.ANSWER, reason=AnswerReason.GROUNDED, answer=voice.speech, citations=state.citations,
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
        reason = AnswerReason.INDEX_UNAVAILABLE
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
        # a yes/no question answered from the articles' own sentences, which come at once: "No." is said first
        hold = (self.policy.yes_no_first and self.pipeline.generator.name == GeneratorKind.EXTRACTIVE.value
                and question_type(request.question) == QuestionType.YES_NO)
        held: list[Event] = []

        def speak(said) -> Iterator[Event]:
            """``sentence`` events for the ``(unit, sentence event data)`` pairs the pacer lets through this turn."""
            nonlocal first_sentence, said_anything
            for unit, data in said:
                if not pacer.offer(unit):
                    continue
                if first_sentence is None:
                    first_sentence = round((time.perf_counter() - t0) * 1000, 2)
                said_anything = True
                yield Event("sentence", {"text": unit.text, "kind": "step" if unit.step else "sentence",
                                         "step": unit.step, "written": data["text"],
                                         "markers": data.get("markers", [])})

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
                if event.type == "sentence" and hold:
                    held.append(event)  # said after the verdict, when the short answer is known ("done")
                    continue
                if event.type == "sentence":
                    for e in speak([(unit, event.data) for unit in pacer.units(event.data["text"])]):
                        yield e
                elif event.type in ("citations", "decision"):
                    continue  # re-emitted from "done", with the closing sentences and the speech
                elif event.type == "done":
                    response: AnswerResponse = event.data["response"]
                    if held and response.decision == Decision.ANSWER:
                        verdict = response.short_answer if response.short_answer in (YES, NO) else None
                        said = [(unit, e.data) for e in held for unit in pacer.units(e.data["text"])]
                        if verdict and said and not said[0][0].step:  # one sentence: "No. You can't stop …"
                            first, data = said[0]
                            said[0] = (dataclasses.replace(first, text=f"{verdict}. {first.text}"), data)
                        elif verdict:
                            said.insert(0, (Unit(f"{verdict}."), {"text": f"{verdict}.", "markers": []}))
                        for e in speak(said):
                            yield e
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
