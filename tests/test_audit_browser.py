"""The /audit page in real headless Chromium (Debian ``chromium`` driven by Playwright).

uvicorn serves the real app on loopback (auth on, a manager's key), answers come from the real pipeline
over real AWS pages; the browser signs in, filters, opens an answer, sees the quoted span highlighted,
marks a citation incorrect and finds the mark after a reload. Screenshots go to ``artifacts/`` (not
committed) for a human to look at.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from citedesk.connectors.folder import FolderConnector
from citedesk.serving.api.app import create_app
from tests.conftest import free_port, make_container

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
AWS_DOCS = Path(__file__).resolve().parents[1] / "data" / "aws-docs"
GOLD = "amazon-dynamodb-developer-guide/CapacityUnitCalculations.md"
PAGES = [GOLD, "amazon-kendra-developer-guide/how-it-works.md", "aws-iotanalytics-developer-guide/limits.md"]
ANSWERABLE = "What is the size of a null attribute in DynamoDB?"
OTHERS = ["What is a source repository in Amazon Kendra?", "How do I bake a chocolate cake without eggs?",
          "Who won the football world cup in 1998?"]

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (scripts/setup.sh)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    """uvicorn on 127.0.0.1 serving the app (auth on); yields (base url, manager key, container, docs)."""
    import uvicorn

    tmp = tmp_path_factory.mktemp("audit-browser")
    docs = tmp / "docs"
    for rel in PAGES:
        (docs / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(AWS_DOCS / rel, docs / rel)
    # the chat threshold the page's counts need: the Kendra question (about 0.6 with the default reader) answers
    c = make_container(tmp / "data", embedder, auth={"enabled": True}, answer={"threshold_chat": 0.5})
    assert c.sync_engine.sync(FolderConnector(docs, workspace="default")).ok
    store = c.authenticator.store
    _, manager = store.create("support managers", ["audit-read", "audit-write"])
    _, bot = store.create("chat widget", ["answer"])
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(c.settings, container=c), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {bot}"}, timeout=60) as h:
        for q in [ANSWERABLE, *OTHERS]:
            assert h.post("/v1/answer", json={"question": q, "conversation_id": "browser"}).status_code == 200
    yield base, manager, c, docs
    srv.should_exit = True
    thread.join(10)
    c.index.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian chromium missing: apt-get install -y chromium (scripts/setup.sh does it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    base, manager, _, _ = server
    context = browser.new_context(base_url=base, viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.goto("/audit")
    assert pg.locator("input[name=key]").is_visible()  # 401: the login form
    pg.fill("input[name=key]", manager)
    pg.click("button[type=submit]")
    pg.wait_for_url("**/audit")
    yield pg
    context.close()


def shot(pg, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_filter_open_highlight_mark_incorrect_and_find_it_after_reload(page) -> None:
    rows = page.locator("#answers tbody tr")
    assert rows.count() == 4
    shot(page, "audit-list.png")

    page.select_option("select[name=escalated]", "false")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**/audit?*escalated=false*")
    answered = page.locator("#answers tbody tr")
    assert answered.count() == 2
    assert set(page.locator("#answers tbody tr .badge.b-answer").all_inner_texts()) == {"answered"}
    assert "chocolate cake" not in page.locator("#answers").inner_text()

    page.get_by_role("link", name=ANSWERABLE).click()
    page.wait_for_url("**/audit/answers/*")
    first = page.locator(".pair").first
    mark = first.locator(".passage mark")
    assert mark.count() == 1 and len(mark.inner_text().strip()) > 20
    assert mark.inner_text().strip() in first.locator(".passage .text").inner_text()
    assert "[1]" in first.locator(".claim").inner_text()
    assert page.locator(".js-stale").count() == 0

    first.locator("button.js-mark[data-value=incorrect]").click()
    status = first.locator(".js-status")
    status.filter(has_text="marked incorrect").wait_for()
    assert "support managers" in status.inner_text()
    page.locator(".js-feedback[data-value=false]").click()
    page.locator("#summary .js-status").filter(has_text="marked unhelpful").wait_for()

    page.reload()
    first = page.locator(".pair").first
    assert first.locator("button.js-mark[data-value=incorrect]").get_attribute("aria-pressed") == "true"
    assert first.locator("button.js-mark[data-value=correct]").get_attribute("aria-pressed") == "false"
    assert "marked incorrect by support managers" in first.locator(".js-status").inner_text()
    assert page.locator(".js-feedback[data-value=false]").get_attribute("aria-pressed") == "true"
    shot(page, "audit-detail.png")

    page.goto("/audit?feedback=citation_incorrect")
    assert page.locator("#answers tbody tr").count() == 1
    assert "1 incorrect" in page.locator("#answers tbody tr").inner_text()


def test_reports_page_and_stale_warning_after_an_edit(page, server) -> None:
    _, _, c, docs = server
    page.goto("/audit/reports")
    assert page.locator("#escalation-rate").inner_text() == "50.0 %"  # 2 of 4 escalated
    assert "chocolate cake" in page.locator("#gaps").inner_text()
    shot(page, "audit-reports.png")

    gold = docs / GOLD
    gold.write_text(gold.read_text().replace("1 byte", "2 bytes"))
    later = time.time() + 60
    import os

    os.utime(gold, (later, later))
    assert c.sync_engine.sync(FolderConnector(docs, workspace="default")).updated == 1
    page.goto("/audit?article=CapacityUnitCalculations")
    page.get_by_role("link", name=ANSWERABLE).click()
    page.wait_for_url("**/audit/answers/*")
    warning = page.locator(".js-stale").first
    assert "changed after the answer" in warning.inner_text()
    assert page.locator("#stale-banner").is_visible()
    shot(page, "audit-detail-stale.png")
