"""The Jobs page's "Periodic jobs" card: last run, what it did here, the overdue flag, in both languages."""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from shop_recs.platform.models import PeriodicOutcome, PeriodicRun

ATTRIBUTION = "analytics.experiments.tasks.attribute_all_stores_task"


def _row(html: str, name: str) -> str:
    match = re.search(rf'<tr data-periodic="{name}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {name}"
    return match.group(1)


def _page(client, user, language: str | None = None) -> str:
    client.force_login(user)
    if language:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = client.get(reverse("recommend:jobs", kwargs={"store_slug": "alpha"}))
    assert response.status_code == 200
    return response.content.decode()


def _attribution_run(store, other_store, started):
    return PeriodicRun.objects.create(
        name="attribute-events",
        task=ATTRIBUTION,
        started_at=started,
        finished_at=started + timedelta(seconds=2),
        outcome=PeriodicOutcome.SUCCEEDED,
        counts={"events": 1240, "stores": 2},
        per_store={str(store.pk): {"events": 1200}, str(other_store.pk): {"events": 40}},
    )


def test_page_shows_last_run_and_the_stores_own_figures(client, store, other_store, analyst):
    _attribution_run(store, other_store, timezone.now() - timedelta(seconds=30))
    html = _page(client, analyst)  # analysts see the card too: it is read-only
    row = _row(html, "attribute-events")
    assert "Attribution of clicks and purchases" in row and "every 5 minutes" in row
    assert "1,200 events attributed to served lists" in row
    assert "1,240" not in html and "40 events" not in html  # nothing of the other store or the total
    assert 'data-flag="overdue"' not in row
    # Jobs that never ran are flagged.
    assert "Never ran" in _row(html, "sweep-stale-jobs")


def test_a_job_older_than_two_intervals_is_flagged(client, store, other_store, merchant):
    _attribution_run(store, other_store, timezone.now() - timedelta(minutes=11))  # interval 5 min
    row = _row(_page(client, merchant), "attribute-events")
    assert 'data-flag="overdue"' in row and "Not running on schedule" in row


def test_card_in_chinese(client, store, other_store, merchant):
    _attribution_run(store, other_store, timezone.now() - timedelta(minutes=11))
    html = _page(client, merchant, "zh-hans")
    row = _row(html, "attribute-events")
    assert "定期任务" in html
    assert "点击和购买归因" in row and "未按计划运行" in row and "1,200 个事件已归因到推荐列表" in row
