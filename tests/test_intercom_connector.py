"""IntercomConnector against the Intercom test double (real HTTP on 127.0.0.1, no models).

The double's responses are checked against Intercom's OpenAPI description (API 2.16) so that the
connector is tested against the shapes Intercom documents, not against guesses.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from citedesk.connectors.intercom import IntercomConnector
from citedesk.connectors.intercom_api import INTERCOM_API_VERSION
from citedesk.core.errors import ConfigError, ConnectorError
from citedesk.core.protocols import Connector, SourceFailure
from citedesk.core.types import Article
from tests.intercom_double import IntercomDouble

SPEC_PATH = Path(__file__).parent / "data" / "intercom" / "api.intercom.io-2.16.yaml"
SPEC_URI = "urn:intercom:api.intercom.io-2.16"
TOKEN = "test-token"


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    """Intercom's OpenAPI description, parsed once per session."""
    if not SPEC_PATH.is_file():
        pytest.skip(f"Intercom OpenAPI description not found at {SPEC_PATH}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with SPEC_PATH.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)


@pytest.fixture(scope="session")
def validate(spec: dict[str, Any]):
    """``validate(instance, schema_name)``: OAS 3.0 validation plus "no undeclared property"."""
    registry = Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT4))
    schemas = spec["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def declared(schema: dict[str, Any]) -> dict[str, Any]:
        schema = resolve(schema)
        properties = dict(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            properties.update(declared(part))
        return properties

    def undeclared(instance: Any, schema: dict[str, Any], where: str) -> list[str]:
        schema = resolve(schema)
        found: list[str] = []
        if isinstance(instance, dict):
            properties = declared(schema)
            if properties:
                for key, value in instance.items():
                    if key not in properties:
                        found.append(f"{where}.{key}")
                    else:
                        found += undeclared(value, properties[key], f"{where}.{key}")
        elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
            for index, value in enumerate(instance):
                found += undeclared(value, schema["items"], f"{where}[{index}]")
        return found

    def check(instance: Any, schema_name: str) -> None:
        assert schema_name in schemas, schema_name
        validator = OAS30Validator(
            {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}, registry=registry
        )
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)
        ]
        assert not errors, f"{schema_name}: {errors}"
        extra = undeclared(instance, {"$ref": f"#/components/schemas/{schema_name}"}, "$")
        assert not extra, f"{schema_name}: properties the spec does not declare: {extra}"

    return check


@pytest.fixture()
def api():
    with IntercomDouble(token=TOKEN) as double:
        yield double


def make_connector(api: IntercomDouble, **kwargs: Any) -> IntercomConnector:
    kwargs.setdefault("max_retries", 3)
    kwargs.setdefault("timeout", 5.0)
    return IntercomConnector(kwargs.pop("token", TOKEN), base_url=api.base_url, **kwargs)


def articles_of(results: list[Article | SourceFailure]) -> list[Article]:
    return [r for r in results if isinstance(r, Article)]


def article_requests(api: IntercomDouble) -> list:
    return [r for r in api.requests if r.path == "/articles"]


# ---------------------------------------------------------------------- the double itself


def test_double_starts_and_stops() -> None:
    with IntercomDouble(token="t") as double:
        url = double.base_url
        assert url.startswith("http://127.0.0.1:")
        assert (
            httpx.get(f"{double.base_url}/articles", headers={"Authorization": "Bearer t"}).status_code == 200
        )
    with pytest.raises(httpx.ConnectError):  # stopped: the port no longer answers
        httpx.get(f"{url}/articles", headers={"Authorization": "Bearer t"})


def test_double_responses_match_the_openapi_schemas(api: IntercomDouble, validate) -> None:
    billing = api.add_collection("Billing", translations={"en": "Billing", "fr": "Facturation"})
    invoices = api.add_collection("Invoices", parent_id=billing, description="Invoices and receipts")
    api.add_article("Plain", "<p>plain</p>", parent_ids=[billing, invoices])
    api.add_article("Draft", state="draft")
    multi = api.add_article(
        translations={
            "en": {"title": "Hello", "body": "<p>hi</p>"},
            "pt-BR": {"title": "Olá", "body": "<p>oi</p>"},
            "de": {"title": "Hallo", "state": "draft"},
        },
        parent_ids=[invoices],
    )
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=api.base_url, headers=auth) as http:
        for page in (1, 2, 3):
            listing = http.get("/articles", params={"page": page, "per_page": 2})
            assert listing.status_code == 200
            validate(listing.json(), "article_list")
        sizes = [
            len(http.get("/articles", params={"page": p, "per_page": 2}).json()["data"]) for p in (1, 2, 3)
        ]
        assert sizes == [2, 1, 0]  # a page past the end is empty
        assert http.get("/articles", params={"per_page": 2}).json()["pages"] == {
            "type": "pages",
            "page": 1,
            "per_page": 2,
            "total_pages": 2,
        }

        single = http.get(f"/articles/{multi}")
        assert single.status_code == 200
        validate(single.json(), "article")
        assert single.json()["default_locale"] == "en"
        assert single.json()["translated_content"]["pt-BR"]["title"] == "Olá"

        collections = http.get("/help_center/collections")
        assert collections.status_code == 200
        validate(collections.json(), "collection_list")

        missing = http.get("/articles/424242")
        assert missing.status_code == 404
        validate(missing.json(), "error")
        assert missing.json()["errors"][0]["code"] == "not_found"

        api.fail_next(1, status=429, headers={"X-RateLimit-Reset": "0"})
        limited = http.get("/articles")
        assert limited.status_code == 429 and limited.headers["X-RateLimit-Reset"] == "0"
        validate(limited.json(), "error")

    unauthorized = httpx.get(f"{api.base_url}/articles", headers={"Authorization": "Bearer wrong"})
    assert unauthorized.status_code == 401
    validate(unauthorized.json(), "error")
    assert unauthorized.json()["errors"][0] == {"code": "unauthorized", "message": "Access Token Invalid"}


# ---------------------------------------------------------------------- listing


def test_connector_satisfies_protocol_and_constructor_does_no_io() -> None:
    connector = IntercomConnector("t", base_url="http://127.0.0.1:9")  # nothing listens there
    assert isinstance(connector, Connector)
    assert connector.name == "intercom"
    with pytest.raises(ConfigError):
        IntercomConnector("")


def test_pagination_over_several_pages(api: IntercomDouble) -> None:
    ids = [api.add_article(f"Article {i}", f"<p>body {i}</p>") for i in range(7)]

    results = list(make_connector(api, per_page=3).list_articles())

    assert all(isinstance(r, Article) for r in results)
    assert [a.article_id for a in results] == list(reversed(ids))  # newest updated_at first
    assert [a.updated_at for a in results] == sorted((a.updated_at for a in results), reverse=True)
    listing = [r for r in article_requests(api) if r.query.get("per_page") == ["3"]]
    assert [r.query["page"] for r in listing] == [["1"], ["2"], ["3"], ["4"]]  # page 4 is empty: stop
    first = results[-1]
    assert first.source == "intercom" and first.workspace == api.workspace_id
    assert first.locale == "en" and first.body_format == "html" and first.body == "<p>body 0</p>"
    assert first.url and first.url.endswith(f"/en/articles/{ids[0]}-article-0")
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in api.requests)
    assert all(r.headers["intercom-version"] == INTERCOM_API_VERSION for r in api.requests)


def test_drafts_are_skipped(api: IntercomDouble) -> None:
    published = api.add_article("Published")
    api.add_article("Draft", state="draft")
    later_unpublished = api.add_article("Unpublished later")
    api.unpublish_article(later_unpublished)

    results = list(make_connector(api).list_articles())

    assert [a.article_id for a in articles_of(results)] == [published]
    assert not [r for r in results if isinstance(r, SourceFailure)]


def test_translated_content_yields_one_article_per_published_locale(api: IntercomDouble) -> None:
    article_id = api.add_article(
        translations={
            "en": {"title": "Reset your password", "body": "<p>Click reset.</p>"},
            "fr": {
                "title": "Réinitialiser",
                "body": "<p>Cliquez.</p>",
                "url": "https://help.example/fr/reset",
            },
            "de": {"title": "Passwort", "body": "<p>Entwurf</p>", "state": "draft"},
        },
        default_locale="en",
    )
    edited_at = api.edit_article(article_id, locale="fr", body="<p>Cliquez sur réinitialiser.</p>")

    results = articles_of(list(make_connector(api).list_articles()))

    by_locale = {a.locale: a for a in results}
    assert set(by_locale) == {"en", "fr"}
    assert all(a.article_id == article_id for a in results)
    assert by_locale["en"].title == "Reset your password"
    assert by_locale["fr"].title == "Réinitialiser"
    assert by_locale["fr"].body == "<p>Cliquez sur réinitialiser.</p>"
    assert by_locale["fr"].url == "https://help.example/fr/reset"
    assert by_locale["fr"].updated_at == edited_at
    assert by_locale["en"].updated_at < edited_at

    only_fr = articles_of(list(make_connector(api, locales=["fr"]).list_articles()))
    assert [a.locale for a in only_fr] == ["fr"]


def test_single_language_article_uses_default_locale_or_en(api: IntercomDouble) -> None:
    api.add_article("English by default")
    results = articles_of(list(make_connector(api).list_articles()))
    assert [a.locale for a in results] == ["en"]


def test_breadcrumbs_from_nested_collections(api: IntercomDouble) -> None:
    billing = api.add_collection("Billing", translations={"en": "Billing", "fr": "Facturation"})
    invoices = api.add_collection(
        "Invoices", parent_id=billing, translations={"en": "Invoices", "fr": "Factures"}
    )
    refunds = api.add_collection("Refunds", parent_id=invoices)
    api.add_collection("Unrelated")
    deep = api.add_article("Refund an invoice", parent_ids=[billing, invoices, refunds])
    shallow = api.add_article("Billing basics", parent_ids=[billing])
    loose = api.add_article("Standalone")
    multi = api.add_article(
        translations={"en": {"title": "Invoice PDF"}, "fr": {"title": "Facture PDF"}}, parent_ids=[invoices]
    )

    results = articles_of(list(make_connector(api, per_page=2).list_articles()))

    crumbs = {(a.article_id, a.locale): a.breadcrumbs for a in results}
    assert crumbs[(deep, "en")] == ["Billing", "Invoices", "Refunds"]
    assert crumbs[(shallow, "en")] == ["Billing"]
    assert crumbs[(loose, "en")] == []
    assert crumbs[(multi, "en")] == ["Billing", "Invoices"]
    assert crumbs[(multi, "fr")] == ["Facturation", "Factures"]
    first_pages = [
        r for r in api.requests if r.path == "/help_center/collections" and r.query["page"] == ["1"]
    ]
    assert len(first_pages) == 1  # collections listed once per listing, then cached


def test_breadcrumbs_survive_unknown_parents_and_cycles(api: IntercomDouble) -> None:
    first = api.add_collection("First", collection_id=1, parent_id=2)
    api.add_collection("Second", collection_id=2, parent_id=first)  # a parent_id cycle
    cyclic = api.add_article("Cyclic", parent_ids=[first])
    orphan = api.add_article("Orphan", parent_ids=[424242])

    crumbs = {a.article_id: a.breadcrumbs for a in articles_of(list(make_connector(api).list_articles()))}

    assert crumbs[cyclic] == ["Second", "First"]
    assert crumbs[orphan] == []


def test_workspace_from_ctor_or_from_articles(api: IntercomDouble) -> None:
    api.add_article("One")
    connector = make_connector(api)
    assert connector.workspace == ""
    assert {a.workspace for a in articles_of(list(connector.list_articles()))} == {api.workspace_id}
    assert connector.workspace == api.workspace_id

    tenant = make_connector(api, workspace="tenant-a")
    assert tenant.workspace == "tenant-a"
    assert {a.workspace for a in articles_of(list(tenant.list_articles()))} == {"tenant-a"}


def test_list_changing_during_pagination_is_read_again(api: IntercomDouble) -> None:
    ids = [api.add_article(f"Article {i}") for i in range(7)]  # newest last
    connector = make_connector(api, per_page=3)
    listing = connector.list_articles()

    seen = [next(listing).article_id for _ in range(3)]  # page 1: ids[6], ids[5], ids[4]
    api.delete_article(ids[5])  # page boundaries shift: ids[3] moves to page 1, already read
    seen += [r.article_id for r in listing]

    assert sorted(seen) == sorted(ids)  # ids[3] found by the second pass; ids[5] was read earlier
    assert len(seen) == len(set(seen))


# ---------------------------------------------------------------------- retries and errors


def test_429_with_retry_after_is_retried_after_the_delay(api: IntercomDouble) -> None:
    api.add_article("Rate limited")
    api.fail_next(1, status=429, headers={"Retry-After": "1"})

    results = articles_of(list(make_connector(api).list_articles()))

    assert [a.title for a in results] == ["Rate limited"]
    first, retry = article_requests(api)[:2]
    assert (first.status, retry.status) == (429, 200)
    assert first.query == retry.query == {"page": ["1"], "per_page": ["50"]}
    assert retry.time - first.time >= 0.95


def test_429_with_x_ratelimit_reset_waits_until_the_reset_time(api: IntercomDouble) -> None:
    api.add_article("Rate limited")
    reset_at = int(time.time()) + 2  # epoch seconds, as Intercom sends it
    api.fail_next(1, status=429, headers={"X-RateLimit-Reset": str(reset_at)}, path="/articles")

    results = articles_of(list(make_connector(api).list_articles()))

    assert len(results) == 1
    first, retry = article_requests(api)[:2]
    assert (first.status, retry.status) == (429, 200)
    assert retry.wall_time >= reset_at - 0.05


def test_5xx_is_retried(api: IntercomDouble) -> None:
    article_id = api.add_article("Flaky")
    api.fail_next(1, status=503, headers={"Retry-After": "1"})

    assert [a.article_id for a in make_connector(api).fetch_article(article_id)] == [article_id]
    assert [r.status for r in api.requests] == [503, 200]


def test_retries_exhausted_raise_connector_error(api: IntercomDouble) -> None:
    api.add_article("Never reached")
    api.fail_next(10, status=429, headers={"Retry-After": "1"})

    with pytest.raises(ConnectorError, match=r"HTTP 429 on GET /articles") as raised:
        list(make_connector(api, max_retries=1).list_articles())

    assert "rate_limit_exceeded" in str(raised.value)
    # max_retries=1 means exactly one retry (the SDK's own counter is off by two; see module doc)
    assert [r.status for r in api.requests] == [429, 429]


def test_max_retries_zero_makes_a_single_attempt(api: IntercomDouble) -> None:
    api.fail_next(10, status=500, headers={})
    with pytest.raises(ConnectorError, match="HTTP 500"):
        list(make_connector(api, max_retries=0).list_articles())
    assert len(api.requests) == 1


def test_401_raises_connector_error(api: IntercomDouble) -> None:
    article_id = api.add_article("Secret")
    connector = make_connector(api, token="wrong-token")

    with pytest.raises(ConnectorError, match="Intercom rejected the access token"):
        list(connector.list_articles())
    with pytest.raises(ConnectorError, match="Intercom rejected the access token"):
        connector.fetch_article(article_id)
    assert [r.status for r in api.requests] == [401, 401]  # 401 is not retried


def test_unreachable_intercom_raises_connector_error() -> None:
    with IntercomDouble(token=TOKEN) as stopped:
        base_url = stopped.base_url
    connector = IntercomConnector(TOKEN, base_url=base_url, max_retries=0, timeout=2.0)
    with pytest.raises(ConnectorError, match="could not reach Intercom"):
        list(connector.list_articles())


# ---------------------------------------------------------------------- fetch_article


def test_fetch_article(api: IntercomDouble) -> None:
    published = api.add_article("Published", "<p>body</p>", parent_ids=[api.add_collection("Help")])
    deleted = api.add_article("Deleted")
    unpublished = api.add_article("Unpublished")
    api.delete_article(deleted)
    api.unpublish_article(unpublished)
    connector = make_connector(api)

    [article] = connector.fetch_article(published)
    assert (article.article_id, article.title, article.body, article.breadcrumbs) == (
        published,
        "Published",
        "<p>body</p>",
        ["Help"],
    )
    assert connector.fetch_article(deleted) == []
    assert connector.fetch_article(unpublished) == []
    assert connector.fetch_article("999999") == []
    requests_before = len(api.requests)
    assert connector.fetch_article("../admins") == []  # not an Intercom id: no request made
    assert len(api.requests) == requests_before


def test_fetch_article_multilingual_with_locale_filter(api: IntercomDouble) -> None:
    article_id = api.add_article(translations={"en": {"title": "Hi"}, "fr": {"title": "Salut"}})
    assert {a.locale for a in make_connector(api).fetch_article(article_id)} == {"en", "fr"}
    assert [a.title for a in make_connector(api, locales=["fr"]).fetch_article(article_id)] == ["Salut"]
    api.unpublish_article(article_id, locale="en")
    assert [a.locale for a in make_connector(api).fetch_article(article_id)] == ["fr"]


# ---------------------------------------------------------------------- malformed payloads


def test_malformed_article_yields_source_failure_and_listing_goes_on(api: IntercomDouble) -> None:
    newer = api.add_article("Newer")
    broken = api.add_raw_article(
        {
            "id": "555",
            "type": "article",
            "workspace_id": api.workspace_id,
            "body": None,
            "state": "published",
            "updated_at": 5,
        }
    )  # published, body null, no title
    empty_body = api.add_raw_article(
        {
            "id": "556",
            "type": "article",
            "workspace_id": api.workspace_id,
            "title": "No body yet",
            "body": None,
            "state": "published",
            "updated_at": 4,
        }
    )
    bad_locale = api.add_raw_article(
        {
            "id": "557",
            "type": "article",
            "workspace_id": api.workspace_id,
            "state": "published",
            "updated_at": 3,
            "default_locale": "en",
            "translated_content": {
                "type": "article_translated_content",
                "en": {"title": "Fine", "body": "<p>ok</p>", "state": "published", "updated_at": 3},
                "fr": {"body": "<p>sans titre</p>", "state": "published", "updated_at": 3},
            },
        }
    )
    wrong_types = api.add_raw_article(
        {
            "id": "558",
            "state": "published",
            "title": "T",
            "updated_at": "yesterday",
            "workspace_id": api.workspace_id,
        }
    )
    older = api.add_article("Older", updated_at=1)

    results = list(make_connector(api).list_articles())

    failures = {(f.article_id, f.locale) for f in results if isinstance(f, SourceFailure)}
    assert failures == {(broken, "en"), (bad_locale, "fr"), (wrong_types, "en")}
    assert all(f.error for f in results if isinstance(f, SourceFailure))
    good = {(a.article_id, a.locale): a for a in articles_of(results)}
    assert set(good) == {(newer, "en"), (empty_body, "en"), (bad_locale, "en"), (older, "en")}
    assert good[(empty_body, "en")].body == ""

    with pytest.raises(ConnectorError, match="malformed"):
        make_connector(api).fetch_article(broken)
