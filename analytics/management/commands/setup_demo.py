"""``manage.py setup_demo`` (what ``./dev demo`` runs after ``migrate``): a demo with every headline page populated.

The command lives in ``analytics`` because it drives analytics (profiles, segments, evaluation, the
experiment's simulated traffic and attribution) and ``shop_recs`` never imports ``analytics``; the
data generator it seeds with stays in ``shop_recs.imports.demo``.

Steps, each skipped when its result already exists (a second run duplicates nothing):

1. the ``demo`` store (seeded) and a small ``demo-outlet`` store; users ``demo`` (merchant of both),
   ``analyst`` (analyst of ``demo``) and the superuser ``admin``; an API key for ``demo``;
2. training on ``demo``: a popularity baseline forced live (``train_store``), then every algorithm
   of the registry in one gated run, whose best version replaces the baseline only if the
   gate finds evidence; the outlet gets one forced hybrid run;
3. customer profiles and automatic segments (one profile run), plus a rule segment;
4. an offline evaluation run of :data:`EVALUATION_ALGORITHMS`, with its charts;
5. a running ads campaign served to simulated visitors through ``GET /api/v1/ads``, some of whom
   click (``POST .../click``) and buy (``context.ad_impression_id``);
6. a running A/B experiment on the home placement, popularity vs the live model, with simulated
   traffic (:mod:`analytics.experiments.simulation`), attributed;
7. searches through ``GET /api/v1/search`` (the queries shoppers typed in the seeded events, some
   with a typo), so the search insights page has data.

Everything runs in this process, synchronously: the command is the demo's only writer, and the
dashboard opens on a finished store.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from analytics.evaluation.models import EvaluationRun
from analytics.evaluation.services import run_evaluation, start_evaluation
from analytics.experiments import services as experiment_services
from analytics.experiments.simulation import (
    COMMIT_EVERY,
    ApiClient,
    SimulationError,
    TasteModel,
    load_truth,
    mistype,
    report_lines,
    simulate_traffic,
)
from analytics.models import ProfileRun, Segment
from analytics.rules_builder import compile_rules
from analytics.segments import refresh_segment_memberships
from analytics.services import run_profiles, start_profile_run
from shop_recs.activity.models import Event
from shop_recs.ads.models import Campaign, CampaignStatus, Impression
from shop_recs.catalog.models import Category
from shop_recs.imports.demo import DemoConfig, seed_demo_store, store_has_data
from shop_recs.imports.management.commands.seed_demo import write_seed_report
from shop_recs.platform.jobs import JobStatus
from shop_recs.search.models import SearchQuery
from shop_recs.serving.models import Experiment, ExperimentStatus, RecommendationList
from shop_recs.stores import invitations
from shop_recs.stores.models import ApiKey, Membership, Role, Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.errors import TrainingError
from shop_recs.training.models import ModelVersion, TrainingRun
from shop_recs.training.services import available_algorithms, run_training, start_training, train_store

DEMO_SLUG = "demo"
DEMO_USER = ("demo", "demo-shop-123")
#: Who the demo invites (Settings → Members → invitations); the printed link signs them up as analyst.
DEMO_INVITEE = "new.analyst@example.com"
ANALYST_USER = ("analyst", "analyst-123")
ADMIN_USER = ("admin", "admin-demo-123")
#: The second store's name sorts after "Demo Shop": the dashboard's home page opens the member's
#: first store by name, and the demo must open on the main store. Databases set up before this
#: change called it "Demo Outlet" (which sorted first); it is renamed on the next run.
SECOND_STORE = ("demo-outlet", "Outlet")
OLD_SECOND_STORE_NAME = "Demo Outlet"
API_KEY_NAME = "demo frontend"
#: Every algorithm of the registry is trained. SLIM alone took longer than the other eleven together
#: on the demo store (11 s against 7 s on a quiet box, 44 s on the loaded one), so each of its fits
#: gets a wall-clock budget: it solves the most popular items first and leaves the rest empty when
#: the budget runs out (``recsys.slim``), which keeps the demo's time bounded on a busy machine.
SLIM_TIME_BUDGET = 4.0
TRAINING_PARAMS = {"slim": {"time_budget": SLIM_TIME_BUDGET}}
BASELINE_ALGORITHM = "popularity"
EVALUATION_ALGORITHMS = ("popularity", "item_knn", "ease", "hybrid")
RULE_SEGMENT = {
    "name": "Loyal regulars",
    "description": "Three or more orders and a low churn risk (a rule segment the demo creates).",
    "rules": {
        "all": [{"field": "frequency", "op": ">=", "value": 3}, {"field": "churn_risk", "op": "<", "value": 0.5}]
    },
}
CAMPAIGN_NAME = "Demo: best sellers of the top category"
EXPERIMENT_NAME = "Popularity vs personal (demo)"
EXPERIMENT_PLACEMENT = "home"


@dataclass(frozen=True)
class DemoSizes:
    """How much simulated activity the demo generates on top of the seeded history."""

    ad_visitors: int = 400
    ad_click_base: float = 0.15
    experiment_customers: int = 1_500
    experiment_requests: int = 2_000
    searches: int = 300
    seed: int = 7

    @classmethod
    def for_customers(cls, customers: int, requests: int) -> DemoSizes:
        """The full figures for the 5,000-customer demo; a small store (a test) gets fewer visitors."""
        return cls(
            ad_visitors=min(cls.ad_visitors, max(50, customers // 5)),
            experiment_customers=customers,
            experiment_requests=requests,
            searches=min(cls.searches, max(50, customers // 10)),
        )


class Command(BaseCommand):
    help = (
        "Idempotent demo set-up: the 'demo' store (seeded, trained with every algorithm, profiled and "
        "segmented, evaluated, with a running campaign, a running experiment with simulated traffic and "
        "search logs), a small second store, the demo/analyst/admin users and an API key. Safe to run "
        "again: what exists is left alone."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--customers", type=int, default=5_000)
        parser.add_argument("--products", type=int, default=2_000)
        parser.add_argument("--events", type=int, default=300_000)
        parser.add_argument("--requests", type=int, default=DemoSizes.experiment_requests,
                            help="recommendation requests the experiment's simulated shoppers make")  # fmt: skip
        parser.add_argument("--no-train", action="store_true", help="only seed the stores and create the users")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        t0, cpu0 = time.perf_counter(), time.process_time()
        self.progress = not opts["no_progress"]
        store, outlet, seeded = self._seed_stores(opts)
        # A known superuser password is fine on a developer's machine, not on a deployment (the README
        # also suggests this command there): without DEBUG the password is random and printed once.
        self.admin_password = ADMIN_USER[1] if settings.DEBUG else secrets.token_urlsafe(12)
        self.admin_created = not get_user_model().objects.filter(username=ADMIN_USER[0]).exists()
        users = self._users(store, outlet)
        raw_key = self._api_key(store, users["demo"])
        if not opts["no_train"]:
            sizes = DemoSizes.for_customers(opts["customers"], opts["requests"])
            try:
                self._populate(store, outlet, users["demo"], sizes)
            except (TrainingError, SimulationError) as exc:
                raise CommandError(str(exc)) from exc
        self._step(None)
        self._report(store, outlet, raw_key, t0, cpu0)

    # --- stores, users, key ----------------------------------------------------------------------

    def _seed_stores(self, opts: dict[str, Any]) -> tuple[Store, Store, list[Store]]:
        store, _ = Store.objects.get_or_create(slug=DEMO_SLUG, defaults={"name": "Demo Shop", "currency": "USD"})
        outlet, _ = Store.objects.get_or_create(
            slug=SECOND_STORE[0], defaults={"name": SECOND_STORE[1], "currency": "EUR"}
        )
        if outlet.name == OLD_SECOND_STORE_NAME:
            outlet.name = SECOND_STORE[1]
            outlet.save(update_fields=["name"])
        main_cfg = DemoConfig(
            seed=opts["seed"], customers=opts["customers"], products=opts["products"], events=opts["events"]
        )
        outlet_cfg = DemoConfig(seed=opts["seed"] + 1, customers=300, products=200, events=15_000)
        seeded = []
        for target, cfg in ((store, main_cfg), (outlet, outlet_cfg)):
            if store_has_data(target):
                self.stdout.write(f"Store {target.slug!r} already has data; not seeding it again.")
                continue
            self._step(f"Seeding {target.slug!r}")
            bar = self._bar(cfg.events, f"seeding {target.slug}", " events")
            try:
                result = seed_demo_store(target, cfg, progress=bar.update)
            finally:
                bar.close()
            write_seed_report(self.stdout, target, result)
            seeded.append(target)
        return store, outlet, seeded

    def _users(self, store: Store, outlet: Store) -> dict[str, Any]:
        with transaction.atomic():
            users = {
                "demo": _user(*DEMO_USER),
                "analyst": _user(*ANALYST_USER),
                "admin": _user(ADMIN_USER[0], self.admin_password, superuser=True),
            }
            Membership.objects.get_or_create(user=users["demo"], store=store, defaults={"role": Role.MERCHANT})
            Membership.objects.get_or_create(user=users["demo"], store=outlet, defaults={"role": Role.MERCHANT})
            Membership.objects.get_or_create(user=users["analyst"], store=store, defaults={"role": Role.ANALYST})
        return users

    def _api_key(self, store: Store, demo_user: Any) -> str | None:
        with transaction.atomic():
            existing = ApiKey.objects.active().filter(store=store, name=API_KEY_NAME).first()
            if existing is not None:
                self.stdout.write(
                    f"The API key {existing.prefix}… for {store.slug!r} already exists; its secret was shown when "
                    "it was created. Create a new one in the dashboard settings if you lost it."
                )
                return None
            _, raw_key = ApiKey.generate(store, API_KEY_NAME, created_by=demo_user)
        return raw_key

    # --- the populated store -------------------------------------------------------------------

    def _populate(self, store: Store, outlet: Store, demo_user: Any, sizes: DemoSizes) -> None:
        self._train(store, demo_user)
        if not _active_version(outlet):
            self._step(f"Training {outlet.slug!r} (hybrid)")
            train_store(outlet, ["hybrid"], user=demo_user)
        else:
            self.stdout.write(f"Store {outlet.slug!r} already has an active model; not training it again.")
        self._profiles(store, demo_user)
        self._rule_segment(store, demo_user)
        self._evaluation(store, demo_user)
        truth = load_truth(store)
        visitors = _Visitors(store)
        self._campaign(store, demo_user, truth, visitors, sizes)
        self._experiment(store, demo_user, visitors, sizes)
        self._searches(store, truth, visitors, sizes)

    def _train(self, store: Store, demo_user: Any) -> None:
        algorithms = available_algorithms()
        with store_scope(store):
            done = TrainingRun.objects.filter(status=JobStatus.SUCCEEDED).values_list("algorithms", flat=True)
            if any(set(algorithms) <= set(trained) for trained in done):
                self.stdout.write(f"Store {store.slug!r} is already trained; not training it again.")
                return
        if not _active_version(store):
            # A live baseline first, so the full run below is a real switch the gate must justify.
            self._step(f"Training {store.slug!r}: {BASELINE_ALGORITHM} baseline (forced live)")
            train_store(store, [BASELINE_ALGORITHM], user=demo_user)
        # A demo set up before with one model keeps it live unless the gate finds a better one (a
        # refusal is shown on the Jobs page, and the candidates stay there for a merchant).
        self._step(f"Training {store.slug!r}: {len(algorithms)} algorithms, the gate decides what goes live")
        run = start_training(store, algorithms, TRAINING_PARAMS, demo_user, enqueue=False)
        run = self._with_bar(lambda cb: run_training(run.pk, on_progress=cb), "training")
        if run.status != JobStatus.SUCCEEDED:
            raise TrainingError(f"training run #{run.pk} failed: {(run.error or '?').splitlines()[0]}")
        verdict = run.gate or {}
        best = (run.metrics or {}).get("best")
        outcome = "went live" if verdict.get("activated") else "kept as a candidate"
        self.stdout.write(
            f"  best of the run: {best}; gate ({verdict.get('kind')}): {verdict.get('reason')}; {outcome}"
        )

    def _profiles(self, store: Store, demo_user: Any) -> None:
        with store_scope(store):
            done = ProfileRun.objects.filter(status=JobStatus.SUCCEEDED).exists()
        if done:
            self.stdout.write("Profiles and automatic segments exist; not computing them again.")
            return
        self._step("Customer profiles and automatic segments")
        run = run_profiles(start_profile_run(store, user=demo_user, enqueue=False).pk)
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(f"profile run #{run.pk} failed: {(run.error or '?').splitlines()[0]}")
        with store_scope(store):
            n_auto = Segment.objects.filter(kind=Segment.Kind.AUTO).count()
        self.stdout.write(f"  {run.n_customers:,} profiles, {n_auto} automatic segments")

    def _rule_segment(self, store: Store, demo_user: Any) -> None:
        compile_rules(RULE_SEGMENT["rules"])  # a typo in the constant fails loudly, not as an empty segment
        with store_scope(store):
            segment, created = Segment.objects.get_or_create(
                kind=Segment.Kind.RULE,
                name=RULE_SEGMENT["name"],
                defaults={
                    "store": store,
                    "description": RULE_SEGMENT["description"],
                    "rules": RULE_SEGMENT["rules"],
                    "created_by": demo_user,
                },
            )
        if created:
            members = refresh_segment_memberships(store)
            self.stdout.write(f"Rule segment {segment.name!r}: {len(members.get(segment.pk, ())):,} customers")

    def _evaluation(self, store: Store, demo_user: Any) -> None:
        with store_scope(store):
            done = EvaluationRun.objects.filter(status=JobStatus.SUCCEEDED).exists()
        if done:
            self.stdout.write("An evaluation run exists; not evaluating again.")
            return
        self._step(f"Offline evaluation: {', '.join(EVALUATION_ALGORITHMS)}")
        run = start_evaluation(store, EVALUATION_ALGORITHMS, user=demo_user, enqueue=False)
        run = self._with_bar(lambda cb: run_evaluation(run.pk, on_progress=cb), "evaluating")
        if run.status != JobStatus.SUCCEEDED:
            raise CommandError(f"evaluation run #{run.pk} failed: {(run.error or '?').splitlines()[0]}")

    # --- simulated visitors --------------------------------------------------------------------

    def _campaign(self, store: Store, demo_user: Any, truth: TasteModel, visitors: _Visitors, sizes: DemoSizes) -> None:
        campaign = _ensure_campaign(store, demo_user)
        with store_scope(store):
            served = Impression.objects.filter(campaign=campaign).exists()
        if served:
            self.stdout.write(f"Campaign {campaign.name!r} has been served; not serving it again.")
            return
        rng = np.random.default_rng(sizes.seed)
        ids = sorted(truth.customers)
        people = [ids[i] for i in rng.choice(len(ids), size=min(sizes.ad_visitors, len(ids)), replace=False)]
        self._step(f"Ads: campaign {campaign.name!r} shown to {len(people)} simulated visitors")
        api = visitors.api
        root = _campaign_path(campaign)
        promoted = [i for i, path in enumerate(truth.category) if _in_category(path, root)]
        skus = sorted(truth.index, key=truth.index.__getitem__)
        clicks = buys = 0
        events: list[dict[str, Any]] = []
        for cid in self._batched(people, "ads"):
            for ad in api.get(f"/ads?customer={cid}&slot=home_banner")["ads"]:
                # Visitors click in proportion to their taste for what the campaign promotes.
                fit = float(np.max(truth.affinity(cid)[promoted])) if promoted else 0.0
                if rng.random() >= min(0.6, sizes.ad_click_base * np.exp(fit)):
                    continue
                api.post(f"/ads/impressions/{ad['impression_id']}/click", {})
                clicks += 1
                if promoted and rng.random() < 0.3:  # some buy the promoted product they like best
                    k = promoted[int(np.argmax(truth.affinity(cid)[promoted]))]
                    events.append(_ad_purchase(cid, skus[k], ad["impression_id"], float(truth.price[k])))
                    buys += 1
        if events:
            api.post("/events/batch", events)
        self.stdout.write(f"  {len(people)} visitors, {clicks} clicks, {buys} purchases after a click")

    def _experiment(self, store: Store, demo_user: Any, visitors: _Visitors, sizes: DemoSizes) -> None:
        with store_scope(store):
            exp = Experiment.objects.filter(name=EXPERIMENT_NAME).first()
        if exp is None:
            exp = _create_experiment(store, demo_user)
            if exp is None:
                self.stdout.write("No popularity version to compare with; no experiment created.")
                return
        if exp.status != ExperimentStatus.RUNNING:
            # Another experiment holds the placement, or someone stopped this one: traffic would test nothing.
            self.stdout.write(f"Experiment {exp.name!r} is {exp.status}; no traffic simulated for it.")
            return
        if _has_traffic(store, exp):
            self.stdout.write(f"Experiment {exp.name!r} already has traffic; not simulating again.")
            return
        self._step(f"A/B experiment {exp.name!r}: {sizes.experiment_requests} simulated recommendation requests")
        bar = self._bar(sizes.experiment_requests, "requests", " requests")
        try:
            stats = simulate_traffic(
                store,
                customers=sizes.experiment_customers,
                requests=sizes.experiment_requests,
                placement=exp.placement,
                seed=sizes.seed,
                api_key=visitors.key,
                progress=bar.update,
            )
        finally:
            bar.close()
        self.stdout.write("  " + stats.summary())
        self.stdout.write(f"  attributed {experiment_services.attribute_events(store):,} events")
        for line in report_lines(store, exp):
            self.stdout.write("  " + line.strip())

    def _searches(self, store: Store, truth: TasteModel, visitors: _Visitors, sizes: DemoSizes) -> None:
        with store_scope(store):
            logged = SearchQuery.objects.exists()
            typed = list(
                Event.objects.filter(event_type="search")
                .exclude(query="")
                .values("query")
                .annotate(n=Count("pk"))
                .order_by("-n", "query")
                .values_list("query", flat=True)[: sizes.searches]
            )
        if logged or not typed:
            self.stdout.write("Search logs exist; not searching again." if logged else "No queries to replay.")
            return
        self._step(f"Search: {sizes.searches} queries through the search API")
        rng = np.random.default_rng(sizes.seed)
        ids = sorted(truth.customers)
        queries = [typed[i % len(typed)] for i in range(sizes.searches)]
        for i, query in enumerate(self._batched(queries, "searches")):
            if i % 5 == 4:
                query = mistype(query, rng)  # some shoppers mistype: the page's "did you mean" figures
            cid = ids[int(rng.integers(len(ids)))]
            visitors.api.get(f"/search?q={urllib.parse.quote(query, safe='')}&customer={cid}&n=10")

    # --- output --------------------------------------------------------------------------------

    def _report(self, store: Store, outlet: Store, raw_key: str | None, t0: float, cpu0: float) -> None:
        out = self.stdout
        if raw_key:
            out.write(self.style.SUCCESS(f"API key for {store.slug!r} (shown once, store it now): {raw_key}"))
        out.write("")
        out.write(self.style.SUCCESS("Demo ready: http://127.0.0.1:8000/"))
        out.write(f"  merchant login: {DEMO_USER[0]} / {DEMO_USER[1]}  (stores: {store.slug}, {outlet.slug})")
        out.write(f"  analyst login:  {ANALYST_USER[0]} / {ANALYST_USER[1]}  (store: {store.slug})")
        shown = self.admin_password if self.admin_created or settings.DEBUG else "(the password printed when created)"
        out.write(f"  admin login:    {ADMIN_USER[0]} / {shown}  (superuser: http://127.0.0.1:8000/admin/)")
        # A fresh link on every run (re-inviting withdraws the previous one): no mail is sent here.
        try:
            invite = invitations.invite(store, DEMO_INVITEE, Role.ANALYST, invited_by=None)
        except invitations.InvitationError as exc:  # the invitee has joined with an earlier link
            out.write(f"  invite link:    none ({exc})")
        else:
            out.write(
                f"  invite link:    http://127.0.0.1:8000/invite/{invite.token}/  "
                f"({DEMO_INVITEE} joins {store.slug} as analyst; Settings → Members lists it)"
            )
        out.write(f"  set-up took {time.perf_counter() - t0:.1f} s ({time.process_time() - cpu0:.1f} s CPU)")

    def _step(self, text: str | None) -> None:
        """Announce a step, and say how long the previous one took (wall clock and this process's CPU)."""
        now = (time.perf_counter(), time.process_time())
        if getattr(self, "_step_started", None) is not None:
            wall, cpu = now[0] - self._step_started[0], now[1] - self._step_started[1]
            self.stdout.write(f"  ({wall:.1f} s, {cpu:.1f} s CPU)")
        self._step_started = now if text else None
        if text:
            self.stdout.write(text + " …")

    def _bar(self, total: int, desc: str, unit: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit=unit, disable=not self.progress)

    def _batched(self, items: list[Any], desc: str) -> Iterator[Any]:
        """Yield the items, each ``COMMIT_EVERY`` of them inside one transaction: in-process every
        simulated request would otherwise be its own commit (an fsync on SQLite), which made the
        ads and search steps four times slower than their CPU time on the shared 2-core box."""
        bar = self._bar(len(items), desc, "")
        try:
            for start in range(0, len(items), COMMIT_EVERY):
                chunk = items[start : start + COMMIT_EVERY]
                with transaction.atomic():
                    yield from chunk
                bar.update(len(chunk))
        finally:
            bar.close()

    def _with_bar(self, body: Any, desc: str) -> Any:
        """Run a job body that reports ``(stage, percent)`` with a percent bar named after its stage."""
        bar = self._bar(100, desc, "%")

        def on_progress(stage: str, percent: int) -> None:
            bar.set_description_str(f"{desc}: {stage}"[:60], refresh=False)
            bar.update(max(0, int(percent) - bar.n))

        try:
            return body(on_progress)
        finally:
            bar.close()


# --- helpers -------------------------------------------------------------------------------------


class _Visitors:
    """The simulated visitors' API access, with its own key made on first use: traffic must not
    depend on the printed key (its secret exists only once), and a run with nothing left to
    simulate must not add a key."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._key = ""
        self._api: ApiClient | None = None

    @property
    def key(self) -> str:
        if not self._key:
            _, self._key = ApiKey.generate(self.store, "demo traffic simulator")
        return self._key

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(self.key, "")
        return self._api


def _user(username: str, password: str, *, superuser: bool = False) -> Any:
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    if created:
        user.set_password(password)
        user.is_staff = user.is_superuser = superuser
        user.save()
    return user


def _active_version(store: Store) -> ModelVersion | None:
    with store_scope(store):
        return ModelVersion.objects.filter(is_active=True).first()


def _ensure_campaign(store: Store, demo_user: Any) -> Campaign:
    """The demo's running campaign: untargeted, promoting the top-level category shoppers buy most."""
    with store_scope(store):
        campaign = Campaign.objects.filter(name=CAMPAIGN_NAME).first()
        if campaign is not None:
            return campaign
        top = (
            Category.objects.filter(parent__isnull=True)
            .annotate(n=Count("children__products__events", distinct=False))
            .order_by("-n", "path")
            .first()
        )
        now = timezone.now()
        with transaction.atomic():
            campaign = Campaign.objects.create(
                store=store,
                name=CAMPAIGN_NAME,
                title=f"Best sellers in {top.name}" if top else "Our best sellers",
                landing_url="https://shop.example.com/best-sellers",
                starts_at=now - timedelta(days=1),
                ends_at=now + timedelta(days=30),
                budget=5_000,
                frequency_cap=3,
                status=CampaignStatus.ACTIVE,
                created_by=demo_user,
            )
            if top is not None:
                campaign.categories.add(top)
    return campaign


def _campaign_path(campaign: Campaign) -> str:
    with store_scope(campaign.store):
        return campaign.categories.values_list("path", flat=True).first() or ""


def _in_category(path: str, root: str) -> bool:
    return bool(root) and (path == root or path.startswith(f"{root} > "))


def _ad_purchase(customer: str, sku: str, impression_id: str, price: float) -> dict[str, Any]:
    return {
        "customer": customer,
        "type": "purchase",
        "sku": sku,
        "quantity": 1,
        "value": price,
        "order_id": f"demo-ad-{impression_id}",
        "timestamp": timezone.now().isoformat(),
        "context": {"ad_impression_id": impression_id},
    }


def _create_experiment(store: Store, demo_user: Any) -> Experiment | None:
    """Popularity (control) against the personal model, 50/50 on the home placement, started."""
    with store_scope(store):
        active = ModelVersion.objects.filter(is_active=True).first()
        personal = active
        if active is None or active.algorithm == BASELINE_ALGORITHM:
            # The gate kept the baseline live: compare it with the run's best version instead.
            best = TrainingRun.objects.filter(status=JobStatus.SUCCEEDED).order_by("-pk").first()
            name = ((best.metrics or {}).get("best") if best else None) or ""
            personal = ModelVersion.objects.filter(algorithm=name).order_by("-pk").first()
        baseline = ModelVersion.objects.filter(algorithm=BASELINE_ALGORITHM).order_by("-pk").first()
    if personal is None or baseline is None or personal.algorithm == BASELINE_ALGORITHM:
        return None
    exp = experiment_services.create_experiment(
        store,
        name=EXPERIMENT_NAME,
        placement=EXPERIMENT_PLACEMENT,
        description="Created by the demo set-up; its traffic is simulated from the demo's hidden tastes.",
        user=demo_user,
        variants=[
            {"name": "popularity", "kind": "model_version", "model_version": baseline, "traffic": 50},
            {"name": f"personal ({personal.algorithm})", "kind": "model_version", "model_version": personal,
             "traffic": 50},
        ],
    )  # fmt: skip
    with store_scope(store):
        running = Experiment.objects.filter(placement=EXPERIMENT_PLACEMENT, status=ExperimentStatus.RUNNING)
        if not running.exists():
            experiment_services.start_experiment(exp)
    return exp


def _has_traffic(store: Store, exp: Experiment) -> bool:
    with store_scope(store):
        return RecommendationList.objects.filter(variant__startswith=f"{exp.pk}:").exists()
