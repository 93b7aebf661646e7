"""Store isolation in the dashboard: a member of alpha never reaches beta's pages or rows."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from shop_recs.stores import invitations
from shop_recs.stores.models import ApiKey, Invitation, Membership, Role

pytestmark = pytest.mark.django_db

# Sample values for the URL parameters besides the store slug.
SAMPLE_KWARGS = {
    "sku": "B1",
    "external_id": "beta-cust",
    "key_id": 1,
    "membership_id": 1,
    "run_id": 1,
    "version_id": 1,
    "job_id": 1,
    "segment_id": 1,
    "campaign_id": 1,
    "eval_run_id": 1,
    "tuning_job_id": 1,
    "experiment_id": 1,
    "placement_id": 1,
}


def store_url_names() -> list[tuple[str, list[str]]]:
    """Every URL of the site that takes ``store_slug``, in any app: (qualified name, other parameters)."""
    found: list[tuple[str, list[str]]] = []

    def walk(patterns, namespace: str, has_slug: bool) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                slug_here = has_slug or "store_slug" in p.pattern.regex.groupindex
                ns = ":".join(part for part in (namespace, p.namespace) if part)
                walk(p.url_patterns, ns, slug_here)
            elif isinstance(p, URLPattern) and p.name:
                params = list(p.pattern.regex.groupindex)
                if has_slug or "store_slug" in params:
                    found.append((f"{namespace}:{p.name}", [k for k in params if k != "store_slug"]))

    walk(get_resolver().url_patterns, "", False)
    return found


def beta_urls(shop_data, other_store) -> list[str]:
    key = ApiKey.generate(other_store, "beta key")[0]
    membership = Membership.objects.filter(store=other_store).first()
    invitation = invitations.invite(other_store, "beta-invitee@example.com", Role.ANALYST, None).invitation
    kwargs = dict(
        SAMPLE_KWARGS,
        key_id=key.pk,
        membership_id=membership.pk if membership else 999,
        invitation_id=invitation.pk,
    )
    urls = []
    for name, params in store_url_names():
        urls.append(reverse(name, kwargs={"store_slug": "beta", **{p: kwargs[p] for p in params}}))
    return urls


def test_the_url_walk_finds_every_dashboard_page():
    names = {n for n, _ in store_url_names()}
    expected = {
        "overview",
        "catalog",
        "product_detail",
        "customers",
        "customer_detail",
        "api_keys",
        "revoke_api_key",
        "members",
        "change_member_role",
        "remove_member",
    }
    assert {f"dashboard:{n}" for n in expected} <= names
    assert {"recommend:jobs", "recommend:start", "recommend:activate", "imports:index", "imports:detail"} <= names
    assert {"analytics:segments", "search:insights"} <= names


def test_member_of_alpha_gets_404_on_every_beta_url(merchant, other_store, make_user, shop_data, login):
    make_user("beta-owner", other_store)  # so beta has a membership to aim at
    client = login(merchant)
    for url in beta_urls(shop_data, other_store):
        assert client.get(url).status_code == 404, url
        assert client.post(url, {"role": "analyst", "name": "x", "username": "merchant"}).status_code == 404, url
    assert ApiKey.objects.filter(store=other_store, revoked_at__isnull=False).count() == 0
    assert Membership.objects.filter(store=other_store).count() == 1
    assert Invitation.objects.pending().filter(store=other_store).count() == 1
    other_store.refresh_from_db()
    assert other_store.name != "x"


def test_anonymous_user_is_sent_to_login(client, store):
    response = client.get(reverse("dashboard:catalog", kwargs={"store_slug": "alpha"}))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_lists_and_search_never_show_other_stores_rows(merchant, shop_data, login):
    client = login(merchant)
    for url in ("/s/alpha/catalog/", "/s/alpha/catalog/?q=Secret", "/s/alpha/catalog/?q=B1"):
        html = client.get(url).content.decode()
        assert "Secret beta product" not in html and ">B1<" not in html
    for url in ("/s/alpha/customers/", "/s/alpha/customers/?q=beta"):
        assert "beta-cust" not in client.get(url).content.decode()
    assert client.get("/s/alpha/catalog/B1/").status_code == 404
    assert client.get("/s/alpha/customers/beta-cust/").status_code == 404


def test_home_redirects_to_first_store_or_explains(client, merchant, make_user):
    client.force_login(merchant)
    assert client.get("/")["Location"] == "/s/alpha/"
    loner = make_user("loner")
    client.force_login(loner)
    response = client.get("/")
    assert response.status_code == 200
    assert "You don't belong to any store yet" in response.content.decode()


def test_store_switcher_links_to_the_same_page_of_the_other_store(store, other_store, make_user, login, shop_data):
    user = make_user("both", store)
    Membership.objects.create(user=user, store=other_store, role="analyst")
    client = login(user)
    html = client.get("/s/alpha/customers/").content.decode()
    assert 'href="/s/beta/customers/"' in html
    html = client.get("/s/alpha/catalog/A1/").content.decode()
    assert 'href="/s/beta/catalog/"' in html  # a product page falls back to the other store's catalog
