from __future__ import annotations

import json
import math

from django import forms
from django.utils.translation import gettext_lazy as _

from analytics.models import CustomerProfile, StoreAnalyticsSettings
from analytics.rule_segments import validate_rules
from analytics.rules_builder import RuleError
from analytics.services import EXPORT_FIELDS

#: ``dp_budget_window_days`` is a PositiveSmallIntegerField: the most a PostgreSQL smallint holds.
MAX_BUDGET_WINDOW_DAYS = 32767
#: The largest ε (per count, and the budget of a window) the form accepts: far past any privacy.
MAX_EPSILON = 1_000_000
#: The largest revenue clip per customer the form accepts (in the store's currency).
MAX_REVENUE_CLIP = 1_000_000_000


class RuleSegmentForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    rules = forms.CharField(
        label=_("Conditions (JSON)"),
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono", "data-audience": "1"}),
        initial=(
            '{"all": [{"field": "monetary", "op": ">", "value": 500}, '
            '{"field": "recency_days", "op": ">", "value": 60}]}'
        ),
    )

    #: The path of the condition the last error is about (``all[1].key``), for the builder to mark it.
    rules_error_path = ""

    def clean_rules(self):
        raw = self.cleaned_data["rules"]
        try:
            tree = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # not JSON, an int over 4,300 digits, nesting too deep
            raise forms.ValidationError(_("Not valid JSON: %(err)s") % {"err": exc}) from None
        try:
            # Store-aware: an unknown category or brand is an error here, not a segment of nobody.
            validate_rules(tree)
        except RuleError as exc:
            self.rules_error_path = exc.path
            raise forms.ValidationError(str(exc)) from None
        return tree


class RuleSegmentEditForm(RuleSegmentForm):
    """An edit: when running campaigns target the segment, changed conditions need ``confirm``."""

    confirm = forms.BooleanField(
        label=_("I understand that this changes which customers see the ads of the campaigns above."),
        required=False,
    )

    def __init__(self, *args, old_rules: object = None, campaigns: tuple = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.old_rules = old_rules
        self.campaigns = campaigns
        if not campaigns:
            del self.fields["confirm"]

    def clean(self):
        data = super().clean()
        rules = data.get("rules")
        if self.campaigns and rules is not None and rules != self.old_rules and not data.get("confirm"):
            self.add_error(
                "confirm",
                _("Tick the confirmation to save: running campaigns target this segment and their audience changes."),
            )
        return data


def _export_choices() -> list[tuple[str, str]]:
    """The CSV's columns keep the field names; the form names each in the reader's language."""
    return [(f, str(CustomerProfile._meta.get_field(f).verbose_name)) for f in EXPORT_FIELDS]


class ExportForm(forms.Form):
    fields = forms.MultipleChoiceField(
        label=_("Profile fields"),
        choices=_export_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class AutoSegmentForm(forms.Form):
    k = forms.IntegerField(
        label=_("Number of segments (empty: choose by silhouette)"),
        min_value=2,
        max_value=20,
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": _("k: auto"), "style": "width: 7em"}),
    )


def _at_most(value: float | None, most: float) -> None:
    """Refuse an absurd ε or budget: 1e300 was stored (issue 12's fuzz) and only means "no privacy"."""
    if value is not None and value > most:
        raise forms.ValidationError(_("The most this setting accepts is %(max)s.") % {"max": f"{most:,.0f}"})


class PrivacyForm(forms.ModelForm):
    class Meta:
        model = StoreAnalyticsSettings
        fields = ["dp_epsilon", "dp_budget", "dp_budget_window_days", "min_cell_size", "revenue_clip", "segment_k"]

    def clean_dp_epsilon(self):
        eps = self.cleaned_data["dp_epsilon"]
        if eps is not None and not (math.isfinite(eps) and eps > 0):
            raise forms.ValidationError(_("Epsilon must be positive (leave empty to turn noise off)."))
        _at_most(eps, MAX_EPSILON)
        return eps

    def clean_dp_budget(self):
        budget = self.cleaned_data["dp_budget"]
        if not (math.isfinite(budget) and budget > 0):
            raise forms.ValidationError(_("The privacy budget must be a positive number."))
        _at_most(budget, MAX_EPSILON)
        return budget

    def clean_dp_budget_window_days(self):
        days = self.cleaned_data["dp_budget_window_days"]
        if days < 1:
            raise forms.ValidationError(_("The budget window must be at least one day."))
        # The column's own limit (a PostgreSQL smallint): SQLite checks none, and a larger value
        # reached ``timedelta(days=...)`` and failed with an OverflowError (a 500, issue 12).
        if days > MAX_BUDGET_WINDOW_DAYS:
            raise forms.ValidationError(
                _("The budget window can be at most %(max)s days.") % {"max": MAX_BUDGET_WINDOW_DAYS}
            )
        return days

    def clean_revenue_clip(self):
        clip = self.cleaned_data["revenue_clip"]
        if not (math.isfinite(clip) and clip > 0):
            raise forms.ValidationError(_("The revenue clip must be a positive number."))
        # The clip is the noise's sensitivity: 1e300 was stored, and made every noisy revenue figure
        # meaningless (issue 12). No one customer's revenue share needs a bound past a billion.
        if clip > MAX_REVENUE_CLIP:
            raise forms.ValidationError(
                _("The revenue clip can be at most %(max)s.") % {"max": f"{MAX_REVENUE_CLIP:,}"}
            )
        return clip
