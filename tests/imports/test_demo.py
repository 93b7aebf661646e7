from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from shop_recs.activity.models import Customer, Event
from shop_recs.catalog.models import Category, Product
from shop_recs.imports.demo import DemoConfig, load_tastes, seed_demo_store
from shop_recs.stores.models import ApiKey, Membership, Role, Store
from shop_recs.stores.scoping import store_scope

SMALL = {"customers": 50, "products": 100, "events": 3_000, "end_date": date(2026, 6, 30)}


def _snapshot(store: Store) -> dict:
    with store_scope(store):
        return {
            "products": list(
                Product.objects.order_by("sku").values_list("sku", "title", "brand", "price", "category__path", "tags")
            ),
            "customers": list(
                Customer.objects.order_by("external_id").values_list(
                    "external_id", "country", "age_band", "gender", "signup_date"
                )
            ),
            "events": sorted(
                Event.objects.values_list(
                    "customer__external_id",
                    "session_id",
                    "event_type",
                    "product__sku",
                    "value",
                    "quantity",
                    "order_id",
                    "query",
                    "timestamp",
                ),
                key=repr,
            ),
        }


def test_same_seed_same_data_and_different_seed_differs(make_store):
    a, b, c = make_store("A", slug="a"), make_store("B", slug="b"), make_store("C", slug="c")
    seed_demo_store(a, DemoConfig(seed=7, **SMALL))
    seed_demo_store(b, DemoConfig(seed=7, **SMALL))
    seed_demo_store(c, DemoConfig(seed=8, **SMALL))
    snap_a, snap_b = _snapshot(a), _snapshot(b)
    assert snap_a == snap_b
    assert len(snap_a["products"]) == 100 and len(snap_a["customers"]) == 50 and len(snap_a["events"]) == 3_000
    assert _snapshot(c)["events"] != snap_a["events"]
    assert load_tastes("a")["customers"] == load_tastes("b")["customers"]


def test_demo_data_is_believable_and_shows_the_hidden_taste(store):
    result = seed_demo_store(
        store, DemoConfig(seed=3, customers=200, products=300, events=20_000, end_date=date(2026, 6, 30))
    )
    assert result.events == 20_000
    tastes = load_tastes(store.slug)["customers"]
    with store_scope(store):
        assert Category.objects.filter(parent__isnull=True).count() == 8
        assert Category.objects.filter(parent__isnull=False).count() == 40
        titles = list(Product.objects.values_list("title", flat=True))
        assert len(set(titles)) == len(titles)
        counts = Counter(Event.objects.values_list("event_type", flat=True))
        # A funnel: many views, fewer carts, fewer purchases; searches, removals and ratings exist.
        assert counts["view"] > counts["add_to_cart"] > counts["purchase"] > counts["rating"] > 0
        assert counts["search"] > 0 and counts["remove_from_cart"] > 0
        assert 0.04 < counts["add_to_cart"] / counts["view"] < 0.25
        purchases = list(
            Event.objects.filter(event_type="purchase", customer__isnull=False).values_list(
                "customer__external_id", "product__category__path", "product__brand"
            )
        )
        assert Event.objects.filter(event_type="search").exclude(query="").count() == counts["search"]
    in_favourite = sum(path in tastes[c]["favourite_categories"] for c, path, _ in purchases) / len(purchases)
    favourite_brand = sum(brand in tastes[c]["favourite_brands"] for c, _, brand in purchases) / len(purchases)
    # 2-3 favourites out of 40 categories would be ~6 % by chance.
    assert in_favourite > 0.7
    assert favourite_brand > 0.3


def test_seed_demo_command_refuses_to_seed_twice_without_reset(db, capsys):
    args = ["--store", "tiny", "--customers", "20", "--products", "80", "--events", "500", "--no-progress"]
    call_command("seed_demo", *args)
    assert "Seeded 'tiny'" in capsys.readouterr().out
    with pytest.raises(CommandError, match="--reset"):
        call_command("seed_demo", *args)
    call_command("seed_demo", *args, "--reset")
    store = Store.objects.get(slug="tiny")
    with store_scope(store):
        assert Product.objects.count() == 80 and Customer.objects.count() == 20 and Event.objects.count() == 500


def test_setup_demo_is_idempotent(db, capsys):
    args = ["--customers", "40", "--products", "100", "--events", "2000", "--no-train", "--no-progress"]
    call_command("setup_demo", *args)
    out = capsys.readouterr().out
    assert "API key for 'demo'" in out and "sr_" in out
    assert "demo / demo-shop-123" in out and "http://127.0.0.1:8000/" in out

    def counts():
        demo = Store.objects.get(slug="demo")
        with store_scope(demo):
            data = (Product.objects.count(), Customer.objects.count(), Event.objects.count())
        return (
            Store.objects.count(),
            get_user_model().objects.count(),
            Membership.objects.count(),
            ApiKey.objects.count(),
            data,
        )

    before = counts()
    call_command("setup_demo", *args)
    out = capsys.readouterr().out
    assert "already has data" in out and "sr_" not in out.split("already exists")[0].split("API key")[-1]
    assert counts() == before
    assert before[0] == 2 and before[4] == (100, 40, 2000)
    user_model = get_user_model()
    demo_user = user_model.objects.get(username="demo")
    assert demo_user.check_password("demo-shop-123")
    assert user_model.objects.get(username="analyst").check_password("analyst-123")
    roles = {(m.user.username, m.store.slug): m.role for m in Membership.objects.select_related("user", "store")}
    assert roles == {
        ("demo", "demo"): Role.MERCHANT,
        ("demo", "demo-outlet"): Role.MERCHANT,
        ("analyst", "demo"): Role.ANALYST,
    }


def test_setup_demo_lands_on_the_main_store_and_prints_an_admin_login(db, client, capsys, settings):
    settings.DEBUG = True  # a developer's machine: the documented demo passwords
    # A database set up before: its second store still has the old name, which sorted first.
    Store.objects.create(slug="demo-outlet", name="Demo Outlet", currency="EUR")
    args = ["--customers", "20", "--products", "60", "--events", "500", "--no-train", "--no-progress"]
    call_command("setup_demo", *args)
    out = capsys.readouterr().out
    assert "admin / admin-demo-123" in out and "/admin/" in out
    assert Store.objects.get(slug="demo-outlet").name == "Outlet"
    client.force_login(get_user_model().objects.get(username="demo"))
    assert client.get(reverse("dashboard:home")).url == reverse("dashboard:overview", kwargs={"store_slug": "demo"})
    assert client.get("/admin/").status_code == 302  # the merchant is not staff: the admin refuses them
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("admin-demo-123")
    client.force_login(admin)
    assert client.get("/admin/").status_code == 200
