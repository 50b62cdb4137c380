"""Property-based API robustness: schemathesis against our own OpenAPI schema (≥100 cases per operation).

Every generated request must get a documented status (no 5xx) and a response that matches the schema.
All operations the app publishes are covered, including ones added later.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from citedesk.serving.api.app import create_app
from tests.conftest import DERANDOMIZE, make_container

pytestmark = pytest.mark.slow

EXAMPLES = 100


@pytest.fixture(scope="module")
def api_schema(aws_container, tmp_path_factory):
    # its own database: the guidance it publishes (PUT /v1/guidance) must not reach other tests' answers
    db = tmp_path_factory.mktemp("schemathesis-db") / "citedesk.db"
    c = make_container(aws_container.settings.data_dir, aws_container.embedder, intercom={
        "client_secret": "schemathesis-secret", "admin_id": "1", "token": "t", "base_url": "http://127.0.0.1:9"},
        database={"url": f"sqlite:///{db}"})
    c.__dict__["index"] = aws_container.index  # same index and model, webhooks configured
    settings = c.settings
    app = create_app(settings, container=c, warm_up=False)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_operation_conforms_to_its_schema(api_schema) -> None:
    operations = [op.ok() for op in api_schema.get_all_operations()]
    assert len(operations) >= 3
    tested = {}
    for op in operations:
        calls = []

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            calls.append(1)
            case.call_and_validate()

        run()
        tested[f"{op.method.upper()} {op.path}"] = len(calls)
    print("schemathesis cases per operation:", tested)
    assert all(n >= 1 for n in tested.values())
