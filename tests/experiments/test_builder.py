"""The experiment builder (issue 14): variants chosen with selects, rule overrides as form controls,
a split that must total 100 %, errors that name the variant and the field, merchants only, and the
power estimate from the placement's recent traffic."""

from __future__ import annotations

import itertools
import math
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics.experiments import power, services
from analytics.experiments.models import Attribution
from shop_recs.serving.models import (
    ChangeKind,
    Experiment,
    ExperimentStatus,
    Placement,
    RecommendationList,
    ShopperFacingChange,
)
from shop_recs.stores.scoping import store_scope, unscoped
from shop_recs.training.models import ModelVersion


def _version(store, algorithm, ndcg=None, active=False):
    with unscoped():
        return ModelVersion.objects.create(
            store=store,
            algorithm=algorithm,
            artifact_path=f"{store.slug}/{algorithm}-{uuid.uuid4().hex[:6]}.npz",
            checksum="0" * 64,
            metrics={"ndcg@10": ndcg} if ndcg is not None else {},
            is_active=active,
        )


@pytest.fixture
def home(store):
    with unscoped():
        return Placement.objects.create(store=store, key="home", name="Home page")


@pytest.fixture
def models(store, other_store):
    return {
        "knn": _version(store, "item_knn", 0.1234, active=True),
        "pop": _version(store, "popularity", 0.0871),
        "foreign": _version(other_store, "item_knn", 0.5),
    }


def _url(store, name="create"):
    return reverse(f"experiments:{name}", kwargs={"store_slug": store.slug})


def _post(variants, **details):
    """The builder's POST: ``variants`` is a list of dicts of variant fields (blank forms fill up to 4)."""
    data = {
        "name": "knn vs popularity",
        "placement": "home",
        "description": "Personal beats popular",
        "metric": "ctr",
        "mde_percent": "10",
        "alpha": "0.05",
        "power": "0.8",
        "variants-TOTAL_FORMS": str(max(4, len(variants))),
        "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "2",
        "variants-MAX_NUM_FORMS": "4",
        **details,
    }
    for i, v in enumerate(variants):
        for key, value in v.items():
            data[f"variants-{i}-{key}"] = value
    return data


def _two(models, **b_extra):
    return [
        {"name": "Control", "kind": "model_version", "model_version": str(models["knn"].pk), "traffic": "50"},
        {
            "name": "Popular",
            "kind": "model_version",
            "model_version": str(models["pop"].pk),
            "traffic": "50",
            **b_extra,
        },
    ]


def _count(store):
    with store_scope(store):
        return Experiment.objects.count()


def test_the_builder_offers_selects_of_this_stores_versions_and_placements(client, merchant, store, home, models):
    client.force_login(merchant)
    page = client.get(_url(store))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<select name="variants-0-model_version"' in html
    assert '<select name="variants-0-kind"' in html
    assert '<select name="placement"' in html and 'value="home"' in html
    created = models["knn"].created_at.date().isoformat()
    assert f"v{models['knn'].pk} · item_knn · {created} · NDCG@10 0.123 · live" in html
    assert f"v{models['pop'].pk} · popularity" in html
    assert f'value="{models["foreign"].pk}"' not in html
    assert 'id="control-badge"' in html
    assert "JSON" not in html  # no free-text JSON rules any more
    assert 'id="power-none"' in html  # no traffic yet on "home"
    assert "Not enough traffic yet to estimate" in html


def test_a_valid_experiment_is_created_as_a_draft_with_its_overrides(
    client, merchant, store, home, models, make_product
):
    pin = make_product(store, "PIN-1")
    client.force_login(merchant)
    data = _post(_two(models, diversity="0.3", exclude_purchased="off", pinned="PIN-1", boost_weight=""))
    response = client.post(_url(store), data)
    assert response.status_code == 302
    with store_scope(store):
        exp = Experiment.objects.get()
        control, popular = exp.variants.order_by("position")
    assert response["Location"].endswith(f"/experiments/{exp.pk}/")
    assert (exp.status, exp.placement, exp.name, exp.created_by_id) == (
        ExperimentStatus.DRAFT,
        "home",
        "knn vs popularity",
        merchant.pk,
    )
    assert (control.name, control.kind, control.model_version_id, control.traffic) == (
        "Control",
        "model_version",
        models["knn"].pk,
        50,
    )
    assert control.rule_overrides == {}
    assert popular.model_version_id == models["pop"].pk and popular.position == 1
    assert popular.rule_overrides == {"diversity": 0.3, "exclude_purchased": False, "pinned": [pin.pk]}


def test_three_variants_and_an_algorithm_variant(client, merchant, store, home, models):
    with unscoped():
        ModelVersion.objects.filter(pk__in=[models["knn"].pk, models["pop"].pk]).update(run=None)
    client.force_login(merchant)
    variants = [
        {"name": "Control", "kind": "rules", "traffic": "40"},
        {"name": "Pop", "kind": "model_version", "model_version": str(models["pop"].pk), "traffic": "30"},
        {"name": "Algo", "kind": "algorithm", "algorithm": "item_knn", "traffic": "30"},
    ]
    assert client.post(_url(store), _post(variants)).status_code == 302
    with store_scope(store):
        got = list(Experiment.objects.get().variants.order_by("position").values_list("name", "kind", "algorithm"))
    assert got == [("Control", "rules", ""), ("Pop", "model_version", ""), ("Algo", "algorithm", "item_knn")]


def test_errors_name_the_variant_and_the_field(client, merchant, store, home, models):
    client.force_login(merchant)
    variants = _two(models)
    variants[1]["model_version"] = ""
    variants[1]["diversity"] = "1.5"
    variants[0]["traffic"] = ""
    response = client.post(_url(store), _post(variants))
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="builder-errors"' in html
    assert "Variant 2 (Popular) · Model version: Choose the model version this variant serves." in html
    assert "Variant 2 (Popular) · Diversity: Ensure this value is less than or equal to 1.0." in html
    assert "Variant 1 (Control) · Traffic (%): This field is required." in html
    assert 'data-field-error="variants-1-model_version"' in html
    assert 'data-field-error="variants-0-traffic"' in html
    assert _count(store) == 0


def test_an_unknown_sku_and_a_duplicate_name_are_named(client, merchant, store, home, models):
    client.force_login(merchant)
    variants = _two(models, pinned="NOPE-9")
    variants[1]["name"] = "control"
    html = client.post(_url(store), _post(variants)).content.decode()
    assert "Variant 2 (control) · Pinned products: Unknown SKUs: NOPE-9" in html
    assert "Variant 2 (control) · Variant name: Variant 1 already has this name; names must differ." in html
    assert _count(store) == 0


@pytest.mark.parametrize("shares,total", [(("60", "30"), 90), (("70", "50"), 120)])
def test_the_split_must_total_100(client, merchant, store, home, models, shares, total):
    client.force_login(merchant)
    variants = _two(models)
    variants[0]["traffic"], variants[1]["traffic"] = shares
    response = client.post(_url(store), _post(variants))
    assert response.status_code == 400
    assert f"The traffic split sums to {total} %; it must total 100 %." in response.content.decode()
    assert _count(store) == 0


def test_one_variant_or_five_are_refused(client, merchant, store, home, models):
    client.force_login(merchant)
    one = _post([{"name": "Only", "kind": "model_version", "model_version": str(models["knn"].pk), "traffic": "100"}])
    response = client.post(_url(store), one)
    assert response.status_code == 400
    assert "Variant 2 · Variant name: This field is required." in response.content.decode()
    five = _post([{"name": f"V{i}", "kind": "rules", "traffic": "20"} for i in range(5)])
    response = client.post(_url(store), five)
    assert response.status_code == 400
    assert "Please submit at most 4 forms." in response.content.decode()
    assert _count(store) == 0


def test_a_version_of_another_store_is_refused(client, merchant, store, home, models):
    client.force_login(merchant)
    variants = _two(models)
    variants[1]["model_version"] = str(models["foreign"].pk)
    response = client.post(_url(store), _post(variants))
    assert response.status_code == 400
    assert (
        "Variant 2 (Popular) · Model version: That model version is not one of this store&#x27;s usable versions."
        in response.content.decode()
    )
    assert _count(store) == 0
    # The service refuses it too, whoever calls it.
    forged = [
        {"name": "a", "kind": "model_version", "model_version_id": models["knn"].pk, "traffic": 50},
        {"name": "b", "kind": "model_version", "model_version_id": models["foreign"].pk, "traffic": 50},
    ]
    with pytest.raises(services.ExperimentError, match="Variant b: model version .* not a usable version"):
        services.create_experiment(store, name="x", placement="home", variants=forged)
    assert _count(store) == 0


def test_an_unknown_placement_is_refused(client, merchant, store, home, models):
    client.force_login(merchant)
    response = client.post(_url(store), _post(_two(models), placement="checkout"))
    assert response.status_code == 400
    assert (
        "Placement: Select a valid choice. checkout is not one of the available choices." in response.content.decode()
    )


def test_analysts_cannot_build_experiments(client, analyst, store, home, models):
    client.force_login(analyst)
    assert client.get(_url(store)).status_code == 403
    assert client.post(_url(store), _post(_two(models))).status_code == 403
    assert _count(store) == 0
    index = client.get(_url(store, "index")).content.decode()
    assert 'id="new-experiment"' not in index


_EVENT_IDS = itertools.count(1)


def _traffic(store, *, lists, items, clicks, purchases, placement="home", age=timedelta(days=1)):
    """``lists`` served lists of ``items`` products on ``placement``; the first ``clicks`` lists got a
    click and the first ``purchases`` a purchase (attribution rows as the task writes them)."""
    when = timezone.now() - age
    rows, attributed = [], []
    for i in range(lists):
        list_id = uuid.uuid4()
        rows.append(
            RecommendationList(
                store=store,
                list_id=list_id,
                endpoint="customer",
                placement=placement,
                product_ids=list(range(1, items + 1)),
                created_at=when,
            )
        )
        for kind, n in (("click", clicks), ("purchase", purchases)):
            if i < n:
                attributed.append(
                    Attribution(
                        store=store,
                        event_id=next(_EVENT_IDS),
                        event_type=kind,
                        list_id=list_id,
                        list_created_at=when,
                        timestamp=when,
                        product_id=1,
                        placement=placement,
                    )
                )
    with unscoped():
        RecommendationList.objects.bulk_create(rows)
        Attribution.objects.bulk_create(attributed)


def test_the_power_estimate_uses_the_placements_recent_traffic(client, analyst, store, home):
    # 28 days ago the placement had already been serving: 400 lists × 5 items over the window.
    _traffic(store, lists=400, items=5, clicks=100, purchases=20, age=timedelta(days=27, hours=23))
    _traffic(store, lists=10, items=5, clicks=0, purchases=0, placement="pdp")  # another placement
    _traffic(store, lists=10, items=5, clicks=10, purchases=0, age=timedelta(days=40))  # too old
    client.force_login(analyst)  # reading the estimate is analysis: analysts may
    params = {"placement": "home", "metric": "ctr", "mde_percent": "20", "alpha": "0.05", "power": "0.8"}
    page = client.get(_url(store, "power"), {**params, "shares": "50,50"})
    assert page.status_code == 200
    html = page.content.decode()
    expected = power.estimate(100 / 2000, 2000 / 28, [50, 50], 0.2)
    assert f'data-per-variant="{expected.per_variant}"' in html
    assert f"About {expected.days} days at current traffic" in html
    assert expected.days == math.ceil(expected.total / (2000 / 28))
    buys = client.get(_url(store, "power"), {**params, "metric": "purchase_rate", "shares": "50,50"}).content.decode()
    # A variant just added has no share yet: no estimate, and the panel says why (not an error).
    partial = client.get(_url(store, "power"), {**params, "shares": "50,0"})
    assert partial.status_code == 200
    assert "Give every variant a traffic share to estimate the duration." in partial.content.decode()
    assert f'data-per-variant="{power.estimate(20 / 2000, 2000 / 28, [50, 50], 0.2).per_variant}"' in buys


def test_no_traffic_and_bad_inputs(client, merchant, store, home):
    client.force_login(merchant)
    base = {
        "placement": "home",
        "metric": "ctr",
        "mde_percent": "10",
        "alpha": "0.05",
        "power": "0.8",
        "shares": "50,50",
    }
    page = client.get(_url(store, "power"), base).content.decode()
    assert "Not enough traffic yet to estimate" in page
    _traffic(store, lists=50, items=4, clicks=0, purchases=0)
    page = client.get(_url(store, "power"), base).content.decode()
    assert "no clicks on this placement in the last 28 days" in page
    bad = client.get(_url(store, "power"), {**base, "mde_percent": "0", "power": "1.2"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "Minimum detectable effect (relative, %): Ensure this value is greater than or equal to 0.5." in text
    assert "Power: Ensure this value is less than or equal to 0.99." in text
    split = client.get(_url(store, "power"), {**base, "shares": "100"})
    assert split.status_code == 400 and "Traffic (%): give 2 to 4 shares" in split.content.decode()


def test_build_then_start_with_the_confirmation_is_recorded(client, merchant, store, home, models):
    _traffic(store, lists=300, items=5, clicks=60, purchases=5, age=timedelta(days=10))
    client.force_login(merchant)
    detail = client.post(_url(store), _post(_two(models)), follow=True)
    html = detail.content.decode()
    assert 'id="start-panel"' in html and 'id="power-days"' in html and 'id="start-experiment"' in html
    with store_scope(store):
        exp = Experiment.objects.get()
    start = reverse("experiments:start", kwargs={"store_slug": store.slug, "experiment_id": exp.pk})
    assert client.post(start).status_code == 302  # no confirmation ticked
    with store_scope(store):
        assert Experiment.objects.get().status == ExperimentStatus.DRAFT
    assert client.post(start, {"confirm": "yes"}).status_code == 302
    with store_scope(store):
        assert Experiment.objects.get().status == ExperimentStatus.RUNNING
        change = ShopperFacingChange.objects.get(kind=ChangeKind.EXPERIMENT)
    assert change.object_id == exp.pk and "draft → running" in change.summary and change.user_id == merchant.pk


HOSTILE = ("-1", "1e309", "NaN", "\x00", "x" * 5000, "\u00b2", "")


def _may_pass(field: str, value: str) -> bool:
    """Whether ``value`` is a legitimate value of the builder's ``field`` (the others must be refused)."""
    if field in ("name",):  # free text: anything short and printable
        return value not in ("", "\x00", "x" * 5000)
    if field in ("description", "algorithm", "boost_weight", "diversity", "pinned", "exclude_purchased"):
        return value == ""  # optional: blank is "unchanged"
    if field in ("mde_percent", "alpha", "power", "metric"):
        return value == ""
    return False


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_refused_with_an_error_never_a_crash(client, merchant, store, home, models, value):
    client.force_login(merchant)
    variant_fields = ["name", "kind", "model_version", "algorithm", "traffic", "boost_weight", "diversity", "pinned"]
    for field in variant_fields + ["exclude_purchased", "boosted_categories"]:
        variants = _two(models)
        variants[1][field] = value
        response = client.post(_url(store), _post(variants))
        assert response.status_code == (302 if _may_pass(field, value) else 400), (field, value)
    for field in ("name", "placement", "mde_percent", "alpha", "power", "metric"):
        response = client.post(_url(store), _post(_two(models), **{field: value}))
        assert response.status_code == (302 if _may_pass(field, value) else 400), (field, value)
    for param in ("placement", "metric", "mde_percent", "alpha", "power", "shares"):
        assert client.get(_url(store, "power"), {param: value}).status_code in (200, 400), param
    with store_scope(store):
        exp = Experiment.objects.first()
    if exp is not None:
        detail = reverse("experiments:detail", kwargs={"store_slug": store.slug, "experiment_id": exp.pk})
        assert client.get(detail, {"mde": value}).status_code == 200
