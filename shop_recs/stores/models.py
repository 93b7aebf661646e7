"""Tenancy: stores, who may act on them, and the API keys shop frontends use."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext_lazy as _


class Store(models.Model):
    """One merchant's shop. Every piece of catalog, activity and model data belongs to exactly one."""

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    currency = models.CharField(_("default currency"), max_length=3, default="USD")
    timezone = models.CharField(_("time zone"), max_length=64, default="UTC")
    # Blank: each member's browser decides (Accept-Language); set, the store's dashboard opens in this
    # language for members who have not picked one with the language switch.
    language = models.CharField(_("language"), max_length=16, blank=True, default="", choices=settings.LANGUAGES)
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


#: Raw secret keys start with this, publishable keys with ``PUBLISHABLE_KEY_PREFIX``: a leaked key
#: says at a glance which kind it is (a ``pk_`` key in a page's source is expected, an ``sr_`` key is a leak).
API_KEY_PREFIX = "sr_"
PUBLISHABLE_KEY_PREFIX = "pk_"
#: Most origins one publishable key may list (a storefront has a handful: www, shop, staging).
MAX_ALLOWED_ORIGINS = 20


class KeyKind(models.TextChoices):
    """What a key may do: a secret key everything; a publishable key only the storefront calls."""

    SECRET = "secret", _("Secret (server)")
    PUBLISHABLE = "publishable", _("Publishable (browser)")


def raw_prefix_for(kind: str) -> str:
    """The text every raw key of this kind starts with."""
    return PUBLISHABLE_KEY_PREFIX if kind == KeyKind.PUBLISHABLE else API_KEY_PREFIX


def normalize_origin(value: str) -> str:
    """One allowed origin, checked and normalised (scheme and host lower-cased), or ``ValidationError``.

    An origin is what a browser sends in ``Origin``: ``scheme://host[:port]``, nothing else. The
    comparison with the header is exact, so a path, a query, credentials or a wildcard could only
    ever fail to match, or (``*``) mean "every site may use this key"; all are refused with a reason.
    """
    text = value.strip()
    if not text:
        raise ValidationError(_("An origin must not be empty."), code="empty")
    if "*" in text:
        raise ValidationError(
            _("%(origin)s: wildcards are not allowed; list each origin, e.g. https://shop.example.com."),
            code="wildcard",
            params={"origin": text},
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValidationError(
            _("%(origin)s: not a valid origin (scheme://host[:port])."), code="invalid", params={"origin": text}
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationError(
            _("%(origin)s: the scheme must be http or https."), code="scheme", params={"origin": text}
        )
    if not parts.hostname:
        raise ValidationError(_("%(origin)s: the host is missing."), code="host", params={"origin": text})
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            _("%(origin)s: an origin has no user name or password."), code="userinfo", params={"origin": text}
        )
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValidationError(
            _("%(origin)s: an origin has no path, query or fragment (not even a trailing “/”)."),
            code="path",
            params={"origin": text},
        )
    if any(c.isspace() for c in text):
        raise ValidationError(_("%(origin)s: an origin has no spaces."), code="invalid", params={"origin": text})
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    # Browsers leave the scheme's default port out of Origin, so a listed default port would never match.
    if port == {"http": 80, "https": 443}[scheme]:
        port = None
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def validate_allowed_origins(value: object) -> None:
    """Model-level check of ``ApiKey.allowed_origins``: a list of normalised, distinct origins."""
    if not isinstance(value, list):
        raise ValidationError(_("Allowed origins must be a list."), code="invalid")
    if len(value) > MAX_ALLOWED_ORIGINS:
        raise ValidationError(
            _("At most %(max)d allowed origins per key."), code="too_many", params={"max": MAX_ALLOWED_ORIGINS}
        )
    for item in value:
        if not isinstance(item, str) or normalize_origin(item) != item:
            raise ValidationError(
                _("%(origin)s: not a normalised origin (scheme://host[:port], lower case)."),
                code="invalid",
                params={"origin": item},
            )


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
    A *secret* key (``sr_…``, for servers) may call every endpoint; a *publishable* key (``pk_…``,
    meant to sit in a web page) may call only the storefront endpoints
    (``shop_recs.api.auth.PUBLISHABLE_ROUTES``), and from a browser only on its ``allowed_origins``.
    """

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=KeyKind.choices, default=KeyKind.SECRET)
    allowed_origins = models.JSONField(
        _("allowed origins"),
        default=list,
        blank=True,
        validators=[validate_allowed_origins],
        help_text=_("Publishable keys: the exact origins (scheme://host[:port]) of pages allowed to use the key."),
    )
    prefix = models.CharField(_("prefix"), max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    # Who revoked it: with created_by/created_at and revoked_at, the key row is its own audit record
    # (keys are never deleted from the dashboard, so the record stays).
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def is_publishable(self) -> bool:
        return self.kind == KeyKind.PUBLISHABLE

    @property
    def display_prefix(self) -> str:
        """How the key starts, for lists (``pk_1a2b3c4d_…``): enough to recognise it, never the secret."""
        return f"{raw_prefix_for(self.kind)}{self.prefix}_…"

    @classmethod
    def generate(
        cls,
        store: Store,
        name: str,
        created_by=None,
        *,
        kind: str = KeyKind.SECRET,
        allowed_origins: list[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key and return it with the raw secret, which is never stored.

        ``allowed_origins`` are normalised (``normalize_origin``; a bad one raises ``ValidationError``)
        and only kept for a publishable key: a secret key is for servers, which send no ``Origin``.
        """
        if kind not in KeyKind.values:
            raise ValidationError(_("Unknown key kind %(kind)r."), code="kind", params={"kind": kind})
        origins: list[str] = []
        if kind == KeyKind.PUBLISHABLE:
            for origin in allowed_origins or []:
                normal = normalize_origin(origin)
                if normal not in origins:
                    origins.append(normal)
            validate_allowed_origins(origins)
        prefix = secrets.token_hex(4)
        raw = f"{raw_prefix_for(kind)}{prefix}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(
            store=store,
            name=name,
            kind=kind,
            allowed_origins=origins,
            prefix=prefix,
            key_hash=hash_api_key(raw),
            created_by=created_by,
        )
        return key, raw

    def matches(self, raw_key: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_api_key(raw_key))

    @staticmethod
    def prefix_of(raw_key: str) -> str | None:
        """The lookup prefix of a raw key of either kind (``sr_<prefix>_…``, ``pk_<prefix>_…``).

        The kind letters are not trusted for anything: the stored row's ``kind`` decides what the key
        may do, and the whole raw key (letters included) is what is hashed, so ``pk_`` cannot be
        swapped for ``sr_`` on a key.
        """
        for start in (API_KEY_PREFIX, PUBLISHABLE_KEY_PREFIX):
            if raw_key.startswith(start):
                parts = raw_key[len(start) :].split("_", 1)
                return parts[0] if len(parts) == 2 and parts[0] else None
        return None

    def revoke(self, user=None) -> None:
        """Revoke the key (``user``: who did, kept in ``revoked_by``). The save's ``post_save`` signal
        drops it from the API's key cache (the receiver is connected in ``shop_recs.api.apps``: stores
        sits below api and must not import it), so this process refuses the key from now on; others
        within API_KEY_CACHE_SECONDS."""
        if self.revoked_at is None:
            self.revoked_at = dj_timezone.now()
            self.revoked_by = user if getattr(user, "is_authenticated", False) else None
            self.save(update_fields=["revoked_at", "revoked_by"])


#: How long an invitation link can be used.
INVITATION_VALID_DAYS = 7


class InvitationQuerySet(models.QuerySet):
    def pending(self) -> InvitationQuerySet:
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=dj_timezone.now())


class Invitation(models.Model):
    """A merchant's invitation for someone to join a store with a role, by e-mail address.

    The link carries a random token shown once to the merchant (no mail is sent here: the merchant, or
    the demo command, passes the link on); only its hash is stored, like an API key's. Whoever opens the
    link signs in or creates an account and becomes a member with the invited role.
    """

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(_("e-mail address"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.ANALYST)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=dj_timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")

    def __str__(self) -> str:
        return f"{self.email} → {self.store} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > dj_timezone.now()
