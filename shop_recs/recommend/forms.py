"""The Jobs page form: which algorithms to train."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from shop_recs.recommend.services import DEFAULT_ALGORITHMS, available_algorithms


class StartTrainingForm(forms.Form):
    algorithms = forms.MultipleChoiceField(
        label=_("Algorithms"),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Each one is trained and scored on a holdout; the best becomes active if it passes the gate."),
    )
    max_drop = forms.FloatField(
        label=_("Gate: largest allowed drop"),
        min_value=0.0,
        max_value=1.0,
        initial=0.2,
        required=False,
        help_text=_("Refuse to activate a model whose NDCG@10 is more than this fraction below the active one."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["algorithms"].choices = [(name, name) for name in available_algorithms()]
        self.fields["algorithms"].initial = list(DEFAULT_ALGORITHMS)

    def training_params(self) -> dict:
        max_drop = self.cleaned_data.get("max_drop")
        return {"_gate": {"max_drop": max_drop}} if max_drop is not None else {}
