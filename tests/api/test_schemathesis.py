"""Issue 12 §5: a bounded schemathesis run over every operation of the OpenAPI schema.

Each operation gets ``MAX_EXAMPLES`` generated requests (valid and invalid ones) with a real store key,
against the app in process (WSGI), on whatever database the suite runs on (PostgreSQL on CI). Two
checks must hold for every answer: no 5xx, and the response matches the schema (status, content type,
body). The explicit reproductions of the failures it found are in ``test_hostile_input.py``.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shop_recs.wsgi import application

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# Loaded at collection (pytest-django has set Django up by then); the schema view reads no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture
def keep_test_connection():
    """Requests go through Django's WSGI handler, whose request signals close a connection that is
    inside a transaction (the test's); Django's own test client disconnects them the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def seeded_store(store, make_product, make_customer):
    """A store with something to find, so generated requests reach past "not found"."""
    for sku in ("DEMO-00001", "DEMO-00002", "string"):
        make_product(store, sku)
    make_customer(store, "string")
    return store


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
def test_no_server_error_and_no_schema_violation(case, seeded_store, api_key, keep_test_connection):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"}, checks=CHECKS)
