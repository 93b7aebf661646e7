"""Forms of the evaluation page: start an evaluation run, start a tuning job, monitoring settings."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from analytics.evaluation.models import Protocol
from shop_recs.recsys import registry
from shop_recs.recsys.metrics import RANKING_METRICS


def _algorithm_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(registry.ALGORITHMS)]


class _ProtocolFields(forms.Form):
    algorithms = forms.MultipleChoiceField(
        label=_("Algorithms"), choices=_algorithm_choices, widget=forms.CheckboxSelectMultiple
    )
    protocol = forms.ChoiceField(label=_("Protocol"), choices=Protocol.choices, initial=Protocol.TEMPORAL)
    test_days = forms.FloatField(
        label=_("Test window (days)"),
        min_value=0.01,
        initial=7,
        required=False,
        help_text=_("Temporal cutoff: the last N days are the test period."),
    )
    test_fraction = forms.FloatField(
        label=_("Test share"),
        min_value=0.05,
        max_value=0.9,
        initial=0.2,
        required=False,
        help_text=_("Random holdout: this share of each customer's items is held out."),
    )

    def protocol_params(self) -> dict[str, Any]:
        data = self.cleaned_data
        if data["protocol"] == Protocol.TEMPORAL:
            return {"test_days": data.get("test_days") or 7.0}
        if data["protocol"] == Protocol.RANDOM:
            return {"test_fraction": data.get("test_fraction") or 0.2, "seed": 0}
        return {"k": 1}


class StartEvaluationForm(_ProtocolFields):
    ks = forms.CharField(
        label=_("Cutoffs k"),
        initial="5, 10, 20",
        help_text=_("Comma-separated, between 1 and 50. Curves always show k = 1 to 50."),
    )
    auto_tune = forms.BooleanField(
        label=_("Tune hyperparameters first"),
        required=False,
        help_text=_("Searches each algorithm's grid on a validation split carved from the training data only."),
    )

    def clean_ks(self) -> list[int]:
        try:
            ks = sorted({int(part) for part in self.cleaned_data["ks"].replace(";", ",").split(",") if part.strip()})
        except ValueError:
            raise forms.ValidationError(_("Enter whole numbers separated by commas.")) from None
        if not ks or ks[0] < 1 or ks[-1] > 50:
            raise forms.ValidationError(_("Every k must be between 1 and 50."))
        return ks


class StartTuningForm(_ProtocolFields):
    metric = forms.ChoiceField(
        label=_("Optimise"),
        choices=[(f"{m}@{k}", f"{m}@{k}") for m in RANKING_METRICS for k in (10, 20)],
        initial="ndcg@10",
    )
    n_iter = forms.IntegerField(
        label=_("Max configurations per algorithm"),
        min_value=1,
        max_value=100,
        initial=20,
        help_text=_("Grids larger than this are sampled at random (the defaults are always tried)."),
    )


class EvaluationSettingsForm(forms.Form):
    max_metric_drop = forms.FloatField(
        label=_("Maximum NDCG@10 drop"),
        min_value=0.0,
        max_value=1.0,
        help_text=_(
            "A retrained live configuration is not activated when its NDCG@10 is more than this fraction below "
            "the active model's."
        ),
    )
    min_lift = forms.FloatField(
        label=_("Minimum lift for a new kind of model"),
        min_value=0.0,
        max_value=1.0,
        initial=0.0,
        required=False,
        help_text=_(
            # xgettext:no-python-format ("95% i" is not a %-directive: the text is never %-formatted)
            "Another algorithm or other settings go live on their own only when they beat the active model on the "
            "same customers beyond the noise (95% interval above zero) and by at least this fraction."
        ),
    )
    max_coverage_loss = forms.FloatField(
        label=_("Largest allowed coverage loss"),
        min_value=0.0,
        max_value=1.0,
        initial=0.1,
        required=False,
        help_text=_("A new model may not recommend from a catalog share smaller by more than this fraction."),
    )
