"""The Recommendations pages' forms: the preview and the store rules."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from shop_recs.catalog.models import Category, Product
from shop_recs.serving.models import StoreRules
from shop_recs.serving.preview import Toggles

# --- Recommendations pages ----------------------------------------------------------------------


class PreviewForm(forms.Form):
    """The preview's GET form: who to preview and the rule toggles (for this preview only)."""

    customer = forms.CharField(label=_("Customer"), required=False, max_length=100)
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
        found = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk"))
        unknown = [s for s in skus if s not in found]
        if unknown:
            raise forms.ValidationError(
                _("Unknown SKUs: %(skus)s"), code="unknown_sku", params={"skus": ", ".join(unknown)}
            )
        return [found[s] for s in skus]


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

    def __init__(self, *args, store, read_only: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
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
