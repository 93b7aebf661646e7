"""Every admin page a store member can open names nothing of another tenant (issue 12 §6).

The walker visits the changelist and the add form of every registered ModelAdmin as a staff merchant
and a staff analyst of "Alpha Shop", with a second store "Beta Shop" whose staff user is
"beta_owner_zq", and fails on either name. Before the fix the plain ``store`` list filters of the
TrainingRun, ModelVersion and SearchQuery changelists listed every store, and the ``created_by`` /
``user`` dropdowns of the add forms listed every user of the installation.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse

from shop_recs.search.models import SearchQuery
from shop_recs.stores.models import Role
from shop_recs.training.models import TrainingRun

FOREIGN = ("Beta Shop", "beta_owner_zq")


def _admin_urls() -> list[str]:
    urls = []
    for model in admin.site._registry:
        opts = model._meta
        for view in ("changelist", "add"):
            try:
                urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}"))
            except NoReverseMatch:
                continue
    return sorted(urls)


@pytest.fixture
def two_tenants(store, other_store, make_user, django_user_model):
    beta = make_user("beta_owner_zq", other_store, Role.MERCHANT, is_staff=True)
    # Rows in the other store for the changelists whose store filter leaked.
    TrainingRun.all_stores.create(store=other_store, algorithms=["popularity"], created_by=beta)
    SearchQuery.all_stores.create(store=other_store, query="beta query", normalized_query="beta query")
    return beta


@pytest.mark.parametrize("role", [Role.MERCHANT, Role.ANALYST])
def test_no_admin_page_names_another_tenant(client, store, make_user, two_tenants, role):
    me = make_user(f"alpha_{role}", store, role, is_staff=True)
    TrainingRun.all_stores.create(store=store, algorithms=["popularity"], created_by=me)
    client.force_login(me)
    leaks = {}
    for url in _admin_urls():
        response = client.get(url)
        assert response.status_code in (200, 302, 403), (url, response.status_code)
        text = response.content.decode()
        found = [name for name in FOREIGN if name in text]
        if found:
            leaks[url] = found
    assert not leaks, f"foreign names on admin pages: {leaks}"
