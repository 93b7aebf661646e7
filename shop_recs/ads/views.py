"""Ads dashboard: campaign list, report (with charts), create/edit and status changes.

Everyone with a membership reads (``store_view``); only merchants write (``merchant_only`` on the
write views, and ``require_merchant`` is not needed because no read view accepts POST).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from shop_recs.ads import charts, selectors, services
from shop_recs.ads.forms import CampaignForm
from shop_recs.ads.models import Campaign, CampaignStatus
from shop_recs.platform.charts import figure_json
from shop_recs.serving.audit import field_changes, record_change
from shop_recs.serving.models import ChangeKind
from shop_recs.stores.access import store_view


@store_view
@require_GET
def campaigns(request: HttpRequest) -> HttpResponse:
    return render(request, "ads/campaigns.html", {"section": "ads", "rows": selectors.campaign_rows()})


@store_view
@require_GET
def campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = get_object_or_404(
        Campaign.objects.prefetch_related("products", "categories", "segments"), pk=campaign_id
    )
    report = selectors.campaign_report(campaign)
    currency = request.store.currency
    figures = {}
    if report["enough_data"]:
        figures["daily"] = figure_json(
            charts.daily_performance_figure(
                report["days"],
                report["series"],
                {"impressions": _("Impressions"), "clicks": _("Clicks"), "conversions": _("Conversions")},
            )
        )
        figures["spend"] = figure_json(
            charts.spend_figure(
                report["days"],
                report["series"]["spend"],
                report["series"]["revenue"],
                {
                    "spend": _("Spend (%(currency)s)") % {"currency": currency},
                    "revenue": _("Attributed revenue (%(currency)s)") % {"currency": currency},
                },
            )
        )
        figures["pacing"] = figure_json(
            charts.pacing_figure(
                report["days"],
                report["series"]["cumulative"],
                float(campaign.budget),
                {"served": _("Spent"), "even": _("Even pace")},
            )
        )
    return render(
        request,
        "ads/campaign_detail.html",
        {
            "section": "ads",
            "campaign": campaign,
            "report": report,
            "figures": figures,
            "statuses": CampaignStatus,
            "chart_min": selectors.CHART_MIN_IMPRESSIONS,
        },
    )


def _form_context(request: HttpRequest, form: CampaignForm, campaign: Campaign | None) -> dict:
    return {
        "section": "ads",
        "form": form,
        "campaign": campaign,
        "currency": request.store.currency,
        "picked": form.picked_products(),
    }


def _record_if_shoppers_see_it(request: HttpRequest, campaign: Campaign, before: dict, created: bool) -> None:
    """A save that leaves the campaign active changes what shoppers see: record it like a status change."""
    after = services.campaign_values(campaign)
    if campaign.status != CampaignStatus.ACTIVE and before.get("status") != CampaignStatus.ACTIVE:
        return
    changes = field_changes(before, after)
    if not changes:
        return
    verb = "created" if created else "edited"
    record_change(
        request.store,
        request.user,
        ChangeKind.CAMPAIGN,
        f"campaign #{campaign.pk} {campaign.name} {verb}: {', '.join(sorted(changes))}",
        obj=campaign,
        details=changes,
    )


@store_view(merchant_only=True)
def campaign_new(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        campaign = form.save(commit=False)
        campaign.store = request.store
        campaign.created_by = request.user
        campaign.save()
        form.save_relations(campaign)
        _record_if_shoppers_see_it(request, campaign, {}, created=True)
        messages.success(request, _("Campaign created."))
        return redirect("ads:campaign_detail", store_slug=request.store.slug, campaign_id=campaign.pk)
    return render(request, "ads/campaign_form.html", _form_context(request, form, None))


@store_view(merchant_only=True)
def campaign_edit(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    before = services.campaign_values(campaign)
    form = CampaignForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        form.save()
        _record_if_shoppers_see_it(request, campaign, before, created=False)
        messages.success(request, _("Campaign saved."))
        return redirect("ads:campaign_detail", store_slug=request.store.slug, campaign_id=campaign.pk)
    return render(request, "ads/campaign_form.html", _form_context(request, form, campaign))


@store_view(merchant_only=True)
@require_POST
def campaign_status(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=campaign_id)
    status = request.POST.get("status", "")
    if status not in CampaignStatus.values:
        messages.error(request, _("Unknown status."))
    elif status == CampaignStatus.ACTIVE and request.POST.get("confirm") != "yes":
        messages.error(request, _("Tick the confirmation to activate: shoppers start seeing this campaign's ads."))
    else:
        before = campaign.status
        services.set_campaign_status(campaign, status)
        record_change(
            request.store,
            request.user,
            ChangeKind.CAMPAIGN,
            f"campaign #{campaign.pk} {campaign.name}: {before} → {campaign.status}",
            obj=campaign,
            details={"status": [before, campaign.status]},
        )
        messages.success(request, _("Campaign is now %(status)s.") % {"status": campaign.get_status_display()})
    return redirect("ads:campaign_detail", store_slug=request.store.slug, campaign_id=campaign.pk)
