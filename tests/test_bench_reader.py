"""The reader-training bench scripts: ``bench/train_reader.py`` makes pairs from real pages and scores recorded
candidates as the service's cross-encoder reads them; ``bench/answerability_fit.py`` recomputes the reader features
of a recorded benchmark from another model's scores."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from citedesk.retrieval.embedding.dense import CrossEncoderReaderModel

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "models" / "reader-minilm"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pairs(tmp_path: Path, *flags: str) -> list[dict]:
    out = tmp_path / f"pairs{len(flags)}.jsonl"
    subprocess.run([sys.executable, str(ROOT / "bench" / "train_reader.py"), "pairs", "--out", str(out),
                    "--corpus", str(ROOT / "data" / "aws-docs" / "amazon-rds-user-guide"), "--limit-pages", "40",
                    "--max-queries", "400", *flags], check=True, capture_output=True, text=True, timeout=300)
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_pairs_from_real_pages_and_the_table_leadin_recipe(tmp_path) -> None:
    from citedesk.serving.answer.generators import _REFERS_FORWARD

    shipped = _pairs(tmp_path)
    assert {r["y"] for r in shipped} == {0, 1} and {r["kind"] for r in shipped} >= {"heading", "table"}
    # the shipped recipe lets a sentence announcing a table be a positive; the tried one never does
    def table_leadins(rows: list[dict], y: int) -> list[dict]:
        return [r for r in rows if r["y"] == y and r["kind"] != "table" and r["t"].startswith("The following table")
                and _REFERS_FORWARD.search(r["t"])]

    announcing = table_leadins(shipped, 1)
    assert announcing, "the RDS pages have sections that open with 'The following table …'"
    skipped = _pairs(tmp_path, "--skip-table-leadins")
    assert not table_leadins(skipped, 1)
    negatives = {r["t"] for r in skipped if r["y"] == 0}
    assert any(r["t"] in negatives for r in announcing)  # it became a hard negative


def test_score_reads_pairs_as_the_service_reader(tmp_path) -> None:
    question = "What is the size of a null attribute in DynamoDB?"
    units = ["The size of a null attribute or a Boolean attribute is (length of attribute name) + (1 byte).",
             "DynamoDB supports nested attributes up to 32 levels deep.",
             "You can use the AWS Management Console to create a table."]
    cands = tmp_path / "cands.json"
    cands.write_text(json.dumps({question: [units, units[1:]]}))
    out = tmp_path / "scores.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "train_reader.py"), "score", "--candidates", str(cands),
                    "--out", str(out), "--device", "cpu", str(SHIPPED)], check=True, capture_output=True, text=True,
                   timeout=300)
    scores = json.loads(out.read_text())["reader-minilm"][question]
    service = CrossEncoderReaderModel(str(SHIPPED), device="cpu").score_units(question, units)
    assert [len(s) for s in scores] == [3, 2]
    assert scores[0] == pytest.approx(list(service), abs=1e-4)
    assert scores[1] == pytest.approx(scores[0][1:], abs=1e-6)
    assert max(range(3), key=lambda i: scores[0][i]) == 0


def test_rescore_recomputes_reader_features_per_recorded_list() -> None:
    fit = _module("answerability_fit")
    cands = {"q": [["a", "b", "c"], ["d", "e"]]}
    scores = {"q": [[0.2, 0.9, 0.1], [0.8, 0.3]]}
    rows = [{"question": "q", "reader_list": 0, "reader_agrees": 1.0, "reader_max": 0.0, "reader_top": 0.0},
            {"question": "q", "reader_list": 1, "reader_agrees": 0.0, "reader_max": 0.0, "reader_top": 0.0},
            {"question": "x", "reader_list": None, "reader_agrees": 0.0, "reader_max": 0.0, "reader_top": 0.0}]
    out = fit.rescore(rows, cands, scores)
    assert out[0] | {} == rows[0] | {"reader_agrees": 0.0, "reader_max": 0.9, "reader_top": 0.2}
    assert (out[1]["reader_agrees"], out[1]["reader_max"], out[1]["reader_top"]) == (1.0, 0.8, 0.8)
    assert out[2] == rows[2] and rows[0]["reader_agrees"] == 1.0  # no reader call; the input rows untouched
    with pytest.raises(ValueError, match="reader_list"):
        fit.rescore([{"question": "q", "reader_agrees": 1.0}], cands, scores)


def test_recorded_reader_records_each_list_once() -> None:
    import numpy as np

    fit = _module("answerability_fit")

    class Model:
        SCORE_KIND, NO_UNIT_SCORE = "answers_probability", 0.0

        def score_units(self, question, units):
            return np.arange(len(units), dtype=float)

    rec = fit.RecordedReader(Model())
    rec.score_units("q", ["a", "b"])
    rec.score_units("q", ["c"])
    assert list(rec.score_units("q", ["a", "b"])) == [0.0, 1.0] and rec.last == 0
    assert rec.asked == {"q": [["a", "b"], ["c"]]}


def test_pairs_from_written_questions(tmp_path) -> None:
    """``pairs-written``: the positive of a question written from a page is the page's unit that holds its copied
    answer; a near-miss question (its page does not answer it) gets negatives only, and training keeps it; a
    question on an evaluation page (``--exclude-csv``) is left out."""
    corpus = ROOT / "data" / "aws-docs" / "amazon-rds-user-guide"
    written = tmp_path / "q.jsonl"
    answer = "You can have up to five concurrent DB snapshot export tasks in progress per account."
    written.write_text("\n".join(json.dumps(q) for q in [
        {"page": "USER_ExportSnapshot.md", "question": "How many snapshot exports to S3 can run at once in RDS?",
         "answerable": True, "answer": "5", "answer_text": answer},
        {"page": "USER_ExportSnapshot.md", "question": "How long does an RDS snapshot export take per GB?",
         "answerable": False, "answer": "", "answer_text": ""},
        {"page": "USER_Tagging.md", "question": "How many tags can an RDS resource have?", "answerable": True,
         "answer": "50", "answer_text": "no such sentence on this page at all, anywhere"},
    ]) + "\n")
    exclude = tmp_path / "eval.csv"
    exclude.write_text("question,answer,gold_document\nq,a,USER_Tagging.md\n")
    out = tmp_path / "pairs.jsonl"
    subprocess.run([sys.executable, str(ROOT / "bench" / "train_reader.py"), "pairs-written", "--questions",
                    str(written), "--out", str(out), "--corpus", str(corpus), "--exclude-csv", str(exclude)],
                   check=True, capture_output=True, text=True, timeout=300)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_q: dict[str, list[dict]] = {}
    for r in rows:
        by_q.setdefault(r["q"], []).append(r)
    assert set(by_q) == {"How many snapshot exports to S3 can run at once in RDS?",
                         "How long does an RDS snapshot export take per GB?"}  # the excluded page's is left out
    exports = by_q["How many snapshot exports to S3 can run at once in RDS?"]
    assert [r["t"] for r in exports if r["y"] == 1] == [answer]
    assert sum(r["y"] == 0 for r in exports) >= 5 and all(r["kind"] == "written" for r in exports)
    near = by_q["How long does an RDS snapshot export take per GB?"]
    assert near and all(r["y"] == 0 and r["kind"] == "nearmiss" for r in near)
    groups = _module("train_reader")._groups(rows)
    assert [bool(g["pos"]) for g in groups] == [True, False]  # the near-miss question is trained on too
