"""Issue 12: every dashboard page and form gets hostile input, and none answers with a 500.

The pages are every store page the URL resolver knows (``test_isolation_walk.walked_routes``); the
query parameters each view reads are found in its source (``request.GET.get("x")``) and in the GET
forms it renders, plus a generic set every page is tried with. The forms are found by parsing each
page's HTML (``forms_html.parse_forms``): every ``<form method="post">`` of every page, posted with
its CSRF token (the client enforces CSRF) and one hostile value in one field at a time, then in all
fields at once.

Every answer must be a page, a redirect or a 4xx (never a 500 or a traceback); a POST answered 200
shows an error (a field error or an error message), or is a confirmation page asking again after
which no row of the store changed; and afterwards no row of the store holds what the fuzz sent that
a field must refuse: a NUL byte, a non-finite or absurd number (past 1e15), text longer than its
column. Hypothesis is not used: the values are a fixed list, so a run is repeatable and bounded.
"""

from __future__ import annotations

import inspect
import math
import re
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection, models
from django.test import Client
from django.urls import Resolver404, resolve

from tests.security.conftest import Route, World, snapshot, snapshot_diff, store_owned_models
from tests.security.forms_html import Form, FormField, parse_forms
from tests.security.test_isolation_walk import (
    TRACEBACK,
    _view_function,
    dashboard_query,
    url_for,
    walked_routes,
)

pytestmark = pytest.mark.django_db

#: The hostile values, by the kind of control they are aimed at (all of them go into query strings).
NUMERIC = ("-1", "1e309", "NaN", "99999999999999999999", "1e300")
CHOICE = ("99999999999999999999", "NaN", "\u00b2", "\x00")
TEXT = ("a\x00b", "x" * 10_000, "<script>alert(1)</script>", "'; DROP TABLE stores_store; --", "\u202egnp.exe\u202c")
DATES = ("0001-01-01", "9999-12-31 23:59", "2024-02-30")
#: Parameters every page is tried with, read or not.
GENERIC_PARAMS = ("period", "page", "days", "sort", "q")
#: ``request.GET.get("x")``, ``request.GET.getlist("x")``, ``request.GET["x"]`` in a view's source.
_GET_READ = re.compile(r"request\.GET(?:\.get|\.getlist)?[\(\[]\s*[\"'](\w+)[\"']")
#: Forms of the base template, not of the page: the language switch and the logout button.
_CHROME_ACTIONS = ("/i18n/", "/accounts/")
#: A rejected form says why: a field error under the field (the templates' ``field-error``, Django's
#: ``errorlist``) or an error message (``messages.error`` renders as ``alert-error``).
_ERROR_MARKS = ("field-error", "errorlist", "alert-error", "alert-warning")


def params_read(route: Route, html: str) -> set[str]:
    """The query parameters a page reads: named in its view's source, or fields of its GET forms."""
    names = set(_GET_READ.findall(inspect.getsource(_view_function(route.callback))))
    for form in parse_forms(html):
        if form.method == "get" and not form.action.startswith(_CHROME_ACTIONS):
            names |= {f.name for f in form.typed_fields()}
    return names


class Fuzz:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.requests = 0

    def check(self, what: str, response) -> str:
        self.requests += 1
        body = b"".join(response.streaming_content) if response.streaming else response.content
        text = body.decode(errors="replace")
        if response.status_code >= 500:
            exc = getattr(response, "exc_info", None)
            self.problems.append(
                f"{what}: {response.status_code} {exc[1]!r}" if exc else f"{what}: {response.status_code}"
            )
        elif response.status_code not in (200, 302, 400, 403, 404, 405, 413):
            self.problems.append(f"{what}: unexpected {response.status_code}")
        if TRACEBACK in text:
            self.problems.append(f"{what}: a traceback in the page")
        return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


def _csrf_client(user) -> Client:
    # Exceptions become 500 answers (and are listed), so one run reports every failing request.
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(user)
    return client


def discover(client: Client, routes: list[Route], world: World, fuzz: Fuzz):
    """Each page's URL and the parameters it reads, and every distinct POST form of every page."""
    pages, forms = [], {}
    for route in routes:
        url = url_for(route, world)
        base = dashboard_query(route, world)
        response = client.get(url, base)
        html = fuzz.check(f"GET {url}", response)
        if response.status_code == 405:
            continue  # POST-only: its form is on another page, found there
        pages.append((route, url, base, params_read(route, html)))
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        for form in parse_forms(html):
            action = form.action or url
            if form.method != "post" or action.startswith(_CHROME_ACTIONS) or action.startswith("http"):
                continue
            path = urlsplit(action).path
            try:
                view = resolve(path).view_name
            except Resolver404:
                fuzz.problems.append(f"{url}: a form posts to {path}, which no URL pattern matches")
                continue
            # One form per view and shape (each member's role form is the same form).
            forms.setdefault((view, tuple(sorted(f.name for f in form.typed_fields()))), (path, form))
    return pages, list(forms.values())


def test_every_dashboard_page_and_form_survives_hostile_input(alpha, beta):
    routes = [r for r in walked_routes() if r.is_store_page]
    fuzz = Fuzz()
    client = _csrf_client(alpha.merchant)
    pages, forms = discover(client, routes, alpha, fuzz)

    # --- query parameters -------------------------------------------------------------------
    for _route, url, base, read in pages:
        for query in query_plans(sorted(set(GENERIC_PARAMS) | read), reads=bool(read - set(GENERIC_PARAMS))):
            response = client.get(url, {**base, **query})
            fuzz.check(f"GET {url} {_short(query)}", response)
    get_requests = fuzz.requests

    # --- forms ------------------------------------------------------------------------------
    fuzzed_fields = 0
    unflagged: list[str] = []
    for action, form in forms:
        fields = _distinct_fields(form)
        fuzzed_fields += len(fields)
        state = None
        for what, data in post_plans(form, fields):
            data["csrfmiddlewaretoken"] = client.cookies["csrftoken"].value
            # The state before: re-read only after an answer that may have acted (a redirect).
            before = state = state or snapshot(alpha.store)
            response = client.post(action, data)
            if response.status_code == 302:
                state = None
            text = fuzz.check(f"POST {action} {what}", response)
            if response.status_code == 200 and not any(m in text for m in _ERROR_MARKS):
                # No error shown: only right when the page asks again (a confirmation not given,
                # e.g. ``confirm`` other than "yes") and nothing was done.
                asks_again = any(urlsplit(f.action).path in ("", action) for f in parse_forms(text))
                if not asks_again or (changed := snapshot_diff(before, snapshot(alpha.store))):
                    unflagged.append(f"POST {action} {what}: {'changed ' + str(changed) if asks_again else ''}")
            if response.status_code == 403 and "CSRF" in text:
                fuzz.problems.append(f"POST {action} {what}: refused by CSRF (the fuzz lost its token)")
    assert not fuzz.problems, f"{len(fuzz.problems)} problems:\n" + "\n".join(fuzz.problems[:80])
    assert not unflagged, "POSTs answered 200 without a form error:\n" + "\n".join(unflagged[:40])
    assert not (stored := stored_garbage(alpha)), stored

    # The fuzz reached what it claims to (floors set from the real counts, a little below them).
    print(
        f"\ndashboard fuzz: {len(pages)} pages ({get_requests} GETs), {len(forms)} forms, "
        f"{fuzzed_fields} form fields, {fuzz.requests} requests"
    )
    assert len(pages) >= PAGE_FLOOR and len(forms) >= FORM_FLOOR and fuzzed_fields >= FIELD_FLOOR
    assert fuzz.requests >= REQUEST_FLOOR


# Measured on 2026-12-05: 42 pages, 30 forms, 106 fields, 901 requests.
PAGE_FLOOR = 40
FORM_FLOOR = 28
FIELD_FLOOR = 100
REQUEST_FLOOR = 850


def query_plans(params: list[str], *, reads: bool) -> list[dict[str, str]]:
    """Query strings giving ``params`` the values of ``QUERY_VALUES``.

    For a page that reads parameters of its own, a Latin square: request ``i`` gives ``params[j]``
    value ``(i + j) % n``, so every (parameter, value) pair is sent once in ``n`` requests, each
    parameter next to different company. A page that reads none of them (only the generic set, which
    it ignores) gets each value once, spread over as few requests as the parameters allow.
    """
    n, k = len(QUERY_VALUES), len(params)
    if reads:
        return [{p: QUERY_VALUES[(i + j) % n] for j, p in enumerate(params)} for i in range(n)]
    return [{p: QUERY_VALUES[(i * k + j) % n] for j, p in enumerate(params)} for i in range(math.ceil(n / k))]


QUERY_VALUES = (
    "-1",
    "1e309",
    "NaN",
    "99999999999999999999",
    "'; DROP TABLE stores_store; --",
    "<script>alert(1)</script>",
    "\x00",
    "x" * 10_000,
    "../../../etc/passwd",
    "\u202egnp.exe\u202c",
    "0001-01-01",
    "\u00b2",
    "",
)


def _values_for(field: FormField) -> tuple[str, ...]:
    """The hostile values aimed at one control, by what it holds."""
    if field.type == "number" or _number_like(field.value):
        return NUMERIC
    if field.tag == "select" or field.type in ("checkbox", "radio"):
        return CHOICE
    if field.type in ("date", "datetime-local", "time") or field.name.endswith(("_at", "date")):
        return (*DATES, "x" * 10_000, "\x00")
    return TEXT


def _number_like(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _distinct_fields(form: Form) -> list[FormField]:
    """The form's typed fields; rows repeated with a number (``v0_name``, ``v1_name``) on their first row."""
    seen, out = set(), []
    for f in form.typed_fields():
        shape = re.sub(r"\d+", "#", f.name)
        if shape not in seen:
            seen.add(shape)
            out.append(f)
    return out


def post_plans(form: Form, fields: list[FormField]) -> list[tuple[str, dict[str, Any]]]:
    """The form's own submission with hostile values: each field alone with every value aimed at it
    (the other fields valid, so a value the field lets through reaches the save), then every field at
    once (three rounds, each field cycling through its own values)."""
    plans = []
    for f in fields:
        for value in _values_for(f):
            data = form.defaults()
            data[f.name] = value
            plans.append((f"{f.name}={_short(value)}", data))
    for i in range(3):
        data = form.defaults()
        for j, f in enumerate(form.typed_fields()):
            values = _values_for(f)
            data[f.name] = values[(i + j) % len(values)]
        plans.append((f"*round {i}", data))
    return plans


def _bad_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return not math.isfinite(value) or abs(value) > 1e15
    if isinstance(value, Decimal):
        return not value.is_finite() or abs(value) > Decimal(10) ** 15
    if isinstance(value, int):
        return abs(value) > 2**63
    return False


def _walk_json(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _walk_json(k, f"{path}.key", found)
            _walk_json(v, f"{path}.{k}", found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk_json(v, f"{path}[{i}]", found)
    elif isinstance(value, str) and "\x00" in value:
        found.append(f"{path}: NUL byte")
    elif _bad_number(value):
        found.append(f"{path}: {value!r}")


def stored_garbage(world: World) -> list[str]:
    """Values in the store's rows that a form should have refused."""
    from shop_recs.stores.scoping import unscoped

    found: list[str] = []
    with unscoped():
        for model in store_owned_models():
            fk = next(
                f.name
                for f in model._meta.concrete_fields
                if isinstance(f, models.ForeignKey) and f.related_model is type(world.store)
            )
            fields = {f.attname: f for f in model._meta.concrete_fields}
            for row in model._base_manager.filter(**{fk: world.store}).values(*fields):
                for name, value in row.items():
                    where = f"{model._meta.label}.{name}"
                    field = fields[name]
                    if isinstance(value, str):
                        if "\x00" in value:
                            found.append(f"{where}: NUL byte")
                        if field.max_length and len(value) > field.max_length:
                            found.append(f"{where}: {len(value)} characters (max {field.max_length})")
                    elif isinstance(value, (dict, list)):
                        _walk_json(value, where, found)
                    elif _bad_number(value):
                        found.append(f"{where}: {value!r}")
    return found


def test_stored_garbage_check_finds_what_it_looks_for(alpha):
    """The final check of the fuzz is not vacuous: it sees a NUL, a non-finite number, an overlong name."""
    from shop_recs.ads.models import Campaign
    from shop_recs.catalog.models import Product
    from shop_recs.serving.models import StoreRules
    from shop_recs.stores.scoping import unscoped

    assert stored_garbage(alpha) == []
    # PostgreSQL refuses a NUL or an overlong value itself (a DataError: the fuzz would see a 500).
    sqlite = connection.vendor != "postgresql"
    with unscoped():
        if sqlite:
            Product.objects.filter(sku=alpha.ids["sku"]).update(title="a\x00b")
            Campaign.objects.filter(pk=alpha.ids["campaign_id"]).update(name="x" * 300)
        StoreRules.objects.update_or_create(store=alpha.store, defaults={"boost_weight": float("inf")})
    found = "\n".join(stored_garbage(alpha))
    assert "catalog.Product.title: NUL byte" in found or not sqlite
    assert "serving.StoreRules.boost_weight: inf" in found
    assert "ads.Campaign.name: 300 characters" in found or not sqlite


def test_query_parameters_are_found_in_the_views():
    """The discovery of read parameters sees the views' own reads (a rename would drop fuzzing)."""
    by_name = {r.name: r for r in walked_routes()}
    assert {"kind", "status", "page"} <= params_read(by_name["dashboard:tasks"], "")
    assert {"mde"} <= params_read(by_name["experiments:detail"], "")
    assert {"metric", "curve", "compare"} <= params_read(by_name["evaluation:run"], "")
    assert {"q", "kind"} <= params_read(by_name["recs:lookup"], "")
    html = '<form method="get"><input name="brand"><select name="active"></select></form>'
    assert {"brand", "active"} <= params_read(by_name["dashboard:catalog"], html)


def test_the_fuzz_findings_stay_fixed(alpha, client):
    """What the fuzz found, one request each (all were 500s or stored, before the fixes)."""
    client.force_login(alpha.merchant)
    s = alpha.store.slug
    exp = alpha.ids["experiment_id"]
    # A variant id that is not a number: ValueError in the lookup.
    for variant in ("abc", "\u00b2", "1e309", "99999999999999999999"):
        assert client.get(f"/s/{s}/experiments/{exp}/promote/", {"variant": variant}).status_code == 404
    # A category or segment id past 64 bits: OverflowError on SQLite.
    huge = "99999999999999999999"
    response = client.post(f"/s/{s}/recommendations/rules/", {"boosted_categories": huge, "confirm": "on"})
    assert response.status_code == 400 and "is not a valid value" in response.content.decode()
    response = client.post(f"/s/{s}/ads/new/", {"name": "n", "categories": huge, "segments": huge})
    assert response.status_code == 200 and "is not a valid value" in response.content.decode()
    # Privacy settings: a window past the column (OverflowError), and absurd ε, budget and clip (stored).
    valid = {"dp_epsilon": "", "dp_budget": "10", "dp_budget_window_days": "30", "min_cell_size": "5"}
    valid["revenue_clip"] = "1000"
    from analytics.models import StoreAnalyticsSettings
    from shop_recs.stores.scoping import unscoped

    for field, value in [
        ("dp_budget_window_days", huge),
        ("revenue_clip", "1e300"),
        ("dp_budget", "1e300"),
        ("dp_epsilon", "1e300"),
    ]:
        response = client.post(f"/s/{s}/insights/privacy/", {**valid, field: value})
        assert response.status_code == 200 and "errorlist" in response.content.decode(), field
    with unscoped():
        row = StoreAnalyticsSettings.objects.filter(store=alpha.store).first()
    assert row is None or (row.revenue_clip <= 1e9 and row.dp_budget <= 1e6 and row.dp_budget_window_days < 2**15)
