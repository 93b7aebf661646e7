"""The experiment builder in Chromium: a merchant builds a two-variant experiment with selects, sees the
power estimate follow the inputs, adds and removes a variant, creates the draft, starts it with the
confirmation and sees it running. The builder and the experiment page are checked at 1,366×768 and
390×844: no button is cut off (by the window or by a box that clips its content), and screenshots go
to ``SCREENSHOT_DIR``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from shop_recs.serving.models import ChangeKind, Experiment, ExperimentStatus, Placement, ShopperFacingChange
from shop_recs.stores.scoping import store_scope, unscoped
from tests.browser.test_dashboard_browser import browser_page  # noqa: F401 - fixture
from tests.experiments.test_builder import _traffic, _version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", "/tmp/shop_recs_screenshots"))
SIZES = {"laptop": (1366, 768), "phone": (390, 844)}

#: Visible buttons whose box reaches past the window or past an ancestor that clips (overflow not visible).
CLIPPED_JS = """() => {
  const out = [];
  const width = document.documentElement.clientWidth;
  for (const el of document.querySelectorAll(".content .btn, .content button")) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;  // hidden
    let clipped = r.left < 0 || r.right > width + 1;
    for (let a = el.parentElement; a && !clipped; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.overflowX === "visible" && s.overflowY === "visible") continue;
      const b = a.getBoundingClientRect();
      clipped = r.left < b.left - 1 || r.right > b.right + 1;
    }
    if (clipped) out.push((el.id || el.textContent.trim()) + " " + Math.round(r.left) + "-" + Math.round(r.right));
  }
  return out;
}"""


def _check_layout(page, name: str) -> list[str]:
    problems = []
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    url = page.url
    for size_name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.goto(url)
        page.wait_for_load_state("load")
        if page.evaluate("document.documentElement.scrollWidth") > width:
            problems.append(f"{name} scrolls sideways at {size_name}")
        clipped = page.evaluate(CLIPPED_JS)
        if clipped:
            problems.append(f"{name} at {size_name}: clipped buttons {clipped}")
        page.screenshot(path=str(SCREENSHOT_DIR / f"experiment-{name}-{size_name}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(url)
    return problems


def test_merchant_builds_estimates_and_starts_an_experiment(
    live_server,
    browser_page,  # noqa: F811 - the imported Chromium fixture
    store,
    make_user,
):
    make_user("merchant", store)
    with unscoped():
        Placement.objects.create(store=store, key="home", name="Home page")
    knn = _version(store, "item_knn", 0.1234, active=True)
    pop = _version(store, "popularity", 0.0871)
    # Four weeks of "home" traffic: 560 lists of 5 items (100 a day), 1 in 8 lists clicked.
    _traffic(store, lists=560, items=5, clicks=70, purchases=7, age=timedelta(days=27, hours=12))
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{live_server.url}/accounts/login/?next=/s/alpha/experiments/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "pw-123456!")
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}/s/alpha/experiments/")

    page.click("#new-experiment")
    page.wait_for_url(f"{live_server.url}/s/alpha/experiments/new/")
    problems = _check_layout(page, "builder")

    page.fill("#id_name", "Personal vs popular")
    page.select_option("#id_placement", "home")
    page.select_option("#id_variants-0-kind", "model_version")
    assert page.is_visible("#id_variants-0-model_version") and not page.is_visible("#id_variants-0-algorithm")
    page.select_option("#id_variants-0-model_version", str(knn.pk))
    page.select_option("#id_variants-1-kind", "model_version")
    page.select_option("#id_variants-1-model_version", str(pop.pk))
    assert page.inner_text("#traffic-total") == "Split: 100 %"

    # The estimate for "home": 100 lists × 5 items a day, CTR 70 / 2,800 impressions.
    page.wait_for_selector("#power-days")
    first = page.inner_text("#power-days")
    assert first.startswith("About ") and first.endswith(" days at current traffic")
    page.fill("#id_mde_percent", "30")
    page.wait_for_function("(before) => document.querySelector('#power-days').innerText !== before", arg=first)
    later = page.inner_text("#power-days")
    assert int(later.split()[1]) < int(first.split()[1])  # a larger effect needs fewer days

    # A third variant comes and goes; the split's total follows.
    page.click("#add-variant")
    assert page.is_visible("fieldset.variant[data-variant='2']")
    assert page.input_value("#id_variants-2-name") == "Variant C"
    page.fill("#id_variants-2-traffic", "10")
    page.wait_for_function("document.querySelector('#traffic-total').innerText.includes('110')")
    page.click("fieldset.variant[data-variant='2'] [data-remove-variant]")
    assert not page.is_visible("fieldset.variant[data-variant='2']")
    assert page.inner_text("#traffic-total") == "Split: 100 %"

    page.click("#create-experiment")
    page.wait_for_selector("#start-panel")
    with store_scope(store):
        exp = Experiment.objects.get()
        assert [(v.name, v.model_version_id, v.traffic) for v in exp.variants.order_by("position")] == [
            ("Control", knn.pk, 50),
            ("Variant B", pop.pk, 50),
        ]
    assert page.inner_text("#experiment-status") == "Draft"
    assert page.inner_text("#power-days").startswith("About ")
    problems += _check_layout(page, "draft")

    page.check("#start-form input[name=confirm]")
    page.click("#start-experiment")
    page.wait_for_selector("#experiment-status[data-status='running']")
    assert page.inner_text("#experiment-status") == "Running"
    with store_scope(store):
        assert Experiment.objects.get().status == ExperimentStatus.RUNNING
        assert ShopperFacingChange.objects.filter(kind=ChangeKind.EXPERIMENT, object_id=exp.pk).count() == 1
    problems += _check_layout(page, "running")
    assert not problems, "\n".join(problems)
    assert errors == [], errors
