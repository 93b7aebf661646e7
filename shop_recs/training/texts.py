"""Gate verdicts and activation reasons in the reader's language.

The gate (``gate.decide``) and activation store their reason as one English line with its figures
("better: ndcg@10 0.2482 vs 0.1541 on the same 77 customers, difference +0.0942 (95% interval +0.0247
to +0.1720)"), read by logs, the admin and the API. The pages pass that line through
:func:`translate_reason`, which knows each template the gate, training and activation write (the
``_RULES`` below, one per verdict code) and renders it with gettext, keeping the figures as written.
Verdicts stored by any earlier version translate the same way; a line no rule knows (a merchant's
own reason typed on the activation page) is shown as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils.translation import gettext as _

_N = r"[-+]?[\d.]+%?|[-+]?inf%?|nan"
_FIGURES = (
    rf"(?P<metric>\S+) (?P<cand>{_N}) vs (?P<act>{_N}) on the same (?P<n>\d+) customers, "
    rf"difference (?P<diff>{_N}) \(95% interval (?P<lo>{_N}) to (?P<hi>{_N})\)"
)


def _figures(m: re.Match) -> str:
    return _(
        "%(metric)s %(candidate)s vs %(active)s on the same %(n)s customers, difference %(diff)s "
        "(95%% interval %(low)s to %(high)s)"
    ) % {
        "metric": m["metric"],
        "candidate": m["cand"],
        "active": m["act"],
        "n": m["n"],
        "diff": m["diff"],
        "low": m["lo"],
        "high": m["hi"],
    }


_Render = Callable[[re.Match], str]
_RULES: list[tuple[re.Pattern, _Render]] = [
    (re.compile(r"forced"), lambda m: _("forced")),
    (re.compile(r"no active version"), lambda m: _("no active version")),
    (
        re.compile(r"a different configuration needs a holdout to compare on, and there was none"),
        lambda m: _("a different configuration needs a holdout to compare on, and there was none"),
    ),
    (
        re.compile(r"the active version has no holdout metric"),
        lambda m: _("the active version has no holdout metric"),
    ),
    (
        re.compile(r"the candidate has no holdout metric to compare"),
        lambda m: _("the candidate has no holdout metric to compare"),
    ),
    (
        re.compile(rf"(?P<metric>\S+) (?P<cand>{_N}) is more than (?P<drop>{_N}) below the active (?P<cur>{_N})"),
        lambda m: (
            _("%(metric)s %(candidate)s is more than %(drop)s below the active %(current)s")
            % {"metric": m["metric"], "candidate": m["cand"], "drop": m["drop"], "current": m["cur"]}
        ),
    ),
    (
        re.compile(
            rf"better (?P<metric>\S+), but catalog coverage (?P<c>{_N}) lost (?P<lost>{_N}) of the active "
            rf"(?P<a>{_N}) \(at most (?P<max>{_N}) allowed\)"
        ),
        lambda m: (
            _(
                "better %(metric)s, but catalog coverage %(coverage)s lost %(lost)s of the active %(active)s "
                "(at most %(max)s allowed)"
            )
            % {"metric": m["metric"], "coverage": m["c"], "lost": m["lost"], "active": m["a"], "max": m["max"]}
        ),
    ),
    (
        re.compile(rf"catalog coverage (?P<c>{_N}) lost (?P<lost>{_N}) of the active (?P<a>{_N})"),
        lambda m: (
            _("catalog coverage %(coverage)s lost %(lost)s of the active %(active)s")
            % {"coverage": m["c"], "lost": m["lost"], "active": m["a"]}
        ),
    ),
    (
        re.compile(rf"refresh of the live configuration: (?P<metric>\S+) (?P<cand>{_N})"),
        lambda m: (
            _("refresh of the live configuration: %(metric)s %(candidate)s")
            % {"metric": m["metric"], "candidate": m["cand"]}
        ),
    ),
    (
        re.compile(rf"no evidence of improvement: {_FIGURES}"),
        lambda m: _("no evidence of improvement: %(figures)s") % {"figures": _figures(m)},
    ),
    (
        re.compile(rf"lift (?P<lift>{_N}) is below the minimum (?P<min>{_N})"),
        lambda m: _("lift %(lift)s is below the minimum %(min)s") % {"lift": m["lift"], "min": m["min"]},
    ),
    (re.compile(rf"better: {_FIGURES}"), lambda m: _("better: %(figures)s") % {"figures": _figures(m)}),
    (
        re.compile(r"could not score the live configuration on this holdout: (?P<error>.*)", re.S),
        lambda m: _("could not score the live configuration on this holdout: %(error)s") % {"error": m["error"]},
    ),
    (
        re.compile(r"rollback to version (?P<v>\d+)"),
        lambda m: _("rollback to version %(version)s") % {"version": m["v"]},
    ),
    (
        re.compile(
            r"promoted from experiment #(?P<exp>\d+), variant (?P<variant>.+?)(?P<anyway> \(promoted anyway\))?"
        ),
        lambda m: (
            (
                _("promoted from experiment #%(experiment)s, variant %(variant)s (promoted anyway)")
                if m["anyway"]
                else _("promoted from experiment #%(experiment)s, variant %(variant)s")
            )
            % {"experiment": m["exp"], "variant": m["variant"]}
        ),
    ),
    # What promoting an experiment's variant did (analytics.experiments.services.promote_variant).
    (re.compile(r"rules updated"), lambda m: _("rules updated")),
    (
        re.compile(
            r"model version (?P<v>\d+) \((?P<algorithm>[^)]+)\) active(?P<config>; training configuration updated)?"
        ),
        lambda m: (
            (
                _("model version %(version)s (%(algorithm)s) active; training configuration updated")
                if m["config"]
                else _("model version %(version)s (%(algorithm)s) active")
            )
            % {"version": m["v"], "algorithm": m["algorithm"]}
        ),
    ),
    (
        re.compile(r"training run #(?P<run>\d+): (?P<reason>.*)", re.S),
        lambda m: _("training run #%(run)s: %(reason)s") % {"run": m["run"], "reason": translate_reason(m["reason"])},
    ),
]


def translate_reason(text: str) -> str:
    """A gate or activation reason in the active language; a text no rule knows, unchanged."""
    if not text:
        return text
    for pattern, render in _RULES:
        if m := pattern.fullmatch(text):
            return render(m)
    return text
