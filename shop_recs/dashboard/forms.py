"""Dashboard forms: list filters (GET) and the settings actions (POST)."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.models import MAX_ALLOWED_ORIGINS, KeyKind, Role, normalize_origin

YES_NO = [("", _("Any")), ("yes", _("Yes")), ("no", _("No"))]


class FilterForm(forms.Form):
    """Base for list filters: invalid input is ignored rather than shown as an error."""

    sort_fields: tuple[str, ...] = ()
    default_sort = ""

    def value(self, name: str):
        self.is_valid()  # populates cleaned_data; a field that failed validation is simply absent
        return self.cleaned_data.get(name)

    def sort_key(self) -> str:
        raw = (self.data.get("sort") or "").strip()
        if raw.lstrip("-") in self.sort_fields:
            return raw
        return self.default_sort


class CatalogFilterForm(FilterForm):
    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    category = forms.ModelChoiceField(label=_("Category"), queryset=None, required=False, empty_label=_("All"))
    brand = forms.ChoiceField(label=_("Brand"), required=False)
    active = forms.ChoiceField(label=_("Active"), choices=YES_NO, required=False)
    in_stock = forms.ChoiceField(label=_("In stock"), choices=YES_NO, required=False)

    sort_fields = ("sku", "title", "brand", "price", "category__path", "created_at")
    default_sort = "sku"

    def __init__(self, *args, categories, brands, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].queryset = categories
        self.fields["brand"].choices = [("", _("All"))] + [(b, b) for b in brands]


class CustomerFilterForm(FilterForm):
    q = forms.CharField(label=_("External id"), required=False, max_length=100)
    country = forms.ChoiceField(label=_("Country"), required=False)
    age_band = forms.ChoiceField(label=_("Age band"), required=False)

    sort_fields = ("external_id", "country", "age_band", "signup_date", "created_at")
    default_sort = "external_id"

    def __init__(self, *args, countries, age_bands, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["country"].choices = [("", _("All"))] + [(c, c) for c in countries]
        self.fields["age_band"].choices = [("", _("All"))] + [(a, a) for a in age_bands]


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Key name"),
        max_length=100,
        help_text=_("Where the key is used, e.g. “storefront production”."),
    )
    # Not required: a form posted without a kind (as before publishable keys existed) makes a secret key.
    kind = forms.ChoiceField(label=_("Kind"), choices=KeyKind.choices, initial=KeyKind.SECRET, required=False)
    allowed_origins = forms.CharField(
        label=_("Allowed origins"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Publishable keys only: one origin per line, e.g. https://shop.example.com."),
    )

    def clean_kind(self) -> str:
        return self.cleaned_data.get("kind") or KeyKind.SECRET

    def clean_allowed_origins(self) -> list[str]:
        """One origin per line, each checked (``normalize_origin``); every bad line is named."""
        origins: list[str] = []
        errors: list[ValidationError] = []
        lines = [line.strip() for line in self.cleaned_data.get("allowed_origins", "").splitlines()]
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            try:
                origin = normalize_origin(line)
            except ValidationError as exc:
                errors.append(
                    ValidationError(_("Line %(line)d: %(reason)s"), params={"line": number, "reason": exc.messages[0]})
                )
                continue
            if origin not in origins:
                origins.append(origin)
        if errors:
            raise ValidationError(errors)
        if len(origins) > MAX_ALLOWED_ORIGINS:
            raise ValidationError(_("At most %(max)d allowed origins per key."), params={"max": MAX_ALLOWED_ORIGINS})
        return origins

    def clean(self) -> dict:
        data = super().clean()
        origins = data.get("allowed_origins")
        if data.get("kind") == KeyKind.PUBLISHABLE and origins == []:
            self.add_error(
                "allowed_origins",
                _("A publishable key needs at least one allowed origin: the pages that will use it."),
            )
        elif data.get("kind") == KeyKind.SECRET and origins:
            self.add_error(
                "allowed_origins",
                _("Only publishable keys have allowed origins; a secret key must never be used in a web page."),
            )
        return data


class AddMemberForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.ANALYST)

    def __init__(self, *args, store, **kwargs):
        self.store = store
        super().__init__(*args, **kwargs)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise forms.ValidationError(_("No user with this username exists."))
        if user.memberships.filter(store=self.store).exists():
            raise forms.ValidationError(_("This user is already a member of the store."))
        self.user = user
        return username


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
