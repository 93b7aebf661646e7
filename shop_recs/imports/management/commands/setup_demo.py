from __future__ import annotations

import importlib

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from tqdm import tqdm

from shop_recs.imports.demo import DemoConfig, seed_demo_store, store_has_data
from shop_recs.imports.management.commands.seed_demo import write_seed_report
from shop_recs.stores.models import ApiKey, Membership, Role, Store

DEMO_SLUG = "demo"
DEMO_USER = ("demo", "demo-shop-123")
ANALYST_USER = ("analyst", "analyst-123")
SECOND_STORE = ("demo-outlet", "Demo Outlet")
API_KEY_NAME = "demo frontend"


class Command(BaseCommand):
    help = (
        "Idempotent demo set-up: the 'demo' store (seeded), a small second store, the demo/analyst users, an "
        "API key, and a first training run. Safe to run again: existing objects are left alone."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--customers", type=int, default=5_000)
        parser.add_argument("--products", type=int, default=2_000)
        parser.add_argument("--events", type=int, default=300_000)
        parser.add_argument("--no-train", action="store_true", help="skip the training step")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **opts) -> None:
        out = self.stdout
        store, _ = Store.objects.get_or_create(slug=DEMO_SLUG, defaults={"name": "Demo Shop", "currency": "USD"})
        outlet, _ = Store.objects.get_or_create(
            slug=SECOND_STORE[0], defaults={"name": SECOND_STORE[1], "currency": "EUR"}
        )
        seeded = []
        for target, cfg in (
            (store, DemoConfig(seed=opts["seed"], customers=opts["customers"], products=opts["products"],
                               events=opts["events"])),
            (outlet, DemoConfig(seed=opts["seed"] + 1, customers=300, products=200, events=15_000)),
        ):  # fmt: skip
            if store_has_data(target):
                out.write(f"Store {target.slug!r} already has data; not seeding it again.")
                continue
            bar = tqdm(total=cfg.events, desc=f"seeding {target.slug}", unit=" events", disable=opts["no_progress"])
            try:
                result = seed_demo_store(target, cfg, progress=bar.update)
            finally:
                bar.close()
            write_seed_report(out, target, result)
            seeded.append(target)

        with transaction.atomic():
            demo_user = self._user(*DEMO_USER)
            analyst = self._user(*ANALYST_USER)
            Membership.objects.get_or_create(user=demo_user, store=store, defaults={"role": Role.MERCHANT})
            Membership.objects.get_or_create(user=demo_user, store=outlet, defaults={"role": Role.MERCHANT})
            Membership.objects.get_or_create(user=analyst, store=store, defaults={"role": Role.ANALYST})
            existing_key = ApiKey.objects.active().filter(store=store, name=API_KEY_NAME).first()
            raw_key = None
            if existing_key is None:
                _, raw_key = ApiKey.generate(store, API_KEY_NAME, created_by=demo_user)

        if raw_key:
            out.write(self.style.SUCCESS(f"API key for {store.slug!r} (shown once, store it now): {raw_key}"))
        else:
            out.write(
                f"The API key {existing_key.prefix}… for {store.slug!r} already exists; its secret was shown when it "
                "was created. Create a new one in the dashboard settings if you lost it."
            )

        if not opts["no_train"]:
            self._train([store, outlet], seeded)

        out.write("")
        out.write(self.style.SUCCESS("Demo ready: http://127.0.0.1:8000/"))
        out.write(f"  merchant login: {DEMO_USER[0]} / {DEMO_USER[1]}  (stores: {store.slug}, {outlet.slug})")
        out.write(f"  analyst login:  {ANALYST_USER[0]} / {ANALYST_USER[1]}  (store: {store.slug})")

    def _user(self, username: str, password: str):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username)
        if created:
            user.set_password(password)
            user.save()
        return user

    def _train(self, stores: list[Store], seeded: list[Store]) -> None:
        """Train what exists so far; the training service arrives in a later issue."""
        try:
            services = importlib.import_module("shop_recs.training.services")
        except ImportError:
            services = None
        train_store = getattr(services, "train_store", None)
        if train_store is None:
            self.stdout.write("Note: shop_recs.training.services.train_store does not exist yet; skipping training.")
            return
        for store in stores:
            if store not in seeded and _has_active_model(store):
                self.stdout.write(f"Store {store.slug!r} already has an active model; not training it again.")
                continue
            self.stdout.write(f"Training {store.slug!r} ...")
            train_store(store)


def _has_active_model(store: Store) -> bool:
    try:
        model_version = importlib.import_module("shop_recs.recommend.models").ModelVersion
    except (ImportError, AttributeError):
        return False
    return model_version.all_stores.filter(store=store, is_active=True).exists()
