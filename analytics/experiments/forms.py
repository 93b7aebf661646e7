"""The form that creates an experiment with two to four variants."""

from __future__ import annotations

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from shop_recs.serving.models import VariantKind

MAX_VARIANTS = 4


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=200)
    placement = forms.CharField(max_length=64, initial="home")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, versions=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "—")] + [(str(v.pk), str(v)) for v in versions]
        for i in range(MAX_VARIANTS):
            req = i < 2
            self.fields[f"v{i}_name"] = forms.CharField(max_length=64, required=req, label=_("Variant name"))
            self.fields[f"v{i}_kind"] = forms.ChoiceField(choices=VariantKind.choices, required=req)
            self.fields[f"v{i}_version"] = forms.ChoiceField(choices=choices, required=False)
            self.fields[f"v{i}_algorithm"] = forms.CharField(max_length=64, required=False)
            self.fields[f"v{i}_rules"] = forms.CharField(required=False, help_text=_('JSON, e.g. {"boost_weight": 2}'))
            self.fields[f"v{i}_traffic"] = forms.IntegerField(min_value=0, max_value=100, required=req)

    def variants(self) -> list[dict]:
        out = []
        for i in range(MAX_VARIANTS):
            d = self.cleaned_data
            if not d.get(f"v{i}_name"):
                continue
            rules = {}
            if d.get(f"v{i}_rules"):
                try:
                    rules = json.loads(d[f"v{i}_rules"])
                except ValueError:
                    self.add_error(f"v{i}_rules", _("Not valid JSON."))
            out.append(
                {
                    "name": d[f"v{i}_name"],
                    "kind": d[f"v{i}_kind"],
                    "model_version_id": int(d[f"v{i}_version"]) if d.get(f"v{i}_version") else None,
                    "algorithm": d.get(f"v{i}_algorithm") or "",
                    "rule_overrides": rules,
                    "traffic": d.get(f"v{i}_traffic") or 0,
                }
            )
        return out
