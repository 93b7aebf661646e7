"""Create a store (and optionally make an existing user its merchant) from the command line."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.text import slugify

from shop_recs.stores.models import Role, Store
from shop_recs.stores.services import add_member


class Command(BaseCommand):
    help = "Create a store; with --merchant USERNAME, that user becomes its merchant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="URL slug of the new store, e.g. 'uci'")
        parser.add_argument("--name", default="", help="display name (default: from the slug)")
        parser.add_argument("--currency", default="USD", help="ISO 4217 code (default USD)")
        parser.add_argument("--merchant", default="", help="username of an existing user to make merchant")

    @transaction.atomic
    def handle(self, *args, **opts) -> None:
        slug = opts["slug"]
        if slug != slugify(slug):
            raise CommandError(f"{slug!r} is not a valid slug (try {slugify(slug)!r})")
        currency = opts["currency"].upper()
        if len(currency) != 3 or not currency.isalpha():
            raise CommandError(f"--currency {opts['currency']!r} is not a 3-letter ISO code")
        if Store.objects.filter(slug=slug).exists():
            raise CommandError(f"a store with slug {slug!r} already exists")
        user = None
        if opts["merchant"]:
            user = get_user_model().objects.filter(username=opts["merchant"]).first()
            if user is None:
                raise CommandError(f"no user named {opts['merchant']!r}")
        store = Store.objects.create(slug=slug, name=opts["name"] or slug.replace("-", " ").title(), currency=currency)
        if user is not None:
            add_member(store, user, Role.MERCHANT)
        self.stdout.write(f"Created store {store.name!r} ({store.slug})" + (f", merchant {user}" if user else ""))
