"""FolderConnector on real files written into a temporary folder (no model; the sync tests at the end use the
hash embedder and a local Qdrant folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from citedesk.config.settings import Settings
from citedesk.connectors.folder import MAX_FILE_BYTES, FolderConnector
from citedesk.core.errors import ConnectorError
from citedesk.core.protocols import Connector, SourceFailure
from citedesk.core.types import Article
from citedesk.serving.container import Container

REPO = Path(__file__).resolve().parents[1]
AWS_PAGE = REPO / "data" / "aws-docs" / "amazon-dynamodb-developer-guide" / "CapacityUnitCalculations.md"

FRONT_MATTER_MD = """---
id: kb-42
title: Resetting your password
url: https://help.example.com/kb/42
locale: fr
updated_at: 2024-01-02T03:04:05Z
breadcrumbs:
  - Account
  - Security
---
# A heading that is not the title

Go to Settings, then Security, then click Reset password.
"""


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def listing(connector: FolderConnector) -> tuple[dict[str, Article], dict[str, SourceFailure]]:
    articles: dict[str, Article] = {}
    failures: dict[str, SourceFailure] = {}
    for item in connector.list_articles():
        if isinstance(item, SourceFailure):
            failures[item.article_id] = item
        else:
            assert isinstance(item, Article)
            articles[item.article_id] = item
    return articles, failures


def only_article(root: Path, **kw) -> Article:
    articles, failures = listing(FolderConnector(root, **kw))
    assert not failures, failures
    assert len(articles) == 1, list(articles)
    return next(iter(articles.values()))


# -- protocol ------------------------------------------------------------------------------------

def test_satisfies_connector_protocol(tmp_path) -> None:
    c = FolderConnector(tmp_path, workspace="acme")
    assert isinstance(c, Connector)
    assert c.name == "folder" and c.workspace == "acme"


# -- markdown with front matter ------------------------------------------------------------------

def test_front_matter_fields_are_used(tmp_path) -> None:
    write(tmp_path, "guide/reset.md", FRONT_MATTER_MD)
    a = only_article(tmp_path, workspace="acme", base_url="https://ignored.example.com")
    assert a.source == "folder" and a.workspace == "acme"
    assert a.article_id == "kb-42"
    assert a.title == "Resetting your password"
    assert a.url == "https://help.example.com/kb/42"  # front matter wins over base_url
    assert a.locale == "fr"
    assert a.breadcrumbs == ["Account", "Security"]
    assert a.updated_at == 1704164645  # 2024-01-02T03:04:05Z
    assert a.body_format == "markdown"
    assert "Reset password" in a.body
    assert "breadcrumbs:" not in a.body and "kb-42" not in a.body  # front matter is not body text
    assert a.doc_key == "acme/folder/kb-42/fr"


@pytest.mark.parametrize("value, expected", [
    ("1700000000", 1700000000),                      # epoch seconds
    ("'2024-01-02T03:04:05+02:00'", 1704157445),      # quoted ISO 8601 with offset
    ("2024-01-02T03:04:05Z", 1704164645),            # YAML timestamp
    ("2024-01-02", 1704153600),                      # YAML date → midnight UTC
])
def test_updated_at_epoch_and_iso(tmp_path, value, expected) -> None:
    write(tmp_path, "a.md", f"---\ntitle: T\nupdated_at: {value}\n---\nBody text.\n")
    assert only_article(tmp_path).updated_at == expected


@pytest.mark.parametrize("key", ["updated_at", "updated", "last_modified", "date"])
@pytest.mark.parametrize("value, expected", [
    ("1700000000", 1700000000),                      # epoch seconds
    ("'2024-01-02T03:04:05+02:00'", 1704157445),      # quoted ISO 8601 datetime with offset
    ("'2024-01-02T03:04:05'", 1704164645),            # quoted naive ISO datetime → UTC
    ("'2024-01-02'", 1704153600),                     # quoted ISO date → midnight UTC
    ("2024-01-02T03:04:05Z", 1704164645),            # YAML timestamp
    ("2024-01-02", 1704153600),                      # YAML date → midnight UTC
])
def test_every_date_key_and_format_gives_that_epoch(tmp_path, key, value, expected) -> None:
    path = write(tmp_path, "a.md", f"---\ntitle: T\n{key}: {value}\n---\nBody text.\n")
    os.utime(path, (1_600_000_000, 1_600_000_000))  # never the mtime
    assert only_article(tmp_path).updated_at == expected


def test_date_keys_in_order_of_preference(tmp_path) -> None:
    write(tmp_path, "a.md", "---\ntitle: T\ndate: 2020-01-01\nlast_modified: 2021-01-01\nupdated: 2022-01-01\n"
                            "updated_at: 2023-01-01\n---\nBody.\n")
    write(tmp_path, "b.md", "---\ntitle: T\ndate: 2020-01-01\nlast_modified: 2021-01-01\n---\nBody.\n")
    articles, _ = listing(FolderConnector(tmp_path))
    assert articles["a.md"].updated_at == 1672531200  # updated_at: 2023-01-01
    assert articles["b.md"].updated_at == 1609459200  # last_modified: 2021-01-01


def test_unparseable_date_falls_through_to_the_next_key(tmp_path) -> None:
    write(tmp_path, "a.md", "---\ntitle: T\nupdated_at: next tuesday\ndate: 2024-01-02\n---\nBody text.\n")
    assert only_article(tmp_path).updated_at == 1704153600


@pytest.mark.parametrize("front", [
    "title: T\nupdated_at: next tuesday\n",   # unparseable
    "title: T\nupdated: true\n",              # a boolean is not a date
    "title: T\nupdated_at: .nan\n",           # neither is NaN (int() of it would raise)
    "title: T\nupdated_at:\n",                # empty
    "title: T\n",                             # no date key
])
def test_no_usable_date_gives_0_not_the_mtime(tmp_path, front) -> None:
    path = write(tmp_path, "a.md", f"---\n{front}---\nBody text.\n")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    assert only_article(tmp_path).updated_at == 0


def test_file_without_date_gives_0_whatever_its_mtime(tmp_path) -> None:
    md = write(tmp_path, "a.md", "# A\n\nBody text.\n")
    page = write(tmp_path, "b.html", "<html><head><title>B</title></head><body><p>x</p></body></html>")
    for mtime in (1_500_000_000, 1_700_000_000):  # e.g. a fresh checkout or copy
        os.utime(md, (mtime, mtime))
        os.utime(page, (mtime, mtime))
        articles, _ = listing(FolderConnector(tmp_path))
        assert {k: a.updated_at for k, a in articles.items()} == {"a.md": 0, "b.html": 0}


def test_numeric_front_matter_id_becomes_string(tmp_path) -> None:
    write(tmp_path, "a.md", "---\nid: 123\ntitle: T\n---\nBody.\n")
    assert only_article(tmp_path).article_id == "123"


def test_default_locale_used_when_front_matter_has_none(tmp_path) -> None:
    write(tmp_path, "a.md", "---\ntitle: T\n---\nBody.\n")
    assert only_article(tmp_path, locale="de").locale == "de"


def test_invalid_yaml_front_matter_is_a_failure_and_listing_continues(tmp_path) -> None:
    write(tmp_path, "a-broken.md", "---\ntitle: [unclosed\nid: : :\n---\nBody.\n")
    write(tmp_path, "b-good.md", "# Good\n\nFine.\n")
    articles, failures = listing(FolderConnector(tmp_path))
    assert list(articles) == ["b-good.md"]
    assert list(failures) == ["a-broken.md"] and failures["a-broken.md"].error


# -- markdown without front matter ---------------------------------------------------------------

def test_markdown_defaults_from_path_and_heading(tmp_path) -> None:
    path = write(tmp_path, "billing/invoices/download-invoice.md",
                 "Intro line.\n\n## Download an <code>invoice</code>\\! ##\n\nOpen Billing and click Download.\n")
    os.utime(path, (1_650_000_000, 1_650_000_000))
    a = only_article(tmp_path)
    assert a.article_id == "billing/invoices/download-invoice.md"
    assert a.title == "Download an invoice!"  # first heading; tags, escapes, closing #s removed
    assert a.breadcrumbs == ["billing", "invoices"]
    assert a.url is None  # no base_url
    assert a.locale == "en"
    assert a.updated_at == 0  # unknown: never the file mtime
    assert a.body_format == "markdown"


def test_title_falls_back_to_file_stem(tmp_path) -> None:
    write(tmp_path, "how_to-reset_password.md", "No heading here, just text.\n")
    assert only_article(tmp_path).title == "how to reset password"


def test_url_from_base_url_md_becomes_html(tmp_path) -> None:
    write(tmp_path, "guide/page.md", "# Page\n\nText.\n")
    write(tmp_path, "guide/other.markdown", "# Other\n\nText.\n")
    write(tmp_path, "top.html", "<html><head><title>Top</title></head><body><p>x</p></body></html>")
    articles, _ = listing(FolderConnector(tmp_path, base_url="https://help.example.com/docs/"))
    assert articles["guide/page.md"].url == "https://help.example.com/docs/guide/page.html"
    assert articles["guide/other.markdown"].url == "https://help.example.com/docs/guide/other.html"
    assert articles["top.html"].url == "https://help.example.com/docs/top.html"
    # the same without a trailing slash on base_url
    articles, _ = listing(FolderConnector(tmp_path, base_url="https://help.example.com/docs"))
    assert articles["guide/page.md"].url == "https://help.example.com/docs/guide/page.html"


def test_real_aws_page(tmp_path) -> None:
    dest = tmp_path / "amazon-dynamodb-developer-guide" / AWS_PAGE.name
    dest.parent.mkdir()
    shutil.copyfile(AWS_PAGE, dest)
    a = only_article(tmp_path)
    assert a.article_id == "amazon-dynamodb-developer-guide/CapacityUnitCalculations.md"
    assert a.title == "DynamoDB Item Sizes and Formats"  # <a name=...> anchor stripped
    assert a.breadcrumbs == ["amazon-dynamodb-developer-guide"]
    assert "null attribute" in a.body


# -- HTML ----------------------------------------------------------------------------------------

def test_html_title_from_title_tag(tmp_path) -> None:
    write(tmp_path, "faq/refunds.html",
          "<html><head><title>Refund <b>policy</b></title></head><body><h1>Other</h1><p>30 days.</p></body></html>")
    a = only_article(tmp_path)
    assert a.title == "Refund policy"
    assert a.body_format == "html"
    assert a.article_id == "faq/refunds.html" and a.breadcrumbs == ["faq"]
    assert "30 days" in a.body


def test_html_title_from_h1(tmp_path) -> None:
    write(tmp_path, "shipping.htm", "<body>\n<h1 class='t'>\n  Shipping   times\n</h1><p>Two days.</p></body>")
    a = only_article(tmp_path)
    assert a.title == "Shipping times"
    assert a.body_format == "html"


def test_html_title_entities_are_unescaped(tmp_path) -> None:
    write(tmp_path, "billing.html", "<html><head><title>Billing &amp; Invoices</title></head><body>x</body></html>")
    assert only_article(tmp_path).title == "Billing & Invoices"


# -- drafts / unpublished ------------------------------------------------------------------------

@pytest.mark.parametrize("meta", ["draft: true", "state: draft", "state: Unpublished", "published: false"])
def test_drafts_are_skipped(tmp_path, meta) -> None:
    write(tmp_path, "a-draft.md", f"---\ntitle: Secret\n{meta}\n---\nNot yet.\n")
    write(tmp_path, "b-live.md", "---\ntitle: Live\n---\nPublished.\n")
    articles, failures = listing(FolderConnector(tmp_path))
    assert list(articles) == ["b-live.md"] and not failures
    assert FolderConnector(tmp_path).fetch_article("a-draft.md") == []


@pytest.mark.parametrize("meta", ["draft: false", "state: published", "published: true"])
def test_explicitly_published_is_listed(tmp_path, meta) -> None:
    write(tmp_path, "a.md", f"---\ntitle: Live\n{meta}\n---\nPublished.\n")
    assert only_article(tmp_path).title == "Live"


def test_front_matter_after_utf8_bom_is_honoured(tmp_path) -> None:
    write(tmp_path, "draft.md", "\ufeff---\ntitle: Secret\ndraft: true\n---\nNot yet.\n".encode("utf-8"))
    articles, failures = listing(FolderConnector(tmp_path))
    assert articles == {} and failures == {}


# -- bad files -----------------------------------------------------------------------------------

def test_invalid_utf8_does_not_abort_listing(tmp_path) -> None:
    junk = bytes(range(256)) * 4 + b"\xff\xfe\x00\xc3\x28\xa0\xa1" + os.urandom(512)
    write(tmp_path, "a-junk.md", junk)
    write(tmp_path, "b-junk.html", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    write(tmp_path, "c-good.md", "# Good\n\nStill listed after the junk.\n")
    articles, failures = listing(FolderConnector(tmp_path))
    assert "c-good.md" in articles
    assert set(articles) | set(failures) == {"a-junk.md", "b-junk.html", "c-good.md"}
    for a in articles.values():
        a.body.encode("utf-8")  # whatever came through is valid text


def test_file_over_size_limit_is_a_failure(tmp_path) -> None:
    big = tmp_path / "huge.md"
    with big.open("wb") as fh:  # sparse: no disk used, never read (size is checked first)
        fh.truncate(MAX_FILE_BYTES + 1)
    write(tmp_path, "small.md", "# Small\n\nText.\n")
    articles, failures = listing(FolderConnector(tmp_path))
    assert list(articles) == ["small.md"]
    assert list(failures) == ["huge.md"]
    assert str(MAX_FILE_BYTES) in failures["huge.md"].error


def test_non_article_files_are_ignored(tmp_path) -> None:
    write(tmp_path, "LICENSE", "Apache License 2.0\n")
    write(tmp_path, "notes.txt", "# not an article\n")
    write(tmp_path, "data.json", '{"title": "no"}')
    write(tmp_path, "img/logo.png", b"\x89PNG\r\n")
    write(tmp_path, "guide.md", "# Guide\n\nText.\n")
    write(tmp_path, "PAGE.HTML", "<title>Upper</title>")
    (tmp_path / "folder.md").mkdir()  # a directory with an article suffix is not a file
    c = FolderConnector(tmp_path)
    articles, failures = listing(c)
    assert sorted(articles) == ["PAGE.HTML", "guide.md"] and not failures
    assert c.total_hint == 2


def test_listing_is_sorted_by_path(tmp_path) -> None:
    for rel in ["z.md", "a/b.md", "m.html", "a/a.md"]:
        write(tmp_path, rel, "# T\n\nx\n")
    ids = [a.article_id for a in FolderConnector(tmp_path).list_articles()]
    assert ids == ["a/a.md", "a/b.md", "m.html", "z.md"]


def test_missing_root_raises_connector_error(tmp_path) -> None:
    c = FolderConnector(tmp_path / "nope")
    with pytest.raises(ConnectorError, match="not found"):
        list(c.list_articles())
    with pytest.raises(ConnectorError):
        _ = c.total_hint


def test_root_that_is_a_file_raises_connector_error(tmp_path) -> None:
    f = write(tmp_path, "a.md", "# A\n")
    with pytest.raises(ConnectorError):
        list(FolderConnector(f).list_articles())


# -- fetch_article -------------------------------------------------------------------------------

def test_fetch_article_by_relative_path(tmp_path) -> None:
    write(tmp_path, "guide/page.md", "# Page\n\nText.\n")
    got = FolderConnector(tmp_path, base_url="https://h.example.com").fetch_article("guide/page.md")
    assert len(got) == 1
    assert got[0].article_id == "guide/page.md" and got[0].title == "Page"
    assert got[0].url == "https://h.example.com/guide/page.html"


def test_fetch_article_missing_is_empty(tmp_path) -> None:
    assert FolderConnector(tmp_path).fetch_article("nope.md") == []


def test_fetch_article_cannot_escape_root(tmp_path) -> None:
    root = tmp_path / "root"
    write(root, "inside.md", "# Inside\n")
    write(tmp_path, "x.md", "# Outside secret\n")
    c = FolderConnector(root)
    assert c.fetch_article("../x.md") == []
    assert c.fetch_article("sub/../../x.md") == []
    assert c.fetch_article(str(tmp_path / "x.md")) == []  # absolute path
    assert len(c.fetch_article("inside.md")) == 1  # the guard does not block legitimate ids


def test_fetch_article_of_draft_is_empty(tmp_path) -> None:
    write(tmp_path, "d.md", "---\ntitle: D\nstate: draft\n---\nx\n")
    assert FolderConnector(tmp_path).fetch_article("d.md") == []


def test_fetch_article_of_non_article_file_is_empty(tmp_path) -> None:
    write(tmp_path, "LICENSE", "Apache License 2.0\n")
    write(tmp_path, "notes.txt", "notes\n")
    c = FolderConnector(tmp_path)
    assert c.fetch_article("LICENSE") == [] and c.fetch_article("notes.txt") == []


def test_fetch_article_by_front_matter_id(tmp_path) -> None:
    write(tmp_path, "guide/reset.md", FRONT_MATTER_MD)
    c = FolderConnector(tmp_path)
    [listed] = list(c.list_articles())
    assert c.fetch_article(listed.article_id) == [listed]


# -- sync of undated articles (updated_at == 0) --------------------------------------------------

@pytest.fixture()
def hash_container(tmp_path):
    """A container on a local Qdrant folder with the hash embedder (no model)."""
    c = Container(Settings(data_dir=tmp_path / "data", embedding={"model": "hash:64"}))
    yield c
    c.index.close()


def undated(body: str) -> str:
    return f"# Refunds\n\n{body}\n"


def test_sync_of_undated_articles_skips_unchanged_and_reembeds_edits(tmp_path, hash_container) -> None:
    docs = tmp_path / "docs"
    a = write(docs, "a.md", undated("Refunds are issued within 30 days of purchase."))
    b = write(docs, "b.md", undated("Invoices are emailed on the first day of each month."))
    connector, engine, index = FolderConnector(docs), hash_container.sync_engine, hash_container.index

    first = engine.sync(connector)
    assert first.ok and first.added == 2 and first.embeddings_computed > 0
    assert {k: st.updated_at for k, st in index.manifest("default", "folder").items()} == {
        "default/folder/a.md/en": 0, "default/folder/b.md/en": 0}
    hash_a = index.doc_points("default", "default/folder/a.md/en")[0]["content_hash"]

    for path in (a, b):  # a checkout or copy touches the files: nothing to re-embed
        os.utime(path, (1_900_000_000, 1_900_000_000))
    again = engine.sync(connector)
    assert again.ok and again.unchanged == 2 and again.added == again.updated == 0
    assert again.embeddings_computed == 0 and again.chunks_written == 0

    a.write_text(undated("Refunds are issued within 14 days of purchase."), encoding="utf-8")
    os.utime(a, (1_900_000_000, 1_900_000_000))  # same mtime as before: the edit is found by its content
    edited = engine.sync(connector)
    assert edited.ok and edited.updated == 1 and edited.unchanged == 1 and edited.added == 0
    assert edited.embeddings_computed == edited.chunks_written > 0
    points = index.doc_points("default", "default/folder/a.md/en")
    assert "14 days" in " ".join(p["text"] for p in points) and "30 days" not in " ".join(p["text"] for p in points)
    assert {p["content_hash"] for p in points} != {hash_a}
    assert engine.sync(connector).embeddings_computed == 0  # and the edit is not re-embedded again


def test_dropping_a_date_does_not_reembed(tmp_path, hash_container) -> None:
    """An index written with a date (e.g. the file mtime of earlier versions) is kept when the date becomes 0."""
    docs = tmp_path / "docs"
    body = "# Refunds\n\nRefunds are issued within 30 days of purchase.\n"
    a = write(docs, "a.md", f"---\nupdated_at: 2024-01-02\n---\n{body}")
    engine, index = hash_container.sync_engine, hash_container.index
    assert engine.sync(FolderConnector(docs)).added == 1
    assert index.manifest("default", "folder")["default/folder/a.md/en"].updated_at == 1704153600

    a.write_text(body, encoding="utf-8")
    report = engine.sync(FolderConnector(docs))
    assert report.ok and report.unchanged == 1 and report.embeddings_computed == 0
    assert index.manifest("default", "folder")["default/folder/a.md/en"].updated_at == 0  # refreshed in place
