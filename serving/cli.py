"""The ``citedesk`` command line (typer): sync, serve, mcp, ask, eval retrieval|answers, calibrate."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from citedesk.config.settings import Settings, load_settings
from citedesk.core.errors import CitedeskError
from citedesk.core.types import Channel
from citedesk.serving.evaluation.judges import JudgeKind

app = typer.Typer(help="citedesk: grounded, cited answers from your help center.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
console = Console(stderr=True)
out = Console()


class Source(str, Enum):
    folder = "folder"
    intercom = "intercom"


class State:
    settings: Settings | None = None
    config_path: Path | None = None


def _container():
    from citedesk.serving.container import Container

    assert State.settings is not None
    return Container(State.settings)


@app.callback()
def main_options(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML settings file")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Settings come from CITEDESK_* env vars and an optional TOML file (see README)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    try:
        State.settings = load_settings(config)
        State.config_path = config
    except Exception as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2)


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


ApiKeyOption = Annotated[Optional[str], typer.Option(
    "--api-key", envvar="CITEDESK_API_KEY", help="bearer key for a server with auth on (env CITEDESK_API_KEY)")]


def _server_for(url: Optional[str]) -> Optional[str]:
    """``url``, else the URL of a live ``citedesk serve`` on this data_dir (see serving/discovery.py), else None."""
    if url:
        return url.rstrip("/")
    from citedesk.serving.discovery import find_server

    return find_server(State.settings.data_dir)


def _sync_progress(as_json: bool) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("[bold]sync[/bold] {task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, disable=as_json)


@app.command()
def sync(
    source: Annotated[Source, typer.Option(help="where articles come from")] = Source.folder,
    path: Annotated[Optional[Path], typer.Option(help="folder of articles (source=folder)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    url: Annotated[Optional[str], typer.Option(
        help="run the sync in the citedesk server at this URL (default: the server running on this data_dir, "
             "if any; otherwise the sync runs here)")] = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Sync articles into the index: new and changed ones are embedded, removed ones deleted.

    When `citedesk serve` runs on the same data (or with --url) the job runs inside that server, which keeps
    answering meanwhile; the progress bar follows it here."""
    server = _server_for(url)
    if server is not None:
        summary = _remote_sync(server, source, path, as_json, api_key)
    else:
        summary = _local_sync(source, path, as_json)
    _print_sync_report(summary, as_json)


def _remote_sync(server: str, source: Source, path: Optional[Path], as_json: bool, api_key: Optional[str]) -> dict:
    from citedesk.serving.remote_sync import RemoteSyncError, remote_sync

    if not as_json:
        console.print(f"handing the sync to the citedesk server at {server}")
    with _sync_progress(as_json) as progress:
        task = progress.add_task(f"{source.value} → {server}", total=None)

        def on_event(e: dict) -> None:
            if e["event"] == "total":
                progress.update(task, total=e["n"])
            elif e["event"] == "advance":
                progress.advance(task, e["n"])

        try:
            return remote_sync(server, source=source.value, api_key=api_key, on_event=on_event,
                               path=str(path.resolve()) if path is not None and source == Source.folder else None)
        except RemoteSyncError as exc:
            _fail(exc)


def _local_sync(source: Source, path: Optional[Path], as_json: bool) -> dict:
    c = _container()
    try:
        connector = c.folder_connector(path) if source == Source.folder else c.intercom_connector()
        engine = c.sync_engine
        with _sync_progress(as_json) as progress:
            task = progress.add_task(f"{connector.name} → {c.index.location}", total=None)

            def hook(event: str, n: int) -> None:
                if event == "total":
                    progress.update(task, total=n)
                else:
                    progress.advance(task, n)

            return engine.sync(connector, progress=hook).summary()
    except CitedeskError as exc:
        _fail(exc)
    finally:
        c.index.close()


def _print_sync_report(summary: dict, as_json: bool) -> None:
    """Print a sync report (``SyncReport.summary()``, local or from a server); exit 1 unless it is ok."""
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        table = Table(title=f"sync report: {summary['source']} / {summary['workspace']}")
        for col in ("added", "updated", "deleted", "unchanged", "failed", "chunks", "seconds", "articles/s",
                    "chunks/s"):
            table.add_column(col, justify="right")
        table.add_row(*(str(summary[k]) for k in ("added", "updated", "deleted", "unchanged")),
                      str(len(summary["failed"])), str(summary["chunks_written"]), f"{summary['seconds']:.1f}",
                      f"{summary['articles_per_s']:.1f}", f"{summary['chunks_per_s']:.1f}")
        out.print(table)
        for f in summary["failed"][:20]:
            out.print(escape(f"failed {f['article_id']} ({f['locale']}): {f['error']}"), style="yellow")
    if summary["listing_error"]:
        console.print(escape(f"listing failed, nothing deleted: {summary['listing_error']}"), style="red")
    if not summary["ok"]:
        raise typer.Exit(1)


def _log_options(s: Settings) -> dict:
    """uvicorn options for ``server.log_format``: json → our JSON lines (one per request) instead of uvicorn's."""
    if s.server.log_format != "json":
        return {}
    from citedesk.serving.observability.logs import configure_json_logging

    configure_json_logging()
    return {"log_config": None, "access_log": False}


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option()] = None,
    port: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Run the answer API (uvicorn)."""
    import uvicorn

    from citedesk.serving.api.app import create_app

    s = State.settings
    s = s.model_copy(update={"server": s.server.model_copy(update={"host": host or s.server.host,
                                                                   "port": port or s.server.port})})
    uvicorn.run(create_app(s), host=s.server.host, port=s.server.port, **_log_options(s))


@app.command()
def webhooks(
    answer_url: Annotated[Optional[str], typer.Option(
        help="citedesk API root (default intercom.drafts.answer_api_url)")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="CITEDESK_ANSWER_API_KEY",
                                                   help="bearer key for the answer API")] = None,
    host: Annotated[Optional[str], typer.Option()] = None,
    port: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Run only the Intercom webhook receiver, drafting notes through a remote citedesk answer API."""
    import uvicorn

    from citedesk.serving.api.webhooks_app import create_webhooks_app

    s = State.settings
    try:
        web = create_webhooks_app(s, answer_url=answer_url, api_key=api_key)
    except CitedeskError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    uvicorn.run(web, host=host or s.server.host, port=port or s.server.port, **_log_options(s))


class McpTransport(str, Enum):
    stdio = "stdio"
    http = "http"


@app.command()
def mcp(
    transport: Annotated[McpTransport, typer.Option(help="stdio, or streamable HTTP at http://HOST:PORT/mcp")] = McpTransport.stdio,
    api_key: Annotated[Optional[str], typer.Option(envvar="CITEDESK_API_KEY",
                                                   help="key with scope answer: its workspace is searched")] = None,
    host: Annotated[str, typer.Option(help="HTTP transport only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP transport only")] = 8001,
) -> None:
    """Run the MCP server: tools `answer` and `search_help_center`, bound to the key's workspace."""
    from citedesk.serving.channels.mcp.server import run

    c = _container()
    try:
        run(c, api_key, transport=transport.value, host=host, port=port)
    except CitedeskError as exc:
        _fail(exc)
    finally:
        c.index.close()


app.command("middleware", hidden=True, help="Old name of `citedesk webhooks` (kept for existing scripts).")(webhooks)


def _revision_date(updated_at: int) -> str:
    """``YYYY-MM-DD`` (UTC) of an epoch, or ``""`` when it is 0 (unknown) or out of range."""
    from datetime import datetime, timezone

    if not updated_at:
        return ""
    try:
        return datetime.fromtimestamp(updated_at, timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return ""


def _whole_sentences(quote: str, limit: int = 400) -> str:
    """``quote`` up to its last sentence end within ``limit`` characters; the first sentence whole if longer."""
    from citedesk.core.text import sentence_spans

    spans = sentence_spans(quote)
    if not spans:
        return quote.strip()
    fitting = [s for s in spans if s.end - spans[0].start <= limit]
    end = fitting[-1].end if fitting else spans[0].end
    return quote[spans[0].start:end]


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    channel: Annotated[Channel, typer.Option()] = Channel.CHAT,
    locale: Annotated[Optional[str], typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    url: Annotated[Optional[str], typer.Option(
        help="ask the citedesk server at this URL (default: the server running on this data_dir, if any; "
             "otherwise the index is opened here)")] = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Answer one question from the index (prints answer, citations, confidence)."""
    from citedesk.serving.answer.schemas import AnswerRequest

    request = AnswerRequest(question=question, channel=channel, locale=locale)
    server = _server_for(url)
    try:
        if server is not None:
            resp = asyncio.run(_remote_answer(server, request, api_key))
        else:
            c = _container()
            try:
                if c.reader is not None:  # a first use loads (or exports) it here, not inside answer.reader_timeout
                    c.reader.warm_up()
                resp = asyncio.run(c.pipeline.answer(request))
            finally:
                c.index.close()
    except CitedeskError as exc:
        _fail(exc)
    if as_json:
        out.print_json(resp.model_dump_json())
        return
    colour = "green" if resp.decision.value == "answer" else "yellow"
    out.print(f"[bold {colour}]{resp.decision.value}[/] ({resp.reason}) — confidence "
              f"{resp.confidence:.2f} ({resp.confidence_kind})")
    if resp.short_answer:
        out.print(escape(f"short answer: {resp.short_answer}"))
    if resp.answer:
        out.print(escape(resp.answer))
    for cit in resp.citations:
        date = _revision_date(cit.updated_at)
        revision = f"revision {cit.content_hash[:12]}" + (f", updated {date}" if date else "")
        out.print(escape(f"  [{cit.marker}] {cit.title} — {cit.url or cit.article_id} ({revision})"))
        out.print(escape(f"      “{_whole_sentences(cit.quote)}”"))
    if resp.handoff_summary:
        out.print(escape(f"handoff: {resp.handoff_summary}"))


async def _remote_answer(server: str, request, api_key: Optional[str]):
    from citedesk.serving.channels.intercom.remote import RemoteAnswerClient

    client = RemoteAnswerClient(server, api_key=api_key)
    try:
        return await client.answer(request)
    finally:
        await client.aclose()


eval_app = typer.Typer(help="Measure retrieval and answer quality (see README: Evaluation).", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


def _fmt(x, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _sync_docs(c, docs: Path) -> None:
    """Incremental sync of ``docs`` before an evaluation; a failed listing stops the run (exit 1)."""
    report = c.sync_engine.sync(c.folder_connector(docs))
    if report.listing_error:
        raise CitedeskError(f"sync of {docs} failed: {report.listing_error}")
    console.print(f"synced {docs}: {report.added} added, {report.updated} updated, "
                  f"{report.unchanged} unchanged, {report.deleted} deleted, {len(report.failed)} failed "
                  f"in {report.seconds:.1f}s")


@eval_app.command("retrieval")
def eval_retrieval(
    csv_path: Annotated[Path, typer.Option("--csv", help="CSV with question,gold_document columns")],
    docs: Annotated[Optional[Path], typer.Option(help="sync this folder first (incremental)")] = None,
    modes: Annotated[str, typer.Option(help="comma-separated: sparse,dense,hybrid,hybrid+rerank")] = "dense,sparse,hybrid",
    llamaindex: Annotated[bool, typer.Option("--llamaindex", help="add a plain LlamaIndex VectorStoreIndex row "
                                             "over the same chunks of --docs (or folder.path)")] = False,
    limit: Annotated[Optional[int], typer.Option(help="first N questions only")] = None,
    chunks: Annotated[int, typer.Option(help="chunks retrieved per question before reduction to articles")] = 50,
    output: Annotated[Optional[Path], typer.Option(help="write results JSON here")] = None,
    min_recall5: Annotated[Optional[float], typer.Option(help="exit 1 if hybrid recall@5 is below")] = None,
) -> None:
    """Retrieval quality of the gold document: recall@1/5/10, MRR and nDCG@10 per mode."""
    from citedesk.serving.evaluation.baseline import llamaindex_row
    from citedesk.serving.evaluation.retrieval import evaluate_retrieval, load_questions

    c = _container()
    try:
        questions = load_questions(csv_path)[:limit]
        if docs is not None:
            _sync_docs(c, docs)
        results = evaluate_retrieval(c.retriever, questions, workspace=State.settings.workspace,
                                     modes=[m.strip() for m in modes.split(",") if m.strip()], chunks=chunks)
        if llamaindex:
            results.append(llamaindex_row(c, docs or State.settings.folder.path, questions, chunks, console.print))
    except (CitedeskError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    finally:
        c.index.close()
    table = Table(title=f"retrieval eval: {len(questions)} questions ({csv_path.name})")
    for col in ("mode", "recall@1", "recall@5", "recall@10", "MRR", "nDCG@10", "p50 ms"):
        table.add_column(col, justify="right")
    for r in results:
        if not r.get("available", True):
            table.add_row(r["mode"], *(["n/a"] * 6))
            continue
        table.add_row(r["mode"], f"{r['recall@1']:.3f}", f"{r['recall@5']:.3f}", f"{r['recall@10']:.3f}",
                      f"{r['mrr']:.3f}", f"{r['ndcg@10']:.3f}", f"{r['latency_p50_ms']:.1f}")
    out.print(table)
    for r in results:
        if r.get("note"):
            out.print(escape(f"{r['mode']}: {r['note']}"))
    if output:
        output.write_text(json.dumps(results, indent=2))
    if min_recall5 is not None:
        hybrid = next((r for r in results if r["mode"] == "hybrid"), None)
        if hybrid is None or hybrid["recall@5"] < min_recall5:
            console.print(f"[red]hybrid recall@5 below floor {min_recall5}[/red]")
            raise typer.Exit(1)


@eval_app.command("answers")
def eval_answers(
    csv_path: Annotated[Optional[Path], typer.Option("--csv", help="questions with reference answers (question, "
                                                     "answer, gold_document): correctness and leave-gold-out")] = None,
    mtrag: Annotated[Optional[Path], typer.Option(help="MT-RAG reference.jsonl: escalation and citation support")] = None,
    docs: Annotated[Optional[Path], typer.Option(help="--csv: sync this folder first (incremental)")] = None,
    generators: Annotated[str, typer.Option(help="--csv: comma-separated extractive,openai")] = "extractive",
    labels: Annotated[Path, typer.Option(help="--csv: hand labels CSV")] = Path("data/eval/answer-labels.csv"),
    gold_out_answerable: Annotated[Path, typer.Option(help="--csv: questions another page answers without the "
                                                      "gold article")] = Path("data/eval/gold-out-answerable.csv"),
    settings_: Annotated[str, typer.Option("--settings", help="--csv: normal,gold_out")] = "normal,gold_out",
    pending: Annotated[Optional[Path], typer.Option(help="--csv: write answers needing a hand label here")] = None,
    llm_judge: Annotated[bool, typer.Option("--llm-judge", help="--csv: label unlabeled answers with the LLM")] = False,
    limit: Annotated[int, typer.Option(help="conversations sampled (seeded)")] = 100,
    pool: Annotated[int, typer.Option(help="distractor passages of other conversations per collection")] = 200,
    channel: Annotated[Channel, typer.Option()] = Channel.CHAT,
    judge: Annotated[JudgeKind, typer.Option(help="citation-support judge; auto = llm when llm.base_url is set")] = JudgeKind.AUTO,
    seed: Annotated[int, typer.Option()] = 13,
    output: Annotated[Optional[Path], typer.Option(help="results JSON (default <data_dir>/eval-answers.json)")] = None,
    index_dir: Annotated[Optional[Path], typer.Option(help="keep the MT-RAG index in this folder and reuse it on "
                                                      "the next run (incremental sync); default: a temporary one")] = None,
) -> None:
    """Answer correctness and escalation on questions with references (--csv), or escalation quality and
    citation support on MT-RAG conversations (--mtrag, separate local index)."""
    if (csv_path is None) == (mtrag is None):
        console.print("[red]error:[/red] give exactly one of --csv and --mtrag")
        raise typer.Exit(2)
    if csv_path is not None:
        _eval_qa(csv_path, docs, [g.strip() for g in generators.split(",") if g.strip()], labels,
                 gold_out_answerable, [x.strip() for x in settings_.split(",") if x.strip()], pending, llm_judge,
                 output)
        return
    from citedesk.serving.evaluation.answers import run_answer_eval

    s = State.settings
    try:
        result, generator, threshold = asyncio.run(run_answer_eval(
            s, mtrag, limit=limit, pool=pool, channel=channel, judge=judge, seed=seed, index_dir=index_dir,
            progress=console.print))
    except (CitedeskError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    sm = result.summary
    table = Table(title=f"answer eval: {sm['n']} MT-RAG conversations, generator {generator}, "
                        f"channel {channel.value} (threshold {threshold:.2f})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    d = sm["decision"]
    for name, value in [
        ("answerable / unanswerable", f"{sm['answerable']} / {sm['unanswerable']}"),
        ("AUROC confidence vs answerable", _fmt(sm["auroc"])),
        ("answered", str(d["answered"])),
        ("precision of answered", _fmt(d["precision"])),
        ("answerable answered (coverage)", _fmt(d["coverage"])),
        ("unanswerable escalated", _fmt(d["unanswerable_escalated"])),
        ("gold passage in hits", _fmt(sm["gold_in_hits"])),
        ("cited sentences", str(sm["cited_sentences"])),
        (f"citation support rate ({sm['judge']})", _fmt(sm["citation_support_rate"])),
        ("p50 latency ms", _fmt(sm["latency_p50_ms"], 1)),
    ]:
        table.add_row(name, value)
    out.print(table)
    out.print(escape("escalated share by label: " + ", ".join(f"{k} {v:.2f}" for k, v in sm["escalated_by_label"].items())))
    out.print(escape("reasons: " + ", ".join(f"{k} {v}" for k, v in sm["reasons"].items())))
    path = output or s.data_dir / "eval-answers.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.to_json())
    console.print(f"wrote {path}")


def _eval_qa(csv_path: Path, docs: Path | None, generators: list[str], labels: Path, gold_out: Path,
             settings: list[str], pending: Path | None, llm_judge: bool, output: Path | None) -> None:
    """``citedesk eval answers --csv``: print the correctness and escalation tables (work in evaluation/qa.py)."""
    from citedesk.serving.evaluation.qa import Setting, run_qa_eval

    c = _container()
    try:
        if docs is not None:
            _sync_docs(c, docs)
        results, hand = asyncio.run(run_qa_eval(
            c, csv_path, generators=generators, labels_path=labels, gold_out_path=gold_out,
            settings=[Setting(x) for x in settings], use_llm_judge=llm_judge, progress=console.print))
    except (CitedeskError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    finally:
        c.index.close()
    wide = out if out.is_terminal else Console(width=160)  # piped to a file: eleven columns, unabridged
    for res in results:
        sm = res.summary
        table = Table(title=f"answer correctness: {csv_path.name}, generator {sm['generator']} "
                            f"(AUROC confidence vs answerable {_fmt(sm['auroc'])})")
        for col in ("setting", "questions", "answerable", "answered", "escalated", "resolution rate",
                    "wrong-answer rate", "token F1 (answered)", "short-answer F1", "ref. recall (answered)",
                    "unlabeled"):
            table.add_column(col, justify="right")
        for name, b in [*sm["by_setting"].items(), ("all", sm["overall"])]:
            table.add_row(name, str(b["n"]), str(b["answerable"]), str(b["answered"]), str(b["escalated"]),
                          _fmt(b["resolution_rate"]), _fmt(b["wrong_answer_rate"]), _fmt(b["mean_token_f1_answered"]),
                          _fmt(b["mean_short_answer_f1_answered"]), _fmt(b["mean_reference_recall_answered"]),
                          str(b["unlabeled_answers"]))
        wide.print(table)
        for name, b in sm["by_setting"].items():
            if b.get("yes_no_answered"):
                out.print(f"{name}: yes/no short answers on {b['yes_no_verdicts']} of {b['yes_no_answered']} answered "
                          f"yes/no questions, {b['yes_no_flipped']} the opposite of the reference's")
        curve = Table(title="risk–coverage (if questions with confidence ≥ threshold were answered)")
        for col in ("threshold", "answered", "precision", "coverage"):
            curve.add_column(col, justify="right")
        for p in sm["risk_coverage"][::2]:
            curve.add_row(f"{p['threshold']:.2f}", str(p["answered"]), _fmt(p["precision"]), _fmt(p["coverage"]))
        out.print(curve)
        changed = [r["question"] for r in res.rows if r["label_status"] == "changed"]
        if changed:
            out.print(escape(f"{len(changed)} hand-labelled answers changed since labelled (relabel them): "
                             + "; ".join(changed[:5])))
    if pending is not None:
        n = hand.write_pending(pending, [r for res in results for r in res.rows])
        console.print(f"wrote {n} answers needing a label to {pending}")
    path = output or State.settings.data_dir / "eval-answers-qa.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"summary": r.summary, "rows": r.rows} for r in results], indent=2))
    console.print(f"wrote {path}")


@app.command()
def calibrate(
    csv_path: Annotated[Path, typer.Option("--csv", help="CSV with a question column (optional answerable and "
                                                         "gold_document columns)")],
    gold_out: Annotated[bool, typer.Option("--gold-out", help="also ask each question with its gold_document "
                                                              "excluded (leave-gold-out: usually unanswerable)")] = False,
    gold_out_answerable: Annotated[Path, typer.Option(help="--gold-out: questions another page still answers")] = Path(
        "data/eval/gold-out-answerable.csv"),
    negatives: Annotated[Optional[Path], typer.Option(help="MT-RAG reference.jsonl: its questions as unanswerable")] = None,
    n_negatives: Annotated[int, typer.Option(help="MT-RAG questions used as negatives")] = 150,
    target_precision: Annotated[float, typer.Option(help="chat: share of answered that must be answerable")] = 0.9,
    voice_target_precision: Annotated[float, typer.Option(help="voice: usually stricter")] = 0.95,
    folds: Annotated[int, typer.Option(help="cross-validation folds (by question) for the held-out figures")] = 5,
    docs: Annotated[Optional[Path], typer.Option(help="sync this folder first (incremental)")] = None,
    write: Annotated[Optional[Path], typer.Option(help="TOML settings file to update (default: the --config file)")] = None,
    seed: Annotated[int, typer.Option()] = 13,
) -> None:
    """Pick the escalation threshold per channel for a target precision and write it to the config.

    The table shows the pick on all questions and, held out, what picks made on the other folds give.
    """
    from citedesk.serving.evaluation.calibration import (auroc, calibration_questions, confidences,
                                                         cross_validated_pick, pick_threshold, write_thresholds)
    from citedesk.serving.evaluation.qa import GoldOut

    c = _container()
    try:
        answerable_anyway = GoldOut.load(gold_out_answerable).answerable if gold_out else frozenset()
        cases = calibration_questions(csv_path, negatives, n_negatives, seed, gold_out=gold_out,
                                      gold_out_answerable=answerable_anyway)
        if docs is not None:
            _sync_docs(c, docs)
        conf = confidences(c, cases, workspace=State.settings.workspace, top_k=State.settings.retrieval.top_k)
        labels = [x.answerable for x in cases]
        targets = {"chat": target_precision, "voice": voice_target_precision}
        picks = {ch: pick_threshold(conf, labels, t) for ch, t in targets.items()}
        held = {ch: cross_validated_pick(conf, cases, t, folds=folds, seed=seed) for ch, t in targets.items()}
    except (CitedeskError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    finally:
        c.index.close()
    table = Table(title=f"threshold calibration: {sum(labels)} answerable, {len(labels) - sum(labels)} unanswerable "
                        f"questions, AUROC {_fmt(auroc(conf, labels))}")
    for col in ("channel", "target precision", "threshold", "precision", "answerable answered",
                "unanswerable escalated", "reached", "held-out precision", "held-out answerable answered"):
        table.add_column(col, justify="right")
    for ch, p in picks.items():
        h = held[ch]
        table.add_row(ch, f"{p['target_precision']:.2f}", f"{p['threshold']:.4f}", _fmt(p["precision"]),
                      _fmt(p["coverage"]), _fmt(p["unanswerable_escalated"]), "yes" if p["reached"] else "no",
                      _fmt(h["precision"]), _fmt(h["coverage"]))
    out.print(table)
    out.print(f"held out: {held['chat']['folds']}-fold cross-validation by question (each fold scored by the "
              "threshold picked on the others)")
    env_config = os.environ.get("CITEDESK_CONFIG")
    target = write or State.config_path or (Path(env_config) if env_config else None)
    if target is None:
        console.print("no --write file (nor --config): thresholds not saved")
        return
    write_thresholds(target, {ch: p["threshold"] for ch, p in picks.items()})
    console.print(escape(f"wrote [answer] threshold_chat / threshold_voice to {target}"))


keys_app = typer.Typer(help="Scoped API keys (answer, sync, audit-read, audit-write, admin), enforced when auth.enabled.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _key_store():
    from citedesk.serving.api.auth import KeyStore

    return KeyStore(_container().db)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who or what uses the key, e.g. 'support-managers'")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help="repeatable or comma-separated: answer, sync, "
                                                                     "audit-read, audit-write, admin")],
    workspace: Annotated[Optional[str], typer.Option(help="tenant the key belongs to (default: settings.workspace)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a key and print it once (only its salted hash is stored)."""
    scopes = [s for item in scope for s in item.split(",")]
    try:
        info, token = _key_store().create(name, scopes, workspace=workspace or State.settings.workspace)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    if as_json:
        out.print_json(json.dumps({"key": token, "id": info.key_id, "name": info.name, "workspace": info.workspace,
                                   "scopes": list(info.scopes)}))
        return
    console.print(f"created key [bold]{info.key_id}[/bold] '{escape(info.name)}' for workspace "
                  f"'{escape(info.workspace)}' with scopes {', '.join(info.scopes)}; it is shown only now:")
    out.print(token, soft_wrap=True, markup=False, highlight=False)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keys (never their secrets), oldest first."""
    from citedesk.serving.audit.filters import iso

    keys = _key_store().list()
    if as_json:
        out.print_json(json.dumps([{"id": k.key_id, "name": k.name, "workspace": k.workspace, "scopes": list(k.scopes),
                                    "created_at": iso(k.created_at), "last_used_at": iso(k.last_used_at),
                                    "revoked_at": iso(k.revoked_at)} for k in keys]))
        return
    table = Table(title="API keys")
    for col in ("id", "name", "workspace", "scopes", "created", "last used", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k.key_id, escape(k.name), escape(k.workspace), " ".join(k.scopes), iso(k.created_at),
                      iso(k.last_used_at) or "-", iso(k.revoked_at) or "-")
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id (the part after cdk_)")]) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    if not _key_store().revoke(key_id):
        console.print(f"[red]error:[/red] no active key {escape(key_id)}")
        raise typer.Exit(1)
    console.print(f"revoked key {escape(key_id)}")


guidance_app = typer.Typer(help="Workspace guidance: generator instructions and escalation rules (versioned).",
                            no_args_is_help=True)
app.add_typer(guidance_app, name="guidance")


def _guidance_store():
    from citedesk.serving.answer.guidance_store import GuidanceStore

    return GuidanceStore(_container().db, cache_seconds=0)


def _print_guidance(g, as_json: bool) -> None:
    if as_json:
        out.print_json(g.model_dump_json())
        return
    out.print(f"workspace {escape(g.workspace)} · version {g.version} · {g.created_at} by {escape(g.created_by)}")
    for line in g.instructions:
        out.print(f"  instruction: {escape(line)}")
    for r in g.escalation_rules:
        out.print(f"  escalate: {escape(r.name)} {escape(r.model_dump_json(exclude={'name'}, exclude_defaults=True))}")


@guidance_app.command("set")
def guidance_set(
    file: Annotated[Path, typer.Option("--file", "-f", exists=True, dir_okay=False,
                                       help="JSON or TOML with `instructions` (list of str) and `escalation_rules` "
                                            "(list of {name, keywords, asks_for_human, tags, attributes})")],
    workspace: Annotated[Optional[str], typer.Option(help="default: settings.workspace")] = None,
    by: Annotated[str, typer.Option(help="who publishes it (kept with the version)")] = "cli",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Publish the file's guidance as the workspace's next version."""
    import tomllib

    from pydantic import ValidationError

    from citedesk.serving.answer.guidance import Guidance

    try:
        text = file.read_text(encoding="utf-8")
        data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
        guidance = Guidance.model_validate(data)
    except (ValueError, ValidationError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        console.print(f"[red]invalid guidance file:[/red] {escape(str(exc))}")
        raise typer.Exit(2)
    g = _guidance_store().publish(workspace or State.settings.workspace, guidance, by=f"cli:{by}")
    if not as_json:
        console.print(f"published guidance version {g.version}")
    _print_guidance(g, as_json)


@guidance_app.command("show")
def guidance_show(
    workspace: Annotated[Optional[str], typer.Option(help="default: settings.workspace")] = None,
    version: Annotated[Optional[int], typer.Option(min=1, max=2**31 - 1,
                                                   help="a stored version (default: the one in force)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the guidance in force (or a stored version)."""
    ws = workspace or State.settings.workspace
    g = _guidance_store().get(ws, version)
    if g is None:
        console.print(f"[red]error:[/red] workspace {escape(ws)} has no guidance"
                      + (f" version {version}" if version else ""))
        raise typer.Exit(1)
    _print_guidance(g, as_json)


@guidance_app.command("history")
def guidance_history(
    workspace: Annotated[Optional[str], typer.Option(help="default: settings.workspace")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every stored version, newest first."""
    versions = _guidance_store().history(workspace or State.settings.workspace)
    if as_json:
        out.print_json(json.dumps([v.model_dump(mode="json") for v in versions]))
        return
    table = Table(title="guidance versions")
    for col in ("version", "created", "by", "instructions", "escalation rules"):
        table.add_column(col)
    for v in versions:
        table.add_row(str(v.version), v.created_at, escape(v.created_by), str(len(v.instructions)),
                      ", ".join(escape(r.name) for r in v.escalation_rules) or "-")
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
