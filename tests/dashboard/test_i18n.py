"""The dashboard is translated: switching to Simplified Chinese shows Chinese strings."""

from __future__ import annotations

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db


def test_language_switch_to_simplified_chinese(client, merchant, shop_data):
    client.force_login(merchant)
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/s/alpha/"})
    assert response.status_code == 302
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    html = client.get("/s/alpha/").content.decode()
    assert 'lang="zh-hans"' in html
    assert "概览" in html  # "Overview"
    assert "转化漏斗" in html  # "Conversion funnel"
    assert "营收" in html  # "Revenue"


def test_english_by_default(client, merchant):
    client.force_login(merchant)
    html = client.get("/s/alpha/").content.decode()
    assert "Overview" in html and "概览" not in html
