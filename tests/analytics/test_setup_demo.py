"""``manage.py setup_demo`` opens on a populated store: every headline page has something to show.

Issue 11 found the demo's pages mostly empty (one model, no profiles, no campaign traffic, no
experiment, no evaluation, no searches), the demo user landing on the small second store, and no
admin login. One run of the command on a small store must fix each of those, and a second run must
add nothing.
"""

from __future__ import annotations

import re
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from analytics.evaluation.models import EvaluationRun
from analytics.experiments.selectors import experiment_results
from analytics.experiments.simulation import mistype
from analytics.models import CustomerProfile, ProfileRun, Segment
from shop_recs.ads.models import Campaign, CampaignStatus, Impression
from shop_recs.platform.jobs import JobStatus
from shop_recs.recsys import registry
from shop_recs.search.models import SearchQuery
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList
from shop_recs.stores.models import ApiKey, Membership, Role, Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.models import ModelVersion, TrainingRun

# Small enough for a test, large enough that the personal model's CTR edge over popularity is
# significant whatever the experiment's id (it decides who lands in which variant): on this store six
# ids gave p = 7e-8 .. 3e-4, while 500 customers ranged from p = 0.004 to 0.67.
ARGS = ["--customers", "1000", "--products", "600", "--events", "40000", "--requests", "2000", "--no-progress"]


@pytest.fixture
def demo(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_DIR = tmp_path / "models"
    out = StringIO()
    call_command("setup_demo", *ARGS, stdout=out)
    return Store.objects.get(slug="demo"), out.getvalue()


def _counts(store: Store) -> dict[str, int]:
    with store_scope(store):
        return {
            "runs": TrainingRun.objects.count(),
            "versions": ModelVersion.objects.count(),
            "profile_runs": ProfileRun.objects.count(),
            "segments": Segment.objects.count(),
            "evaluations": EvaluationRun.objects.count(),
            "campaigns": Campaign.objects.count(),
            "impressions": Impression.objects.count(),
            "experiments": Experiment.objects.count(),
            "lists": RecommendationList.objects.count(),
            "searches": SearchQuery.objects.count(),
            "keys": ApiKey.objects.count(),
            "users": get_user_model().objects.count(),
            "memberships": Membership.objects.count(),
        }


def test_the_demo_opens_on_a_populated_main_store_and_a_second_run_adds_nothing(demo, client):
    store, log = demo
    assert "demo / demo-shop-123" in log
    # Without DEBUG (a deployment) the superuser's password is random, printed once.
    printed = re.search(r"admin login: +admin / (\S+)", log).group(1)
    assert printed != "admin-demo-123" and len(printed) >= 12
    demo_user = get_user_model().objects.get(username="demo")

    # The demo user lands on "demo", not on the small second store.
    client.force_login(demo_user)
    assert client.get(reverse("dashboard:home")).url == reverse("dashboard:overview", kwargs={"store_slug": "demo"})
    slug = {"store_slug": "demo"}

    # Jobs: several algorithms' versions, exactly one active, chosen by the gate after a forced baseline.
    with store_scope(store):
        algorithms = set(ModelVersion.objects.values_list("algorithm", flat=True))
        active = ModelVersion.objects.get(is_active=True)
        gated = TrainingRun.objects.filter(status=JobStatus.SUCCEEDED).order_by("-pk").first()
    assert algorithms == set(registry.ALGORITHMS)
    assert gated.gate["kind"] == "switch" and gated.gate["passed"], gated.gate
    assert active.pk == gated.gate["activated"] and active.algorithm != "popularity"
    jobs = client.get(reverse("recommend:jobs", kwargs=slug)).content.decode()
    assert jobs.count('class="row-active"') == 1 and len(re.findall(r"<tr data-version=", jobs)) >= 10
    assert gated.gate["reason"] in jobs

    # Segments: automatic ones from the profile run, and the rule segment with members.
    with store_scope(store):
        assert ProfileRun.objects.get().status == JobStatus.SUCCEEDED
        assert CustomerProfile.objects.count() == 1000
        auto = list(Segment.objects.filter(kind=Segment.Kind.AUTO).values_list("name", flat=True))
        rule = Segment.objects.get(kind=Segment.Kind.RULE)
    assert len(auto) >= 2 and rule.size > 0
    segments = client.get(reverse("analytics:segments", kwargs=slug)).content.decode()
    assert all(escape(name) in segments for name in [*auto, rule.name])

    # Ads: a running campaign with impressions and clicks in its report.
    with store_scope(store):
        campaign = Campaign.objects.get()
        impressions = Impression.objects.filter(campaign=campaign)
        n_imp, n_clicks = impressions.count(), impressions.filter(clicked_at__isnull=False).count()
    assert campaign.status == CampaignStatus.ACTIVE and n_imp == campaign.impressions_served > 0 and n_clicks > 0
    report = client.get(reverse("ads:campaign_detail", kwargs={**slug, "campaign_id": campaign.pk}))
    assert report.status_code == 200 and f"{n_clicks:,}" in report.content.decode()

    # Experiment: running, attributed traffic in both variants, and a verdict for the personal model.
    with store_scope(store):
        exp = Experiment.objects.get()
        res = experiment_results(exp)
    assert exp.status == ExperimentStatus.RUNNING
    assert all(row["impressions"] > 0 and row["clicks"] > 0 for row in res["variants"])
    assert res["verdict"] is not None and res["verdict"]["winner"].startswith("personal"), res["verdict"]
    page = client.get(reverse("experiments:detail", kwargs={**slug, "experiment_id": exp.pk})).content.decode()
    assert re.findall(r'data-ctr-p="([^"]+)"', page)

    # Evaluation: a succeeded run whose page draws its charts.
    with store_scope(store):
        run = EvaluationRun.objects.get()
    assert run.status == JobStatus.SUCCEEDED and set(run.algorithms) >= {"popularity", "hybrid"}
    evaluation = client.get(reverse("evaluation:run", kwargs={**slug, "eval_run_id": run.pk})).content.decode()
    assert "plotly" in evaluation.lower()

    # Search insights: logged queries, some of them corrected typos.
    with store_scope(store):
        assert SearchQuery.objects.count() >= 50
        assert SearchQuery.objects.exclude(corrected_query="").exists()
    assert client.get(reverse("search:insights", kwargs=slug)).status_code == 200

    # The printed superuser opens the admin; the demo merchant is still refused there.
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(printed)
    assert client.get("/admin/").status_code == 302
    client.force_login(admin)
    assert client.get("/admin/").status_code == 200

    # The printed invite link signs a new person up as the demo store's analyst.
    link = re.search(r"invite link: +http://127\.0\.0\.1:8000(/invite/\S+/) ", log).group(1)
    joined = Client().post(
        link, {"username": "newbie", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    )
    assert joined.status_code == 302
    assert Membership.objects.get(user__username="newbie", store=store).role == Role.ANALYST

    # A second run duplicates nothing (one test: the set-up is the slow part).
    before = _counts(store)
    out = StringIO()
    call_command("setup_demo", *ARGS, stdout=out)
    assert _counts(store) == before
    again = out.getvalue()
    assert printed not in again and "admin / (the password printed when created)" in again
    assert "already trained" in again and "not simulating again" in again and "Search logs exist" in again


def test_mistype_swaps_two_neighbouring_letters_of_the_longest_word():
    rng = np.random.default_rng(0)
    typed = mistype("red wireless headphones", rng)
    words = typed.split()
    assert words[:2] == ["red", "wireless"] and words[2] != "headphones"
    assert sorted(words[2]) == sorted("headphones") and words[2][0] == "h" and words[2][-1] == "s"
    assert sum(a != b for a, b in zip(words[2], "headphones", strict=True)) == 2
    assert mistype("tv", rng) == "tv" and mistype("", rng) == ""
