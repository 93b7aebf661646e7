"""Forms of the store settings page and of member invitations."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.models import Role, Store

#: Currencies offered in the select (ISO 4217). A store whose code is not listed keeps it as an option.
COMMON_CURRENCIES = (
    "USD", "EUR", "GBP", "CNY", "JPY", "HKD", "TWD", "KRW", "SGD", "AUD", "CAD", "CHF", "SEK", "NOK", "DKK",
    "PLN", "CZK", "HUF", "INR", "BRL", "MXN", "ZAR", "NZD", "THB", "MYR", "IDR", "PHP", "VND", "AED", "SAR",
    "TRY", "ILS",
)  # fmt: skip


@lru_cache(maxsize=1)
def time_zone_choices() -> list[tuple[str, str]]:
    # Region/City names only: the bare aliases ("EST", "Etc/GMT+5") confuse more than they help.
    names = sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
    return [("UTC", "UTC"), *((name, name.replace("_", " ")) for name in names)]


class StoreSettingsForm(forms.ModelForm):
    """Name, currency, time zone and language of a store; a merchant edits them on Settings → Store."""

    currency = forms.ChoiceField(label=_("Default currency"))
    timezone = forms.ChoiceField(label=_("Time zone"))
    language = forms.ChoiceField(
        label=_("Dashboard language"),
        required=False,
        help_text=_("For members who have not chosen a language themselves."),
    )

    class Meta:
        model = Store
        fields = ["name", "currency", "timezone", "language"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.currency
        codes = list(COMMON_CURRENCIES) + ([current] if current and current not in COMMON_CURRENCIES else [])
        self.fields["currency"].choices = [(code, code) for code in codes]
        self.fields["timezone"].choices = time_zone_choices()
        self.fields["language"].choices = [("", _("Each member's browser decides")), *settings.LANGUAGES]

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError(_("The store needs a name."))
        if any(ord(c) < 32 for c in name):
            raise forms.ValidationError(_("The name contains control characters."))
        return name


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=254)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.ANALYST)


class AcceptInvitationSignupForm(forms.Form):
    """A new account for someone accepting an invitation (its e-mail address is the invitation's)."""

    username = forms.CharField(label=_("Username"), max_length=150)
    password1 = forms.CharField(label=_("Password"), widget=forms.PasswordInput, strip=False)
    password2 = forms.CharField(label=_("Password again"), widget=forms.PasswordInput, strip=False)

    def __init__(self, *args, email: str, **kwargs):
        self.email = email
        super().__init__(*args, **kwargs)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        user_model = get_user_model()
        user_model.username_validator(username)
        if user_model.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This username is taken; choose another or sign in."))
        return username

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1 and "username" in cleaned:
            user = get_user_model()(username=cleaned["username"], email=self.email)
            try:
                validate_password(p1, user)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned

    def create_user(self):
        return get_user_model().objects.create_user(
            self.cleaned_data["username"], email=self.email, password=self.cleaned_data["password1"]
        )
