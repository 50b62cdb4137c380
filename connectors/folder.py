"""A folder of articles: ``*.md`` / ``*.markdown`` (optional YAML front matter) and ``*.html`` / ``*.htm``.

The only module that imports ``frontmatter`` (python-frontmatter). Front-matter keys used when present:
``id``, ``title``, ``url``, ``locale``, the revision date (the first of ``updated_at``, ``updated``,
``last_modified``, ``date`` that parses: epoch seconds, an ISO 8601 date or datetime; naive = UTC),
``breadcrumbs`` (list), ``draft`` / ``published`` / ``state``. Otherwise: id = path relative to the folder
(``guide/page.md``), title = first heading (or ``<title>``) or the file stem, breadcrumbs = parent folder
names, url = ``base_url`` + relative path with ``.md`` → ``.html`` (None without ``base_url``), and
updated_at = 0, "unknown": never the file's mtime, which a checkout or copy changes while the article does
not. The sync then re-cleans such an article on every run and identifies its revision by the content hash
alone, so edits are picked up and unchanged content is not re-embedded.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Iterator
from pathlib import Path

import frontmatter

from citedesk.core.errors import ConnectorError
from citedesk.core.protocols import SourceFailure
from citedesk.core.types import Article

MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_HTML_TITLE = re.compile(r"<(?:title|h1)[^>]*>(.*?)</(?:title|h1)>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]+>")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|])")
MAX_FILE_BYTES = 20_000_000


def _plain_title(raw: str) -> str:
    text = html.unescape(_MD_ESCAPE.sub(r"\1", _TAGS.sub("", raw)))
    return re.sub(r"\s+", " ", text).strip()


DATE_KEYS = ("updated_at", "updated", "last_modified", "date")
"""Front-matter keys read for an article's revision date, in order of preference."""


def _epoch(value, fallback: int | None) -> int | None:
    if value is None or isinstance(value, bool):
        return fallback
    if isinstance(value, (int, float)):
        return int(value) if math.isfinite(value) else fallback
    if isinstance(value, dt.datetime):
        return int(value.timestamp() if value.tzinfo else value.replace(tzinfo=dt.timezone.utc).timestamp())
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc).timestamp())
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return fallback
    return _epoch(parsed, fallback)


def _front_matter_date(meta: dict) -> int:
    """Epoch seconds of the first date key of ``meta`` that parses; 0 (unknown) when none does."""
    for key in DATE_KEYS:
        when = _epoch(meta.get(key), None)
        if when is not None:
            return when
    return 0


class FolderConnector:
    """Articles from files under ``root`` (recursive, sorted by path).

    Args:
        root: folder to read.
        workspace: tenant id stored on every article.
        base_url: public URL prefix for articles (optional).
        locale: default locale when the front matter has none.
    """

    name = "folder"

    def __init__(self, root: Path | str, *, workspace: str = "default", base_url: str | None = None,
                 locale: str = "en") -> None:
        self.root = Path(root)
        self.workspace = workspace
        self.base_url = base_url.rstrip("/") + "/" if base_url else None
        self.locale = locale

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            raise ConnectorError(f"article folder not found: {self.root}")
        suffixes = MARKDOWN_SUFFIXES | HTML_SUFFIXES
        return sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)

    @property
    def total_hint(self) -> int:
        """Number of candidate files (for a progress bar)."""
        return len(self._files())

    def list_articles(self) -> Iterator[Article | SourceFailure]:
        """Yield one Article per published file (see module docstring). Raises ConnectorError if root is missing."""
        for path in self._files():
            rel = path.relative_to(self.root).as_posix()
            try:
                article = self._read(path, rel)
            except Exception as exc:  # one bad file never aborts the listing
                yield SourceFailure(article_id=rel, error=f"{type(exc).__name__}: {exc}")
                continue
            if article is not None:
                yield article

    def fetch_article(self, article_id: str) -> list[Article]:
        """One article by its id: a relative path, or a front-matter ``id``; ``[]`` when missing or a draft."""
        path = (self.root / article_id).resolve()
        suffixes = MARKDOWN_SUFFIXES | HTML_SUFFIXES
        if self.root.resolve() in path.parents and path.is_file() and path.suffix.lower() in suffixes:
            article = self._read(path, article_id)
            if article is not None and article.article_id == article_id:
                return [article]
        return [a for a in self.list_articles() if isinstance(a, Article) and a.article_id == article_id]

    def _read(self, path: Path, rel: str) -> Article | None:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"file is {size} bytes, over the {MAX_FILE_BYTES} limit")
        raw = path.read_bytes().decode("utf-8", errors="replace").removeprefix("\ufeff")
        is_md = path.suffix.lower() in MARKDOWN_SUFFIXES
        meta: dict = {}
        body = raw
        if raw.startswith("---"):
            post = frontmatter.loads(raw)
            meta, body = dict(post.metadata), post.content
        state = str(meta.get("state", "published")).lower()
        if meta.get("draft") is True or meta.get("published") is False or state in {"draft", "unpublished"}:
            return None
        title = meta.get("title")
        if not title:
            m = (_MD_HEADING if is_md else _HTML_TITLE).search(body)
            title = _plain_title(m.group(1)) if m else path.stem.replace("-", " ").replace("_", " ")
        url = meta.get("url")
        if url is None and self.base_url:
            url = self.base_url + (rel[: -len(path.suffix)] + ".html" if is_md else rel)
        crumbs = meta.get("breadcrumbs")
        if not isinstance(crumbs, list):
            crumbs = list(Path(rel).parent.parts)
        return Article(
            source=self.name, workspace=self.workspace, article_id=str(meta.get("id", rel)),
            locale=str(meta.get("locale", self.locale)), title=str(title), body=body,
            body_format="markdown" if is_md else "html", url=url, breadcrumbs=[str(c) for c in crumbs],
            updated_at=_front_matter_date(meta),
        )
