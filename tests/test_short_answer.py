"""The short answer: the asked table cell or quantity of a checked answer, verbatim; Yes or No for a yes/no
question."""

from __future__ import annotations

import asyncio

import pytest
from citedesk.core.types import Hit
from citedesk.retrieval.answerability import asks_value
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.serving.answer.schemas import AnswerRequest
from citedesk.serving.answer.short_answer import (
    NO,
    YES,
    quantities,
    short_answer,
)

SPARSE = BM25SparseEncoder()

TABLE = ("Accelerator Type | F32 Throughput in TFLOPS | F16 Throughput in TFLOPS | Memory in GB\n"
         "--- | --- | --- | ---\n"
         "ml.eia2.medium | 1 | 8 | 2\n"
         "ml.eia2.large | 2 | 16 | 4\n")
QUOTAS = ("Resource | Quota\n--- | ---\n"
          "Deployment package size | 50 MB (zipped, for direct upload) 250 MB (unzipped, including layers) "
          "3 MB (console editor)\n")


def hit(text: str, **kw) -> Hit:
    return Hit(point_id="p", workspace="default", source="folder", article_id="a.md", title="Page", locale="en",
               chunk_index=0, text=text, content_hash="h", score=1.0, score_kind="rrf", **kw)


def texts(text: str) -> list[str]:
    return [text[a:b] for a, b in quantities(text)]


def test_quantities_take_units_and_leave_names_alone() -> None:
    assert texts("ml.eia2.large in us-east-1 has 1.25 Gbps") == ["1.25 Gbps"]
    assert texts("2 x 900 GB (1.8 TB)") == ["2 x 900 GB"]  # the parenthetical restates it
    assert texts("up to 1 billion rows, 5,000 requests") == ["1 billion", "5,000"]
    assert texts("For TensorFlow versions 1.11 and later, use script mode") == ["1.11 and later"]
    assert texts("db.t2.medium and r5a.12xlarge") == []


@pytest.mark.parametrize(("question", "asks"), [
    ("What is the maximum function timeout in AWS Lambda?", True),
    ("Which TLS version is used in Amazon Forecast?", True),
    ("How much memory does ml.eia1.xlarge have?", True),
    ("What is the default HealthCheckTimeoutSeconds for lambda target type?", True),
    ("What is the recommended and supported storage engine for MySQL DB instances?", False),
    ("What storage class should I use for backups?", False),
])
def test_asks_value_reads_the_asked_noun(question: str, asks: bool) -> None:
    assert asks_value(question) is asks


def test_asks_value_strictly_needs_a_value_word_to_read() -> None:
    """Strict (the ranking's ``no_value``): a quantity word in a question of another wording asks for no value."""
    for question in ("Why use Provisioned IOPS storage in RDS?", "How does DynamoDB on-demand capacity work?"):
        assert asks_value(question) and not asks_value(question, strict=True), question
    assert asks_value("How many tags can I put on an RDS resource?", strict=True)
    assert asks_value("In DynamoDB, how many tables can I create?", strict=True)
    statement = "Test failover to understand how long the process takes for your particular use case."
    assert asks_value(statement) and not asks_value(statement, strict=True)
    for question in ("What is the Default of p_obj_name?", "What is the default maximum price for Spot Instances?"):
        assert asks_value(question) and not asks_value(question, strict=True), question  # "—", "On-Demand price"
    assert asks_value("What is the default HealthCheckTimeoutSeconds for lambda targets?", strict=True)


def test_table_row_answer_gives_the_asked_cell_with_its_columns_unit() -> None:
    said = ["Accelerator Type: ml.eia2.large; F32 Throughput in TFLOPS: 2. [1]"]
    assert short_answer("What is F32 Throughput in TFLOPS of ml.eia2.large?", said, [hit(TABLE)], SPARSE) \
        == "2 TFLOPS"
    said = ["Accelerator Type: ml.eia2.large; Memory in GB: 4. [1]"]
    assert short_answer("How much memory does ml.eia2.large have?", said, [hit(TABLE)], SPARSE) == "4 GB"


def test_a_cell_with_several_values_gives_the_one_the_question_names() -> None:
    said = [("Resource: Deployment package size; Quota: 50 MB (zipped, for direct upload) 250 MB (unzipped, "
             "including layers) 3 MB (console editor). [1]")]
    q = "What is the maximum unzipped deployment package size in AWS Lambda?"
    assert short_answer(q, said, [hit(QUOTAS)], SPARSE) == "250 MB"
    q = "What is the maximum zipped deployment package size for direct upload?"
    assert short_answer(q, said, [hit(QUOTAS)], SPARSE) == "50 MB"


def test_sentence_answer_gives_the_quantity_of_what_was_asked() -> None:
    text = ("Timeout – The amount of time that Lambda allows a function to run before stopping it. The default is 3 "
            "seconds. The maximum allowed value is 900 seconds.")
    said = ["Timeout – The amount of time that Lambda allows a function to run before stopping it. [1]",
            "The default is 3 seconds. [1]", "The maximum allowed value is 900 seconds. [1]"]
    h = [hit(text)]
    assert short_answer("What is the maximum function timeout in AWS Lambda?", said, h, SPARSE) == "900 seconds"
    assert short_answer("What is the default function timeout in AWS Lambda?", said, h, SPARSE) == "3 seconds"


def test_a_list_entrys_label_and_a_bare_bound_say_what_its_quantity_counts() -> None:
    """"Batch size – The number of records …, up to 1,000. Lambda passes … (6 MB)": the entry's label names what
    its first sentence's 1,000 counts, and "up to" alone reaches back to the clause it bounds; the later sentence's
    6 MB is the payload's size."""
    text = ("DynamoDB table – The DynamoDB table to read records from; Batch size – The number of records to send to "
            "the function in each batch, up to 1,000. Lambda passes all of the records in the batch to the function "
            "in a single call, as long as the total size of the events doesn't exceed the payload limit for "
            "synchronous invocation (6 MB); Batch window – Specify the maximum amount of time to gather records "
            "before invoking the function, in seconds.")
    said = [text + " [1]"]
    h = [hit(text)]
    assert short_answer("What is the maximum batch size for a DynamoDB event source in Lambda?", said, h,
                        SPARSE) == "1,000"
    assert short_answer("What is the maximum payload size for synchronous invocation?", said, h, SPARSE) == "6 MB"


@pytest.mark.parametrize(("question", "said"), [
    # a number in a formula is not the answer: "(length of attribute name) + (1 byte)"
    ("What is the size of a null attribute in DynamoDB?",
     "The size of a null attribute or a Boolean attribute is (length of attribute name) + (1 byte). [1]"),
    # the question asks for a thing, not a value
    ("What is the recommended and supported storage engine for MySQL DB instances?",
     "You can create MySQL DB instances with up to 64 TiB of storage. [1]"),
    # two values, neither named by the question
    ("What is the maximum number of items?", "Use 10 items in test and 20 items in production. [1]"),
    # a yes/no question with a quantity is a comparison, not a polarity
    ("Can I use more than 20 GB?", "You can use up to 10 GB. [1]"),
])
def test_no_short_answer_where_no_single_value_answers(question: str, said: str) -> None:
    assert short_answer(question, [said], [hit(said.rsplit(" [", 1)[0])], SPARSE) is None


@pytest.mark.slow
def test_pipeline_answers_carry_the_short_answer(aws_container) -> None:
    """Real index, real embedding model: a table question's answer carries the cell; an escalation has none."""
    pipe = aws_container.pipeline

    def ask(question: str, **kw):
        return asyncio.run(pipe.answer(AnswerRequest(question=question), **kw))

    r = ask("What is F32 Throughput in TFLOPS of ml.eia2.large?", threshold=0.0)
    assert r.decision == "answer", r.reason
    assert r.short_answer == "2 TFLOPS" and "2" in r.answer
    r = ask("What is the maximum storage for MariaDB on db.t2.medium?", threshold=0.0)
    assert r.decision == "answer", r.reason
    assert r.short_answer == "32"
    r = ask("What is F32 Throughput in TFLOPS of ml.eia2.large?", threshold=1.01)
    assert r.decision == "escalate" and r.short_answer is None
    r = ask("Can I adjust concurrent data set content generation limit in AWS IoT?", threshold=0.0)
    assert r.decision == "answer" and r.short_answer == NO and "Adjustable?: No" in r.answer, r.answer
    r = ask("Are multi-model endpoints supported on GPU instance types in Amazon SageMaker?", threshold=0.0)
    assert r.decision == "answer" and r.short_answer == NO and "not supported" in r.answer, r.answer
    r = ask("Can I set an Amazon CloudWatch model monitor automated alert for deviations in the model quality?",
            threshold=0.0)
    assert r.decision == "answer" and r.short_answer == YES, r.answer
    # the page that says you can't stop one is not in this index: the answer found does not say "stop", no verdict
    r = ask("Can I stop a DB instance that has a read replica?", threshold=0.0)
    assert "stop" not in r.answer and r.short_answer is None, r.answer


def test_a_list_question_answered_by_a_lead_in_gets_the_entries_names() -> None:
    said = ("A load balancer can be in one of the following states: provisioning: The load balancer is being set up; "
            "active: The load balancer is fully set up and ready to route traffic; failed: The load balancer could not "
            "be set up. [1]")
    q = "What are the three states of Application Load Balancers?"
    assert short_answer(q, [said], [hit(said[:-4])], SPARSE) == "provisioning, active, failed"
    items = "You can choose one of the following engines: MySQL; MariaDB; PostgreSQL. [1]"
    assert short_answer("What are the supported engines?", [items], [hit(items[:-4])], SPARSE) \
        == "MySQL, MariaDB, PostgreSQL"
    # entries that are sentences are no names; a table row is no lead-in
    long = "The following steps apply: Open the console and sign in; Choose the table you want to change. [1]"
    assert short_answer("What are the steps?", [long], [hit(long[:-4])], SPARSE) is None
    row = "Resource: Filters; Default: 100. [1]"
    assert short_answer("What are the GuardDuty filter quotas?", [row], [hit(row[:-4])], SPARSE) is None


def test_a_cell_is_said_only_whole() -> None:
    table = "Instance Class | MariaDB | Oracle\n--- | --- | ---\ndb.t2.micro | 1 | 2\ndb.t2.small | 16 | 1\n"
    said = ["Instance Class: db.t2.small; MariaDB: 16. [1]"]
    assert short_answer("What is the maximum storage for MariaDB on db.t2.small?", said, [hit(table)], SPARSE) == "16"


@pytest.mark.parametrize(("question", "said", "verdict"), [
    ("Can I stop a DB instance that has a read replica?",
     "You can't stop a DB instance that has a read replica, or that is a read replica. [1]", NO),
    ("Are multi-model endpoints supported on GPU instance types?",
     "Multi-model endpoints are not supported on GPU instance types. [1]", NO),
    ("Does CloudTrail monitor calls to runtime_InvokeEndpoint?",
     "CloudTrail does not monitor calls to runtime_InvokeEndpoint. [1]", NO),
    ("Can I use AWS Lambda to process Amazon SNS notifications?",
     "You can use a Lambda function to process Amazon SNS notifications. [1]", YES),
    ("Is Alias an Amazon Forecast reserved name?", "Amazon Forecast reserves the following names: ALIAS. [1]", YES),
    ("Is Alias an Amazon Forecast reserved field name?", "Amazon Forecast reserves the following names: ALIAS. [1]",
     None),  # "field" is not said
    # what the negation negates first is not what is asked
    ("Can I delete my account?", "You can't undo deleting your account. [1]", None),
    # drafted sentences (the LLM path) that lead with the verdict
    ("Can I stop a DB instance that has a read replica?",
     "No, you can't stop a DB instance that has a read replica. [1]", NO),
    ("Can I use AWS Lambda to process Amazon SNS notifications?",
     "Yes, you can use a Lambda function to process Amazon SNS notifications. [1]", YES),
    # a condition the question does not state: no plain yes or no
    ("Can I resize an instance to a type that is only available in a VPC?",
     ("You can't resize an instance in EC2-Classic to a type that is available only in a VPC unless you have a "
      "nondefault VPC. [1]"), None),
    # about something else: the sentence does not say what is asked ("stop")
    ("Can I stop a DB instance that has a read replica?",
     "The type of storage for a read replica is independent of that on the primary DB instance. [1]", None),
    # a negation about another thing than asked, with the question asserted: unsettled
    ("Can I associate a Git repository with a notebook instance?",
     "You can associate a Git repository with a notebook instance that is not running. [1]", None),
    # ... but one about another thing, in a clause of its own, leaves the yes standing
    ("Can I associate a Git repository with a notebook instance?",
     ("You can associate a Git repository with a notebook instance; a public repository is not a resource in your "
      "account. [1]"), YES),
    # a negated question
    ("Can't I stop a DB instance that has a read replica?",
     "You can't stop a DB instance that has a read replica. [1]", None),
])
def test_a_yes_no_question_gets_the_polarity_of_its_answer(question: str, said: str, verdict: str | None) -> None:
    assert short_answer(question, [said], [hit(said.rsplit(" [", 1)[0])], SPARSE) == verdict


def test_a_yes_no_verdict_may_leave_the_cited_articles_topic_unsaid() -> None:
    said = ["Multi-model endpoints are not supported on GPU instance types. [1]"]
    q = "Are multi-model endpoints supported on GPU instance types in Amazon SageMaker?"
    assert short_answer(q, said, [hit(said[0][:-4])], SPARSE) is None  # "SageMaker" is not said
    assert short_answer(q, said, [hit(said[0][:-4], heading="Amazon SageMaker > Multi-model endpoints")],
                        SPARSE) == NO
    guide = hit(said[0][:-4]).model_copy(update={"article_id": "amazon-sagemaker-developer-guide/mme.md"})
    assert short_answer(q, said, [guide], SPARSE) == NO


def test_a_yes_no_question_answered_by_a_row_gets_its_yes_no_cell() -> None:
    table = ("Resource | Supports tags | Supports tagging on creation\n--- | --- | ---\n"
             "AMI | Yes | No\nVPC flow log | Yes | Yes\n")
    said = ["Resource: AMI; Supports tags: Yes; Supports tagging on creation: No. [1]"]
    assert short_answer("Does AMI support tags?", said, [hit(table)], SPARSE) == YES
    assert short_answer("Does AMI support tagging on creation?", said, [hit(table)], SPARSE) == NO
    quotas = "Resource | Quota | Adjustable?\n--- | --- | ---\nConcurrent data set content generation | 2 | No\n"
    said = ["Resource: Concurrent data set content generation; Quota: 2; Adjustable?: No. [1]"]
    assert short_answer("Can I adjust the concurrent data set content generation quota?", said, [hit(quotas)],
                        SPARSE) == NO
    # a value is no yes or no ("Is db.t2.medium MariaDB?" answered by the MariaDB storage limit)
    storage = "Instance Class | MariaDB | Oracle\n--- | --- | ---\ndb.t2.medium | 32 | 32\n"
    said = ["Instance Class: db.t2.medium; MariaDB: 32. [1]"]
    assert short_answer("Is MariaDB available on db.t2.medium?", said, [hit(storage)], SPARSE) is None
