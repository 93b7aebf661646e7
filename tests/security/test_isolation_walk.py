"""Issue 12: store isolation proven over *every* URL of the API and the dashboard, not a sample.

The URLs are found by walking the URL resolver (``conftest.all_routes``), so an endpoint added later
is walked without anyone listing it; a pattern that is neither walked nor in ``EXCLUDED`` (each entry
says why) fails ``test_every_url_pattern_is_walked_or_excluded``. Two tenants, "alpha" (the caller)
and "beta" (the victim), each hold a row of every kind a URL can name, marked with strings only they
contain (``conftest.build_world``). URL parameters are filled with beta's ids, slugs and skus, and:

* the API is called with alpha's key in both header forms the API accepts (``Authorization: Bearer``
  and ``X-Api-Key``), with alpha's revoked key and with no key, for every method the view defines;
  beta's own key on the same URLs is the positive control (it must succeed where alpha's got 404, so
  the walk provably reached real views and real rows);
* every dashboard URL is called with every method by an alpha merchant and an alpha analyst (404:
  the existence of another store is not revealed), anonymously (sent to the login page), and by
  beta's merchant as the positive control;
* every merchant-only action (found by introspecting ``store_view(merchant_only=True)`` and the
  views that call ``require_merchant``) is POSTed by alpha's analyst on alpha's own rows: 403, and
  not one row of alpha changes; alpha's merchant sending the same requests is not refused.

No response may hold a beta marker, be a 500 or show a traceback, and afterwards every row of every
store-owned table of beta is exactly as before.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.security.conftest import Route, World, all_routes, snapshot, snapshot_diff
from tests.security.forms_html import parse_forms

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
TRACEBACK = "Traceback (most recent call last)"

#: URL patterns the walk does not call, each with the reason. Matched by qualified name, or by
#: namespace prefix when the entry ends with ":".
EXCLUDED = {
    # Django's admin: ~240 generated patterns; its tenant isolation is walked model by model in
    # tests/dashboard/test_admin_walk.py (changelists and add forms as staff merchant and analyst).
    "admin:": "walked by tests/dashboard/test_admin_walk.py",
    # Process probes: no store, no tenant data (status of the database/Redis/broker only).
    "healthz": "liveness probe, no tenant data",
    "readyz": "readiness probe, no tenant data",
    # Prometheus scrape endpoint for the operator: no store label by design (shop_recs/platform/metrics.py).
    "metrics": "operator's Prometheus endpoint, no store in any label",
    # Authentication and language switch: no store in the URL and nothing of a tenant on the page.
    "login": "Django's login form",
    "logout": "Django's logout",
    "set_language": "Django's language switch (sets a cookie)",
    # The OpenAPI schema and its two viewers: static documentation generated from the code.
    "schema": "OpenAPI schema, static",
    "api-docs": "Swagger UI over the static schema",
    "api-redoc": "ReDoc over the static schema",
    # The invitation link: no store in the URL; whoever holds its one-time token may join the store
    # that sent it (by design); the token's checks are tested with the invitations feature.
    "accept_invitation": "token-holder joins the inviting store by design; no store parameter",
    # No store in the URL: redirects to the user's *own* first store (test_isolation.py covers it).
    "dashboard:home": "redirects to the caller's own store; tests/dashboard/test_isolation.py",
}

#: Which of a world's ids fills a URL parameter. ``run_id`` names a different model per namespace.
PARAM_IDS = {
    "store_slug": "store_slug",
    "sku": "sku",
    "external_id": "external_id",
    "key_id": "key_id",
    "membership_id": "membership_id",
    "invitation_id": "invitation_id",
    "version_id": "version_id",
    "job_id": "job_id",
    "segment_id": "segment_id",
    "campaign_id": "campaign_id",
    "eval_run_id": "eval_run_id",
    "tuning_job_id": "tuning_job_id",
    "experiment_id": "experiment_id",
    "placement_id": "placement_id",
    "impression_id": "impression_id",
}
RUN_ID = {"recommend:run_status": "training_run_id", "analytics:run_status": "profile_run_id"}

#: API writes that create or replace rows *in the caller's own store* by the identifiers they carry
#: (an upsert of beta's sku by alpha makes an alpha product, never touches beta's). Called last, and
#: their answer may be a success: isolation there means beta unchanged and nothing of beta shown.
OWN_STORE_WRITES = {
    ("api-product-detail", "put"),
    ("api-customer-detail", "put"),
    ("api-product-bulk", "post"),
    ("api-customer-bulk", "post"),
    ("api-event", "post"),
    ("api-event-batch", "post"),
}
#: Documented to answer an unknown id with store-wide results instead of a 404 (docs/api.md: "Unknown
#: customer or no history: trending"): for alpha, beta's customer id is just a new visitor of alpha.
UNKNOWN_ID_IS_COLD_START = {("api-recs-customer", "get")}


def is_excluded(route: Route) -> bool:
    return any(route.name.startswith(e) if e.endswith(":") else route.name == e for e in EXCLUDED)


def walked_routes() -> list[Route]:
    return [r for r in all_routes() if (r.is_api or r.is_store_page) and not is_excluded(r)]


def kwargs_for(route: Route, world: World) -> dict[str, Any]:
    out = {}
    for param in route.params:
        key = RUN_ID.get(route.name) if param == "run_id" else PARAM_IDS.get(param)
        assert key, f"{route.name}: no value for URL parameter {param!r}; add it to PARAM_IDS/RUN_ID"
        out[param] = world.ids[key]
    return out


def url_for(route: Route, world: World) -> str:
    return reverse(route.name, kwargs=kwargs_for(route, world))


def api_methods(route: Route) -> list[str]:
    cls = route.view_class
    assert cls is not None, f"{route.name}: an API route that is not a class-based view"
    return [m for m in METHODS if hasattr(cls, m)]


def api_query(route: Route, method: str, w: World) -> dict[str, Any]:
    """Query parameters naming ``w``'s rows (the view reads them to pick what to answer)."""
    return {
        "api-search": {"q": "secret", "customer": w.ids["external_id"]},
        "api-ads": {"customer": w.ids["external_id"], "slot": "home", "n": 5},
        "api-popular": {"n": 50},
        "api-trending": {"n": 50},
        "api-product-list": {"q": "secret"},
        "api-customer-events": {"ids": str(w.ids["event_id"])} if method == "delete" else {},
    }.get(route.name, {})


def api_body(route: Route, w: World) -> Any:
    """The body of a write naming ``w``'s rows; titles are the caller's own (never a beta secret)."""
    ts = datetime.now(UTC).isoformat()
    event = {"customer": w.ids["external_id"], "type": "view", "sku": w.ids["sku"], "timestamp": ts}
    return {
        "api-recs-session": {"viewed": [w.ids["sku"]], "customer": w.ids["external_id"], "n": 10},
        "api-event": event,
        "api-event-batch": [event],
        "api-customer-merge": {"from": w.ids["buyer"]},
        "api-product-bulk": [{"sku": w.ids["sku"], "title": "overwritten by the caller", "price": "1.00"}],
        "api-customer-bulk": [{"external_id": w.ids["external_id"], "country": "US"}],
        "api-product-detail": {"title": "overwritten by the caller", "price": "1.00"},
        "api-customer-detail": {"country": "US"},
    }.get(route.name, {})


@dataclass
class Probe:
    """One request of the walk and what it got."""

    who: str
    method: str
    url: str
    status: int
    body: str
    sent: str  # the URL and body as sent: markers the caller itself supplied are no leak
    location: str = ""


class Walk:
    """Sends probes, checks the rules every answer must keep, and counts them."""

    def __init__(self, victim: World):
        self.victim = victim
        self.probes: list[Probe] = []
        self.problems: list[str] = []

    def call(
        self, client: Client, who: str, method: str, url: str, *, query=None, data=None, json_body=None, **headers
    ) -> Probe:
        full = f"{url}?{urlencode(query, doseq=True)}" if query else url
        for value in (data or {}).values():
            if hasattr(value, "seek"):
                value.seek(0)  # an upload sent again (the analyst's, then the merchant's)
        if json_body is not None:
            payload = json.dumps(json_body)
            response = client.generic(method.upper(), full, payload, content_type="application/json", **headers)
            sent = full + payload
        elif method == "get":
            response = client.get(full, **headers)
            sent = full
        elif method == "post":
            response = client.post(full, data or {}, **headers)
            sent = full + repr(data)
        else:
            response = client.generic(method.upper(), full, urlencode(data or {}, doseq=True), **headers)
            sent = full + repr(data)
        body = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
        probe = Probe(who, method, full, response.status_code, body, sent, response.get("Location", ""))
        self.probes.append(probe)
        if probe.status >= 500:
            self.problems.append(f"{who} {method.upper()} {full}: {probe.status}")
        if TRACEBACK in body:
            self.problems.append(f"{who} {method.upper()} {full}: a traceback in the body")
        return probe

    def leaks(self, probe: Probe, *, identifiers: bool) -> list[str]:
        """Victim markers in the answer that the request did not carry itself."""
        markers: Iterable[str] = (*self.victim.secrets, self.victim.store.name)
        if identifiers:
            markers = (*markers, *self.victim.identifiers)
        return [m for m in markers if m in probe.body and m not in probe.sent]

    def expect(self, probe: Probe, allowed: set[int], *, identifiers: bool = True) -> None:
        if probe.status not in allowed:
            self.problems.append(
                f"{probe.who} {probe.method.upper()} {probe.url}: {probe.status}, expected one of {sorted(allowed)}"
            )
        if found := self.leaks(probe, identifiers=identifiers):
            self.problems.append(f"{probe.who} {probe.method.upper()} {probe.url}: beta markers {found}")


def api_client(raw: str | None, form: str) -> tuple[Client, dict[str, str]]:
    if raw is None:
        return Client(), {}
    header = {"bearer": {"HTTP_AUTHORIZATION": f"Bearer {raw}"}, "x-api-key": {"HTTP_X_API_KEY": raw}}[form]
    return Client(), header


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- the inventory -----------------------------------------------------------------------------------


def test_every_url_pattern_is_walked_or_excluded():
    routes = all_routes()
    walked = {r.name for r in walked_routes()}
    orphans = sorted(r.name for r in routes if r.name not in walked and not is_excluded(r))
    assert not orphans, f"URL patterns neither walked nor in EXCLUDED (with a reason): {orphans}"
    # No stale exclusions: each entry still matches a pattern.
    stale = [e for e in EXCLUDED if not any(is_excluded(r) and (r.name == e or r.name.startswith(e)) for r in routes)]
    assert not stale, f"EXCLUDED entries that match no URL pattern any more: {stale}"
    # The walk is the whole API and every store page, not a sample.
    api = [r for r in routes if r.is_api]
    assert len(api) >= 19 and all(r.name in walked for r in api)
    assert len([r for r in routes if r.is_store_page]) >= 59


# --- API ------------------------------------------------------------------------------------------


def _api_phases(routes: list[Route]) -> list[tuple[Route, str]]:
    """Reads first, then actions on named rows, then the caller's own-store writes (which may create
    rows named like beta's in alpha: called last so they cannot turn an earlier 404 into a 200)."""
    calls = [(r, m) for r in routes for m in api_methods(r)]
    return sorted(calls, key=lambda c: (c[1] != "get", (c[0].name, c[1]) in OWN_STORE_WRITES))


def test_api_isolation_walk(alpha, beta):
    routes = [r for r in walked_routes() if r.is_api]
    walk = Walk(beta)
    before = snapshot(beta.store)
    alpha_not_found: set[tuple[str, str]] = set()
    callers = [
        ("alpha-bearer", alpha.raw_key, "bearer"),
        ("alpha-x-api-key", alpha.raw_key, "x-api-key"),
        ("alpha-revoked", alpha.revoked_raw_key, "bearer"),
        ("alpha-revoked-x-api-key", alpha.revoked_raw_key, "x-api-key"),
        ("anonymous", None, ""),
    ]
    for route, method in _api_phases(routes):
        url = url_for(route, beta)
        names_a_row = bool(set(route.params) - {"store_slug"})
        own_write = (route.name, method) in OWN_STORE_WRITES
        for who, raw, form in callers:
            client, headers = api_client(raw, form)
            body = api_body(route, beta) if method in ("post", "put", "patch") else None
            probe = walk.call(client, who, method, url, query=api_query(route, method, beta), json_body=body, **headers)
            if raw is None or raw == alpha.revoked_raw_key:
                walk.expect(probe, {401})
            elif own_write:
                # Written into alpha's own store (or refused as invalid): never a beta row.
                walk.expect(probe, {200, 201, 400, 422}, identifiers=False)
            elif (route.name, method) in UNKNOWN_ID_IS_COLD_START:
                walk.expect(probe, {200})
            elif names_a_row:
                # Until the own-store writes (called last) alpha holds nothing named like beta's
                # rows, so beta's skus and customer ids must not appear either (unless sent).
                walk.expect(probe, {404})
                alpha_not_found.add((route.name, method))
            else:
                # Store-wide reads and actions answer for alpha's own store.
                walk.expect(probe, {200, 201, 400})
    assert not walk.problems, "\n".join(walk.problems)
    assert not snapshot_diff(before, snapshot(beta.store)), snapshot_diff(before, snapshot(beta.store))

    # Positive control: beta's key on the same URLs reaches the rows alpha could not see.
    control = Walk(alpha)  # beta's answers must not hold alpha's markers either
    ordered = sorted(
        (c for c in _api_phases(routes) if (c[0].name, c[1]) not in OWN_STORE_WRITES),
        # Actions before deletions, and a customer's events before the customer.
        key=lambda c: (c[1] != "get", c[1] == "delete", -len(c[0].route)),
    )
    shown = set()
    for route, method in ordered:
        client, headers = api_client(beta.raw_key, "bearer")
        body = api_body(route, beta) if method in ("post", "put", "patch") else None
        probe = control.call(
            client,
            "beta",
            method,
            url_for(route, beta),
            query=api_query(route, method, beta),
            json_body=body,
            **headers,
        )
        control.expect(probe, {200, 201})
        if any(m in probe.body for m in (*beta.secrets, *beta.identifiers)):
            shown.add(route.name)
    assert not control.problems, "\n".join(control.problems)
    # Every URL alpha was refused on names a row beta's key can act on (the 404s were real refusals).
    assert alpha_not_found <= {(r.name, m) for r, m in ordered}
    # And beta's own data was on the read pages the walk checks for leaks.
    expected_shown = {
        "api-product-detail",
        "api-product-list",
        "api-customer-detail",
        "api-customer-events",
        "api-search",
    }
    assert expected_shown <= shown, expected_shown - shown
    total = len(walk.probes) + len(control.probes)
    print(f"\nAPI isolation walk: {len(routes)} routes, {total} probes")
    assert total >= API_PROBE_FLOOR


#: Measured: 19 routes, 138 probes (a route or method dropped from the walk shows up here).
API_PROBE_FLOOR = 130


# --- dashboard ----------------------------------------------------------------------------------


def dashboard_query(route: Route, w: World) -> dict[str, Any]:
    """What the positive control's GET needs to get past "not found" on pages that take a query."""
    return {
        "experiments:promote": {"variant": w.ids["variant_id"]},
        "dashboard:delete_customer_events": {"ids": w.ids["event_id"]},
    }.get(route.name, {})


def test_dashboard_isolation_walk(alpha, beta):
    routes = [r for r in walked_routes() if r.is_store_page]
    walk = Walk(beta)
    before = snapshot(beta.store)
    callers = [("alpha-merchant", logged_in(alpha.merchant)), ("alpha-analyst", logged_in(alpha.analyst))]
    anonymous = Client()
    hostile_post = {
        # What a forged form would carry: beta's ids, a role, a name, a confirmation.
        "role": "merchant",
        "username": alpha.analyst.get_username(),
        "name": "forged",
        "confirm": "yes",
        "confirm_id": beta.ids["external_id"],
        "ids": beta.ids["event_id"],
        "status": "ended",
        "variant": beta.ids["variant_id"],
    }
    for route in routes:
        url = url_for(route, beta)
        for method in METHODS:
            data = hostile_post if method != "get" else None
            for who, client in callers:
                walk.expect(walk.call(client, who, method, url, data=data), {404})
            probe = walk.call(anonymous, "anonymous", method, url, data=data)
            walk.expect(probe, {302})
            if not probe.location.startswith("/accounts/login/"):
                walk.problems.append(f"anonymous {method.upper()} {url}: sent to {probe.location!r}, not the login")
    assert not walk.problems, "\n".join(walk.problems)
    assert not snapshot_diff(before, snapshot(beta.store)), snapshot_diff(before, snapshot(beta.store))

    # Positive control: beta's merchant reaches every one of those pages (GET; a POST-only action
    # answers 405 *after* the membership check, which is past the point alpha was stopped at).
    control = Walk(alpha)
    own = logged_in(beta.merchant)
    shown = set()
    for route in routes:
        probe = control.call(own, "beta-merchant", "get", url_for(route, beta), query=dashboard_query(route, beta))
        control.expect(probe, {200, 302, 405})
        if probe.status == 302 and not probe.location.startswith(f"/s/{beta.store.slug}/"):
            control.problems.append(f"beta-merchant GET {probe.url}: sent out of the store, to {probe.location}")
        if any(m in probe.body for m in beta.secrets):
            shown.add(route.name)
    assert not control.problems, "\n".join(control.problems)
    # The pages that list or show beta's rows did show them to beta: the 404s above were refusals.
    assert len(shown) >= 25, sorted(shown)
    total = len(walk.probes) + len(control.probes)
    print(f"\ndashboard isolation walk: {len(routes)} routes, {total} probes")
    assert total >= DASHBOARD_PROBE_FLOOR


#: Measured: 62 routes, 992 probes.
DASHBOARD_PROBE_FLOOR = 900


# --- merchant-only actions ------------------------------------------------------------------------


def _view_function(callback: Any) -> Any:
    """The function under the decorators (``store_view``, ``require_POST``, ``login_required``)."""
    func = callback
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__
    return func


def _closure(func: Any) -> dict[str, Any]:
    names = getattr(getattr(func, "__code__", None), "co_freevars", ())
    return {n: c.cell_contents for n, c in zip(names, func.__closure__ or (), strict=False)}


#: Views that call ``require_merchant`` only in a state the walk's world does not have, with the
#: test that covers that state instead.
CONDITIONALLY_MERCHANT_ONLY = {
    # Merchant-only while a running campaign targets the segment (its rules decide who sees ads):
    # tests/analytics/test_segment_builder.py::test_a_running_campaign_asks_for_confirmation_and_only_merchants_may_save
    "analytics:segment_edit",
}


def merchant_only_kind(route: Route) -> str | None:
    """``"view"``: the whole view is ``store_view(merchant_only=True)``; ``"post"``: it reads for
    everyone and calls ``require_merchant`` before writing; ``None``: analysts may use it."""
    if route.name in CONDITIONALLY_MERCHANT_ONLY:
        return None
    func = route.callback
    while func is not None:
        if _closure(func).get("merchant_only"):
            return "view"
        func = getattr(func, "__wrapped__", None)
    if "require_merchant(" in inspect.getsource(_view_function(route.callback)):
        return "post"
    return None


#: What alpha's analyst sends to each merchant-only action: a request that would act if the role
#: check were missing (fields of the page's form, filled from alpha's merchant's GET, plus these).
ACTION_DATA = {
    "dashboard:api_keys": {"name": "made by the analyst"},
    "dashboard:members": {"username": "outsider", "role": "merchant"},
    "dashboard:change_member_role": {"role": "merchant"},
    "dashboard:erase_customer": {"confirm_id": "alpha-secret-customer"},
    "dashboard:delete_customer_events": {"confirm": "yes"},
    "recs:rules": {"boost_weight": "3", "confirm": "on"},
    "recs:placements": {"key": "made-by-analyst", "name": "made by the analyst", "confirm": "on"},
    "recs:placement": {"boost_weight": "3", "pinned": "", "confirm": "on"},
    "recs:placement_delete": {"confirm": "on"},
    "recommend:schedule": {
        "schedule-enabled": "on",
        "schedule-daily_hour": "3",
        "schedule-algorithms": "popularity",
    },
    "recommend:activate": {"confirm": "yes", "reason": "analyst"},
    "recommend:rollback": {"confirm": "yes", "reason": "analyst"},
    "analytics:segment_export": {"fields": "monetary"},
    "analytics:privacy": {"min_cell_size": "7"},
    "ads:campaign_new": {
        "name": "analyst campaign",
        "title": "analyst campaign",
        "landing_url": "https://alpha.example/",
        "starts_at": "2024-01-01 00:00",
        "ends_at": "2030-01-01 00:00",
        "budget": "10",
    },
    "ads:campaign_edit": {"name": "renamed by the analyst"},
    "ads:campaign_status": {"status": "ended"},
    "evaluation:settings": {"max_metric_drop": "0.2"},
    "experiments:start": {"confirm": "yes"},
    "experiments:promote": {"confirm": "yes", "promote_anyway": "on"},
}


def _action_data(route: Route, url: str, alpha: World, merchant: Client) -> dict[str, Any]:
    data: dict[str, Any] = {}
    page = merchant.get(url, dashboard_query(route, alpha))
    if page.status_code == 200 and page.get("Content-Type", "").startswith("text/html"):
        for form in parse_forms(page.content.decode()):
            # The page's own form (the base template also has the language switch).
            if form.method == "post" and form.action in ("", url, "."):
                data.update(form.defaults())
                break
    data.pop("csrfmiddlewaretoken", None)
    data.update(ACTION_DATA.get(route.name, {}))
    if route.name == "experiments:promote":
        data["variant"] = alpha.ids["variant_id"]
    if route.name == "dashboard:delete_customer_events":
        data["ids"] = alpha.ids["event_id"]
    if route.name == "imports:index":
        data = {"kind": "catalog", "file": SimpleUploadedFile("c.csv", b"sku,title,price\nNEW-1,New mug,3\n")}
    return data


def test_analysts_cannot_do_what_only_merchants_may(alpha, beta):
    get_user_model().objects.create_user(username="outsider", password="pw-123456!")
    actions = [(r, kind) for r in walked_routes() if r.is_store_page and (kind := merchant_only_kind(r))]
    # Found by introspection; these are known, so a broken discovery cannot pass quietly.
    names = {r.name for r, _ in actions}
    assert {
        "dashboard:revoke_api_key",
        "dashboard:api_keys",
        "dashboard:members",
        "recs:rules",
        "analytics:privacy",
        "ads:campaign_new",
        "experiments:promote",
        "evaluation:settings",
        "imports:index",
    } <= names, names
    merchant = logged_in(alpha.merchant)
    analyst = logged_in(alpha.analyst)
    walk = Walk(beta)
    # Deletions last, so the other actions still find their rows when the merchant sends them.
    destructive = ("delete", "remove", "erase", "revoke")
    actions.sort(key=lambda a: (any(w in a[0].name for w in destructive), a[0].name))
    requests = [(r, kind, url_for(r, alpha)) for r, kind in actions]
    bodies = {r.name: _action_data(r, url, alpha, merchant) for r, _, url in requests}
    before = snapshot(alpha.store)
    for route, kind, url in requests:
        if kind == "view":
            walk.expect(walk.call(analyst, "alpha-analyst", "get", url), {403})
        walk.expect(walk.call(analyst, "alpha-analyst", "post", url, data=bodies[route.name]), {403})
    assert not walk.problems, "\n".join(walk.problems)
    assert not snapshot_diff(before, snapshot(alpha.store)), snapshot_diff(before, snapshot(alpha.store))

    # The same requests from alpha's merchant pass the role check, and most of them act: the
    # analyst's 403s refused real actions (some later ones find their target gone: 404).
    acted = set()
    for route, _kind, url in requests:
        state = snapshot(alpha.store)
        probe = walk.call(merchant, "alpha-merchant", "post", url, data=bodies[route.name])
        walk.expect(probe, {200, 302, 400, 404, 405})
        if snapshot_diff(state, snapshot(alpha.store)):
            acted.add(route.name)
    assert not walk.problems, "\n".join(walk.problems)
    assert len(acted) >= 18, sorted(acted)
    print(f"\nmerchant-only actions: {len(requests)} refused to the analyst; the merchant's acted: {len(acted)}")
