"""The ``citedesk`` CLI end to end: typer app, real model, local Qdrant under a temporary data dir.

A few small real AWS pages keep embedding cheap; every invocation builds its own Container (and loads
the model), so invocations are kept few.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from citedesk.serving.cli import app

pytestmark = pytest.mark.slow

AWS_DOCS = Path(__file__).resolve().parents[1] / "data" / "aws-docs"
GOLD = "amazon-dynamodb-developer-guide/CapacityUnitCalculations.md"
PAGES = [
    GOLD,
    "aws-iotanalytics-developer-guide/limits.md",
    "amazon-kendra-developer-guide/how-it-works.md",
    "amazon-sagemaker-developer-guide/inter-network-privacy.md",
]
REMOVED = "amazon-sagemaker-developer-guide/inter-network-privacy.md"  # not a gold doc of EVAL_QUESTIONS
EVAL_QUESTIONS = [
    ("What is the size of a null attribute in DynamoDB?", GOLD),
    ("What is the minimum SQL data set refresh interval in AWS IoT?", "aws-iotanalytics-developer-guide/limits.md"),
    ("What is a source repository in Amazon Kendra?", "amazon-kendra-developer-guide/how-it-works.md"),
]
METRICS = ("recall@1", "recall@5", "recall@10", "mrr")
MODES = ("dense", "sparse", "hybrid")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-data")


@pytest.fixture(scope="module")
def cli(data_dir):
    """Run the app in-process with a clean CITEDESK_* environment; CliRunner restores os.environ after."""
    runner = CliRunner()
    base: dict[str, str | None] = {n: None for n in os.environ if n.startswith("CITEDESK_")}
    base.update(CITEDESK_CONFIG=None, CITEDESK_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1")

    def invoke(*args: str, **env: str):
        return runner.invoke(app, [str(a) for a in args], env={**base, **env})

    return invoke


GOLD_UPDATED = "2024-05-01"  # front-matter date given to GOLD; the other pages have none (updated_at 0)


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-docs")
    for rel in PAGES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(AWS_DOCS / rel, root / rel)
    gold = root / GOLD
    gold.write_text(f"---\nupdated_at: {GOLD_UPDATED}\n---\n" + gold.read_text(encoding="utf-8"), encoding="utf-8")
    return root


def sync_json(cli, docs: Path) -> dict:
    r = cli("sync", "--path", docs, "--json")
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def first_sync(cli, docs) -> dict:
    return sync_json(cli, docs)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_sync_json_report(first_sync) -> None:
    r = first_sync
    assert r["ok"] is True and r["failed"] == [] and r["listing_error"] is None
    assert r["source"] == "folder" and r["workspace"] == "default"
    assert r["added"] == len(PAGES) and r["seen"] == len(PAGES)
    assert r["updated"] == 0 and r["deleted"] == 0 and r["unchanged"] == 0
    assert r["chunks_written"] >= len(PAGES)
    assert r["embeddings_computed"] == r["chunks_written"]
    assert r["chunks_per_s"] > 0 and r["articles_per_s"] > 0 and r["seconds"] > 0


def test_resync_is_unchanged_and_deleted_file_is_removed(cli, docs, first_sync, data_dir) -> None:
    again = sync_json(cli, docs)
    assert again["unchanged"] == len(PAGES)
    assert again["added"] == again["updated"] == again["deleted"] == 0
    assert again["embeddings_computed"] == 0 and again["chunks_written"] == 0
    assert (data_dir / "qdrant").is_dir()  # the index lives under CITEDESK_DATA_DIR

    (docs / REMOVED).unlink()
    after = sync_json(cli, docs)
    assert after["deleted"] == 1
    assert after["chunks_deleted_docs"] >= 1
    assert after["unchanged"] == len(PAGES) - 1 and after["added"] == 0
    assert after["embeddings_computed"] == 0


def test_ask_answers_with_citation(cli, first_sync) -> None:
    r = cli("ask", "What is the size of a null attribute in DynamoDB?", "--json")
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    body = json.loads(r.stdout)
    assert body["decision"] == "answer" and body["reason"] == "grounded"
    assert GOLD in {c["article_id"] for c in body["citations"]}
    assert re.search(r"\[\d+\]", body["answer"])
    assert body["confidence"] >= 0.5  # default chat threshold


@pytest.mark.slow
def test_ask_loads_the_reader_before_its_timeout_starts(cli, first_sync, data_dir) -> None:
    """The cross-encoder reader's first use exports it to ONNX (several seconds): ``ask`` does that before the
    answer, so the reader is read, not skipped as unavailable after ``answer.reader_timeout``."""
    shipped = Path(__file__).resolve().parents[1] / "data" / "models" / "reader-minilm"
    for cached in (data_dir / "onnx").glob("reader-minilm-*"):
        shutil.rmtree(cached)  # a first use
    r = cli("ask", "What is the size of a null attribute in DynamoDB?", "--json",
            CITEDESK_ANSWER__READER_MODEL=str(shipped), CITEDESK_ANSWER__READER_KIND="cross_encoder",
            CITEDESK_ANSWER__READER_TIMEOUT="2", CITEDESK_EMBEDDING__BACKEND="onnx")
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    reader = json.loads(r.stdout)["signals"]["reader"]
    assert reader != "unavailable" and reader["score_kind"] == "answers_probability"


def test_ask_off_topic_escalates(cli, first_sync) -> None:
    q = "How do I bake bread?"
    r = cli("ask", q)
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    out = r.stdout
    assert out.startswith("escalate"), out
    assert "handoff:" in out and q in out
    assert "answer (grounded)" not in out


CITATION_LINE = re.compile(r"^\s*\[(\d+)\] (.+?) — (\S+) \(revision ([0-9a-f]{12})(?:, updated (\S+))?\)$", re.MULTILINE)
QUOTE = re.compile(r"“(.*?)”", re.DOTALL)


def printed_citations(stdout: str) -> list[tuple[str, str | None, str]]:
    """(article id or url, printed date or None, quote as printed, whitespace flattened) per citation."""
    lines = CITATION_LINE.findall(stdout)
    quotes = QUOTE.findall(stdout)
    assert lines and len(lines) == len(quotes), stdout
    return [(where, date or None, flat(q)) for (_, _, where, _, date), q in zip(lines, quotes)]


def ends_a_sentence(quote: str) -> bool:
    return re.search(r"[.!?:][\"')\]]*$", quote) is not None


def test_ask_prints_dates_and_whole_sentence_quotes(cli, first_sync) -> None:
    r = cli("ask", "What is the size of a null attribute in DynamoDB?")
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    assert r.stdout.startswith("answer (grounded)"), r.stdout
    cited = printed_citations(r.stdout)
    assert GOLD in {where for where, _, _ in cited}
    for where, date, quote in cited:
        assert date == (GOLD_UPDATED if where == GOLD else None), (where, date)  # no date when unknown (0)
        assert quote and ends_a_sentence(quote), quote
    assert "updated_at" not in r.stdout and not re.search(r"\b1[0-9]{9}\b", r.stdout)  # no raw epoch


class _StubContainer:
    """Stands in for the Container in ``ask``: a fixed response, no model, no index."""

    def __init__(self, response) -> None:
        async def answer(request):
            return response

        self.pipeline = type("Pipeline", (), {"answer": staticmethod(answer)})()
        self.index = type("Index", (), {"close": lambda self: None})()
        self.reader = None  # no reader check configured


def test_ask_quote_cut_at_sentence_end_and_unknown_date(cli, monkeypatch) -> None:
    from citedesk.core.types import AnswerReason, Citation, Decision
    from citedesk.serving import cli as cli_module
    from citedesk.serving.answer.schemas import AnswerResponse

    sentences = [f"Sentence number {i} says something about refunds and invoices." for i in range(12)]
    long_first = "A very long first sentence " + "that goes on and on " * 30 + "until it ends."
    cits = [
        Citation(marker=1, article_id="kb/refunds.md", title="Refunds", url="https://help.example.com/refunds",
                 updated_at=1714521600, content_hash="abc123def456" + "0" * 52, chunk_index=0,
                 quote=" ".join(sentences), quote_start=0, quote_end=1),
        Citation(marker=2, article_id="kb/invoices.md", title="Invoices", updated_at=0,
                 content_hash="fedcba654321" + "0" * 52, chunk_index=0,
                 quote=long_first + " Short second one.", quote_start=0, quote_end=1),
    ]
    resp = AnswerResponse(decision=Decision.ANSWER, reason=AnswerReason.GROUNDED, answer="Refunds take 30 days. [1][2]",
                          citations=cits, confidence=0.9, confidence_kind="test", generator="stub", model="stub")
    monkeypatch.setattr(cli_module, "_container", lambda: _StubContainer(resp))
    r = cli("ask", "How long do refunds take?")
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    assert "[1] Refunds — https://help.example.com/refunds (revision abc123def456, updated 2024-05-01)" in r.stdout
    assert "[2] Invoices — kb/invoices.md (revision fedcba654321)" in r.stdout  # 0 = unknown: no date at all
    assert "1714521600" not in r.stdout and "updated_at" not in r.stdout
    (_, _, first), (_, _, second) = printed_citations(r.stdout)
    # whole sentences up to the last end that fits in 400 characters, never cut mid-sentence
    fits = max(n for n in range(1, len(sentences) + 1) if len(" ".join(sentences[:n])) <= 400)
    assert first == " ".join(sentences[:fits]) and fits < len(sentences)
    assert second == flat(long_first)  # a first sentence over the limit is shown whole, and alone


@pytest.fixture()
def questions_csv(tmp_path) -> Path:
    path = tmp_path / "questions.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer", "gold_document"])
        for q, gold in EVAL_QUESTIONS:
            w.writerow([q, "", gold])
    return path


def test_eval_table_and_json_output(cli, first_sync, questions_csv, tmp_path) -> None:
    out_json = tmp_path / "x.json"
    # with at most 4 docs indexed every found gold doc ranks <= 4, so a floor of exactly 1.0 must pass
    r = cli("eval", "retrieval", "--csv", questions_csv, "--output", out_json, "--min-recall5", "1.0")
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    results = json.loads(out_json.read_text())
    assert [x["mode"] for x in results] == list(MODES)
    for x in results:
        assert x["n"] == len(EVAL_QUESTIONS)
        for m in METRICS:
            assert 0.0 <= x[m] <= 1.0, (x["mode"], m, x[m])
        assert x["recall@1"] <= x["recall@5"] <= x["recall@10"]
        assert x["recall@1"] <= x["mrr"]
        assert x["latency_p50_ms"] > 0
        # the printed table shows the same numbers as the JSON
        row = re.search(rf"^\W*{x['mode']}\s*\W\s*([\d.]+)\s*\W\s*([\d.]+)\s*\W\s*([\d.]+)\s*\W\s*([\d.]+)",
                        r.stdout, re.MULTILINE)
        assert row, (x["mode"], r.stdout)
        assert [float(v) for v in row.groups()] == pytest.approx(
            [x["recall@1"], x["recall@5"], x["recall@10"], x["mrr"]], abs=5e-4)
    by_mode = {x["mode"]: x for x in results}
    assert by_mode["dense"]["recall@10"] == 1.0 and by_mode["hybrid"]["recall@10"] == 1.0
    assert f"{len(EVAL_QUESTIONS)} questions" in r.stdout


def test_eval_below_recall_floor_exits_1(cli, first_sync, questions_csv) -> None:
    r = cli("eval", "retrieval", "--csv", questions_csv, "--modes", "hybrid", "--min-recall5", "1.01")
    assert r.exit_code == 1, (r.stdout, r.stderr, r.exception)
    assert isinstance(r.exception, SystemExit)  # a deliberate exit, not a crash
    assert "below floor 1.01" in flat(r.stderr)
    assert "hybrid" in r.stdout and "dense" not in r.stdout


def test_sync_missing_folder_exits_1_with_message(cli, tmp_path) -> None:
    missing = tmp_path / "does-not-exist"
    r = cli("sync", "--path", missing, "--json")
    assert r.exit_code == 1, (r.stdout, r.stderr, r.exception)
    assert isinstance(r.exception, SystemExit), r.exception
    assert "Traceback" not in r.output
    msg = flat(r.stderr)
    assert "article folder not found" in msg and "does-not-exist" in msg


@pytest.mark.parametrize("args, env, expected", [
    (["ask", "hello"], {"CITEDESK_ANSWER__GENERATOR": "openai"}, "llm.base_url"),
    (["ask", "hello"], {"CITEDESK_ANSWER__THRESHOLD_CHAT": "7"}, "threshold_chat"),
    (["--config", "/nonexistent/citedesk.toml", "ask", "hello"], {}, "config file not found"),
])
def test_invalid_settings_exit_2_with_message(cli, args, env, expected) -> None:
    r = cli(*args, **env)
    assert r.exit_code == 2, (r.stdout, r.stderr, r.exception)
    assert isinstance(r.exception, SystemExit)
    msg = flat(r.stderr)
    assert "invalid settings" in msg and expected in msg
    assert "Traceback" not in r.output


def test_eval_with_missing_docs_folder_fails(cli, first_sync, questions_csv, tmp_path) -> None:
    r = cli("eval", "retrieval", "--csv", questions_csv, "--docs", tmp_path / "does-not-exist", "--modes", "hybrid")
    assert r.exit_code == 1, (r.stdout, r.stderr, r.exception)
    assert "article folder not found" in flat(r.stderr)


def test_eval_with_missing_csv_exits_1_with_message(cli, tmp_path) -> None:
    r = cli("eval", "retrieval", "--csv", tmp_path / "missing.csv")
    assert r.exit_code == 1, (r.stdout, r.stderr, r.exception)
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "missing.csv" in flat(r.stderr)


MTRAG_SAMPLE = Path(__file__).resolve().parent / "data" / "mtrag_sample.jsonl"


def test_eval_answers_table_and_json(cli, tmp_path) -> None:
    out_json = tmp_path / "answers.json"
    r = cli("eval", "answers", "--mtrag", MTRAG_SAMPLE, "--limit", "6", "--pool", "4", "--output", out_json)
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    body = json.loads(out_json.read_text())
    s = body["summary"]
    assert s["n"] == 6 and len(body["conversations"]) == 6
    assert s["judge"] == "lexical"  # no LLM configured: the offline fallback, and it says so
    out = flat(r.stdout)
    assert "citation support rate (lexical)" in out and "AUROC confidence vs answerable" in out
    shown = re.search(r"precision of answered\W+(n/a|[\d.]+)", out)
    p = s["decision"]["precision"]
    assert shown and shown.group(1) == ("n/a" if p is None else f"{p:.3f}"), out
    assert "indexed ibmcloud" in flat(r.stderr)


def test_calibrate_writes_per_channel_thresholds(cli, first_sync, questions_csv, tmp_path, monkeypatch) -> None:
    from citedesk.config.settings import load_settings

    config = tmp_path / "citedesk.toml"
    monkeypatch.setenv("CITEDESK_CONFIG", str(config))  # load_settings below sets it; restored after the test
    config.write_text('workspace = "default"\n')
    r = cli("calibrate", "--csv", questions_csv, "--negatives", MTRAG_SAMPLE, "--n-negatives", "8",
            "--target-precision", "0.9", "--voice-target-precision", "1.0", "--write", config)
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    s = load_settings(config)
    # the 3 questions are about the 3 indexed pages, the negatives are IBM Cloud questions: separable
    chat, voice = s.answer.threshold_chat, s.answer.threshold_voice
    assert 0.0 < chat <= voice < 1.0
    out = flat(r.stdout)
    assert f"{chat:.4f}" in out and f"{voice:.4f}" in out
    assert "3 answerable, 8 unanswerable" in out


def test_calibrate_from_leave_gold_out(cli, first_sync, questions_csv, tmp_path) -> None:
    config = tmp_path / "citedesk.toml"
    config.write_text('workspace = "default"\n')
    r = cli("calibrate", "--csv", questions_csv, "--gold-out", "--gold-out-answerable", tmp_path / "none.csv",
            "--folds", "3", "--write", config)
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    out = flat(r.stdout)
    # each question once as asked (answerable) and once with its gold page excluded (nothing else answers it)
    assert "3 answerable, 3 unanswerable" in out and "3-fold cross-validation by question" in out
    assert "held-out precision" in out


def test_calibrate_needs_both_classes(cli, first_sync, questions_csv) -> None:
    r = cli("calibrate", "--csv", questions_csv)
    assert r.exit_code == 1, (r.stdout, r.stderr, r.exception)
    assert "needs answerable and unanswerable" in flat(r.stderr)


def test_eval_answers_reuses_a_kept_index(cli, tmp_path) -> None:
    args = ("eval", "answers", "--mtrag", MTRAG_SAMPLE, "--limit", "3", "--pool", "2", "--index-dir", tmp_path / "idx")
    first = cli(*args, "--output", tmp_path / "a.json")
    assert first.exit_code == 0, (first.stdout, first.stderr, first.exception)
    assert re.search(r"indexed \w+: [1-9]\d* passages", flat(first.stderr)) and (tmp_path / "idx").is_dir()
    again = cli(*args, "--output", tmp_path / "b.json")
    assert again.exit_code == 0, (again.stdout, again.stderr, again.exception)
    indexed = re.findall(r"indexed \w+: (\d+) passages", flat(again.stderr))
    assert indexed and set(indexed) == {"0"}, flat(again.stderr)  # nothing re-embedded
    a, b = (json.loads((tmp_path / f).read_text())["summary"] for f in ("a.json", "b.json"))
    assert a["decision"] == b["decision"] and a["citation_support_rate"] == b["citation_support_rate"]
