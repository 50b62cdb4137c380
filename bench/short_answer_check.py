"""How often the short answer is the asked table cell, on questions made from the corpus's own tables.

The dev questions shaped the short-answer rules (:mod:`citedesk.serving.answer.short_answer`), so they cannot
score them. This check makes questions the rules never saw: for ``--n`` table rows drawn with ``--seed`` from the
synced chunks (a header of three or more columns; the row named by its first cell), one column is drawn among the
cells of at most six words and asked as "What is the <column> of <row name>?"; the cell is the reference. Each is
asked through the answer pipeline (extractive generator, no reader, chat threshold 0, so that every question gets
an answer). Printed, for the answers that said the asked row (its name and the asked cell), how often the short
answer is the cell (exactly, or its quantity, or with its column's unit), another value (wrong), or none; and how
many answers said another row (a selection miss, where a short answer is the other row's value).

Also "how many" questions (:func:`count_cases`) from sentences that bound a count, judged as the bound sentences
are. Also yes/no questions (:func:`yes_no_cases`): from table rows with a Yes/No cell and from sentences that say what
you can or can't do, or what is (not) supported; printed: how often the short answer's Yes/No is the source's
(right), the opposite (flipped) or none, among answers that say the source. ``--parts dev_yes_no`` asks the CSV's
own yes/no questions as is and with their gold article excluded (the verdict a neighbouring page's sentences get).

    python bench/short_answer_check.py --data-dir <index of data/aws-docs> [--n 300] [--seed 5] [--dump rows.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def cases(index, n: int, seed: int) -> list[dict]:
    """``{"question", "row", "column", "cell"}`` for ``n`` table rows drawn at random (one per chunk)."""
    from citedesk.core.text import answer_units, row_cells

    chunks = list(index.chunk_texts())
    rng = random.Random(seed)
    rng.shuffle(chunks)
    out = []
    for text, header in chunks:
        rows = [u for u in answer_units(text, table_header=header) if u.kind == "table_row" and u.context]
        rng.shuffle(rows)
        for unit in rows:
            cells = row_cells(unit.context, text[unit.start:unit.end])
            if len(cells) < 3 or not cells[0][1] or not cells[0][0]:
                continue
            asked = [(name, cell) for name, cell in cells[1:] if name and cell and len(cell.split()) <= 6
                     and len(name.split()) <= 6 and cell.lower() != cells[0][1].lower()]
            if not asked:
                continue
            name, cell = rng.choice(asked)
            out.append({"question": f"What is the {name} of {cells[0][1]}?", "row": cells[0][1], "column": name,
                        "cell": cell})
            break
        if len(out) >= n:
            break
    return out




def _sentence_cases(index, n: int, seed: int, make) -> list[dict]:
    """Up to ``n`` cases from the synced chunks, in a ``seed`` order: ``make(sentence)`` for each sentence, the first
    case it gives in a chunk (None: no case)."""
    from citedesk.core.text import sentence_spans

    chunks = list(index.chunk_texts())
    rng = random.Random(seed)
    rng.shuffle(chunks)
    out = []
    for text, _header in chunks:
        case = next((c for span in sentence_spans(text) if (c := make(span.text)) is not None), None)
        if case is not None:
            out.append(case)
        if len(out) >= n:
            break
    return out


def sentence_cases(index, n: int, seed: int) -> list[dict]:
    """``{"question", "cell"}`` from sentences that state a bound or default ("The maximum allowed value is 900
    seconds."): asked as "What is the maximum allowed value?" with a tail of the sentence's other words naming what
    it is about when the sentence has them before the statement; the quantity is the reference."""
    import re

    from citedesk.serving.answer.short_answer import quantities

    stated = re.compile(r"\b[Tt]he ((?:maximum|minimum|default)\s[^.,;:()]{3,60}?) (?:is|are) (?:up to |at most |"
                        r"at least )?(?=\d)")

    def make(sentence: str) -> dict | None:
        m = stated.search(sentence)
        q = quantities(sentence[m.end():]) if m else []
        if not (m and q and q[0][0] == 0):
            return None
        return {"question": f"What is the {m.group(1)}?", "row": "", "column": "",
                "cell": sentence[m.end():][q[0][0]:q[0][1]], "sentence": sentence}

    return _sentence_cases(index, n, seed, make)


def count_cases(index, n: int, seed: int) -> list[dict]:
    """``{"question", "cell"}`` from sentences that bound a count ("You can create up to 20 global secondary indexes
    per table."): asked as "How many global secondary indexes per table?" (the counted noun phrase and the words after
    it up to the clause's end); the number is the reference. The answer that said it should give it as the short
    answer, not a measure ("400 KB") or another number."""
    import re

    bound = re.compile(r"\b(?:up to|a maximum of|maximum of|at most|no more than|a limit of|a quota of) "
                       r"(\d{1,3}(?:,\d{3})+|\d+) ((?:[A-Za-z][\w-]* ){0,3}[a-z][\w-]*s)\b([^.;:,()]{0,40})")

    def make(sentence: str) -> dict | None:
        m = bound.search(sentence)
        if m is None or re.search(r"\b(?:and|or)$", m.group(2)):
            return None
        return {"question": f"How many {m.group(2)}{m.group(3).rstrip()}?", "row": "", "column": "",
                "cell": m.group(1), "sentence": sentence}

    return _sentence_cases(index, n, seed, make)


_YES_NO_CELL = {"yes": "Yes", "no": "No"}


def yes_no_cases(index, n: int, seed: int) -> list[dict]:
    """``{"question", "cell", "source"}`` yes/no questions with their answer: from table rows with a Yes/No cell
    ("Is <row name> <column>?", the cell) and from sentences that say what you can or can't do, or what is or is not
    supported ("You can't stop a DB instance that has a read replica." → "Can I stop a DB instance that has a read
    replica?", No). Sentences that hedge (the short answer's own hedge words, "when", ":") are left out, as their
    question has no plain yes or no."""
    import re

    from citedesk.core.text import answer_units, row_cells, sentence_spans
    from citedesk.serving.answer.short_answer import _HEDGE

    forms = [
        (re.compile(r"^You (?:can't|cannot|can not) (.{10,160})\.$"), lambda m: f"Can I {m[1]}?", "No"),
        (re.compile(r"^You can (.{10,160})\.$"), lambda m: f"Can I {m[1]}?", "Yes"),
        (re.compile(r"^((?!(?:You|For|If|In|This|That|These|Those|It|They|Also)\b)[A-Z][^,#:;]{2,60}?) (is|are) not supported (.{3,120})\.$"),
         lambda m: f"{m[2].capitalize()} {m[1]} supported {m[3]}?", "No"),
        (re.compile(r"^((?!(?:You|For|If|In|This|That|These|Those|It|They|Also)\b)[A-Z][^,#:;]{2,60}?) (is|are) supported (.{3,120})\.$"),
         lambda m: f"{m[2].capitalize()} {m[1]} supported {m[3]}?", "Yes"),
        (re.compile(r"^((?!(?:You|For|If|In|This|That|These|Those|It|They|Also)\b)[A-Z][^,#:;]{2,60}?) (does|do) not (\w+ .{3,120})\.$"),
         lambda m: f"{m[2].capitalize()} {m[1]} {m[3]}?", "No"),
    ]
    chunks = list(index.chunk_texts())
    rng = random.Random(seed)
    rng.shuffle(chunks)
    rows: list[dict] = []
    sentences: list[dict] = []
    for text, header in chunks:
        for unit in answer_units(text, table_header=header):
            if unit.kind != "table_row" or not unit.context or len(rows) >= n // 2:
                continue
            cells = row_cells(unit.context, text[unit.start:unit.end])
            yn = [(name, cell) for name, cell in cells[1:] if name and cell.strip(" *.").lower() in _YES_NO_CELL]
            if len(cells) >= 2 and cells[0][1] and yn and len(cells[0][1].split()) <= 8:
                name, cell = rng.choice(yn)
                rows.append({"question": f"Is {cells[0][1].strip('`* ')} {name.strip('?* ')}?", "cell":
                             _YES_NO_CELL[cell.strip(' *.').lower()], "source": text[unit.start:unit.end].strip(),
                             "row": cells[0][1], "column": name, "raw": cell})
                break
        for span in sentence_spans(text):
            t = " ".join(span.text.split())
            if _HEDGE.search(t) or re.search(r"\b(?:when|nor)\b|[:;\[\]|`#]", t) or len(t.split()) > 30:
                continue
            for pattern, ask, ref in forms:
                m = pattern.match(t)
                q = re.sub(r"\byour\b", "my", ask(m)) if m else ""
                q = re.sub(r"^(\w+ )The\b", r"\1the", q)
                if m and sum(1 for x in sentences if x["cell"] == ref) < n // 4 and all(
                        x["question"] != q for x in sentences):
                    sentences.append({"question": q, "cell": ref, "source": t, "row": "", "column": ""})
                    break
        if len(rows) >= n // 2 and len(sentences) >= 2 * (n // 4):
            break
    return rows + sentences


def yes_no_verdict(case: dict, answer: str, short: str | None) -> str:
    """``right`` / ``flipped`` / ``none`` for an answer that says the source sentence or row; ``other_passage``
    (``…_flipped`` when its verdict is the opposite) otherwise."""
    if case["row"]:  # said as "<row's first column>: <row name>; … <column>: <cell>"
        said = case["row"] in answer and f"{case['column']}: {case['raw']}" in answer
    else:
        source = case["source"].rstrip(" .")
        said = source[:60] in " ".join(answer.split()) or source in answer
    if not said:
        return "other_passage_flipped" if short and short != case["cell"] else "other_passage"
    if not short:
        return "none"
    return "right" if short == case["cell"] else "flipped"


async def ask_dev_yes_no(pipeline, csv_path: Path) -> list[dict]:
    """The CSV's yes/no questions (``yes_no`` Yes or No), each asked as is and with its gold article excluded
    (every question answered: the neighbouring pages' sentences then answer it); the verdict against ``yes_no``."""
    import csv

    from citedesk.serving.answer.schemas import AnswerRequest

    with csv_path.open(newline="", encoding="utf-8") as fh:
        cases = [r for r in csv.DictReader(fh) if (r.get("yes_no") or "").strip() in ("Yes", "No")]
    rows = []
    for case in cases:
        for setting, exclude in (("normal", ()), ("gold_out", (case["gold_document"],))):
            r = await pipeline.answer(AnswerRequest(question=case["question"]), exclude_articles=exclude)
            got = r.short_answer if r.short_answer in ("Yes", "No") else None
            rows.append({"question": case["question"], "setting": setting, "cell": case["yes_no"].strip(),
                         "answer": r.answer, "short_answer": r.short_answer, "source": "", "row": "", "column": "",
                         "verdict": "none" if got is None else "right" if got == case["yes_no"].strip() else "flipped"})
    return rows


def verdict(case: dict, answer: str, short: str | None) -> str:
    """``right`` / ``wrong`` / ``none`` for an answer that said the asked row (or, for a sentence case, holds the
    stated quantity); ``other_row`` otherwise."""
    if case["row"] and (f"{case['column']}: {case['cell']}" not in answer or case["row"] not in answer):
        return "other_row"
    if not case["row"] and case["cell"] not in answer:
        return "other_row"
    if not short:
        return "none"
    a, b = set(short.lower().split()), set(case["cell"].lower().split())
    return "right" if a <= b or b <= a else "wrong"  # the cell, its quantity, or the cell with its column's unit


async def ask_all(pipeline, items: list[dict], judge=verdict) -> list[dict]:
    from citedesk.serving.answer.schemas import AnswerRequest

    rows = []
    for case in items:
        r = await pipeline.answer(AnswerRequest(question=case["question"][:500]))
        rows.append({**case, "decision": str(r.decision), "answer": r.answer, "short_answer": r.short_answer,
                     "verdict": judge(case, r.answer, r.short_answer) if r.answer else "escalated"})
    return rows


def main() -> None:
    # bench/ is the script's folder, first on sys.path
    from claim_selfcheck import every_answer_container

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(".citedesk"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--dump", type=Path, help="write every question with its answer and short answer here")
    ap.add_argument("--parts", default="table,sentences,counts,yes_no", help="which checks to run (comma-separated; also "
                    "dev_yes_no: the --csv's yes/no questions, as is and with their gold article excluded)")
    ap.add_argument("--csv", type=Path, default=Path("data/aws-docs-qa-dev.csv"))
    args = ap.parse_args()
    parts = set(args.parts.split(","))

    c = every_answer_container(args.data_dir)
    try:
        c.pipeline.warm_up()
        rows = asyncio.run(ask_all(c.pipeline, cases(c.index, args.n, args.seed))) if "table" in parts else []
        sentences = (asyncio.run(ask_all(c.pipeline, sentence_cases(c.index, args.n, args.seed)))
                     if "sentences" in parts else [])
        counted = (asyncio.run(ask_all(c.pipeline, count_cases(c.index, args.n, args.seed)))
                   if "counts" in parts else [])
        yes_nos = (asyncio.run(ask_all(c.pipeline, yes_no_cases(c.index, args.n, args.seed), yes_no_verdict))
                   if "yes_no" in parts else [])
        dev = asyncio.run(ask_dev_yes_no(c.pipeline, args.csv)) if "dev_yes_no" in parts else []
    finally:
        c.index.close()
    if args.dump:
        args.dump.write_text(json.dumps(rows + sentences + counted + yes_nos + dev, indent=1))
    for kind, got in (("table rows", rows), ("sentences stating a bound or default", sentences),
                      ("sentences bounding a count, asked how many", counted)):
        if not got:
            continue
        counts = collections.Counter(r["verdict"] for r in got)
        said = counts["right"] + counts["wrong"] + counts["none"]
        others = sum(1 for r in got if r["verdict"] == "other_row" and r["short_answer"])
        print(f"{len(got)} questions from corpus {kind}; {said} answers said the asked row or quantity: short "
              f"answer right {counts['right']}, wrong {counts['wrong']}, none {counts['none']}; another row or "
              f"passage {counts['other_row']} (of which with a short answer {others}); escalated {counts['escalated']}")
        for r in got:
            if r["verdict"] == "wrong":
                print(f"  wrong: {r['question']!r} → {r['short_answer']!r} (reference {r['cell']!r})")
    for kind, got in (("table rows with a Yes/No cell", [r for r in yes_nos if "|" in r["source"]]),
                      ("sentences that say can / can't / (not) supported", [r for r in yes_nos if "|" not in r["source"]])):
        if not got:
            continue
        counts = collections.Counter(r["verdict"] for r in got)
        print(f"{len(got)} yes/no questions from corpus {kind}: answers saying the source: Yes/No right "
              f"{counts['right']}, flipped {counts['flipped']}, none {counts['none']}; answers from another passage "
              f"{counts['other_passage'] + counts['other_passage_flipped']} (of which the opposite verdict "
              f"{counts['other_passage_flipped']}); escalated {counts['escalated']}")
        for r in got:
            if r["verdict"] == "flipped":
                print(f"  flipped: {r['question']!r} → {r['short_answer']!r} ({r['answer'][:160]!r})")
    for setting in ("normal", "gold_out"):
        got = [r for r in dev if r["setting"] == setting]
        if got:
            counts = collections.Counter(r["verdict"] for r in got)
            print(f"{len(got)} yes/no questions of {args.csv.name}, {setting} (all answered): Yes/No right "
                  f"{counts['right']}, flipped {counts['flipped']}, none {counts['none']}")


if __name__ == "__main__":
    main()
