"""The Recommendations pages' forms: the preview, placements and their rules."""

from __future__ import annotations

import re

from django import forms
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from shop_recs.catalog.models import Category, Product
from shop_recs.serving.models import Placement, StoreRules
from shop_recs.serving.preview import Toggles
from shop_recs.training.services import available_algorithms

# --- Recommendations pages ----------------------------------------------------------------------


class PreviewForm(forms.Form):
    """The preview's GET form: who to preview and the rule toggles (for this preview only)."""

    customer = forms.CharField(label=_("Customer"), required=False, max_length=100)
    # Any text: an unknown key previews the default placement, as the API serves it (and says so).
    placement = forms.CharField(label=_("Placement"), required=False, max_length=100)
    rules = forms.CharField(required=False, widget=forms.HiddenInput)  # "1" once the toggles were submitted
    exclude_purchased = forms.BooleanField(label=_("Exclude purchased"), required=False)
    exclude_out_of_stock = forms.BooleanField(label=_("Exclude out-of-stock"), required=False)
    apply_boosts = forms.BooleanField(label=_("Apply boosts and pins"), required=False)
    diversity = forms.FloatField(
        label=_("Diversity"),
        min_value=0.0,
        max_value=1.0,
        required=False,
        widget=forms.NumberInput(attrs={"type": "range", "min": "0", "max": "1", "step": "0.05"}),
    )

    def toggles(self, defaults):
        """The submitted toggles, or ``defaults`` (the store's rules) when none were submitted."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        if data.get("rules") != "1":
            return defaults
        diversity = data.get("diversity")
        return Toggles(
            exclude_purchased=bool(data.get("exclude_purchased")),
            exclude_out_of_stock=bool(data.get("exclude_out_of_stock")),
            diversity=defaults.diversity if diversity is None else float(diversity),
            apply_boosts=bool(data.get("apply_boosts")),
        )


def _split_skus(text: str) -> list[str]:
    return list(dict.fromkeys(s for s in re.split(r"[\s,;]+", text or "") if s))


#: SKUs one list of a rule may hold (the rules row is read whole on every cache refresh).
MAX_SKUS = 1000


def resolve_skus(skus: list[str]) -> dict[str, int]:
    """Typed SKU -> product pk, ignoring case (merchants type "mug-1" for "MUG-1"). An exact match
    wins over a case-insensitive one; SKUs of no product are left out. Scoped to the active store."""
    found = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk"))
    missing = {s.lower(): s for s in skus if s not in found}
    if missing:
        rows = (
            Product.objects.annotate(sku_lower=Lower("sku"))
            .filter(sku_lower__in=list(missing))
            .order_by("sku")
            .values_list("sku_lower", "pk")
        )
        for lowered, pk in rows:
            found.setdefault(missing[lowered], pk)
    return found


class SkuListField(forms.CharField):
    """Skus as comma- or newline-separated text; cleans to a list of Product pks (order kept)."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "SKU-001, SKU-002", "spellcheck": "false"})

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, value):
        skus = _split_skus(super().clean(value))
        if not skus:
            return []
        if len(skus) > MAX_SKUS:
            raise forms.ValidationError(
                _("At most %(max)s SKUs (got %(n)s)."), code="too_many", params={"max": MAX_SKUS, "n": len(skus)}
            )
        found = resolve_skus(skus)
        unknown = [s for s in skus if s not in found]
        if unknown:
            raise forms.ValidationError(
                _("Unknown SKUs: %(skus)s"), code="unknown_sku", params={"skus": ", ".join(unknown)}
            )
        return list(dict.fromkeys(found[s] for s in skus))


class RowIdsChoiceField(forms.ModelMultipleChoiceField):
    """A multiple choice of rows by id that refuses an id no id column can hold before any lookup.

    Django's field checks each value with a lazy ``filter()``; an id past 64 bits then reached SQLite,
    which raised ``OverflowError`` (a 500, issue 12) instead of the "not a valid value" error.
    """

    def clean(self, value):
        if isinstance(value, list | tuple):
            for pk in value:
                text = str(pk)
                if not (text.isascii() and text.isdigit() and len(text) < 19):
                    raise forms.ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk}
                    )
        return super().clean(value)


class CategoryChoiceField(RowIdsChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.path or obj.name


class StoreRulesForm(forms.ModelForm):
    """The merchant's rules. Product references are entered as skus; categories come from this store only."""

    repurchasable_categories = CategoryChoiceField(
        label=_("Can be bought again"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Purchased products in these categories stay recommendable (consumables, refills)."),
    )
    blocked = SkuListField(label=_("Blocked products"), help_text=_("Never recommended."))
    pinned = SkuListField(label=_("Pinned products"), help_text=_("Always first, in the order given."))
    boosted = SkuListField(label=_("Boosted products"), help_text=_("Scores multiplied by the boost weight."))
    boosted_categories = CategoryChoiceField(
        label=_("Boosted categories"),
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Every product in these categories gets the boost."),
    )

    # Rules apply to every list served from the next request on: saving asks for this tick.
    confirm = forms.BooleanField(
        label=_("Apply these rules to every recommendation shoppers see from now on"),
        required=True,
        error_messages={"required": _("Tick the confirmation to save: the rules change what every shopper sees.")},
    )

    class Meta:
        model = StoreRules
        fields = ["exclude_inactive", "exclude_out_of_stock", "exclude_purchased", "boost_weight", "default_diversity"]
        help_texts = {
            "boost_weight": _("1 = no boost; 1.5 raises boosted scores by half; below 1 demotes."),
            "default_diversity": _("0 = ordered by score only; 1 = spread categories and similar items the most."),
        }

    def __init__(self, *args, store, read_only: bool = False, placement: Placement | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if placement is not None and not placement.is_default:
            self.fields["confirm"].label = _("Apply these rules to every list of this placement from now on")
            self.fields["confirm"].error_messages["required"] = _(
                "Tick the confirmation to save: the rules change what shoppers see in this placement."
            )
        categories = Category.objects.filter(store=store).order_by("path")
        self.fields["repurchasable_categories"].queryset = categories
        self.fields["boosted_categories"].queryset = categories
        self.fields["boost_weight"].min_value = 0.0
        self.fields["boost_weight"].max_value = 10.0
        self.fields["boost_weight"].widget.attrs.update(min="0", max="10", step="0.1")
        self.fields["default_diversity"].widget.attrs.update(min="0", max="1", step="0.05")
        row = self.instance
        if not self.is_bound:
            pks = {
                int(pk)
                for pk in (row.blocked_product_ids or [])
                + (row.pinned_product_ids or [])
                + (row.boosted_product_ids or [])
            }
            skus = dict(Product.objects.filter(pk__in=pks).values_list("pk", "sku"))

            def text(ids):
                return "\n".join(skus[int(pk)] for pk in ids or [] if int(pk) in skus)

            self.initial.update(
                blocked=text(row.blocked_product_ids),
                pinned=text(row.pinned_product_ids),
                boosted=text(row.boosted_product_ids),
                repurchasable_categories=list(row.repurchasable_category_ids or []),
                boosted_categories=list(row.boosted_category_ids or []),
            )
        if read_only:
            for f in self.fields.values():
                f.disabled = True

    def clean_boost_weight(self):
        # Setting ``min_value``/``max_value`` after the field is built adds no validator: check here.
        value = self.cleaned_data["boost_weight"]
        if not 0.0 <= value <= 10.0:
            raise forms.ValidationError(_("The boost weight must be between 0 and 10."))
        return value

    def clean_default_diversity(self):
        value = self.cleaned_data["default_diversity"]
        if not 0.0 <= value <= 1.0:
            raise forms.ValidationError(_("Diversity must be between 0 and 1."))
        return value

    def save(self, commit: bool = True):
        row = super().save(commit=False)
        data = self.cleaned_data
        row.repurchasable_category_ids = [c.pk for c in data["repurchasable_categories"]]
        row.boosted_category_ids = [c.pk for c in data["boosted_categories"]]
        row.blocked_product_ids = data["blocked"]
        row.pinned_product_ids = data["pinned"]
        row.boosted_product_ids = data["boosted"]
        if commit:
            row.save()  # StoreRules.save() drops this process's cached rules (rules.invalidate_rules)
        return row


# --- placements ---------------------------------------------------------------------------------


def algorithm_choices() -> list[tuple[str, str]]:
    return [("", _("The live model (whatever is active)"))] + [(a, a) for a in available_algorithms()]


class PlacementForm(forms.ModelForm):
    """A placement's key (fixed once created: API calls, experiments and logs name it), name and algorithm."""

    algorithm = forms.ChoiceField(
        label=_("Algorithm"),
        required=False,
        choices=(),
        help_text=_(
            "Serve this algorithm of the active training run here (customer recommendations); "
            "a running experiment on this placement takes precedence."
        ),
    )

    class Meta:
        model = Placement
        fields = ["key", "name", "algorithm"]
        help_texts = {
            "key": _("What the shop sends as ?placement= in API calls: letters, digits, - and _."),
            "name": _("Shown in the dashboard."),
        }

    def __init__(self, *args, store, editing: bool = False, read_only: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.store = store
        self.fields["algorithm"].choices = algorithm_choices()
        self.fields["key"].widget.attrs.update(placeholder="home", spellcheck="false", autocomplete="off")
        if editing:
            self.fields["key"].disabled = True
            self.fields["key"].help_text = _("Fixed: the shop's API calls, experiments and logs use it.")
        if read_only:
            for f in self.fields.values():
                f.disabled = True

    def clean_key(self):
        key = self.cleaned_data["key"]
        if self.fields["key"].disabled:
            return key
        others = Placement.objects.filter(store=self.store, key=key)
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(
                _("This store already has a placement with the key “%(key)s”."), code="duplicate", params={"key": key}
            )
        return key

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError(_("Give the placement a name."), code="required")
        return name


class NewPlacementForm(PlacementForm):
    """Creating a placement: its rules start as a copy of the default placement's (see placements.py)."""

    confirm = forms.BooleanField(
        label=_("Serve this placement's requests with its own rules and algorithm from now on"),
        required=True,
        error_messages={
            "required": _("Tick the confirmation to create it: requests naming this key get its settings.")
        },
    )


class DeletePlacementForm(forms.Form):
    confirm = forms.BooleanField(
        label=_("Delete this placement; its lists use the default placement's rules from now on"),
        required=True,
        error_messages={"required": _("Tick the confirmation to delete the placement.")},
    )
