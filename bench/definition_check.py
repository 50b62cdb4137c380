"""How "What is X?" questions fare, on questions made from the corpus's own definitions, with and without the page.

Support customers ask what things are ("What is a trail?", "What is a DB parameter group?"), and the dev questions
hold few such questions. This check makes them from the pages: a sentence that defines its subject ("A trail is a
configuration that enables delivery of CloudTrail events to …", "An alias is a pointer to …") is asked as "What is a
trail?" (the subject with its article), and asked twice through the answer pipeline as configured (reader and
confidence model included; every question answered at threshold 0 so that the answer can be read):

* ``normal`` — the whole index: does the answer say the defining sentence (or another sentence that defines the
  subject: the subject, then "is"/"are")?
* ``source_out`` — the defining sentence's article excluded (the eval's leave-gold-out): in-domain and usually
  unanswerable; an answer that still defines the subject counts as answerable.

Printed: how many normal answers define the subject, and the AUROC of the confidence between the questions the
answer defines (answerable) and the ones it does not (``source_out`` answers that define nothing, normal answers
that miss) — label-free, from pages the dev questions do not shape.

    python bench/definition_check.py --data-dir <index of data/aws-docs> --docs data/aws-docs [--n 150] [--seed 5]
        [--dump rows.json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_DEFINES = re.compile(r"^(An?|The) ((?:[A-Za-z][\w\-]*)(?: [A-Za-z][\w\-]*){0,3}) (?:is|are) (?:an?|the) [a-z]")
_VAGUE = frozenset({"following", "example", "result", "default", "first", "second", "next", "same", "other",
                    "value", "only", "response", "request", "output", "input", "command", "syntax", "process", "key",
                    "difference", "action", "name", "this", "that", "main", "last", "new"})


def cases(docs: Path, n: int, seed: int) -> list[dict]:
    """Up to ``n`` ``{"question", "subject", "sentence", "article_id"}`` from defining sentences, one per page, in a
    ``seed`` order. Subjects with a vague word ("The result is …", "The key difference is …") or an "of" are left
    out."""
    from citedesk.core.text import sentence_spans
    from citedesk.ingest.clean import to_clean_text

    pages = sorted(p for p in docs.rglob("*.md"))
    random.Random(seed).shuffle(pages)
    out = []
    for page in pages:
        text = to_clean_text(page.read_text(encoding="utf-8"), "markdown")
        for span in sentence_spans(text):
            m = _DEFINES.match(span.text.strip())
            if (m is None or _VAGUE & set(m.group(2).lower().split()) or " of " in f" {m.group(2)} "
                    or len(span.text.split()) < 8):
                continue
            subject = m.group(2)
            article = "an" if subject[0].lower() in "aeiou" else "a"
            out.append({"question": f"What is {article} {subject}?", "subject": subject, "sentence": span.text.strip(),
                        "article_id": page.relative_to(docs).as_posix()})
            break
        if len(out) >= n:
            break
    return out


def says_definition(answer: str, case: dict) -> bool:
    """The answer says the defining sentence, or a sentence whose subject is the asked one followed by is/are."""
    if case["sentence"][:60] in answer:
        return True
    subject = re.escape(case["subject"])
    return re.search(rf"(?:^|[.;:]\s)(?:An?\s|The\s)?{subject}s?(?:\s\([^)]*\))?,?\s(?:is|are|refers to|means)\s",
                     answer, re.IGNORECASE) is not None


async def ask_all(pipeline, items: list[dict]) -> list[dict]:
    from citedesk.serving.answer.schemas import AnswerRequest

    rows = []
    for case in items:
        for setting, exclude in (("normal", ()), ("source_out", (case["article_id"],))):
            r = await pipeline.answer(AnswerRequest(question=case["question"]), exclude_articles=exclude, threshold=0.0)
            rows.append({**case, "setting": setting, "decision": str(r.decision), "reason": r.reason,
                         "confidence": r.confidence, "answer": r.answer,
                         "defines": bool(r.answer) and says_definition(r.answer, case)})
    return rows


def main() -> None:
    from citedesk.config.settings import Settings
    from citedesk.serving.container import Container
    from citedesk.serving.evaluation.calibration import auroc

    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(".citedesk"))
    ap.add_argument("--docs", type=Path, default=Path("data/aws-docs"))
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--dump", type=Path, help="write every question with its answers here")
    args = ap.parse_args()

    c = Container(Settings(data_dir=args.data_dir))
    try:
        c.pipeline.warm_up()
        rows = asyncio.run(ask_all(c.pipeline, cases(args.docs, args.n, args.seed)))
        threshold = c.pipeline.policy.thresholds.get("chat", 0.5)
    finally:
        c.index.close()
    if args.dump:
        args.dump.write_text(json.dumps(rows, indent=1))
    normal = [r for r in rows if r["setting"] == "normal"]
    out = [r for r in rows if r["setting"] == "source_out"]
    verdicts = collections.Counter(("defines" if r["defines"] else "other") for r in normal)
    print(f"{len(normal)} definition questions from corpus sentences; normal answers that define the subject "
          f"{verdicts['defines']}, other {verdicts['other']}; with the source page excluded, still defined "
          f"{sum(r['defines'] for r in out)}")
    pos = [r["confidence"] for r in rows if r["defines"]]
    neg = [r["confidence"] for r in rows if not r["defines"]]
    separation = auroc([r["confidence"] for r in rows], [r["defines"] for r in rows])
    print(f"confidence AUROC, defined vs not: {separation or float('nan'):.3f} ({len(pos)} / {len(neg)}); at the chat "
          f"threshold {threshold:.4f}: answered {sum(p >= threshold for p in pos)} of {len(pos)} defined, "
          f"{sum(q >= threshold for q in neg)} of {len(neg)} not")


if __name__ == "__main__":
    main()
