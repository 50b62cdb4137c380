"""The ``citedesk`` command line (typer): sync, serve, ask, eval."""

from __future__ import annotations

import asyncio
import json
import logging
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from config.settings import Settings, load_settings
from core.errors import CitedeskError
from core.types import Channel

app = typer.Typer(help="citedesk: grounded, cited answers from your help center.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
console = Console(stderr=True)
out = Console()


class Source(str, Enum):
    folder = "folder"
    intercom = "intercom"


class State:
    settings: Settings | None = None


def _container():
    from serving.container import Container

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
    except Exception as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2)


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


@app.command()
def sync(
    source: Annotated[Source, typer.Option(help="where articles come from")] = Source.folder,
    path: Annotated[Optional[Path], typer.Option(help="folder of articles (source=folder)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Sync articles into the index: new and changed ones are embedded, removed ones deleted."""
    c = _container()
    try:
        connector = c.folder_connector(path) if source == Source.folder else c.intercom_connector()
        engine = c.sync_engine
        with Progress(SpinnerColumn(), TextColumn("[bold]sync[/bold] {task.description}"), BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                      disable=as_json) as progress:
            task = progress.add_task(f"{connector.name} → {c.index.location}", total=None)

            def hook(event: str, n: int) -> None:
                if event == "total":
                    progress.update(task, total=n)
                else:
                    progress.advance(task, n)

            report = engine.sync(connector, progress=hook)
    except CitedeskError as exc:
        _fail(exc)
    finally:
        c.index.close()
    summary = report.summary()
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        table = Table(title=f"sync report: {report.source} / {report.workspace}")
        for col in ("added", "updated", "deleted", "unchanged", "failed", "chunks", "seconds", "articles/s",
                    "chunks/s"):
            table.add_column(col, justify="right")
        table.add_row(str(report.added), str(report.updated), str(report.deleted), str(report.unchanged),
                      str(len(report.failed)), str(report.chunks_written), f"{report.seconds:.1f}",
                      f"{report.articles_per_s:.1f}", f"{report.chunks_per_s:.1f}")
        out.print(table)
        for f in report.failed[:20]:
            out.print(escape(f"failed {f.article_id} ({f.locale}): {f.error}"), style="yellow")
    if report.listing_error:
        console.print(escape(f"listing failed, nothing deleted: {report.listing_error}"), style="red")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option()] = None,
    port: Annotated[Optional[int], typer.Option()] = None,
) -> None:
    """Run the answer API (uvicorn)."""
    import uvicorn

    from serving.app import create_app

    s = State.settings
    uvicorn.run(create_app(s), host=host or s.server.host, port=port or s.server.port)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    channel: Annotated[Channel, typer.Option()] = Channel.CHAT,
    locale: Annotated[Optional[str], typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Answer one question from the index (prints answer, citations, confidence)."""
    from serving.schemas import AnswerRequest

    c = _container()
    try:
        resp = asyncio.run(c.pipeline.answer(AnswerRequest(question=question, channel=channel, locale=locale)))
    except CitedeskError as exc:
        _fail(exc)
    finally:
        c.index.close()
    if as_json:
        out.print_json(resp.model_dump_json())
        return
    colour = "green" if resp.decision.value == "answer" else "yellow"
    out.print(f"[bold {colour}]{resp.decision.value}[/] ({resp.reason}) — confidence "
              f"{resp.confidence:.2f} ({resp.confidence_kind})")
    if resp.answer:
        out.print(escape(resp.answer))
    for cit in resp.citations:
        out.print(escape(f"  [{cit.marker}] {cit.title} — {cit.url or cit.article_id} "
                         f"(revision {cit.content_hash[:12]}, updated_at {cit.updated_at})"))
        out.print(escape(f"      “{cit.quote[:300]}”"))
    if resp.handoff_summary:
        out.print(escape(f"handoff: {resp.handoff_summary}"))


@app.command("eval")
def eval_cmd(
    csv_path: Annotated[Path, typer.Option("--csv", help="CSV with question,gold_document columns")],
    docs: Annotated[Optional[Path], typer.Option(help="sync this folder first (incremental)")] = None,
    modes: Annotated[str, typer.Option(help="comma-separated: dense,sparse,hybrid")] = "dense,sparse,hybrid",
    limit: Annotated[Optional[int], typer.Option(help="first N questions only")] = None,
    output: Annotated[Optional[Path], typer.Option(help="write results JSON here")] = None,
    min_recall5: Annotated[Optional[float], typer.Option(help="exit 1 if hybrid recall@5 is below")] = None,
) -> None:
    """Retrieval quality of the gold document: recall@1/5/10 and MRR per mode."""
    from serving.evaluation import evaluate_retrieval, load_questions

    c = _container()
    try:
        if docs is not None:
            report = c.sync_engine.sync(c.folder_connector(docs))
            if report.listing_error or report.failed:
                raise CitedeskError(f"sync of {docs} failed: {report.listing_error or report.failed[:3]}")
            console.print(f"synced {docs}: {report.added} added, {report.updated} updated, "
                          f"{report.unchanged} unchanged, {report.deleted} deleted in {report.seconds:.1f}s")
        questions = load_questions(csv_path)[:limit]
        results = evaluate_retrieval(c.retriever, questions, workspace=State.settings.workspace,
                                     modes=[m.strip() for m in modes.split(",") if m.strip()])
    except (CitedeskError, OSError, ValueError) as exc:
        _fail(exc)
    finally:
        c.index.close()
    table = Table(title=f"retrieval eval: {len(questions)} questions ({csv_path.name})")
    for col in ("mode", "recall@1", "recall@5", "recall@10", "MRR", "p50 ms"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r["mode"], f"{r['recall@1']:.3f}", f"{r['recall@5']:.3f}", f"{r['recall@10']:.3f}",
                      f"{r['mrr']:.3f}", f"{r['latency_p50_ms']:.1f}")
    out.print(table)
    if output:
        output.write_text(json.dumps(results, indent=2))
    if min_recall5 is not None:
        hybrid = next((r for r in results if r["mode"] == "hybrid"), None)
        if hybrid is None or hybrid["recall@5"] < min_recall5:
            console.print(f"[red]hybrid recall@5 below floor {min_recall5}[/red]")
            raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()
