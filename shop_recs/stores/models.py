"""Tenancy: stores, who may act on them, and the API keys shop frontends use."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext_lazy as _


class Store(models.Model):
    """One merchant's shop. Every piece of catalog, activity and model data belongs to exactly one."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    currency = models.CharField(_("default currency"), max_length=3, default="USD")
    timezone = models.CharField(_("time zone"), max_length=64, default="UTC")
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = _("store")
        verbose_name_plural = _("stores")

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    MERCHANT = "merchant", _("Merchant")
    ANALYST = "analyst", _("Analyst")


class Membership(models.Model):
    """A user's role in one store: merchants control the store, analysts read and analyse."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.ANALYST)
    created_at = models.DateTimeField(default=dj_timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "store"], name="membership_user_store_unique")]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")

    def __str__(self) -> str:
        return f"{self.user} @ {self.store} ({self.role})"

    @property
    def is_merchant(self) -> bool:
        return self.role == Role.MERCHANT


API_KEY_PREFIX = "sr_"


def hash_api_key(raw_key: str) -> str:
    """SHA-256 of the whole key.

    Keys are 256-bit random tokens, so a fast hash is as safe as a slow one here (the same choice
    GitHub and Stripe make) and it keeps authentication off the hot path's critical cost.
    """
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> ApiKeyQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A credential a shop frontend uses to call the REST API as one store.

    The raw key is shown once at creation; only its hash and a short lookup prefix are stored.
    """

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def generate(cls, store: Store, name: str, created_by=None) -> tuple[ApiKey, str]:
        """Create a key and return it with the raw secret, which is never stored."""
        prefix = secrets.token_hex(4)
        raw = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(
            store=store, name=name, prefix=prefix, key_hash=hash_api_key(raw), created_by=created_by
        )
        return key, raw

    def matches(self, raw_key: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_api_key(raw_key))

    @staticmethod
    def prefix_of(raw_key: str) -> str | None:
        if not raw_key.startswith(API_KEY_PREFIX):
            return None
        parts = raw_key[len(API_KEY_PREFIX) :].split("_", 1)
        return parts[0] if len(parts) == 2 and parts[0] else None

    def revoke(self) -> None:
        """Revoke the key. The save's ``post_save`` signal drops it from the API's key cache (the
        receiver is connected in ``shop_recs.api.apps``: stores sits below api and must not import it),
        so this process refuses the key from now on; others within API_KEY_CACHE_SECONDS."""
        if self.revoked_at is None:
            self.revoked_at = dj_timezone.now()
            self.save(update_fields=["revoked_at"])
