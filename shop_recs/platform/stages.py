"""Job stages in the reader's language.

A job's stage is the short English line its worker writes as it goes (``jobs.JobProgress.stage``,
"fitting als"); it stays English in the row (logs, the admin). Pages and their JSON polls show it
through :func:`stage_label`, which names the known ones in the active language and keeps an
algorithm's name as the engine calls it; an unknown stage is shown as written.
"""

from __future__ import annotations

from django.utils.translation import pgettext, pgettext_lazy

_STAGES = {
    "queued": pgettext_lazy("job stage", "queued"),
    "starting": pgettext_lazy("job stage", "starting"),
    "done": pgettext_lazy("job stage", "done"),
    "importing": pgettext_lazy("job stage", "importing"),
    "counting rows": pgettext_lazy("job stage", "counting rows"),
    "loading data": pgettext_lazy("job stage", "loading data"),
    "splitting holdout": pgettext_lazy("job stage", "splitting holdout"),
    "tuning the blend": pgettext_lazy("job stage", "tuning the blend"),
    "precomputing serving arrays": pgettext_lazy("job stage", "precomputing serving arrays"),
    "writing artifacts": pgettext_lazy("job stage", "writing artifacts"),
    "activating": pgettext_lazy("job stage", "activating"),
    "frequently bought together": pgettext_lazy("job stage", "frequently bought together"),
    "preparing slices": pgettext_lazy("job stage", "preparing slices"),
    "running trials": pgettext_lazy("job stage", "running trials"),
    "saving results": pgettext_lazy("job stage", "saving results"),
    "saving validation split": pgettext_lazy("job stage", "saving validation split"),
}


def stage_label(value: str) -> str:
    """``value`` (a stage as the worker wrote it) in the active language."""
    text = (value or "").strip()
    if text in _STAGES:
        return str(_STAGES[text])
    verb, _sep, name = text.partition(" ")
    if name and verb == "fitting":
        return pgettext("job stage", "fitting %(name)s") % {"name": name}
    if name and verb == "evaluating":
        return pgettext("job stage", "evaluating %(name)s") % {"name": name}
    if name and verb == "tuning":
        return pgettext("job stage", "tuning %(name)s") % {"name": name}
    return value or ""
