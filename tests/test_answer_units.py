"""Text structure the answers are built from: sentence boundaries, answer units, answerability signals, and the
answer-eval metrics (no model, no index)."""

from __future__ import annotations

from citedesk.core.text import (
    answer_units,
    is_answer_text,
    labelled_entries,
    sentence_spans,
    split_complete_sentences,
    table_header_before,
)
from citedesk.core.types import Hit, ScoreKind
from citedesk.retrieval.answerability import (
    QuestionType,
    match_units,
    question_type,
    signals,
    term_weights,
)
from citedesk.retrieval.embedding.sparse import BM25SparseEncoder
from citedesk.serving.evaluation.qa import (
    HandLabels,
    answer_sha,
    reference_recall,
    risk_coverage,
    token_f1,
)

TABLE = """# Quotas

The following table lists the quotas.

Resource | Quota
Maximum number of datasets in a dataset group | 3 (1 for each type)
Maximum number of dataset groups | 500
Maximum number of datasets | 1500
"""

STEPS = """To reset the password of your account, follow these steps:

1. Open the sign-in page of the console.
2. Choose the Forgot password link below the sign-in form.

For more information, see Passwords.
"""


def hit(text: str, title: str = "Quotas", article: str = "a.md", cosine: float = 0.6) -> Hit:
    return Hit(point_id="p", score=1.0, score_kind=ScoreKind.RRF, workspace="w", source="folder", article_id=article,
               locale="en", title=title, content_hash="h", chunk_index=0, text=text, cosine=cosine)


def test_sentence_boundaries_know_abbreviations_numbers_and_urls() -> None:
    text = "It runs in US East (N. Virginia) today. Version 1.11 and later, e.g. 1.12, work. See index.html now.\nx"
    spans = sentence_spans(text)
    assert [s.text for s in spans] == ["It runs in US East (N. Virginia) today.",
                                       "Version 1.11 and later, e.g. 1.12, work.", "See index.html now.", "x"]
    assert all(text[s.start:s.end] == s.text for s in spans)
    header = "Instance Class | vCPU | Max. Bandwidth (Mbps) | Network Performance"  # the segmenter cuts at "Max."
    assert [s.text for s in sentence_spans(header)] == [header]
    # a UI label's question mark before a lower-case word ends no sentence; before a capital it does
    step = "4. In the window, choose Yes for Create Snapshot? and enter its name. Choose Yes to keep it."
    assert [s.text for s in sentence_spans(step)] == [
        "4. In the window, choose Yes for Create Snapshot? and enter its name.", "Choose Yes to keep it."]
    assert [s.text for s in sentence_spans("Is it adjustable? Yes, it is.")] == ["Is it adjustable?", "Yes, it is."]


def test_streaming_split_keeps_markers_and_waits_for_more_text() -> None:
    done, rest = split_complete_sentences("The limit is 5 GB. [1] Next one [2]")
    assert done == ["The limit is 5 GB. [1]"] and rest == "Next one [2]"
    done, rest = split_complete_sentences("Link http://evil.exampl")
    assert done == [] and rest == "Link http://evil.exampl"
    assert split_complete_sentences("Last one [3].\n") == (["Last one [3]."], "")


def test_table_rows_carry_their_header_and_quote_the_row_verbatim() -> None:
    rows = [u for u in answer_units(TABLE) if u.kind == "table_row"]
    assert [u.text for u in rows][1] == "Resource: Maximum number of dataset groups; Quota: 500"
    assert all(TABLE[u.start:u.end].count("|") == 1 and u.context == "Resource | Quota" for u in rows)
    assert not any(u.text.startswith("#") for u in answer_units(TABLE)), "headings are not answers"


def test_a_chunk_that_starts_inside_a_table_reads_its_rows_with_the_carried_header() -> None:
    table = ("DB instance class | MariaDB | Oracle\n--- | --- | ---\n"
             "db.t2.micro | 16 | 16\ndb.t2.medium | 32 | 16\ndb.t2.large | 64 | 32\n\nAfter the table.")
    middle = table.index("db.t2.medium")
    assert table_header_before(table, middle) == "DB instance class | MariaDB | Oracle"
    assert table_header_before(table, table.index("After")) == ""  # not a table row
    assert table_header_before(table, 0) == ""  # the header itself: nothing before it
    chunk = table[middle:]
    rows = [u for u in answer_units(chunk, table_header="DB instance class | MariaDB | Oracle")
            if u.kind == "table_row"]
    assert rows[0].text == "DB instance class: db.t2.medium; MariaDB: 32; Oracle: 16"
    assert chunk[rows[0].start:rows[0].end] == "db.t2.medium | 32 | 16" and len(rows) == 2
    assert rows[0].context == "DB instance class | MariaDB | Oracle"
    bare = [u for u in answer_units(chunk) if u.kind == "table_row"]
    assert bare[0].text == "db.t2.medium | 32 | 16"  # without it the row cannot say which column is which
    # a chunk with its own table later on keeps that table's header; the carried one is only for the start
    later = "Intro sentence here.\n\nName | Size\nA | 1\nB | 2"
    assert [u.text for u in answer_units(later, table_header="X | Y") if u.kind == "table_row"] == [
        "Name: A; Size: 1", "Name: B; Size: 2"]


def test_numbers_can_name_columns() -> None:
    """"Extension | 10.1 | 10.3" is a header (a label over distinct versions); "cube | 1.0 | 1.0" is data."""
    versions = "Extension | 10.1 | 10.3 | 10.4\ncube | 1.0 | 1.0 | 1.1\npg_trgm | 1.3 | 1.3 | 1.3\n"
    rows = [u.text for u in answer_units(versions) if u.kind == "table_row"]
    assert rows[0] == "Extension: cube; 10.1: 1.0; 10.3: 1.0; 10.4: 1.1" and len(rows) == 2
    assert table_header_before(versions, versions.index("pg_trgm")) == "Extension | 10.1 | 10.3 | 10.4"
    data = "cube | 1.0 | 1.0 | 1.1\npg_trgm | 1.3 | 1.3 | 1.3\n"
    assert table_header_before(data, data.index("pg_trgm")) == ""  # the first row is data: no header to carry
    sizes = "db.t2.small | 16 | 32\ndb.t2.medium | 32 | 64\n"
    assert next(u.text for u in answer_units(sizes) if u.kind == "table_row") == "db.t2.small | 16 | 32"


def test_a_header_without_its_corner_cell_names_the_last_columns() -> None:
    """"|  | On-Demand | Provisioned |" reaches the chunk as "On-Demand | Provisioned" over three-cell rows: the row's
    label has no column name, and the on-demand figures are not said to be the provisioned ones."""
    text = ("On-Demand | Provisioned\nPer table | 40,000 read request units | 40,000 read capacity units\n"
            "Per account | Not applicable | 80,000 read capacity units\n")
    rows = [u.text for u in answer_units(text) if u.kind == "table_row"]
    assert rows == ["Per table; On-Demand: 40,000 read request units; Provisioned: 40,000 read capacity units",
                    "Per account; On-Demand: Not applicable; Provisioned: 80,000 read capacity units"]


def test_a_list_of_labelled_entries_says_each_label_with_its_sentence() -> None:
    """"+ Data in transit over the internet. Communication … is encrypted." (every entry a label, then a sentence)
    is said "Data in transit over the internet: Communication …", so the label is no sentence of its own; steps
    ("1. Choose Save. Then …") and bullets that begin with an instruction stay as written."""
    modes = ("Greengrass has three modes of communication where data is in transit:\n"
             "+ Data in transit over the internet. Communication over the internet is encrypted.\n"
             "+ Data on the core device. Communication between components is not encrypted.\n")
    items = [u.text for u in answer_units(modes) if u.kind == "list_item"]
    assert items == ["Data in transit over the internet: Communication over the internet is encrypted.",
                     "Data on the core device: Communication between components is not encrypted."]
    steps = "To save:\n1. Choose Save. Then wait for the instance.\n2. Open the console. Select the instance.\n"
    assert [u.text for u in answer_units(steps) if u.kind == "list_item"] == [
        "Choose Save. Then wait for the instance.", "Open the console. Select the instance."]
    bullets = "To save:\n+ Choose Save. Then wait.\n+ Open the console. Select it.\n"
    assert labelled_entries(["Choose Save. Then wait.", "Open the console. Select it."]) == [
        "Choose Save. Then wait.", "Open the console. Select it."]
    assert [u.text for u in answer_units(bullets) if u.kind == "list_item"][0] == "Choose Save. Then wait."
    assert labelled_entries(["Data on the core device. It is not encrypted."]) == [
        "Data on the core device. It is not encrypted."]  # one entry is no list of labels


SPECS = ("Accelerator Type | F32 Throughput in TFLOPS | F16 Throughput in TFLOPS | Memory in GB\n"
         "--- | --- | --- | ---\nml.eia2.medium | 1 | 8 | 2\nml.eia2.large | 2 | 16 | 4\n")
QUOTAS = ("Resource | Quota description | Adjustable?\n--- | --- | ---\n"
          "Minimum SQL data set refresh interval | 1 minute | No\nConcurrent data set content generation | 2 | No\n")


def test_a_table_row_answer_says_the_cells_the_question_asks_for() -> None:
    from citedesk.serving.answer.generators import focus_row

    sparse = BM25SparseEncoder()

    def said(question: str, table: str, row: str) -> str:
        unit = next(u for u in answer_units(table) if u.kind == "table_row" and table[u.start:u.end].startswith(row))
        return focus_row(unit, table, term_weights(question, sparse), sparse.terms,
                         quantity=question_type(question) == QuestionType.QUANTITY)

    assert said("What is F32 Throughput in TFLOPS of ml.eia2.large?", SPECS, "ml.eia2.large") == (
        "Accelerator Type: ml.eia2.large; F32 Throughput in TFLOPS: 2")  # not the F16 column, though it shares words
    assert said("How much memory does ml.eia2.large have?", SPECS, "ml.eia2.large") == (
        "Accelerator Type: ml.eia2.large; Memory in GB: 4")
    assert said("What is the minimum SQL data set refresh interval?", QUOTAS, "Minimum") == (
        "Resource: Minimum SQL data set refresh interval; Quota description: 1 minute")  # no column named: the number
    assert said("Can I adjust the minimum SQL data set refresh interval?", QUOTAS, "Minimum") == (
        "Resource: Minimum SQL data set refresh interval; Adjustable?: No")
    limits = ("Resource | Default | Comments\n--- | --- | ---\nFilters | 100 | The maximum number of saved filters "
              "per AWS account per Region.\nMembers | 1000 | The maximum number of member accounts that you can add "
              "per AWS account (master) per Region.\n")
    assert said("What is the maximum number of saved filters per AWS account per Region?", limits, "Filters") == (
        "Resource: Filters; Default: 100")  # the comment only restates the question
    assert said("What is the maximum number of members per Region?", limits, "Members") == (  # it adds: kept
        "Resource: Members; Default: 1000; Comments: The maximum number of member accounts that you can add per AWS "
        "account (master) per Region.")
    assert said("Tell me about ml.eia2.large accelerators", SPECS, "ml.eia2.large") == (  # the row, not a cell
        "Accelerator Type: ml.eia2.large; F32 Throughput in TFLOPS: 2; F16 Throughput in TFLOPS: 16; Memory in GB: 4")


def test_a_comparison_row_says_the_column_the_question_names() -> None:
    from citedesk.serving.answer.generators import focus_row

    table = ("Characteristic | Global Secondary Index | Local Secondary Index\n--- | --- | ---\n"
             "Online Index Operations | You can add a new global secondary index to an existing table | You cannot "
             "add a local secondary index to an existing table |\n")
    sparse = BM25SparseEncoder()
    unit = next(u for u in answer_units(table) if u.kind == "table_row")
    question = "Can I add a local secondary index to an existing table?"
    assert focus_row(unit, table, term_weights(question, sparse), sparse.terms) == (
        "Characteristic: Online Index Operations; Local Secondary Index: You cannot add a local secondary index to "
        "an existing table")  # not the global column's cell, though it shares the question's words


def test_group_label_lines_stay_inside_their_table() -> None:
    # a table whose spanning group rows render as lines without cells (RDS storage by instance class)
    text = ("Instance Class | MariaDB | Oracle\n--- | --- | ---\ndb.m5 – Standard classes\ndb.m5.large | 64 | 64\n"
            "db.t2 – Burstable classes\ndb.t2.medium | 32 | 16\ndb.t2.small | 16 | 16")
    assert table_header_before(text, text.index("db.t2.small")) == "Instance Class | MariaDB | Oracle"
    rows = {u.text for u in answer_units(text) if u.kind == "table_row"}
    assert "Instance Class: db.t2.medium; MariaDB: 32; Oracle: 16" in rows  # after a label: the same header
    chunk = text[text.index("db.t2.medium"):]
    carried = [u.text for u in answer_units(chunk, table_header=table_header_before(text, text.index("db.t2.medium")))
               if u.kind == "table_row"]
    assert carried == ["Instance Class: db.t2.medium; MariaDB: 32; Oracle: 16",
                       "Instance Class: db.t2.small; MariaDB: 16; Oracle: 16"]
    label = text.index("db.t2 – Burstable")  # a chunk that starts at a group label inside the table
    assert table_header_before(text, label) == "Instance Class | MariaDB | Oracle"
    assert [u.text for u in answer_units(text[label:], table_header=table_header_before(text, label))
            if u.kind == "table_row"][0] == "Instance Class: db.t2.medium; MariaDB: 32; Oracle: 16"
    assert table_header_before("Intro line\nInstance Class | MariaDB\ndb.t2.small | 16", 0) == ""  # above no row
    headless = "Intro.\n\ndb.t2.large | 64 | 32\ndb.t2.medium | 32 | 16"
    assert table_header_before(headless, headless.index("db.t2.medium")) == ""  # first row is data: no header
    # yes/no cells after a label are rows too, not the header of a new table (RDS engine support by class)
    support = ("Instance Class | MariaDB | Oracle\ndb.m5 – Standard classes\ndb.m5.large | Yes | Yes\n"
               "db.m3 – Previous classes\ndb.m3.large | No | Deprecated\ndb.m3.medium | No | Deprecated")
    rows = [u.text for u in answer_units(support) if u.kind == "table_row"]
    assert rows == ["Instance Class: db.m5.large; MariaDB: Yes; Oracle: Yes",
                    "Instance Class: db.m3.large; MariaDB: No; Oracle: Deprecated",
                    "Instance Class: db.m3.medium; MariaDB: No; Oracle: Deprecated"]
    two = "Resource | Quota\nFiles | 10\nOther quotas\nName | Default\nRecords | 5"  # a new table: its own header
    assert "Name: Records; Default: 5" in {u.text for u in answer_units(two) if u.kind == "table_row"}


STATES = """A load balancer can be in one of the following states:

`provisioning`
The load balancer is being set up.

`active`
The load balancer is fully set up and ready to route traffic.

`active_impaired`
The load balancer is routing traffic but does not have the resources it needs to scale.

`failed`
The load balancer could not be set up. Delete it and create another.
"""


def test_a_lead_in_brings_whole_definition_entries_not_a_count_of_sentences() -> None:
    from citedesk.serving.answer.generators import first_entries, say_entries

    spans = sentence_spans(STATES)
    following = spans[1:]
    kept = first_entries(following, 0)
    assert [s.text for s in kept] == [s.text for s in following]  # four terms with their definitions: all said
    assert [s.text.strip("`") for s in first_entries(following, 0, entries=2)][-2:] == [
        "active", "The load balancer is fully set up and ready to route traffic."]  # cut between entries
    assert first_entries(following, 0, window=110)[-1].text == "The load balancer is being set up."
    assert first_entries(following, 0, window=80) == []  # a term cut from its definition is not said
    assert say_entries([s.text for s in first_entries(following, 0, entries=2)]) == (
        "`provisioning`: The load balancer is being set up; `active`: The load balancer is fully set up and ready to "
        "route traffic")
    code = sentence_spans("Use the following command to download a bucket:\n\n```\n$ aws s3 sync s3://b dir\n```\n")[1:]
    assert say_entries([s.text for s in first_entries(code, 0)])== "$ aws s3 sync s3://b dir"  # fences: no term, not said
    listed = [s.text for s in sentence_spans("The page shows:\n\n+ Current alarms\n+ Graphs of alarms and resources\n")[1:]]
    assert say_entries(listed) == "Current alarms; Graphs of alarms and resources"  # short list items are not terms
    fenced = [s.text for s in sentence_spans("Run the following:\n\n```\nUSE [msdb]\nGO\nEXEC proxy\n```\n"
                                             "Topics\n")[1:]]
    assert ": " not in say_entries(fenced)  # code lines and a "Topics" line are not terms
    plain = sentence_spans("We offer these plans: Free. Pro. Team. Business. Enterprise. Custom. Legacy.")[1:]
    assert len(first_entries(plain, 0)) == 6  # no term lines: each sentence is an entry
    # an "Example" label over a command says nothing; a command continued with "\\" is one entry, said whole
    cli = sentence_spans("To add the option:\n\n- Add the option to the group.\n  Example\n  For Linux:\n  ```\n"
                         "  aws rds add-option \\\n      --group g1 \\\n      --options SSIS\n  ```\n")[1:]
    assert say_entries([s.text for s in first_entries(cli, 0)]) == (
        "Add the option to the group; For Linux:; aws rds add-option --group g1 --options SSIS")
    noted = [s.text for s in sentence_spans("Run it:\n\nSHOW rds.extensions\nNote\nValues may be stale.\n")[1:]]
    assert say_entries(noted) == "SHOW rds.extensions; Note: Values may be stale"  # a note keeps its label
    pointed = [s.text for s in sentence_spans("Delete it:\n\nUse the console.\nFor more information, see Roles.\n")[1:]]
    assert say_entries(pointed) == "Use the console"  # a pointer is no entry


def test_list_items_are_units_with_their_lead_in_and_never_glued() -> None:
    units = answer_units(STEPS)
    items = [u for u in units if u.kind == "list_item"]
    assert [u.text for u in items] == ["Open the sign-in page of the console.",
                                       "Choose the Forgot password link below the sign-in form."]
    assert all(u.context.endswith("follow these steps:") for u in items)
    whole = next(u for u in units if u.kind == "list")
    assert whole.text.startswith("To reset the password") and "; Choose the Forgot" in whole.text
    assert STEPS[whole.start:whole.end].endswith("below the sign-in form.")
    assert not any("For more information" in u.text for u in units)


PROCEDURE = """## Console

To stop a DB instance

1. Open the Amazon RDS console.
2. Choose the DB instance that you want to stop.
3. For Actions, choose Stop.

Console

- Open the console.
- Choose Start.
"""


def test_a_procedure_title_line_is_a_unit_and_its_steps_lead_in() -> None:
    """"To stop a DB instance" is title-like (under eight words, no full stop) but it is what the steps do: the
    list's lead-in, said "To stop a DB instance: Open …"; another short label line stays no unit and no lead-in."""
    units = answer_units(PROCEDURE)
    assert ("sentence", "To stop a DB instance") in [(u.kind, u.text) for u in units]
    whole = [u for u in units if u.kind == "list"]
    assert whole[0].text.startswith("To stop a DB instance: Open the Amazon RDS console; Choose the DB instance")
    assert all(u.context == "To stop a DB instance" for u in units if u.kind == "list_item" and "RDS" in u.text)
    assert whole[1].context == "" and whole[1].text == "Open the console; Choose Start."
    assert "Console" not in {u.text for u in units}


MODES = """Greengrass has three modes of communication where data is in transit:

- Data over the internet. Communication between a core and the cloud over the internet is encrypted.
- Data over the local network. Communication between a core and devices over a local network is encrypted.

Topics

- Encrypting data in transit over the local network with your own keys
- Working with the certificates of the core device in the console
"""


def test_a_list_item_is_its_whole_line_and_link_lists_are_not_answers() -> None:
    units = answer_units(MODES)
    items = [u for u in units if u.kind == "list_item"]
    assert [u.text for u in items] == [  # the labels said with their sentences (labelled_entries)
        "Data over the internet: Communication between a core and the cloud over the internet is encrypted.",
        "Data over the local network: Communication between a core and devices over a local network is encrypted."]
    assert all(u.context.startswith("Greengrass has three modes") for u in items)  # the second item too
    assert all(MODES[u.start:u.end].startswith("- Data over") for u in items)
    sentences = {u.text for u in units if u.kind == "sentence"}
    assert "Communication between a core and devices over a local network is encrypted." in sentences
    assert "Data over the internet." not in sentences  # a label is not an answer on its own
    assert not any("certificates" in u.text or "own keys" in u.text for u in units), "a Topics list is links"
    # a chunk cut inside a list: the item before it ends with a pointer, which does not make the rest links
    cut = ("For more information, see Use TensorFlow.\n- Use your own custom algorithms: put your code in a "
           "Docker image and name it in the CreateTrainingJob call.")
    assert [u.kind for u in answer_units(cut)] == ["list_item"]


def test_non_answer_text() -> None:
    for text in ("Topics", "For more information, see Foo.", "See also the guide.", "What is a quota?",
                 "Amazon SageMaker Autopilot problem types",
                 "To view the list of supported Regions, see Onboard to Amazon SageMaker Studio.",
                 "For a list of Regions, refer to the endpoints table.", "If you exceed the quota, see Limits."):
        assert not is_answer_text(text), text
    for text in ("Multi-model endpoints are not supported on GPU instance types.",
                 "The maximum is 900 seconds, see the table below for the others.",  # a pointer after an answer
                 "To create a bucket, open the console and choose Create bucket."):
        assert is_answer_text(text), text


def test_question_types_and_rare_terms() -> None:
    assert question_type("What is the maximum number of dataset groups?") == QuestionType.QUANTITY
    assert question_type("Can I stop a DB instance that has a read replica?") == QuestionType.YES_NO
    assert question_type("What are the Amazon RDS storage types?") == QuestionType.LIST
    assert question_type("Which SQL Server editions support TDE on RDS?") == QuestionType.LIST  # which + plural
    assert question_type("Which TLS version is used in Amazon Forecast?") != QuestionType.LIST
    assert question_type("Which class does the mapper use?") == QuestionType.OTHER
    w = term_weights("What is F32 Throughput in TFLOPS of ml.eia2.large?", BM25SparseEncoder())
    assert w["eia2"] == 7.0 and w["throughput"] < w["tflop"] and "what" not in w  # a code-like word weighs 7


def test_words_inside_a_url_do_not_cover_the_question() -> None:
    sparse = BM25SparseEncoder()
    question = "In GroundTruth labeling jobs, what are the task types?"
    step = hit("1. Sign in to the console at https://console.aws.amazon.com/sagemaker/groundtruth.\n", title="Jobs")
    bare = hit("1. Sign in to the console at the usual address.\n", title="Jobs")
    with_url, without = (match_units(question, [h], sparse)[0] for h in (step, bare))
    assert with_url.own_coverage == without.own_coverage and with_url.precision == without.precision
    named = hit("1. GroundTruth task types are listed on the console.\n", title="Jobs")
    assert match_units(question, [named], sparse)[0].own_coverage > with_url.own_coverage


def test_signals_separate_the_page_that_answers_from_a_neighbour() -> None:
    sparse = BM25SparseEncoder()
    q = "What is the maximum number of dataset groups in Amazon Forecast?"
    gold = [hit(TABLE, title="Amazon Forecast quotas")]
    neighbour = [hit("A dataset group is a collection of datasets that Amazon Forecast trains a predictor on. "
                     "You can create a dataset group in the console.", title="Dataset groups", article="b.md")]
    g, n = signals(q, gold, sparse), signals(q, neighbour, sparse)
    assert g.unit_coverage > n.unit_coverage and g.type_match == 1.0 and n.type_match == 0.0
    best = match_units(q, gold, sparse)[0]
    assert best.unit.kind == "table_row" and "500" in best.unit.text
    assert signals(q, [], sparse).unit_coverage == 0.0


def test_answer_metrics() -> None:
    assert token_f1("The limit is 500 [1].", "500") == 0.5  # "the" dropped: 1 of 3 tokens, all of the reference
    assert token_f1("", "500") == 0.0 and token_f1("5,000 items", "5000 items") == 1.0
    assert reference_recall("InnoDB and XtraDB [1]", "InnoDB XtraDB") == 1.0
    curve = risk_coverage([0.9, 0.6, 0.2], [True, False, True], thresholds=(0.0, 0.5, 0.95))
    assert curve[0] == {"threshold": 0.0, "answered": 3, "precision": 0.6667, "coverage": 1.0}
    assert curve[1]["precision"] == 0.5 and curve[1]["coverage"] == 0.5 and curve[2]["precision"] is None


def test_hand_labels_apply_to_the_text_they_were_given_for(tmp_path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("question,setting,generator,answer_sha,label,reason,answer\n"
                    f"Q,normal,extractive,{answer_sha('Five days. [1]')},correct,states five days,Five days. [1]\n")
    labels = HandLabels(path)
    assert labels.lookup("Q", "normal", "extractive", "Five  days. [1]")[:2] == ("correct", "labeled")
    assert labels.lookup("Q", "normal", "extractive", "Five days. [2]")[1] == "labeled"  # renumbered markers
    assert labels.lookup("Q", "normal", "extractive", "Six days. [1]")[1] == "changed"
    assert labels.lookup("Other", "normal", "extractive", "x")[1] == "unlabeled"
    with path.open("a") as fh:  # another answer to the same question (a larger index): both labels apply
        fh.write(f"Q,normal,extractive,{answer_sha('Open the console. [1]')},wrong,a step,Open the console. [1]\n")
    labels = HandLabels(path)
    assert labels.lookup("Q", "normal", "extractive", "Five days. [1]")[:2] == ("correct", "labeled")
    assert labels.lookup("Q", "normal", "extractive", "Open the console. [1]")[:2] == ("wrong", "labeled")
    assert labels.lookup("Q", "normal", "extractive", "Six days. [1]")[1] == "changed"
    path.write_text("question,setting,generator,answer_sha,label,reason,answer\nQ,normal,extractive,x,great,,\n")
    try:
        HandLabels(path)
    except ValueError as exc:
        assert "unknown label" in str(exc)
    else:
        raise AssertionError("an unknown label must be refused")


def test_a_callout_label_glued_to_its_sentence_is_not_said() -> None:
    """Cleaning glues a "**Note**" line to the sentence after it ("Note Stream manager is not supported on OpenWrt
    distributions.", an answer to a fresh question); the label is not said. "Note that …" is a sentence."""
    from citedesk.core.text import speakable_line

    assert speakable_line("Note Stream manager is not supported on OpenWrt distributions.") == (
        "Stream manager is not supported on OpenWrt distributions.")
    assert speakable_line("- Important Amazon RDS stops the instance.") == "Amazon RDS stops the instance."
    assert speakable_line("Note that deleting a load balancer does not affect its targets.").startswith("Note that")
