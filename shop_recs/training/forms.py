"""The Jobs page's forms: train now, scheduled retraining."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from shop_recs.training.models import TrainingSchedule
from shop_recs.training.services import DEFAULT_ALGORITHMS, available_algorithms

#: One line per algorithm on the Jobs page.
ALGORITHM_DESCRIPTIONS = {
    "popularity": _("Most popular products overall; a baseline."),
    "trending": _("Popular lately, with a half-life on older events."),
    "item_knn": _("Products bought or viewed together (item neighbours)."),
    "user_knn": _("What customers with similar histories liked."),
    "rp3beta": _("Random walks on the customer–product graph, popularity-damped."),
    "ease": _("Linear item-item model; strong on small catalogs."),
    "als": _("Matrix factorisation for implicit feedback."),
    "bpr": _("Matrix factorisation trained to rank."),
    "pure_svd": _("Truncated SVD of the interaction matrix."),
    "content": _("Text similarity of titles, categories and tags."),
    "hybrid": _("Blend of collaborative and content models."),
}


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

    def algorithm_options(self) -> list[tuple]:
        """(checkbox, one-line description) per algorithm, for the Jobs page's grid."""
        return [(box, ALGORITHM_DESCRIPTIONS.get(box.data["value"], "")) for box in self["algorithms"]]

    def training_params(self) -> dict:
        max_drop = self.cleaned_data.get("max_drop")
        return {"_gate": {"max_drop": max_drop}} if max_drop is not None else {}


#: The longest retraining interval the Jobs page accepts (30 days). A store that should retrain more
#: rarely is better served by manual runs, and the cap turns a typo such as 2400 into an error
#: instead of a schedule that silently sleeps for 100 days.
MAX_INTERVAL_HOURS = 24 * 30


class TrainingScheduleForm(forms.Form):
    """The Jobs page's "Scheduled retraining" form (merchants only).

    The cadence is either a daily UTC hour or an interval in hours, never both, so what the page
    shows is what the beat task does (the model lets ``daily_hour`` win silently when both are set).
    Saving goes through :func:`shop_recs.training.schedule.update_schedule`.
    """

    # The Jobs page also renders StartTrainingForm, which has an ``algorithms`` field as well: the
    # prefix keeps the two forms' input names and element ids apart.
    prefix = "schedule"

    enabled = forms.BooleanField(label=_("Retrain automatically"), required=False)
    daily_hour = forms.IntegerField(
        label=_("Daily at hour (UTC)"),
        required=False,
        widget=forms.NumberInput(attrs={"min": "0", "max": "23", "step": "1", "placeholder": "3"}),
        help_text=_("Once a day at this hour, 0–23 UTC."),
    )
    interval_hours = forms.IntegerField(
        label=_("Or every N hours"),
        required=False,
        widget=forms.NumberInput(attrs={"min": "1", "max": str(MAX_INTERVAL_HOURS), "step": "1", "placeholder": "24"}),
    )
    algorithms = forms.MultipleChoiceField(
        label=_("Algorithms"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: the store's training configuration (set on the Evaluation pages) is used."),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The same choices as a manual run, so a schedule can never name an algorithm the Jobs
        # page could not start by hand.
        self.fields["algorithms"].choices = [(name, name) for name in available_algorithms()]
        # Interpolated here, per request: "%" on a lazy string at import time would freeze it in English.
        self.fields["interval_hours"].help_text = gettext(
            "From 1 to %(max)s hours; leave empty when a daily hour is set."
        ) % {"max": MAX_INTERVAL_HOURS}

    @classmethod
    def for_schedule(cls, schedule: TrainingSchedule | None) -> TrainingScheduleForm:
        """An unbound form showing ``schedule`` (or, for a store without one, an empty one: a pre-filled
        interval made the first "daily at 3" a "not both" error)."""
        if schedule is None:
            return cls(initial={"enabled": False, "algorithms": []})
        daily = schedule.daily_hour is not None
        known = set(available_algorithms())
        return cls(
            initial={
                "enabled": schedule.enabled,
                "daily_hour": schedule.daily_hour,
                # Rows saved in the admin often carry the default interval next to a daily hour,
                # which is ignored then; showing it would make the form fail its own "not both" check.
                "interval_hours": None if daily else schedule.interval_hours,
                "algorithms": [a for a in schedule.algorithms or [] if a in known],
            }
        )

    def clean_daily_hour(self) -> int | None:
        hour = self.cleaned_data.get("daily_hour")
        if hour is not None and not 0 <= hour <= 23:
            raise forms.ValidationError(_("Use an hour from 0 to 23."), code="hour_range")
        return hour

    def clean_interval_hours(self) -> int | None:
        hours = self.cleaned_data.get("interval_hours")
        if hours is not None and not 1 <= hours <= MAX_INTERVAL_HOURS:
            raise forms.ValidationError(
                _("Use an interval from 1 to %(max)s hours."),
                code="interval_range",
                params={"max": MAX_INTERVAL_HOURS},
            )
        return hours

    def clean(self) -> dict:
        data = super().clean()
        if self.has_error("daily_hour") or self.has_error("interval_hours"):
            return data  # the field's own error says it; a cross-field one on top would only confuse
        hour, interval = data.get("daily_hour"), data.get("interval_hours")
        # Attached to the inputs rather than the form, so the message sits next to what to change.
        if hour is not None and interval is not None:
            self.add_error(
                "interval_hours",
                forms.ValidationError(_("Set either a daily hour or an interval, not both."), code="both_cadences"),
            )
        elif data.get("enabled") and hour is None and interval is None:
            self.add_error(
                "daily_hour",
                forms.ValidationError(
                    _("Set a daily hour or an interval to retrain automatically."), code="no_cadence"
                ),
            )
        return data

    def schedule_values(self) -> dict:
        """Keyword arguments for :func:`shop_recs.training.schedule.update_schedule`."""
        data = self.cleaned_data
        return {
            "enabled": bool(data["enabled"]),
            "daily_hour": data["daily_hour"],
            "interval_hours": data["interval_hours"],
            "algorithms": list(data["algorithms"]),
        }
