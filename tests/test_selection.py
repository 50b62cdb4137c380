"""Unit-selection features: the answer shape a question asks for, seen in a candidate unit."""

from __future__ import annotations

import pytest
from citedesk.core.text import AnswerUnit
from citedesk.retrieval.answerability import (
    QuestionType,
    UnitMatch,
    asks_procedure,
    question_type,
)
from citedesk.retrieval.selection import (
    DEFAULT_SELECTION_WEIGHTS,
    FEATURES,
    SelectionModel,
    defined_term,
    unit_features,
)


def match(text: str, kind: str = "sentence", *, hit: int = 0, number: bool = False) -> UnitMatch:
    return UnitMatch(hit, AnswerUnit(kind, text, 0, len(text), ""), 0.6, 0.5, number, 0.4)


@pytest.mark.parametrize("question, term", [
    ("What is a source repository in Amazon Kendra?", "source repository in Amazon Kendra"),
    ("What are the Amazon SageMaker Autopilot problem types?", "Amazon SageMaker Autopilot problem types"),
    ("How do I create a table?", None),
])
def test_defined_term(question, term) -> None:
    assert defined_term(question) == term


def test_shape_features_follow_the_question_type() -> None:
    yes_no = question_type("Can I run my AWS Lambda in a VPC?")
    assert yes_no == QuestionType.YES_NO
    f = unit_features(yes_no, match("You can configure a Lambda function to connect to private subnets."), 0.7)
    assert f["yes_no_modal"] == 1.0 and f["fragment"] == 0.0
    assert unit_features(yes_no, match("Lambda runs your functions in a secure VPC."), 0.7)["yes_no_modal"] == 0.0
    listing = question_type("In Amazon SageMaker GroundTruth, what are the workforce types?")
    enum = "You can choose either the Amazon Mechanical Turk workforce, a vendor-managed workforce, or your own."
    assert unit_features(listing, match(enum), 0.5)["list_enumeration"] == 1.0
    assert unit_features(listing, match("Regression; Binary", "list"), 0.5)["list_kind"] == 1.0
    quantity = question_type("What is the maximum function timeout in AWS Lambda?")
    assert unit_features(quantity, match("The maximum allowed value is 900 seconds.", number=True), 0.5)[
        "quantity_number"] == 1.0
    assert unit_features(QuestionType.OTHER, match("Data in transit over the local network."), 0.5)["fragment"] == 1.0
    title = "To stop a DB instance"
    steps = AnswerUnit("list", f"{title}: Open the console; Choose Stop.", 0, 40, title)
    assert unit_features(QuestionType.OTHER, UnitMatch(0, steps, 0.6, 0.5, False, 0.4), 0.5,
                         procedure=True)["procedure_shape"] == 1.0
    assert unit_features(QuestionType.OTHER, match(title), 0.5, procedure=True)["procedure_shape"] == 1.0
    assert unit_features(QuestionType.OTHER, match(title), 0.5)["procedure_shape"] == 0.0  # not a how-to question
    assert unit_features(QuestionType.OTHER, match("You can stop a DB instance."), 0.5,
                         procedure=True)["procedure_shape"] == 0.0
    subject = unit_features(QuestionType.OTHER, match("A source repository contains the documents."), 0.5,
                            term_terms=frozenset({"sourc", "repositori"}), unit_terms=["sourc", "repositori", "contain"])
    assert subject["definition_subject"] == 1.0
    assert set(f) == set(FEATURES)


def test_shipped_weights_are_the_hand_set_ranking() -> None:
    f = unit_features(QuestionType.QUANTITY, match("Up to 40 DB instances.", hit=2, number=True), 0.8)
    assert SelectionModel().score(f) == pytest.approx(0.5 * 0.6 + 0.5 * 0.8 + 0.3 * 0.4 + 0.1 - 0.02 * 2)
    assert SelectionModel({"cosine": 1.0, "bias": -1.0}).score(f) == pytest.approx(-0.2)


def test_a_lead_in_whose_list_is_in_another_chunk_is_no_candidate(embedder) -> None:
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    def hit(text: str, n: int) -> Hit:
        return Hit(point_id=f"p{n}", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                   article_id="spark.md", locale="en", title="Spark", content_hash="h", chunk_index=n, text=text)

    lead = "You have the following options for downloading the Spark library provided by SageMaker:"
    question = "What are the options for downloading the Spark library provided by SageMaker?"
    gen = ExtractiveGenerator(embedder)
    cut = [hit(f"## Download the Spark library\n\n{lead}", 0),
           hit("Spark runs the training on SageMaker. The library is open source.", 1)]
    assert lead not in [m.unit.text for m, _, _ in gen.rank(question, cut)]  # the chunk ends at the lead-in
    assert all(text != lead for _, _, _, text in gen.select(question, cut))
    whole = [hit(f"{lead}\n\n+ Download the source code from GitHub.\n+ Use pip install sagemaker_pyspark.", 0)]
    said = gen.select(question, whole)
    assert said and said[0][3].startswith(lead.rstrip(":")) and "pip install" in said[0][3]  # with its list


def test_a_sentence_drawing_on_the_one_before_is_said_with_it(embedder) -> None:
    """"Therefore, you can't …" answers only with its premise; "This …" already did (the sentence before joins)."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    text = ("Newer instance types must be launched in a VPC. Therefore, you can't resize an instance in the "
            "EC2-Classic platform to an instance type that is available only in a VPC.")
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="resize.md", locale="en", title="Resize", content_hash="h", chunk_index=0, text=text)
    said = [t for _, _, _, t in ExtractiveGenerator(embedder).select(
        "Can I resize an EC2-Classic instance to an instance type available only in a VPC?", [chunk])]
    assert said[:2] == ["Newer instance types must be launched in a VPC.",
                        ("Therefore, you can't resize an instance in the EC2-Classic platform to an instance type "
                         "that is available only in a VPC.")]


@pytest.mark.parametrize("question, procedure", [
    ("How do I stop a DB instance?", True), ("How can I reboot my instance?", True), ("How to create a table?", True),
    ("What are the steps to export a snapshot?", True), ("How do I know if my instance stopped?", False),
    ("How does Greengrass encrypt data in transit?", False), ("What is a source repository?", False),
])
def test_asks_procedure(question, procedure) -> None:
    assert asks_procedure(question) is procedure


def test_a_how_to_question_gets_the_procedure_not_one_of_its_steps(embedder) -> None:
    """A numbered step ranked first for "How do I …?" ("Open the Amazon EC2 console.", which the title's words
    cover) is replaced by its whole list with the title; another kind of question keeps the step."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    text = ("We recommend that you reboot an instance from the console rather than from its operating system.\n\n"
            "To reboot an instance using the console\n\n1. Open the Amazon EC2 console.\n2. In the navigation pane, "
            "choose Instances.\n3. Select the instance and choose Actions, Instance State, Reboot.\n")
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="reboot.md", locale="en", title="Reboot your instance", content_hash="h", chunk_index=0,
                text=text)
    # without the procedure shape in the ranking, the step ranks first and the rule replaces it
    gen = ExtractiveGenerator(embedder, selection=SelectionModel({**DEFAULT_SELECTION_WEIGHTS, "procedure_shape": 0}))
    question = "How do I reboot my EC2 instance using the console?"
    top = gen.rank(question, [chunk])[0][0].unit
    assert top.kind == "list_item" and top.text == "Open the Amazon EC2 console."  # what the ranking prefers
    procedure = [("To reboot an instance using the console: Open the Amazon EC2 console; In the navigation pane, "
                  "choose Instances; Select the instance and choose Actions, Instance State, Reboot.")]
    assert [t for _, _, _, t in gen.select(question, [chunk])] == procedure
    assert [t for _, _, _, t in ExtractiveGenerator(embedder).select(question, [chunk])] == procedure  # the shape
    said = [t for _, _, _, t in gen.select("Which EC2 console do I reboot the instance in?", [chunk])]
    assert "In the navigation pane" not in " ".join(said)


def test_a_procedure_title_is_said_with_its_first_steps(embedder) -> None:
    """A title line ("To set up …", no sentence end) before numbered steps announces them; alone it says nothing
    (a note between steps leaves no "list" unit to take its place)."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    title = "To set up a custom DNS server for your Amazon RDS PostgreSQL DB instance"
    text = (f"You can use a custom DNS server.\n\n{title}\n\n1. From the DHCP options set attached to your VPC, set the "
            "domain-name-servers option to the IP address of your DNS name server. Note\n  The option accepts up to "
            "four values.\n2. Ensure that your DNS server can resolve all lookup queries.\n")
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="dns.md", locale="en", title="DNS", content_hash="h", chunk_index=0, text=text)
    gen = ExtractiveGenerator(embedder)
    said = [t for _, _, _, t in gen.select("How do I set up a custom DNS server for my RDS PostgreSQL DB instance?",
                                           [chunk])]
    assert said and said[0].startswith(title + ": From the DHCP options set"), said
    assert "Ensure that your DNS server" in said[0]
    # an introduction between the title and its steps
    intro = chunk.model_copy(update={"text": f"{title}\n\nAfter you create the VPC, you can set its DNS server."
                                             "\n\n1. Open the VPC console.\n2. Choose DHCP options sets.\n"})
    said = [t for _, _, _, t in gen.select("How do I set up a custom DNS server for my RDS PostgreSQL DB instance?",
                                           [intro])]
    assert said and said[0].startswith(title + ": After you create the VPC") and "Open the VPC console" in said[0]
    # the same words as a sentence with more after them on the line are no title
    inline = chunk.model_copy(update={"text": f"{title} first create a DHCP options set.\n\n1. Open the console.\n"})
    said = [t for _, _, _, t in gen.select("How do I set up a custom DNS server for my RDS PostgreSQL DB instance?",
                                           [inline])]
    assert said and ": Open the console" not in said[0]
    # a title at the end of its chunk (the next chunk repeats it with the steps) is no candidate
    end = chunk.model_copy(update={"text": f"You can use a custom DNS server.\n\n{title}", "chunk_index": 1})
    said = [t for _, _, _, t in gen.select("How do I set up a custom DNS server for my RDS PostgreSQL DB instance?",
                                           [end, chunk])]
    assert said and said[0].startswith(title + ": From the DHCP options set"), said
