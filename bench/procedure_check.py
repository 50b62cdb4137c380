"""How often a "How do I …?" question is answered with the steps, on questions made from the corpus's procedures.

The dev questions hold one "How to" question, so they cannot tell whether procedure questions get procedures. This
check makes them from the synced chunks: a procedure title line ("To change the instance type of an Amazon
EBS-backed instance", a line of its own without a sentence end) followed by numbered steps is asked as "How do I
change the instance type of an Amazon EBS-backed instance?". Each is asked through the answer pipeline
(extractive generator, no reader, chat threshold 0, so that every question gets an answer). Printed: how many
answers say the title with its first step (the procedure itself), how many come from the procedure's article but
say something else (the title alone, another sentence of the page), and how many come from other articles.

    python bench/procedure_check.py --data-dir <index of data/aws-docs> [--n 200] [--seed 5] [--dump rows.json]

``--loose`` asks each title less literally, as a customer would: "How can I …?", the interface qualifier dropped
("using the console", "(AWS CLI)"), "your" as "my" and the first article as "my" ("How can I stop my DB instance?"
for "To stop a DB instance using the console"); the console and command-line variants of a procedure then answer
alike, so an answer that says another procedure of the same page with its steps ("To stop a DB instance using the
AWS CLI: …") is counted apart.
"""

from __future__ import annotations

import collections
import functools
import os
import random
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_TITLE = re.compile(r"^\W{0,4}To ([a-z]+) ([^.:;!?]{8,140}?)\W{0,4}$")
_STEP = re.compile(r"^\s*1[.)]\s+(\S.{5,})$")


_QUALIFIER = re.compile(r"\s*\((?:console|aws cli|cli|api|[^)]*console)\)$|\s+(?:by )?(?:using|with|from|in|through) "
                        r"the (?:[\w-]+ ){0,3}(?:console|aws cli|cli|api)$", re.IGNORECASE)


def loosen(verb: str, rest: str) -> str:
    """A procedure title's verb and object asked as a customer would (see ``--loose``)."""
    rest = _QUALIFIER.sub("", rest.strip())
    rest = re.sub(r"\byour\b", "my", rest)
    rest = re.sub(r"^(?:a|an|the)\s+", "my ", rest)
    return f"How can I {verb} {rest}?"


def cases(index, n: int, seed: int, *, loose: bool = False) -> list[dict]:
    """``{"question", "step", "article"}`` for up to ``n`` procedure titles with numbered steps (one per chunk);
    ``loose``: asked as :func:`loosen` words them."""
    texts, offset = [], None
    while True:  # (text, article_id) of every chunk: the store's engine scrolled as chunk_texts scrolls it
        points, offset = index.engine.scroll(None, limit=512, offset=offset, fields=["text", "article_id"])
        texts += [(p.payload.get("text") or "", p.payload.get("article_id") or "") for p in points]
        if offset is None:
            break
    texts.sort()
    rng = random.Random(seed)
    rng.shuffle(texts)
    out, seen = [], set()
    for text, article in texts:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        for i, line in enumerate(lines[:-1]):
            m = _TITLE.match(line.strip())
            step = next((_STEP.match(x) for x in lines[i + 1:i + 3] if _STEP.match(x)), None)
            if m and step:
                q = loosen(m[1], m[2]) if loose else f"How do I {m[1]} {m[2].strip()}?"
                if q not in seen:
                    seen.add(q)
                    out.append({"question": q, "step": step[1].strip(), "article": article, "title": line.strip()})
                break
        if len(out) >= n:
            break
    return out


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[*_`\\]|[.,;:](?=\s|$)", " ", text).split()).lower()


def _first_words(step: str, n: int = 4) -> list[str]:
    """The step's first words, up to a URL, a link or a parenthesis (what the answer may leave out)."""
    words = []
    for w in _norm(step).split():
        if re.search(r"https?:|[\[\]()<>]", w):
            break
        words.append(w)
        if len(words) == n:
            break
    return words


async def ask_all(pipeline, items: list[dict]) -> list[dict]:
    from citedesk.serving.answer.schemas import AnswerRequest

    rows = []
    for case in items:
        r = await pipeline.answer(AnswerRequest(question=case["question"]))
        answer = _norm(r.answer)
        cited = {c.article_id for c in r.citations}
        if not r.answer:
            verdict = "escalated"
        elif _norm(case["title"]).strip(" *.:") in answer and " ".join(_first_words(case["step"])) in answer:
            verdict = "steps"  # the title with its first step (as said: URLs and link targets left out)
        elif case["article"] and case["article"] in cited and re.match(r"To [a-z]+\b[^.:;]{3,200}: \S", r.answer):
            verdict = "same_article_other_procedure"  # "To stop a DB instance using the AWS CLI: …"
        elif case["article"] and case["article"] in cited:
            verdict = "same_article_other_text"
        else:
            verdict = "other_article"
        rows.append({**case, "answer": r.answer, "cited": sorted(cited), "verdict": verdict})
    return rows


def main() -> None:
    # bench/ is the script's folder, first on sys.path
    from claim_selfcheck import ask_made_questions, check_args

    args = check_args(200, 5, "write every question with its answer here", lambda ap: ap.add_argument(
        "--loose", action="store_true", help="ask each title as a customer would (see the module docstring)"))
    rows = ask_made_questions(args, functools.partial(cases, loose=args.loose), ask_all)
    counts = collections.Counter(r["verdict"] for r in rows)
    print(f"{len(rows)} procedure questions from corpus procedure titles{' (loose)' if args.loose else ''}: answered "
          f"with the steps {counts['steps']}, another procedure of the same article with its steps "
          f"{counts['same_article_other_procedure']}, the procedure's article but other text "
          f"{counts['same_article_other_text']}, another article {counts['other_article']}, escalated "
          f"{counts['escalated']}")
    for r in rows:
        if r["verdict"] != "steps":
            print(f"  {r['verdict']}: {r['question']!r} → {r['answer'][:140]!r}")


if __name__ == "__main__":
    main()
