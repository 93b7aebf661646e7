"""The dashboard fits a laptop (1,366×768) and a phone (390×844): no page scrolls sideways.

Each main page is opened at both sizes in Chromium; the page's content must not be wider than the
window (``document.documentElement.scrollWidth``: a table or a tab strip that is too wide scrolls
inside its own box instead). Screenshots of every page at both sizes go to ``SCREENSHOT_DIR``
(default ``/tmp/shop_recs_screenshots``; the README names it) for a person to look at.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.test_dashboard_browser import browser_page, build_demo_activity  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/shop_recs_screenshots"))
SIZES = {"laptop": (1366, 768), "phone": (390, 844)}
PAGES = {
    "overview": "/s/alpha/",
    "catalog": "/s/alpha/catalog/",
    "product": "/s/alpha/catalog/SKU-001/",
    "customers": "/s/alpha/customers/",
    "customer": "/s/alpha/customers/cust-0001/",
    "search": "/s/alpha/search/",
    "recommendations": "/s/alpha/recommendations/",
    "jobs": "/s/alpha/jobs/",
    "tasks": "/s/alpha/tasks/",
    "segments": "/s/alpha/insights/segments/",
    "ads": "/s/alpha/ads/",
    "evaluation": "/s/alpha/evaluation/",
    "experiments": "/s/alpha/experiments/",
    "imports": "/s/alpha/imports/",
    "settings": "/s/alpha/settings/store/",
    "members": "/s/alpha/settings/members/",
    "keys": "/s/alpha/settings/keys/",
}

#: The outermost elements that reach past the window's right edge (to say what to fix).
WIDEST_JS = """(width) => {
  const out = [];
  const past = (el) => el && el.getBoundingClientRect().right > width + 1;
  for (const el of document.querySelectorAll("body *")) {
    if (past(el) && !past(el.parentElement)) {
      const cls = typeof el.className === "string" ? el.className.trim().replace(/ +/g, ".") : "";
      out.push(el.tagName.toLowerCase() + (cls ? "." + cls : "") + " " + Math.round(el.getBoundingClientRect().right));
    }
  }
  return out.slice(0, 6).join(", ");
}"""


def test_no_page_scrolls_sideways_at_laptop_or_phone_size(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
):
    make_user("merchant", store)
    build_demo_activity(store)
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/?next=/s/alpha/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/s/alpha/")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    too_wide = []
    for size_name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        for name, path in PAGES.items():
            response = page.goto(f"{live_server.url}{path}")
            assert response.status == 200, (name, path, response.status)
            page.wait_for_load_state("load")
            page.wait_for_timeout(150)  # plotly's responsive relayout after the first frame
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            if scroll_width > width:
                culprits = page.evaluate(WIDEST_JS, width)
                too_wide.append(f"{name} at {size_name}: {scroll_width}px in a {width}px window; {culprits}")
            page.screenshot(path=str(SCREENSHOT_DIR / f"{name}-{size_name}.png"), full_page=True)
    assert not too_wide, "\n".join(too_wide)
