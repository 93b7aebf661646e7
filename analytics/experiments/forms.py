"""The experiment builder: the experiment's details, two to four variants chosen with selects (a model
version, an algorithm of the active run, or the live model), optional rule overrides as form
controls, and the inputs of the power estimate.

Every error names its variant and field: the variants are a formset (prefix ``variants``), so each
variant's errors sit on its own fields, and :func:`error_summary` lists them at the top of the page as
"Variant 2 (B) · Model version: ...".
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from analytics.experiments import power
from analytics.experiments.selectors import BASELINE_METRICS
from shop_recs.serving.forms import CategoryChoiceField, SkuListField
from shop_recs.serving.models import VariantKind
from shop_recs.serving.overrides import InvalidOverride, clean_overrides

MIN_VARIANTS = 2
MAX_VARIANTS = 4
VARIANT_PREFIX = "variants"

#: What a variant serves (``Variant.kind``), worded for the builder.
VARIANT_SOURCES = [
    ("", "—"),
    (VariantKind.MODEL_VERSION, _("A trained model version")),
    (VariantKind.ALGORITHM, _("An algorithm of the active run")),
    (VariantKind.RULES, _("The live model (rule overrides only)")),
]
TRI_STATE = [("", _("Unchanged")), ("on", _("Yes")), ("off", _("No"))]
METRIC_LABELS = {"ctr": _("Click-through rate"), "purchase_rate": _("Purchase rate")}
#: Override field -> the rules field it sets (see shop_recs/serving/overrides.py FIELDS).
SWITCHES = ("exclude_inactive", "exclude_out_of_stock", "exclude_purchased")
SKU_LISTS = {"pinned": "pinned", "blocked": "blocked", "boosted_products": "boosted_products"}
CATEGORY_LISTS = ("boosted_categories", "repurchasable_categories")


def _number(label: str, low: float, high: float, step: str, **kwargs: Any) -> forms.FloatField:
    return forms.FloatField(
        label=label,
        min_value=low,
        max_value=high,
        widget=forms.NumberInput(attrs={"min": f"{low:g}", "max": f"{high:g}", "step": step}),
        **kwargs,
    )


class PowerForm(forms.Form):
    """The power estimate's inputs (also part of the builder): placement, baseline metric, minimum
    detectable effect (relative, in %), alpha and power."""

    placement = forms.ChoiceField(label=_("Placement"))
    metric = forms.ChoiceField(label=_("Baseline"), choices=list(METRIC_LABELS.items()), initial="ctr", required=False)
    mde_percent = _number(
        _("Minimum detectable effect (relative, %)"),
        power.MDE_RANGE[0] * 100,
        power.MDE_RANGE[1] * 100,
        "0.5",
        initial=10,
        required=False,
        help_text=_("The smallest lift worth detecting: 10 means a 10 % better rate than the control's."),
    )
    alpha = _number(_("Significance level (alpha)"), *power.ALPHA_RANGE, "0.01", initial=0.05, required=False)
    power = _number(_("Power"), *power.POWER_RANGE, "0.05", initial=0.8, required=False)

    def __init__(self, *args: Any, placements: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["placement"].choices = placements

    def power_inputs(self) -> dict[str, Any]:
        """The cleaned inputs as ``selectors.power_estimate`` keywords (blank: the defaults)."""
        d = getattr(self, "cleaned_data", {})  # unbound or partly invalid: defaults for what is missing
        mde = d.get("mde_percent")
        return {
            "metric": d.get("metric") if d.get("metric") in BASELINE_METRICS else "ctr",
            "mde": (10.0 if mde is None else mde) / 100,
            "alpha": 0.05 if d.get("alpha") is None else d["alpha"],
            "power_target": 0.8 if d.get("power") is None else d["power"],
        }


class ExperimentForm(PowerForm):
    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(
        label=_("Hypothesis"), required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000
    )
    field_order = ["name", "placement", "description", "metric", "mde_percent", "alpha", "power"]


class VariantForm(forms.Form):
    """One variant. ``kind`` picks what it serves; the matching select must then be filled in."""

    name = forms.CharField(label=_("Variant name"), max_length=64)
    kind = forms.ChoiceField(label=_("Serves"), choices=VARIANT_SOURCES)
    model_version = forms.TypedChoiceField(
        label=_("Model version"),
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": _("That model version is not one of this store's usable versions.")},
    )
    algorithm = forms.ChoiceField(
        label=_("Algorithm"),
        required=False,
        error_messages={"invalid_choice": _("%(value)s is not an algorithm of the active training run.")},
    )
    traffic = forms.IntegerField(
        label=_("Traffic (%)"), min_value=1, max_value=100, widget=forms.NumberInput(attrs={"min": 1, "max": 100})
    )
    # Rule overrides: blank / "Unchanged" leaves the live rule as it is.
    exclude_inactive = forms.ChoiceField(label=_("Exclude inactive products"), choices=TRI_STATE, required=False)
    exclude_out_of_stock = forms.ChoiceField(label=_("Exclude out-of-stock"), choices=TRI_STATE, required=False)
    exclude_purchased = forms.ChoiceField(label=_("Exclude purchased"), choices=TRI_STATE, required=False)
    boost_weight = _number(_("Boost weight"), 0.0, 10.0, "0.1", required=False)
    diversity = _number(_("Diversity"), 0.0, 1.0, "0.05", required=False)
    pinned = SkuListField(label=_("Pinned products"), widget=forms.TextInput(attrs={"placeholder": "SKU-001, SKU-002"}))
    blocked = SkuListField(label=_("Blocked products"), widget=forms.TextInput(attrs={"placeholder": "SKU-003"}))
    boosted_products = SkuListField(
        label=_("Boosted products"), widget=forms.TextInput(attrs={"placeholder": "SKU-004"})
    )
    boosted_categories = CategoryChoiceField(
        label=_("Boosted categories"), queryset=None, required=False, widget=forms.SelectMultiple(attrs={"size": 3})
    )
    repurchasable_categories = CategoryChoiceField(
        label=_("Can be bought again"), queryset=None, required=False, widget=forms.SelectMultiple(attrs={"size": 3})
    )

    def __init__(
        self,
        *args: Any,
        versions: list[tuple[int, str]] = (),  # type: ignore[assignment]
        algorithms: list[str] = (),  # type: ignore[assignment]
        categories: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = [("", "—")] + list(versions)
        self.fields["algorithm"].choices = [("", "—")] + [(a, a) for a in algorithms]
        self.fields["boosted_categories"].queryset = categories
        self.fields["repurchasable_categories"].queryset = categories

    def clean(self) -> dict[str, Any]:
        d = super().clean()
        kind = d.get("kind")
        if kind == VariantKind.MODEL_VERSION and not d.get("model_version") and "model_version" not in self.errors:
            self.add_error("model_version", _("Choose the model version this variant serves."))
        if kind == VariantKind.ALGORITHM and not d.get("algorithm") and "algorithm" not in self.errors:
            self.add_error("algorithm", _("Choose the algorithm this variant serves."))
        if not self.errors:
            try:
                clean_overrides(self.overrides())
            except InvalidOverride as exc:  # the fields' ranges match, so this is a safety net
                raise forms.ValidationError(str(exc)) from None
        return d

    def overrides(self) -> dict[str, Any]:
        """The rule overrides chosen, as ``Variant.rule_overrides`` stores them (only what changes)."""
        d = self.cleaned_data
        out: dict[str, Any] = {}
        for name in SWITCHES:
            if d.get(name) in ("on", "off"):
                out[name] = d[name] == "on"
        for name in ("boost_weight", "diversity"):
            if d.get(name) is not None:
                out[name] = d[name]
        for name in SKU_LISTS:
            if d.get(name):
                out[name] = list(d[name])
        for name in CATEGORY_LISTS:
            if d.get(name):
                out[name] = sorted(c.pk for c in d[name])
        return out

    def variant(self) -> dict[str, Any]:
        """The variant as ``services.create_experiment`` takes it."""
        d = self.cleaned_data
        kind = d["kind"]
        return {
            "name": d["name"],
            "kind": kind,
            "model_version_id": d.get("model_version") if kind == VariantKind.MODEL_VERSION else None,
            "algorithm": (d.get("algorithm") or "") if kind == VariantKind.ALGORITHM else "",
            "rule_overrides": self.overrides(),
            "traffic": d["traffic"],
        }


class BaseVariantFormSet(forms.BaseFormSet):
    def active_forms(self) -> list[VariantForm]:
        """The variants filled in (the first two always count; a later, untouched one is left out)."""
        return [f for i, f in enumerate(self.forms) if i < MIN_VARIANTS or f.has_changed()]

    def clean(self) -> None:
        active = self.active_forms()
        # Checked on whatever is valid so far, so one round trip shows every problem at once.
        seen: dict[str, int] = {}
        for i, form in enumerate(active, start=1):
            name = (getattr(form, "cleaned_data", {}).get("name") or "").strip().casefold()
            if name and name in seen:
                form.add_error("name", _("Variant %(n)s already has this name; names must differ.") % {"n": seen[name]})
            elif name:
                seen[name] = i
        shares = [getattr(f, "cleaned_data", {}).get("traffic") for f in active]
        if None not in shares and sum(shares) != 100:
            raise forms.ValidationError(
                _("The traffic split sums to %(total)s %%; it must total 100 %%.") % {"total": sum(shares)},
                code="split",
            )

    def variants(self) -> list[dict[str, Any]]:
        return [f.variant() for f in self.active_forms()]


VariantFormSet = forms.formset_factory(
    VariantForm,
    formset=BaseVariantFormSet,
    extra=MAX_VARIANTS - MIN_VARIANTS,
    min_num=MIN_VARIANTS,
    max_num=MAX_VARIANTS,
    absolute_max=MAX_VARIANTS,
    validate_min=True,
    validate_max=True,
)


def error_summary(form: forms.Form, formset: BaseVariantFormSet) -> list[str]:
    """Every error as one line naming where it is: "Name: ...", "Variant 2 (B) · Model version: ..."."""
    lines: list[str] = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else ""
        lines += [f"{label}: {e}" if label else str(e) for e in errors]
    for i, vform in enumerate(formset.forms, start=1):
        if not vform.errors:
            continue
        raw_name = (vform.data.get(f"{vform.prefix}-name") or "").strip()
        where = _("Variant %(n)s") % {"n": i} + (f" ({raw_name})" if raw_name else "")
        for name, errors in vform.errors.items():
            label = vform.fields[name].label if name in vform.fields else ""
            lines += [f"{where} · {label}: {e}" if label else f"{where}: {e}" for e in errors]
    lines += [str(e) for e in formset.non_form_errors()]
    return lines
