from __future__ import annotations

from pathlib import Path

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from shop_recs.imports.models import ImportKind

UPLOAD_KINDS = [(ImportKind.CATALOG.value, _("Catalog (CSV)")), (ImportKind.EVENTS.value, _("Events (CSV or JSONL)"))]
ALLOWED_SUFFIXES = {
    ImportKind.CATALOG.value: (".csv", ".tsv", ".txt"),  # .tsv/.txt: Merchant Center feeds (tab-separated)
    ImportKind.EVENTS.value: (".csv", ".jsonl", ".ndjson"),
}


def upload_max_bytes() -> int:
    # The request stores the file (the import runs in a job), so this bounds disk and upload time;
    # bigger files belong to the import commands.
    return settings.IMPORT_UPLOAD_MAX_MB * 1024 * 1024


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file contains"), choices=UPLOAD_KINDS)
    file = forms.FileField(label=_("File"))

    def clean(self):
        data = super().clean()
        upload, kind = data.get("file"), data.get("kind")
        if upload is None or kind is None:
            return data
        suffix = Path(upload.name).suffix.lower()
        allowed = ALLOWED_SUFFIXES[kind]
        if suffix not in allowed:
            self.add_error(
                "file",
                _("A %(kind)s file must end in %(allowed)s.") % {"kind": kind, "allowed": ", ".join(allowed)},
            )
        if upload.size > upload_max_bytes():
            self.add_error(
                "file",
                _("The file is larger than %(mb)d MB; use the import_%(kind)s command instead.")
                % {"mb": upload_max_bytes() // (1024 * 1024), "kind": kind},
            )
        if upload.size == 0:
            self.add_error("file", _("The file is empty."))
        return data
