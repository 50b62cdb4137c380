"""Unit-selection features: the answer shape a question asks for, seen in a candidate unit."""

from __future__ import annotations

import pytest
from citedesk.core.text import AnswerUnit
from citedesk.retrieval.answerability import (
    QuestionType,
    UnitMatch,
    asked_bound,
    asks_count,
    asks_definition,
    asks_procedure,
    asks_reason,
    copula_subject,
    counted,
    counts,
    defined_term,
    other_bound,
    question_type,
    subject_head,
)
from citedesk.retrieval.selection import (
    DEFAULT_SELECTION_WEIGHTS,
    FEATURES,
    SelectionModel,
    unit_features,
)


def match(text: str, kind: str = "sentence", *, hit: int = 0, number: bool = False) -> UnitMatch:
    return UnitMatch(hit, AnswerUnit(kind, text, 0, len(text), ""), 0.6, 0.5, number, 0.4)


def chunk_hit(text: str, article_id: str = "page.md", title: str = "Page"):
    """A retrieved chunk of ``text`` (first chunk of its article)."""
    from citedesk.core.types import Hit, ScoreKind

    return Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
               article_id=article_id, locale="en", title=title, content_hash="h", chunk_index=0, text=text)


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
    # an "it" that stands in for what follows draws on nothing: the step before is not said with it
    steps = chunk.model_copy(update={"text": "1. Choose Save to save your changes.\n\nIt can take up to 36 hours for "
                                             "CloudTrail to deliver the first Insights events.\n"})
    said = [t for _, _, _, t in ExtractiveGenerator(embedder).select(
        "How long does it take for CloudTrail to deliver the first Insights event?", [steps])]
    assert said[0] == "It can take up to 36 hours for CloudTrail to deliver the first Insights events.", said


@pytest.mark.parametrize("question, procedure", [
    ("How do I stop a DB instance?", True), ("How can I reboot my instance?", True), ("How to create a table?", True),
    ("What are the steps to export a snapshot?", True), ("How do I know if my instance stopped?", False),
    ("How does Greengrass encrypt data in transit?", False), ("What is a source repository?", False),
])
def test_asks_procedure(question, procedure) -> None:
    assert asks_procedure(question) is procedure


def test_a_how_to_question_gets_the_procedure_not_one_of_its_steps(embedder) -> None:
    """A numbered step ranked first for "How do I …?" ("Open the Amazon EC2 console.", which the title's words
    cover) is replaced by its whole list with the title; another kind of question keeps the step when it ranks
    first (by default a step ranks lower for such a question: ``stray_step``)."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    text = ("We recommend that you reboot an instance from the console rather than from its operating system.\n\n"
            "To reboot an instance using the console\n\n1. Open the Amazon EC2 console.\n2. In the navigation pane, "
            "choose Instances.\n3. Select the instance and choose Actions, Instance State, Reboot.\n")
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="reboot.md", locale="en", title="Reboot your instance", content_hash="h", chunk_index=0,
                text=text)
    # without the procedure shape (nor the stray-step weight) in the ranking, the step ranks first and the rule
    # replaces it
    gen = ExtractiveGenerator(embedder, selection=SelectionModel({**DEFAULT_SELECTION_WEIGHTS, "procedure_shape": 0,
                                                                  "stray_step": 0}))
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


@pytest.mark.parametrize("question, noun", [
    ("How many local secondary indexes can a DynamoDB table have?", "indexes"),
    ("How many SQL Server instances can I have per account?", "instances"),
    ("how many tags?", "tags"),
    ("How many seconds can a function run?", None),  # a unit of measure: "900 seconds" answers
    ("How many GB can I store?", None),
    ("How many minutes before the new instance is available?", None),  # the unit, then what it is about
    ("How many individual GetItem requests and can retrieve up to 16 MB of data?", "requests"),
    ("What is the maximum number of tags?", None),
])
def test_counted(question, noun) -> None:
    assert counted(question) == noun
    assert asks_count(question) is (noun is not None)


@pytest.mark.parametrize("text, count", [
    ("You can define a maximum of 5 local secondary indexes.", True),
    ("There is an initial quota of 20 global secondary indexes per table.", True),
    ("Secondary indexes per table: 20", True),  # a name and its value
    ("You can create up to 500 per account.", True),
    ("For each local secondary index on a table, there is a 400 KB limit on the total.", False),  # a size
    ("DynamoDB supports two types of secondary indexes:", False),  # counts types
    ("Index names must be 3 to 255 characters long.", False),
    ("Use an index in us-east-1 on a db.t2.medium instance.", False),  # numbers inside names
])
def test_counts(text, count) -> None:
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

    assert counts(text, "indexes", BM25SparseEncoder()) is count


def test_a_how_many_question_is_not_answered_with_a_measure(embedder) -> None:
    """"How many local secondary indexes …?" asks for a count: a unit that states a size ("a 400 KB limit") does not
    have the shape asked for and loses to one that counts indexes; its number is no short answer either."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
    from citedesk.serving.answer.generators import ExtractiveGenerator
    from citedesk.serving.answer.short_answer import short_answer

    size = "For each local secondary index on a table, there is a 400 KB limit on the total size of its items."
    count = "You can define a maximum of 5 local secondary indexes per table."
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="limits.md", locale="en", title="Quotas in DynamoDB", content_hash="h", chunk_index=0,
                text=f"{size}\n\n{count}\n")
    question = "How many local secondary indexes can a DynamoDB table have?"
    gen = ExtractiveGenerator(embedder)
    ranked = {m.unit.text: f for m, f, _ in gen.rank(question, [chunk])}
    assert ranked[size]["quantity_number"] == 0.0 and ranked[count]["quantity_number"] == 1.0
    assert gen.rank(question, [chunk])[0][0].unit.text == count
    # the size question is still answered by its size
    assert {m.unit.text: f for m, f, _ in gen.rank("How large can a local secondary index be?", [chunk])
            }[size]["quantity_number"] == 1.0
    sparse = BM25SparseEncoder()
    assert short_answer(question, [f"{size} [1]"], [chunk], sparse) is None
    assert short_answer(question, [f"{count} [1]"], [chunk], sparse) == "5"


def test_a_list_item_that_is_a_name_is_said_with_its_list(embedder) -> None:
    """A list item that says nothing alone ("SQL Server 2014 Enterprise Edition") is answered with its list and
    lead-in; a list too long to be a unit says the item after its lead-in; an item that is a sentence stays alone."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    lead = "Amazon RDS supports TDE for the following SQL Server versions and editions:"
    items = ["SQL Server 2019 Standard and Enterprise Editions", "SQL Server 2017 Enterprise Edition",
             "SQL Server 2014 Enterprise Edition"]
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="tde.md", locale="en", title="Transparent Data Encryption", content_hash="h",
                chunk_index=0, text=lead + "\n" + "".join(f"+ {i}\n" for i in items))
    gen = ExtractiveGenerator(embedder)
    question = "Which SQL Server editions support TDE on RDS?"
    said = [t for _, _, _, t in gen.select(question, [chunk])]
    assert said == [f"{lead[:-1]}: {'; '.join(items)}."], said
    many = chunk.model_copy(update={"text": lead + "\n" + "".join(
        f"+ SQL Server {2000 + k} Enterprise Edition for the {k}th release train of the product line\n"
        for k in range(1, 40)) + "+ SQL Server 2014 Enterprise Edition\n"})
    said = [t for _, _, _, t in gen.select("Does RDS support TDE for SQL Server 2014 Enterprise Edition?", [many])]
    assert said[0] == f"{lead[:-1]}: SQL Server 2014 Enterprise Edition.", said
    rule = chunk.model_copy(update={"text": "The following limitations apply:\n+ You can't stop a DB instance that "
                                            "has a read replica.\n+ You can't modify a stopped DB instance.\n"})
    said = [t for _, _, _, t in gen.select("Can I stop a DB instance that has a read replica?", [rule])]
    assert said[0] == "You can't stop a DB instance that has a read replica.", said


def test_a_what_is_question_prefers_the_sentence_that_says_what_it_is(embedder) -> None:
    """"What is a service-linked role?": the sentence with the role as its subject before "is" has the definition
    shape and ranks first; one that only mentions it does not, and neither does a subject whose head is another
    thing ("A service-linked role policy is …")."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    defines = "A service-linked role is a unique type of IAM role that is linked directly to Amazon RDS."
    mentions = "You don't need to manually create a service-linked role for Amazon RDS."
    other = "A service-linked role policy is attached to the role when Amazon RDS creates it."
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="slr.md", locale="en", title="Using service-linked roles for Amazon RDS", content_hash="h",
                chunk_index=0, text=f"{mentions} {other} {defines}\n")
    question = "What is a service-linked role?"
    ranked = ExtractiveGenerator(embedder).rank(question, [chunk])
    shape = {m.unit.text: f["definition_shape"] for m, f, _ in ranked}
    assert shape == {defines: 1.0, mentions: 0.0, other: 0.0}
    assert ranked[0][0].unit.text == defines
    # not for a question of another kind
    assert all(f["definition_shape"] == 0.0 for _, f, _ in
               ExtractiveGenerator(embedder).rank("What is the maximum number of service-linked roles?", [chunk]))
    assert copula_subject(other) == "service-linked role policy" and subject_head("event in CloudTrail") == "event"
    # where a sentence that mentions the term is closer to the question, the shape decides
    candidate = chunk.model_copy(update={"text": (
        "You can also conduct further experiments on the higher performing candidates by making your own "
        "modifications to the notebooks. A candidate is a combination of data preprocessors, algorithms, and "
        "algorithm parameter settings.\n")})
    unshaped = ExtractiveGenerator(embedder, selection=SelectionModel({**DEFAULT_SELECTION_WEIGHTS,
                                                                       "definition_shape": 0}))
    assert unshaped.rank("What is a candidate?", [candidate])[0][0].unit.text.startswith("You can also conduct")
    assert ExtractiveGenerator(embedder).rank("What is a candidate?", [candidate])[0][0].unit.text.startswith(
        "A candidate is a combination")


@pytest.mark.parametrize("question, term", [
    ("What is a trail?", "trail"),
    ("What is Amazon Kendra?", "Amazon Kendra"),
    ("What is the instance store type for d2.xlarge?", None),  # an attribute, asked with "the"
    ("What is the maximum number of tags?", None),
    ("What are the storage types?", None),
])
def test_asks_definition(question, term) -> None:
    assert asks_definition(question) == term


def test_a_what_is_question_needs_a_sentence_that_says_what_it_is_to_match_its_type() -> None:
    """The confidence input ``type_match`` for "What is a Greengrass group?" is 1 only where a unit says what one is
    ("A Greengrass group is …"), not where units only mention groups."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.retrieval.answerability import signals
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

    def hit(text: str) -> Hit:
        return Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                   article_id="gg.md", locale="en", title="AWS IoT Greengrass", content_hash="h", chunk_index=0,
                   text=text, cosine=0.7)

    sparse = BM25SparseEncoder()
    mentions = "A Greengrass device can be a member of up to 10 groups. You can deploy a group from the console."
    question = "What is a Greengrass group?"
    assert signals(question, [hit(mentions)], sparse).type_match == 0.0
    defined = mentions + " A Greengrass group is a collection of settings and components, such as a core and devices."
    assert signals(question, [hit(defined)], sparse).type_match == 1.0
    assert signals("Can I deploy a Greengrass group?", [hit(mentions)], sparse).type_match == 1.0  # another type


@pytest.mark.parametrize("text, term, says", [
    ("A source repository, which contains the documents to index.", "source repository in Amazon Kendra", True),
    ("Spot Instance pool – A set of unused EC2 instances with the same instance type.", "Spot Instance pool", True),
    ("IBM Watson Assistant is a service for building chatbots.", "Watson Assistant", True),
    ("An event in CloudTrail is the record of an activity in an AWS account.", "event in CloudTrail", True),
    ("Tables are the fundamental data structures in DynamoDB.", "DynamoDB global table", False),
    ("A Spot Instance request is either one-time or persistent.", "Spot Instance", False),
    ("You don't need to manually create a service-linked role.", "service-linked role", False),
])
def test_defines(text, term, says) -> None:
    from citedesk.retrieval.answerability import defines
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

    assert defines(text, term, BM25SparseEncoder()) is says


def test_a_why_question_prefers_a_unit_that_gives_a_reason(embedder) -> None:
    """"Why would I use a Multi-AZ deployment?": a sentence with a reason or benefit ("for enhanced fault tolerance",
    "we recommend") has the reason shape and outranks one that only mentions Multi-AZ; a question that does not ask
    why gives no unit the shape."""
    from citedesk.core.types import Hit, ScoreKind
    from citedesk.serving.answer.generators import ExtractiveGenerator

    mentions = ("When working with a Multi-AZ deployment of SQL Server, remember that Amazon RDS creates replicas for "
                "all SQL Server databases on your instance.")
    reason = ("For production OLTP use cases, we recommend that you use Multi-AZ deployments for enhanced fault "
              "tolerance with Provisioned IOPS storage for fast and predictable performance.")
    chunk = Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder",
                article_id="bp.md", locale="en", title="Best practices for Amazon RDS", content_hash="h",
                chunk_index=0, text=f"{mentions} {reason}\n")
    question = "Why would I use a Multi-AZ deployment?"
    shaped = {m.unit.text: f["reason_shape"] for m, f, _ in ExtractiveGenerator(embedder).rank(question, [chunk])}
    assert shaped == {mentions: 0.0, reason: 1.0}
    unshaped = ExtractiveGenerator(embedder, selection=SelectionModel({**DEFAULT_SELECTION_WEIGHTS,
                                                                       "reason_shape": 0}))
    assert unshaped.rank(question, [chunk])[0][0].unit.text == mentions
    assert ExtractiveGenerator(embedder).rank(question, [chunk])[0][0].unit.text == reason
    assert all(f["reason_shape"] == 0.0 for _, f, _ in
               ExtractiveGenerator(embedder).rank("Can I use a Multi-AZ deployment?", [chunk]))
    assert asks_reason("Why should I use DAX?") and asks_reason("What are the benefits of DAX?")
    assert not asks_reason("How do I use DAX?")


@pytest.mark.parametrize("question, bound", [
    ("What is the maximum length of a partition key value in DynamoDB?", "max"),
    ("What is the max number of forecasts?", "max"), ("What is the upper limit of RDS DB instances?", "max"),
    ("What is the minimum SQL data set refresh interval?", "min"), ("What is the smallest volume size?", "min"),
    ("What are the minimum and maximum lengths of a sort key?", None), ("What is the default timeout?", None),
])
def test_asked_bound(question, bound) -> None:
    assert asked_bound(question) == bound


@pytest.mark.parametrize("text, bound, other", [
    ("The minimum length of a partition key value is 1 byte.", "max", True),
    ("The maximum length is 2048 bytes.", "max", False),
    ("The minimum length is 1 byte and the maximum length is 2048 bytes.", "max", False),  # says both
    ("You can have up to 40 DB instances.", "min", True), ("You need at least 2 subnets.", "max", True),
    ("Each table has a partition key.", "max", False),  # says neither
])
def test_other_bound(text, bound, other) -> None:
    assert other_bound(text, bound) is other


def test_a_question_for_one_bound_is_not_answered_with_the_other(embedder) -> None:
    """"What is the maximum length …?" is not answered "The minimum length … is 1 byte." however well that sentence
    matches the question's other words; "The maximum length is 2048 bytes." is said after the sentence it leaves
    its subject to, and the short answer is its number."""
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
    from citedesk.serving.answer.generators import ExtractiveGenerator
    from citedesk.serving.answer.short_answer import short_answer

    limits = chunk_hit("## Partition Keys\n\nThe minimum length of a partition key value is 1 byte. The maximum length is "
                       "2048 bytes.\n\n## Sort Keys\n\nThe minimum length of a sort key value is 1 byte. The maximum "
                       "length is 1024 bytes.\n", "limits.md", "Quotas in DynamoDB")
    gen = ExtractiveGenerator(embedder)
    question = "What is the maximum length of a partition key value in DynamoDB?"
    ranked = gen.rank(question, [limits])
    assert ranked[0][0].unit.text == "The maximum length is 2048 bytes."
    assert {m.unit.text: f["other_bound"] for m, f, _ in ranked}[
        "The minimum length of a partition key value is 1 byte."] == 1.0
    said = [t for _, _, _, t in gen.select(question, [limits])]
    assert said[:2] == ["The minimum length of a partition key value is 1 byte.", "The maximum length is 2048 bytes."]
    sparse = BM25SparseEncoder()
    assert short_answer(question, [f"{t} [1]" for t in said[:2]], [limits], sparse) == "2048 bytes"
    minimum = "What is the minimum length of a partition key value in DynamoDB?"
    assert next(t for _, _, _, t in gen.select(minimum, [limits])) == (
        "The minimum length of a partition key value is 1 byte.")
    assert short_answer(minimum, [f"{t} [1]" for t in said[:2]], [limits], sparse) == "1 byte"


def test_a_sentence_that_says_its_items_after_a_colon_announces_nothing(embedder) -> None:
    """"Only the following instance types support …: C3, D2, and R3." has its items: the paragraph after it is not
    said as its list; "You can add only the following types of documents …." is said with the list after it."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    def hit(text: str):
        return chunk_hit(text, "ami.md", "Instance store-backed AMIs")

    own = "Only the following instance types support an instance store volume as the root device: C3, D2, and R3."
    said = [t for _, _, _, t in ExtractiveGenerator(embedder).select(
        "Which instance types support an instance store volume as the root device?",
        [hit(f"{own}\n\nThe AMI creation process is different for Amazon EBS-backed AMIs.\n")])]
    assert said[0] == own, said
    lead = "You can add only the following types of documents with the BatchPutDocuments operation."
    said = [t for _, _, _, t in ExtractiveGenerator(embedder).select(
        "What types of documents can I add with the BatchPutDocuments operation?",
        [hit(f"{lead}\n\n+ Plain text\n+ HTML\n+ PDF\n")])]
    assert "HTML" in " ".join(said) and "PDF" in " ".join(said), said


def test_a_sentence_that_announces_how_many_things_is_said_with_them(embedder) -> None:
    """"… two types of error can occur." names neither: it is said with the two sentences after it; when what follows
    is not that many sentences (a title line, "Topics"), it is said alone; "all three" announces nothing."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    def hit(text: str):
        return chunk_hit(text, "errors.md", "Error handling")

    lead = "When you invoke a function, two types of error can occur."
    errors = ("Invocation errors occur when the invocation request is rejected before your function receives it.",
              "Function errors occur when your function's code or runtime returns an error.")
    gen = ExtractiveGenerator(embedder)
    question = "What are the two types of errors when invoking a Lambda function?"
    said = [t for _, _, _, t in gen.select(question, [hit(f"{lead} {errors[0]} {errors[1]}\n")])]
    assert said[0] == f"{lead[:-1]}: {errors[0][:-1]}; {errors[1]}", said
    said = [t for _, _, _, t in gen.select(question, [hit(f"{lead} {errors[0]}\n\nTopics\n")])]
    assert said[0] == lead, said
    assert next(t for _, _, _, t in gen.select("What are the recording methods?", [hit(
        "Ensure that all three recording methods are enabled. The icon is then green. Choose Save. Done.\n")])) == (
        "Ensure that all three recording methods are enabled.")


@pytest.mark.parametrize("line, code", [
    ("from sagemaker.sparkml.model import SparkMLModel", True), ("mapper = new DynamoDBMapper(client);", True),
    ("$ aws s3 ls s3://bucket", True), ("testTransactionLoadWithSave();", True),
    ("You can use SparkML to serve your model.", False), ("The default is 5 seconds.", False),
])
def test_code_line(line, code) -> None:
    from citedesk.core.text import CODE_LINE

    assert bool(CODE_LINE.match(line)) is code


def test_a_line_of_code_answers_only_a_how_to_question(embedder) -> None:
    """"from sagemaker.sparkml.model import SparkMLModel" matches "Can I use SparkML …?" by its words, but a line of
    code is no answer to it: the sentence that says so is; a how-to question still gets the code with its lead-in."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    code = chunk_hit("The following code deploys a SparkML model.\n\nfrom sagemaker.sparkml.model import SparkMLModel\n",
                     "pipeline.md", "SparkML pipelines")
    prose = chunk_hit("The SageMaker SparkML Serving container supports deploying Apache Spark ML pipelines to get "
                      "inferences.\n", "sparkml.md", "SparkML Serving")
    gen = ExtractiveGenerator(embedder)
    ranked = [m.unit.text for m, _, _ in gen.rank("Can I use SparkML to serve my model with Amazon SageMaker?",
                                                  [code, prose])]
    assert "from sagemaker.sparkml.model import SparkMLModel" not in ranked and ranked[0].startswith("The SageMaker")
    assert "from sagemaker.sparkml.model import SparkMLModel" in [
        m.unit.text for m, _, _ in gen.rank("How do I deploy a SparkML model with SageMaker?", [code])]


def test_a_question_for_a_value_prefers_a_unit_that_holds_a_number(embedder) -> None:
    """"What is the maximum unzipped deployment package size?" is not answered by the API field that describes the
    size without stating it; the sentence with "250 MB" answers. A question that asks for no value ("What is the
    recommended storage engine?") has no such preference."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    field = chunk_hit("CodeSizeZipped The maximum size of a deployment package when it's uploaded directly to AWS "
                      "Lambda.\n\nType: Long\n", "limit.md", "AccountLimit")
    layers = chunk_hit("The total unzipped size of the function and all layers can't exceed the unzipped deployment "
                       "package size limit of 250 MB.\n", "layers.md", "AWS Lambda layers")
    question = "What is the maximum unzipped deployment package size in AWS Lambda?"
    gen = ExtractiveGenerator(embedder)
    ranked = gen.rank(question, [field, layers])
    assert {m.unit.text[:14]: f["no_value"] for m, f, _ in ranked}["CodeSizeZipped"] == 1.0
    said = [t for _, _, _, t in gen.select(question, [field, layers])]
    assert said[0].endswith("limit of 250 MB."), said
    from citedesk.retrieval.answerability import asks_number

    assert asks_number(question) and not asks_number("What is the recommended storage engine for MySQL?")
    assert asks_number("By default, how many Dedicated Hosts can I allocate per instance family?")
    assert asks_number("What is the largest value I can pass to --max-results?")
    assert not asks_number("What is the default value of the retention setting?")


def test_a_list_item_that_says_nothing_of_the_question_itself_does_not_answer(embedder) -> None:
    """An item whose match with the question is all in its lead-in ("… to specify the following: … The resources on
    which actions can be performed.") and a numbered step of another procedure ("Open the SageMaker console.") do
    not answer a question that asks for neither a list nor a procedure."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    gen = ExtractiveGenerator(embedder)
    policy = chunk_hit("You can create a policy for Amazon VPC endpoints for SageMaker notebook instances to specify "
                       "the following:\n\n- The principal that can perform actions.\n- The actions that can be "
                       "performed.\n- The resources on which actions can be performed.\n", "endpoint.md",
                       "Connect to a Notebook Instance Through a VPC Interface Endpoint")
    question = "Can I connect a SageMaker Notebook Instance to a resource in a VPC?"
    flags = {m.unit.text: f["lead_in_only"] for m, f, _ in gen.rank(question, [policy])}
    assert flags["The resources on which actions can be performed."] == 1.0
    assert all(t != "The resources on which actions can be performed." for _, _, _, t in gen.select(question, [policy]))
    steps = chunk_hit("To use an algorithm to run a training job (console)\n\n1. Open the SageMaker console at "
                      "https://console.aws.amazon.com/sagemaker/.\n2. Choose Algorithms.\n3. Choose an algorithm that "
                      "you created from the list on the My algorithms tab or choose an algorithm that you subscribed "
                      "to on the AWS Marketplace subscriptions tab.\n4. For Job name, type a name for the training "
                      "job.\n5. For IAM role, choose an IAM role that has the required permissions.\n6. For Input "
                      "data configuration, specify where the data is stored.\n", "algo-train.md",
                      "Use an Algorithm to Run a Training Job")
    own = chunk_hit("You have the following options:\n\n- Use your own custom algorithms—Put your code together as a "
                    "Docker image and specify the registry path of the image in a CreateTrainingJob API call.\n",
                    "training.md", "Train a Model with Amazon SageMaker")
    question = "Can I use my own custom algorithm in an Amazon SageMaker training job?"
    ranked = gen.rank(question, [steps, own])
    assert {m.unit.text[:8]: f["stray_step"] for m, f, _ in ranked}["Open the"] == 1.0
    said = [t for _, _, _, t in gen.select(question, [steps, own])]
    assert not said[0].startswith("Open the SageMaker console"), said  # the list with its title, or the other page
    how = "How do I use an algorithm to run a training job?"  # a how-to question: the steps are its answer
    assert all(f["stray_step"] == 0.0 for _, f, _ in gen.rank(how, [steps, own]))


@pytest.mark.parametrize("text, question, states", [
    ("For a new item, DynamoDB consumes one write capacity unit.",
     "How much data does one DynamoDB write capacity unit cover?", False),  # the question's own number
    ("One write capacity unit covers an item of up to 1 KB.",
     "How much data does one DynamoDB write capacity unit cover?", True),
    ("There is no practical limit on a table's size.", "What is the maximum size of a DynamoDB table?", True),
    ("If you use the Lambda console editor, the console manages the deployment package.",
     "How big can the deployment package be in the Lambda console editor?", False),
    ("Accelerator Type: ml.eia2.large; F32 Throughput in TFLOPS: 2", "What is F32 Throughput of ml.eia2.large?", True),
    # digits inside names, "single", a vague count and a command's arguments state no value (held-out questions
    # written 2026-11-27 were answered with these)
    ("You can configure CloudTrail to deliver log files from multiple AWS accounts to a single S3 bucket.",
     "What is the maximum size of an AWS CloudTrail log file?", False),
    ("You can create one or more aliases for your Lambda function.",
     "What is the maximum number of aliases for an AWS Lambda function?", False),
    ("aws cloudtrail lookup-events --max-results 1", "What is the largest value I can pass to --max-results?", False),
    ("aws cloudtrail add-tags --resource-id arn:aws:cloudtrail:us-east-2:123456789012:trail/my-trail --tags-list "
     "Key=Owner,Value=Mary", "How many tags can I add to an AWS CloudTrail trail?", False),
    ("Possible values are 1 through 50.", "What is the largest value I can pass to --max-results?", True),
    ("The --max-items option accepts up to 1000.", "What is the largest value for --max-items?", True),  # prose
    ("--region us-east-1 --max-results 5", "What is the largest value I can pass to --max-results?", False),
    ("Instance Class: db.t2.medium; MariaDB: 32", "What is the maximum storage for MariaDB on db.t2.medium?", True),
    ("You can register a transit gateway with one global network only.",
     "How many global networks can a transit gateway be registered with?", True),
])
def test_states_value(text, question, states) -> None:
    from citedesk.retrieval.answerability import states_value

    assert states_value(text, question) is states


def test_a_question_for_a_value_whose_best_passage_states_none_is_escalated(embedder) -> None:
    """The extractive answer to a question that asks for a value declines (the pipeline escalates,
    ``generator_declined``) when what it would say holds no number but the question's own; a question that asks
    for no value is answered from the same passage."""
    import asyncio

    from citedesk.serving.answer.generators import NO_VALUE, ExtractiveGenerator

    gen = ExtractiveGenerator(embedder)
    editor = chunk_hit("If you use the Lambda console editor to author your function, the console manages the "
                       "deployment package.\n", "ruby-package.md", "AWS Lambda deployment package in Ruby")

    async def say(question: str) -> str:
        return "".join([d async for d in gen.stream(question, [], [editor])])

    assert asyncio.run(say("How big can the deployment package be in the Lambda console editor?")) == (
        f"ESCALATE: {NO_VALUE}")
    said = asyncio.run(say("Who manages the deployment package in the Lambda console editor?"))
    assert said.startswith("If you use the Lambda console editor"), said


@pytest.mark.parametrize("question, text, sibling", [
    ("Why use Elastic Fabric Adapter?", "Elastic Network Adapters (ENAs) provide traditional IP networking.", True),
    ("Why use Elastic Fabric Adapter?", "An Elastic Fabric Adapter (EFA) is a network device.", False),
    ("Can I add a Local Secondary Index to an existing table?", "You can add a Global Secondary Index later.", True),
    ("Can I add a Local Secondary Index to an existing table?",  # names the asked one too
     "A Local Secondary Index shares the partition key of the table; a Global Secondary Index has its own.", False),
    ("How does AWS IoT Greengrass encrypt data in transit?",
     "Communication between a Greengrass core and AWS IoT Greengrass over the internet is encrypted.", False),
    ("What are the factors that affect storage performance in Amazon RDS?",  # "RDS" alone: no name
     "Several factors can affect the performance of Amazon EBS volumes.", False),
    ("In Amazon SageMaker GroundTruth, what are the workforce types?",  # the same name, spelt in two words
     "Amazon SageMaker Ground Truth work teams fall into one of three workforce types.", False),
    ("What data channels does SageMaker NTM support?",  # one shared term: the product, not a sibling
     "Amazon SageMaker Neural Topic Model supports four data channels.", False),
    ("Does RDS support TDE for SQL Server 2016 Standard Edition?", "SQL Server 2016 Enterprise Edition", False),
    ("I want to access and list public IBM images using the Container Registry CLI.",  # part of the name, no sibling
     "You can access the images that IBM provides by using the IBM Cloud Container Registry commands.", False),
])
def test_sibling_name(question, text, sibling) -> None:
    from citedesk.retrieval.answerability import names, sibling_name
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

    sparse = BM25SparseEncoder()
    assert sibling_name(names(question, sparse), text, sparse) is sibling


def test_a_unit_about_a_sibling_of_the_asked_name_ranks_below_one_about_it(embedder) -> None:
    """"Why use Elastic Fabric Adapter?" on the EFA page is not answered by its sentence about Elastic Network
    Adapters, whose words match as well."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    efa = chunk_hit("Elastic Network Adapters (ENAs) provide traditional IP networking features that are required to "
                    "support VPC networking. EFA provides lower and more consistent latency and higher throughput "
                    "than the TCP transport traditionally used in cloud-based HPC systems.\n", "efa.md",
                    "Elastic Fabric Adapter")
    ranked = ExtractiveGenerator(embedder).rank("Why use Elastic Fabric Adapter?", [efa])
    flags = {m.unit.text[:25]: f["sibling_name"] for m, f, _ in ranked}
    assert flags == {"Elastic Network Adapters ": 1.0, "EFA provides lower and mo": 0.0}, flags
    assert ranked[0][0].unit.text.startswith("EFA provides"), [m.unit.text[:40] for m, _, _ in ranked]


@pytest.mark.parametrize("question, text, other", [
    ("What are the factors that affect storage performance in Amazon RDS?",
     "Several factors can affect the performance of Amazon EBS volumes, such as instance configuration.", True),
    ("What are the factors that affect storage performance in Amazon RDS?",  # names no product
     "Both system activities and database workload can affect storage performance.", False),
    ("What are the factors that affect storage performance in Amazon RDS?",  # the asked one, spelt out
     "Amazon Relational Database Service uses Amazon Elastic Block Store volumes for storage.", False),
    ("What are the factors that affect storage performance in Amazon RDS?",  # names the asked one too
     "Amazon RDS uses Amazon EBS volumes for database and log storage.", False),
    ("Can I use Amazon EC2 Spot instances to train my machine learning models?",  # initials with a count
     "Amazon Elastic Compute Cloud Spot Instances let you use spare capacity.", False),
    ("How do I copy objects between Amazon S3 buckets?", "Amazon Simple Storage Service stores objects.", False),
    ("How do I copy objects between Amazon S3 buckets?", "Amazon EFS is a file system for Amazon EC2.", True),
    ("What is the maximum function timeout?", "Amazon EFS is a file system.", False),  # the question names none
])
def test_other_product(question, text, other) -> None:
    from citedesk.retrieval.answerability import other_product, products
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder

    sparse = BM25SparseEncoder()
    assert other_product(products(question, sparse), text, sparse) is other


def test_a_unit_about_another_product_ranks_below_one_about_the_asked_one(embedder) -> None:
    """On the RDS storage page, "What are the factors that affect storage performance in Amazon RDS?" is not
    answered by its sentence about the performance of Amazon EBS volumes, which matches the question's words as
    well and the question more closely by cosine."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    storage = chunk_hit("Several factors can affect the performance of Amazon EBS volumes, such as instance "
                        "configuration, I/O characteristics, and workload demand.\n\nBoth system activities and "
                        "database workload can affect storage performance.\n", "rds-storage.md",
                        "Amazon RDS DB instance storage")
    ranked = ExtractiveGenerator(embedder).rank(
        "What are the factors that affect storage performance in Amazon RDS?", [storage])
    flags = {m.unit.text[:25]: f["other_product"] for m, f, _ in ranked}
    assert flags == {"Several factors can affec": 1.0, "Both system activities an": 0.0}, flags
    assert ranked[0][0].unit.text.startswith("Both system activities"), [m.unit.text[:40] for m, _, _ in ranked]


def test_a_command_continued_over_lines_is_said_to_its_last_line(embedder) -> None:
    """A procedure whose command spans lines ending in ``\\`` is said with every line of the command, joined (it
    was cut after its second line, without the ``--tags`` that does the tagging: a question written from an unseen
    page, 2026-11-27)."""
    from citedesk.serving.answer.generators import ExtractiveGenerator

    text = ("To tag existing resources (AWS CLI)\n\n- The following example adds the Owner tag with a value of "
            "blueTeam for the Movies table:\n  ```\n  aws dynamodb tag-resource \\\n  --resource-arn "
            "arn:aws:dynamodb:us-east-1:123456789012:table/Movies \\\n  --tags Key=Owner,Value=blueTeam\n  ```\n\n"
            "To list all tags for a table (AWS CLI)\n\n- The following example lists all the tags that are associated "
            "with the Movies table:\n  ```\n  aws dynamodb list-tags-of-resource \\\n  --resource-arn "
            "arn:aws:dynamodb:us-east-1:123456789012:table/Movies\n  ```\n")
    hit = chunk_hit(text, "Tagging.Operations.md", "Tagging Resources in DynamoDB")
    said = " ".join(t for _, _, _, t in ExtractiveGenerator(embedder).select(
        "How do I add a tag to an existing Amazon DynamoDB table with the AWS CLI?", [hit]))
    assert "aws dynamodb tag-resource --resource-arn" in said and "--tags Key=Owner,Value=blueTeam" in said, said
    assert "\\" not in said and "list-tags-of-resource" not in said, said
    from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
    from citedesk.serving.answer.claims import assess

    # the claim checks read the continued command as one line too: its names are found in one unit
    assert assess(said, [text], BM25SparseEncoder()).reason is None
