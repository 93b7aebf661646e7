"""Dashboard forms: list filters (GET) and the settings actions (POST)."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from shop_recs.stores.models import Role

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
