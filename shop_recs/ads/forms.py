"""The campaign form: every choice is scoped to the current store, so another store's products,
categories or segments cannot even be named (products are picked or typed by SKU, matched ignoring
case and resolved in scope). Money (bid, budgets) is in the store currency with two decimals and
range-checked: positive, at most ``MAX_BUDGET`` / ``MAX_BID``, a daily budget within the total, and a
budget that can pay for at least one billable event (CPC: one click; CPM: one impression)."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils.translation import gettext_lazy as _

from shop_recs.ads.models import (
    MAX_BID,
    MAX_BUDGET,
    Campaign,
    CampaignStatus,
    PricingModel,
    billable_cost_micros,
    from_micros,
    to_micros,
)
from shop_recs.catalog.models import Category, Product
from shop_recs.serving.forms import RowIdsChoiceField, resolve_skus

_DT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
_MONEY = {"step": "0.01", "min": "0.01", "inputmode": "decimal"}
#: Most SKUs one campaign may promote by hand (categories cover larger sets).
MAX_SKUS = 200


def _money_field(label: str, maximum: Decimal, *, required: bool = True, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        required=required,
        # No max_digits: 1e300 gets "must be at most …" from the clean_ method, not a digit count.
        max_digits=None,
        decimal_places=2,
        help_text=help_text,
        widget=forms.NumberInput(attrs={**_MONEY, "max": f"{maximum:f}"}),
        error_messages={"max_decimal_places": _("Use at most two decimals (cents).")},
    )


class CampaignForm(forms.ModelForm):
    """Create or edit a campaign (instantiate inside ``store_scope``)."""

    skus = forms.CharField(
        label=_("Promoted products (SKUs)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "placeholder": "SKU-001, SKU-002"}),
        help_text=_("Pick products above, or type SKUs separated by commas or spaces (case does not matter)."),
    )
    bid = _money_field(_("Bid"), MAX_BID, help_text=_("CPM: per thousand impressions. CPC: per click."))
    budget = _money_field(_("Total budget"), MAX_BUDGET, help_text=_("The campaign never spends more than this."))
    daily_budget = _money_field(
        _("Daily budget"),
        MAX_BUDGET,
        required=False,
        help_text=_("Optional. Spending is paced evenly over each UTC day."),
    )

    # Declared with no queryset (a scoped manager refuses queries at import time); set in __init__.
    # RowIdsChoiceField: an id past 64 bits is a form error, not a database OverflowError.
    categories = RowIdsChoiceField(label=_("Promoted categories"), queryset=None, required=False)
    segments = RowIdsChoiceField(label=_("Target segments"), queryset=None, required=False)
    confirm_live = forms.BooleanField(
        label=_("Shoppers will see this campaign's ads once it is saved as active"),
        required=False,
        help_text=_("Needed when this save makes the campaign active."),
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "title",
            "image_url",
            "landing_url",
            "starts_at",
            "ends_at",
            "pricing_model",
            "bid",
            "budget",
            "daily_budget",
            "frequency_cap",
            "weight",
            "status",
            "attribution_basis",
            "attribution_window_days",
        ]
        widgets = {
            "starts_at": _DT,
            "ends_at": _DT,
            # type=text (styled like every dashboard input); the model's URLField still validates.
            "image_url": forms.TextInput(attrs={"inputmode": "url", "placeholder": "https://"}),
            "landing_url": forms.TextInput(attrs={"inputmode": "url", "placeholder": "https://"}),
            "frequency_cap": forms.NumberInput(attrs={"min": "1", "max": "1000"}),
            "weight": forms.NumberInput(attrs={"min": "0.01", "step": "0.1"}),
            "attribution_window_days": forms.NumberInput(attrs={"min": "1", "max": "90"}),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["categories"].queryset = Category.objects.order_by("path")
        # Segments are built by analytics; ads reaches them through its own relation (no import up).
        segment_model = Campaign.segments.field.related_model
        self.fields["segments"].queryset = segment_model.objects.order_by("kind", "name")
        self.fields["segments"].help_text = _("None: untargeted (shown to everyone, including anonymous visitors).")
        self.fields["starts_at"].input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
        self.fields["ends_at"].input_formats = self.fields["starts_at"].input_formats
        # Validators, not min_value/max_value: those only take effect when set before the field's __init__.
        self.fields["frequency_cap"].validators += [MinValueValidator(1), MaxValueValidator(1000)]
        self.fields["weight"].validators += [MaxValueValidator(1000.0)]
        self.fields["attribution_window_days"].validators += [MinValueValidator(1), MaxValueValidator(90)]
        if self.instance.pk and not self.is_bound:
            self.initial["categories"] = list(self.instance.categories.values_list("pk", flat=True))
            self.initial["segments"] = list(self.instance.segments.values_list("pk", flat=True))
            self.initial["skus"] = ", ".join(self.instance.products.order_by("sku").values_list("sku", flat=True))
        self._products: list[Product] = []

    def clean_skus(self) -> str:
        raw = self.cleaned_data.get("skus") or ""
        skus = list(dict.fromkeys(s.strip() for s in raw.replace(",", " ").split() if s.strip()))
        if len(skus) > MAX_SKUS:
            raise forms.ValidationError(
                _("At most %(max)d SKUs (got %(n)d); promote a category instead.") % {"max": MAX_SKUS, "n": len(skus)}
            )
        found = resolve_skus(skus)
        missing = [s for s in skus if s not in found]
        if missing:
            raise forms.ValidationError(
                _("No product with SKU %(skus)s in this store.") % {"skus": ", ".join(missing[:10])}
            )
        pks = list(dict.fromkeys(found[s] for s in skus))
        by_pk = Product.objects.in_bulk(pks)
        self._products = [by_pk[pk] for pk in pks if pk in by_pk]
        return raw

    def _clean_money(self, name: str, maximum: Decimal) -> Decimal | None:
        value = self.cleaned_data.get(name)
        if value is None:
            return None
        if value <= 0:
            raise forms.ValidationError(_("Must be greater than 0."))
        if value > maximum:
            raise forms.ValidationError(_("Must be at most %(max)s.") % {"max": f"{maximum:,.0f}"})
        return value

    def clean_bid(self) -> Decimal | None:
        return self._clean_money("bid", MAX_BID)

    def clean_daily_budget(self) -> Decimal | None:
        return self._clean_money("daily_budget", MAX_BUDGET)

    def clean_budget(self) -> Decimal | None:
        budget = self._clean_money("budget", MAX_BUDGET)
        if budget is not None and self.instance.pk and to_micros(budget) < self.instance.spend_micros:
            raise forms.ValidationError(
                _("%(spent)s was already spent; the budget cannot be lower.")
                % {"spent": f"{from_micros(self.instance.spend_micros):.2f}"}
            )
        return budget

    def clean_weight(self) -> float:
        weight = self.cleaned_data.get("weight")
        if weight is None or weight <= 0:
            raise forms.ValidationError(_("The weight must be greater than 0."))
        return weight

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end and end <= start:
            self.add_error("ends_at", _("The end must be after the start."))
        self._check_money(data)
        if data.get("status") == CampaignStatus.ACTIVE and not (self._products or data.get("categories")):
            # Ranking is by affinity for the promoted items; an active campaign needs some.
            self.add_error("skus", _("An active campaign needs promoted products or categories."))
        goes_live = data.get("status") == CampaignStatus.ACTIVE and (
            self.instance.pk is None or self.instance.status != CampaignStatus.ACTIVE
        )
        if goes_live and not data.get("confirm_live"):
            self.add_error("confirm_live", _("Tick this to make the campaign active: its ads go to shoppers at once."))
        return data

    def _check_money(self, data: dict) -> None:
        """Budgets that can pay for at least one billable event, and a daily budget within the total."""
        bid, budget, daily = data.get("bid"), data.get("budget"), data.get("daily_budget")
        pricing = data.get("pricing_model")
        if daily is not None and budget is not None and daily > budget:
            self.add_error("daily_budget", _("The daily budget cannot exceed the total budget."))
        if bid is None or pricing not in PricingModel.values:
            return
        one = from_micros(billable_cost_micros(pricing, bid))
        what = _("one click") if pricing == PricingModel.CPC else _("one impression")
        for name, amount in (("budget", budget), ("daily_budget", daily)):
            if amount is not None and amount < one and name not in self.errors:
                self.add_error(
                    "bid",
                    _("The bid (%(what)s costs %(one)s) is more than the %(budget)s of %(amount)s.")
                    % {
                        "what": what,
                        "one": f"{one.normalize():f}",
                        "budget": _("total budget") if name == "budget" else _("daily budget"),
                        "amount": f"{amount:.2f}",
                    },
                )
                return

    def save(self, commit: bool = True) -> Campaign:
        campaign = super().save(commit=commit)
        if commit:
            self.save_relations(campaign)
        return campaign

    def picked_products(self) -> list[Product]:
        """The products the picker shows as chosen: the cleaned ones, else the saved ones."""
        if self._products:
            return self._products
        if self.instance.pk and not self.is_bound:
            return list(self.instance.products.order_by("sku"))
        return []

    def save_relations(self, campaign: Campaign) -> None:
        campaign.products.set(self._products)
        campaign.categories.set(self.cleaned_data.get("categories") or [])
        campaign.segments.set(self.cleaned_data.get("segments") or [])
