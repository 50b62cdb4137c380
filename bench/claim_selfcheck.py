"""How often the claim checks refuse the service's own extractive answers: a label-free check for issue 11.

Questions are answer units of the synced corpus itself (one unit of 6 to 60 words from each of ``--n`` chunks
drawn with ``--seed``), asked through the answer pipeline with the extractive generator, no reader and the chat
threshold at 0, so that every answer reaches the claim checks. An extractive answer says the passages' own text
(a sentence, a lead-in with its items, a table row said with its header), so an ``unsupported_citation`` or
``unsupported_claim`` escalation is a false rejection: a correct answer the service would have withheld. Prints
the counts of answer reasons and every rejected sentence with the check that refused it, and how well the citations'
quotes show their support: the share of the terms of the sentences citing a chunk that its quoted span holds.

    python bench/claim_selfcheck.py --data-dir <index of data/aws-docs> [--n 800] [--seed 11] [--dump rows.json]

Measured 2026-11-26 on the bundled pages (301 articles, 3,211 chunks), 800 questions, seed 11, 2 cores (about 2 min):
at f0a7b76 (before this session's claim and table fixes) 786 grounded and 11 false rejections (10
``unsupported_citation``, 1 ``unsupported_claim``: rendered table rows with numbers in column names, rows after a
group label read under a data row, a header cut at "Max.", a lead-in joined with an item further down its list);
at b3c4308, 795 grounded and 2 (a lead-in joined with a "Topics" line, a definition list read as a lead-in). The
other three escalations are not claim-check rejections: a question that is a Java stack trace
(``invalid_citation``) and two whose only sentences are not answers (``uncited_answer``). Re-synced with table rows
kept whole (1e0d864; 3,166 chunks, so another draw of 800): 798 grounded, 0 false rejections, 2 ``uncited_answer``.
2026-11-27, same draw: lead-ins said with whole definition entries and without code fences (583c92e) gave 795 and 2
false rejections (``entity_missing``: a "Topics" line read as a definition term, and a code line whose URL the
pipeline strips before the check); with list items, code lines and "Topics" lines never terms and the verbatim rule
comparing passages without URLs, 797 grounded, 0 false rejections, 3 ``uncited_answer`` (the third: a question that
is a bare lead-in at the end of its chunk, "A video of the presentation is available here:", no longer a candidate).
Quotes, same draw, 804 citations: a claim from one list item quoted the item's whole list (lead-in and every item)
and a column name of a header row in another chunk stretched the quote to the chunk's start: the quotes held 0.9597
of the terms of the sentences citing them, all of them for 733, mean 180 characters; with each sentence a candidate
span beside the lead-in-and-list spans and pieces found nowhere in the chunk left alone, 0.9869, 773, 147 (the
answers are the same; the 31 left short are mostly rows whose column names are in another chunk).
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


def questions(index, n: int, seed: int) -> list[str]:
    """One answer unit (6 to 60 words) of each of ``n`` chunks drawn at random from ``index``."""
    from citedesk.core.text import answer_units

    chunks = list(index.chunk_texts())
    rng = random.Random(seed)
    rng.shuffle(chunks)
    out = []
    for text, header in chunks:
        units = [u for u in answer_units(text, table_header=header) if 6 <= len(u.text.split()) <= 60]
        if units:
            out.append(rng.choice(units).text)
        if len(out) >= n:
            break
    return out


def quote_coverage(answer: str, citations, sparse) -> list[tuple[float, int]]:
    """Per citation: the share of the terms of the answer sentences citing it that its quote holds, and the quote's
    length in characters."""
    import re

    from citedesk.core.text import markers, strip_markers

    sentences = re.split(r"(?<=\])\s+", answer)
    out = []
    for c in citations:
        terms = set(sparse.terms(" ".join(strip_markers(x) for x in sentences if c.marker in markers(x))))
        out.append((len(terms & set(sparse.terms(c.quote))) / len(terms) if terms else 1.0, len(c.quote)))
    return out


async def ask_all(pipeline, qs: list[str]) -> list[dict]:
    from citedesk.serving.answer.schemas import AnswerRequest

    rows = []
    for q in qs:
        r = await pipeline.answer(AnswerRequest(question=q[:500]))
        rows.append({"question": q, "decision": str(r.decision), "reason": str(r.reason), "answer": r.answer,
                     "rejected": (r.signals or {}).get("rejected", []),
                     "quotes": quote_coverage(r.answer, r.citations, pipeline.sparse)})
    return rows


def every_answer_container(data_dir: Path):
    """A :class:`~citedesk.serving.container.Container` over the index in ``data_dir`` whose pipeline lets every
    question reach the generator and the claim checks: the extractive generator, no reader, chat threshold 0."""
    from citedesk.config.settings import Settings
    from citedesk.serving.container import Container

    s = Settings(data_dir=data_dir)
    return Container(s.model_copy(update={"answer": s.answer.model_copy(update={
        "reader_model": None, "threshold_chat": 0.0, "generator": "extractive"})}))


def check_args(n: int, seed: int, dump: str, more=None) -> argparse.Namespace:
    """The label-free checks' arguments: ``--data-dir``, ``--n``, ``--seed``, ``--dump``, and what ``more(parser)``
    adds."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(".citedesk"))
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--dump", type=Path, help=dump)
    if more is not None:
        more(ap)
    return ap.parse_args()


def ask_made_questions(args: argparse.Namespace, make, ask) -> list[dict]:
    """Questions made from the index in ``args.data_dir`` (``make(index, n, seed)``) asked through a pipeline
    that answers every one (:func:`every_answer_container`; ``await ask(pipeline, questions)``); the rows
    written to ``args.dump`` when given."""
    c = every_answer_container(args.data_dir)
    try:
        c.pipeline.warm_up()
        rows = asyncio.run(ask(c.pipeline, make(c.index, args.n, args.seed)))
    finally:
        c.index.close()
    if args.dump:
        args.dump.write_text(json.dumps(rows, indent=1))
    return rows


def main() -> None:
    args = check_args(800, 11, "write every question with its answer and rejections here")
    rows = ask_made_questions(args, questions, ask_all)
    counts = collections.Counter(r["reason"] for r in rows)
    print(f"{len(rows)} questions made from corpus units; answer reasons: "
          + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    quotes = [q for r in rows for q in r["quotes"]]
    if quotes:
        print(f"{len(quotes)} citations: their quotes hold {sum(c for c, _ in quotes) / len(quotes):.4f} of the terms "
              f"of the sentences citing them on average, all of them for {sum(c >= 0.999 for c, _ in quotes)}; "
              f"mean quote {sum(n for _, n in quotes) / len(quotes):.0f} characters")
    for r in rows:
        for rej in r["rejected"]:
            if not str(rej["reason"]).startswith("not_an_answer"):
                print(f"  refused ({rej['reason']}): {rej['sentence'][:200]}")


if __name__ == "__main__":
    main()
