"""The campaign form: every choice is scoped to the current store, so another store's products,
categories or segments cannot even be named (products are entered by SKU and resolved in scope)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.catalog.models import Category, Product
from shop_recs.serving.forms import RowIdsChoiceField

_DT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class CampaignForm(forms.ModelForm):
    """Create or edit a campaign (instantiate inside ``store_scope``)."""

    skus = forms.CharField(
        label=_("Promoted products (SKUs)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Comma- or space-separated SKUs of this store."),
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
            "budget",
            "frequency_cap",
            "weight",
            "status",
            "attribution_basis",
            "attribution_window_days",
        ]
        widgets = {"starts_at": _DT, "ends_at": _DT}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["categories"].queryset = Category.objects.order_by("path")
        # Segments are built by analytics; ads reaches them through its own relation (no import up).
        segment_model = Campaign.segments.field.related_model
        self.fields["segments"].queryset = segment_model.objects.order_by("kind", "name")
        self.fields["segments"].help_text = _("None: untargeted (shown to everyone, including anonymous visitors).")
        self.fields["starts_at"].input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
        self.fields["ends_at"].input_formats = self.fields["starts_at"].input_formats
        self.fields["budget"].min_value = 1
        self.fields["frequency_cap"].min_value = 1
        if self.instance.pk and not self.is_bound:
            self.initial["categories"] = list(self.instance.categories.values_list("pk", flat=True))
            self.initial["segments"] = list(self.instance.segments.values_list("pk", flat=True))
            self.initial["skus"] = ", ".join(self.instance.products.order_by("sku").values_list("sku", flat=True))
        self._products: list[Product] = []

    def clean_skus(self) -> str:
        raw = self.cleaned_data.get("skus") or ""
        skus = list(dict.fromkeys(s.strip() for s in raw.replace(",", " ").split() if s.strip()))
        found = {p.sku: p for p in Product.objects.filter(sku__in=skus)}
        missing = [s for s in skus if s not in found]
        if missing:
            raise forms.ValidationError(
                _("No product with SKU %(skus)s in this store.") % {"skus": ", ".join(missing[:10])}
            )
        self._products = [found[s] for s in skus]
        return raw

    def clean_budget(self) -> int:
        budget = self.cleaned_data.get("budget")
        if budget is None or budget <= 0:
            raise forms.ValidationError(_("The impression budget must be at least 1."))
        if self.instance.pk and budget < self.instance.impressions_served:
            raise forms.ValidationError(
                _("%(n)d impressions were already served; the budget cannot be lower.")
                % {"n": self.instance.impressions_served}
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
        if data.get("status") == CampaignStatus.ACTIVE and not (self._products or data.get("categories")):
            # Ranking is by affinity for the promoted items; an active campaign needs some.
            self.add_error("skus", _("An active campaign needs promoted products or categories."))
        goes_live = data.get("status") == CampaignStatus.ACTIVE and (
            self.instance.pk is None or self.instance.status != CampaignStatus.ACTIVE
        )
        if goes_live and not data.get("confirm_live"):
            self.add_error("confirm_live", _("Tick this to make the campaign active: its ads go to shoppers at once."))
        return data

    def save(self, commit: bool = True) -> Campaign:
        campaign = super().save(commit=commit)
        if commit:
            self.save_relations(campaign)
        return campaign

    def save_relations(self, campaign: Campaign) -> None:
        campaign.products.set(self._products)
        campaign.categories.set(self.cleaned_data.get("categories") or [])
        campaign.segments.set(self.cleaned_data.get("segments") or [])
