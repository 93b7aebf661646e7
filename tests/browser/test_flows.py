"""The dashboard's main flows in a real browser (issue #14): what a merchant and an analyst do, end to end.

Flows here: log in and switch stores (and the other store's Overview draws its charts); upload a CSV
import and read its report; train and watch the progress; run an evaluation and open its charts;
switch language; an analyst refused a merchant action; a merchant changing and removing members.
(The Overview of the first store and the page-width sweep live in test_dashboard_browser.py and
test_layout.py; placements, segments, campaigns and experiments have their own files.)

Jobs run as in the embedded deployment: the web process's background pool (``shop_recs.platform.executor``)
runs them after the response, and the pages poll. Nothing waits on a clock: the training flow holds
its job on the ``model_trained`` signal (as tests/platform/test_background_jobs.py does) so the page
is seen updating while the run works; other waits are Playwright waits for what the page shows.

Every page visited is checked at 1,366×768 and 390×844 for sideways scrolling, and photographed at both
sizes into ``SCREENSHOT_DIR`` (default ``/tmp/shop_recs_screenshots``, named in the README).
"""

from __future__ import annotations

import threading

import pytest

from shop_recs.imports.models import ImportJob
from shop_recs.platform import executor, jobs
from shop_recs.stores.models import Membership, Role
from shop_recs.stores.scoping import unscoped
from shop_recs.training.models import TrainingRun
from shop_recs.training.services import model_trained
from tests.browser.test_dashboard_browser import browser_page, build_demo_activity  # noqa: F401 - fixture
from tests.browser.test_layout import SCREENSHOT_DIR, SIZES, WIDEST_JS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUARD = 60  # seconds: only a guard against a hung job, never a measured duration
WAIT_MS = 90_000  # Playwright's guard for a background job to finish (a job, not a page, takes this long)
PASSWORD = "pw-123456!"
DRAWN = ".js-plotly-plot svg.main-svg"


@pytest.fixture
def background_jobs(settings, tmp_path, monkeypatch):
    """The embedded deployment's job pool, started here (not by the live server's first request) so it
    is stopped before the test database is flushed; files go to a temporary directory."""
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_DIR = tmp_path / "models"
    settings.MEDIA_ROOT = tmp_path / "var" / "media"
    settings.JOB_EXECUTOR_THREADS = 2
    monkeypatch.setattr(jobs, "_pool_decided", True)
    pool = jobs.start_background_jobs()
    assert pool is not None
    yield pool
    pool.wait(GUARD)
    executor.stop(wait=True)


def log_in(page, live_server, username: str, next_url: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{live_server.url}{next_url}")


def fits_both_sizes(page, name: str) -> list[str]:
    """Photograph the current page at laptop and phone size; what scrolls sideways, to report."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    too_wide = []
    original = page.viewport_size
    for size_name, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)  # plotly's responsive relayout after the resize event
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            culprits = page.evaluate(WIDEST_JS, width)
            too_wide.append(f"{name} at {size_name}: {scroll_width}px in a {width}px window; {culprits}")
        page.screenshot(path=str(SCREENSHOT_DIR / f"flow-{name}-{size_name}.png"), full_page=True)
    page.set_viewport_size(original)
    return too_wide


def trace_count(page, figure: str) -> int:
    return page.locator(f"[data-figure='{figure}'] g.trace").count()


# --- 1 and 2: log in, switch stores, the other store's Overview has traces ------------------------------


def test_log_in_switch_store_and_see_that_store_s_charts(live_server, browser_page, store, other_store, make_user):  # noqa: F811
    user = make_user("merchant", store)
    Membership.objects.create(user=user, store=other_store, role=Role.ANALYST)
    build_demo_activity(other_store)  # alpha stays empty
    page = browser_page
    log_in(page, live_server, "merchant", "/s/alpha/")
    assert page.locator(".store-switcher .store-name").inner_text() == "Alpha Shop"
    assert page.locator(".topbar .badge-role").inner_text() == "Merchant"
    assert page.locator(".js-plotly-plot").count() == 0  # no activity yet: a welcome, not empty axes

    page.click(".store-switcher summary")
    menu = page.locator(".store-switcher .dropdown-menu")
    assert menu.locator("a").all_inner_texts() == ["Alpha Shop\nMerchant", "Beta Shop\nAnalyst"]
    menu.locator("a", has_text="Beta Shop").click()
    page.wait_for_url(f"{live_server.url}/s/beta/")
    assert page.locator(".store-switcher .store-name").inner_text() == "Beta Shop"
    assert page.locator(".topbar .badge-role").inner_text() == "Analyst"
    page.wait_for_selector(f"[data-figure='fig-events']{DRAWN}", timeout=20_000)
    page.wait_for_selector(f"[data-figure='fig-funnel']{DRAWN}", timeout=20_000)
    assert page.locator("[data-figure='fig-events'] g.scatterlayer g.trace").count() == 3
    assert trace_count(page, "fig-funnel") == 1
    # An analyst's sidebar has no Imports (a merchant-only page).
    assert page.locator(".sidebar nav a", has_text="Imports").count() == 0

    # Switching keeps the section: from beta's catalog to alpha's catalog.
    page.goto(f"{live_server.url}/s/beta/catalog/")
    page.click(".store-switcher summary")
    page.locator(".store-switcher .dropdown-menu a", has_text="Alpha Shop").click()
    page.wait_for_url(f"{live_server.url}/s/alpha/catalog/")
    assert not fits_both_sizes(page, "store-switched")


# --- 3: upload a CSV import, wait for the background job, read the report ------------------------------

CATALOG_CSV = (
    "sku,title,brand,category,price,tags\n"
    "MUG-1,Stoneware mug,Fjord,Home > Kitchen > Mugs,12.50,gift;kitchen\n"
    "MUG-2,Enamel mug,Acme,Home > Kitchen > Mugs,9.00,camping\n"
    "TEA-1,Green tea,Northwind,Food > Tea,6.40,\n"
)
EVENTS_CSV = (
    "customer,type,sku,value,quantity,order_id,timestamp\n"
    "c-1,view,MUG-1,,,,2024-05-01T10:00:00Z\n"
    "c-1,add_to_cart,MUG-1,,1,,2024-05-01T10:01:00Z\n"
    "c-1,purchase,MUG-1,12.50,1,o-1,2024-05-01T10:05:00Z\n"
    "c-2,view,TEA-1,,,,2024-05-02T09:00:00Z\n"
    "c-2,view,MUG-2,,,,2024-05-02T09:02:00Z\n"
)


def _upload(page, live_server, kind: str, name: str, content: str) -> str:
    page.goto(f"{live_server.url}/s/alpha/imports/")
    page.select_option("#id_kind", kind)
    page.set_input_files("#id_file", {"name": name, "mimeType": "text/csv", "buffer": content.encode()})
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/s/alpha/imports/*/")
    # The job runs after the response; the page polls and reloads itself once the job is finished.
    page.wait_for_selector("#job-progress", state="detached", timeout=WAIT_MS)
    return page.url


def _report(page) -> dict[str, str]:
    """The import page's counts and report, keyed like the job's report ("Products created" and a
    raw ``products_created`` both read as ``products_created``)."""
    labels = page.locator(".card .dl dt").all_inner_texts()
    values = page.locator(".card .dl dd").all_inner_texts()
    return {label.strip().lower().replace(" ", "_"): value for label, value in zip(labels, values, strict=True)}


def test_upload_csv_imports_and_read_the_report(live_server, browser_page, store, make_user, background_jobs):  # noqa: F811
    make_user("merchant", store)
    page = browser_page
    log_in(page, live_server, "merchant", "/s/alpha/imports/")

    _upload(page, live_server, "catalog", "catalog.csv", CATALOG_CSV)
    report = _report(page)
    assert report["rows_read"] == "3" and report["rows_imported"] == "3" and report["rows_skipped"] == "0"
    assert report["products_created"] == "3" and report["products_updated"] == "0"
    assert "Succeeded" in page.locator("h1").inner_text()

    _upload(page, live_server, "events", "events.csv", EVENTS_CSV)
    report = _report(page)
    assert report["rows_read"] == "5" and report["rows_imported"] == "5"
    assert report["events_written"] == "5" and report["customers_created"] == "2"
    assert "purchase" in report["events_by_type"] and "view" in report["events_by_type"]
    assert not fits_both_sizes(page, "import-report")

    # The same file again: nothing is written, and the page says so.
    _upload(page, live_server, "events", "events.csv", EVENTS_CSV)
    assert "already imported" in page.locator("#job-message, .messages").first.inner_text()
    page.goto(f"{live_server.url}/s/alpha/imports/")
    rows = page.locator("#import-jobs tbody tr").count()
    assert rows == 3
    with unscoped():
        assert sorted(ImportJob.objects.filter(store=store).values_list("rows_imported", flat=True)) == [0, 3, 5]


# --- 4: train and watch the progress ------------------------------------------------------------------


def test_train_and_watch_the_progress_update_then_the_run_finish(
    live_server,
    browser_page,  # noqa: F811
    store,
    make_user,
    background_jobs,
):
    make_user("merchant", store)
    build_demo_activity(store)
    held, release = threading.Event(), threading.Event()

    def hold_the_job(sender, **kwargs):
        # Sent by the run just before it is marked succeeded: the page must show it running meanwhile.
        held.set()
        release.wait(GUARD)

    model_trained.connect(hold_the_job, dispatch_uid="flow-hold-the-job")
    try:
        page = browser_page
        log_in(page, live_server, "merchant", "/s/alpha/jobs/")
        assert page.locator("#current-run").count() == 0
        for box in page.locator(".train-form input[name=algorithms]:checked").all():
            box.uncheck()
        page.check(".train-form input[name=algorithms][value=popularity]")
        page.click(".train-form button[type=submit]")
        page.wait_for_selector("#current-run")
        assert held.wait(GUARD), "the run never reached its last stage"
        # Blank the live fields, mark this document, and let the page's own polling fill them in again.
        page.evaluate(
            """() => { window.__sameDocument = true;
                 for (const f of ["status", "stage", "percent"]) {
                   document.querySelector('#current-run [data-field="' + f + '"]').textContent = ""; } }"""
        )
        page.wait_for_function(
            """() => document.querySelector('#current-run [data-field="status"]').textContent === "Running" """,
            timeout=20_000,
        )
        assert page.evaluate("window.__sameDocument") is True  # updated in place, not by reloading
        percent = int(page.inner_text('#current-run [data-field="percent"]').rstrip("%"))
        assert 0 < percent < 100
        assert page.inner_text('#current-run [data-field="stage"]')
        assert page.locator(".train-form button[type=submit]").is_disabled()
        assert not fits_both_sizes(page, "training-progress")
    finally:
        release.set()
        model_trained.disconnect(dispatch_uid="flow-hold-the-job")
    # Finished: the page reloads itself, without the live box, and lists the run as succeeded.
    page.wait_for_selector("#current-run", state="detached", timeout=WAIT_MS)
    with unscoped():
        run = TrainingRun.objects.get(store=store)
    row = page.locator(f"tr[data-run='{run.pk}']")
    assert "Succeeded" in row.inner_text(), run.error
    assert page.locator(".train-form button[type=submit]").is_enabled()
    assert "Serving model v" in page.locator(".page-head").inner_text()

    # One version trained today: the evaluation page's history reads in whole days, not "23:59:59.9996".
    page.goto(f"{live_server.url}/s/alpha/evaluation/")
    page.wait_for_selector(f"[data-figure='fig-versions']{DRAWN}", timeout=20_000)
    ticks = page.locator("[data-figure='fig-versions'] g.xtick text").all_text_contents()
    assert ticks and not any(":" in t for t in ticks), ticks


# --- 9: run an evaluation, open its charts ----------------------------------------------------------

RUN_FIGURES = ("fig-bars", "fig-curves", "fig-coverage", "fig-novelty", "fig-bias", "fig-slices")


def test_run_an_evaluation_and_open_its_charts(live_server, browser_page, store, make_user, background_jobs):  # noqa: F811
    make_user("analyst", store, Role.ANALYST)  # analysing is open to analysts
    build_demo_activity(store)
    page = browser_page
    log_in(page, live_server, "analyst", "/s/alpha/evaluation/")
    for algorithm in ("popularity", "item_knn"):
        page.check(f"#eval-form input[name='eval-algorithms'][value='{algorithm}']")
    page.fill("#eval-form input[name='eval-ks']", "5, 10, 20")
    page.click("#eval-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/s/alpha/evaluation/runs/*/")
    run_url = page.url
    # The run page polls while the job works and reloads when it is done.
    page.wait_for_selector(f"[data-figure='fig-bars']{DRAWN}", timeout=WAIT_MS)
    for figure in RUN_FIGURES:
        page.wait_for_selector(f"[data-figure='{figure}']{DRAWN}", timeout=20_000)
        assert trace_count(page, figure) >= 1, figure
    assert trace_count(page, "fig-bars") >= 1 and trace_count(page, "fig-curves") == 2
    assert page.locator("#results-table tbody tr").count() == 2
    # Eighteen metric tabs (6 metrics × 3 cutoffs) fit the window at both sizes.
    tabs = page.locator("nav.segmented a")
    assert tabs.count() == 18
    assert not fits_both_sizes(page, "evaluation-run")

    # Another metric, from the tab strip: the bars chart redraws for it.
    page.locator("nav.segmented a", has_text="recall@5").click()
    page.wait_for_url(f"{run_url}?metric=recall@5")
    page.wait_for_selector(f"[data-figure='fig-bars']{DRAWN}", timeout=20_000)
    assert page.locator("nav.segmented a.on").inner_text() == "recall@5"
    assert page.locator("#results-table thead").inner_text().count("recall@5") == 1


# --- 10: switch language ------------------------------------------------------------------------------


def test_switch_language_and_back(live_server, browser_page, store, make_user):  # noqa: F811
    make_user("merchant", store)
    page = browser_page
    log_in(page, live_server, "merchant", "/s/alpha/catalog/")
    assert page.locator("html").get_attribute("lang") == "en"
    page.click(".lang-switch button[value=zh-hans]")
    page.wait_for_url(f"{live_server.url}/s/alpha/catalog/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    nav = page.locator(".sidebar nav").inner_text()
    assert "概览" in nav and "Overview" not in nav
    page.click(".store-switcher summary")
    assert page.locator(".store-switcher .dropdown-label").inner_text() == "切换店铺"
    # The choice sticks across pages (the language cookie) ...
    page.goto(f"{live_server.url}/s/alpha/jobs/")
    assert "训练任务" in page.locator("h1").inner_text()
    assert not fits_both_sizes(page, "jobs-zh")
    # ... until switched back.
    page.click(".lang-switch button[value=en]")
    page.wait_for_url(f"{live_server.url}/s/alpha/jobs/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Training jobs"


# --- 11: an analyst is refused a merchant action, with a styled page ---------------------------------


def test_an_analyst_is_refused_a_merchant_action_with_a_styled_page(live_server, browser_page, store, make_user):  # noqa: F811
    make_user("merchant", store)
    make_user("analyst", store, Role.ANALYST)
    page = browser_page
    log_in(page, live_server, "analyst", "/s/alpha/settings/members/")
    assert page.locator("#invite-form").count() == 0
    assert "Only merchants can add, change or remove members." in page.locator(".alert-info").inner_text()

    response = page.goto(f"{live_server.url}/s/alpha/imports/")
    assert response.status == 403
    box = page.locator("#error-403")
    assert box.locator("h2").inner_text() == "You are not allowed to do this"
    # Styled: the dashboard's stylesheet applies (a card on the shell), the sidebar and the way back are there.
    assert page.evaluate("getComputedStyle(document.querySelector('#error-403')).borderRadius") != "0px"
    assert page.locator(".sidebar nav a", has_text="Overview").count() == 1
    assert page.locator("#error-403 a.btn-primary").get_attribute("href") == "/s/alpha/"
    assert not fits_both_sizes(page, "refused-403")
    page.click("#error-403 a.btn-primary")
    page.wait_for_url(f"{live_server.url}/s/alpha/")


def test_a_form_sent_without_its_csrf_cookie_gets_a_page_that_says_what_to_do(
    live_server,
    browser_page,  # noqa: F811
    store,
    make_user,
):
    make_user("merchant", store)
    colleague = make_user("colleague", store, Role.ANALYST)
    page = browser_page
    log_in(page, live_server, "merchant", "/s/alpha/settings/members/")
    page.context.clear_cookies(name="csrftoken")  # as when cookies are blocked or were cleared meanwhile
    row = page.locator("table tbody tr", has_text="colleague")
    row.locator("select[name=role]").select_option("merchant")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        row.locator("button", has_text="Save").click()
    assert posted.value.status == 403
    box = page.locator("#error-csrf")
    assert box.locator("h2").inner_text() == "The form has expired"
    assert "reload the page and try again" in box.inner_text()
    assert "allow cookies for this site" in box.inner_text()
    assert page.evaluate("getComputedStyle(document.querySelector('#error-csrf')).borderRadius") != "0px"
    assert not fits_both_sizes(page, "csrf-failure")
    assert Membership.objects.get(user=colleague).role == Role.ANALYST  # nothing was saved
    page.click("#csrf-retry")  # back to the form, which works again with a fresh token
    page.wait_for_url(f"{live_server.url}/s/alpha/settings/members/")
    row.locator("select[name=role]").select_option("merchant")
    row.locator("button", has_text="Save").click()
    page.wait_for_selector("text=colleague is now Merchant.")


# --- Settings → Members: change a role, remove a member, the store keeps a merchant --------------------


def test_merchant_changes_roles_and_removes_members_but_keeps_a_merchant(live_server, browser_page, store, make_user):  # noqa: F811
    make_user("merchant", store)
    make_user("colleague", store, Role.ANALYST)
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())  # the "Remove this member?" confirmation
    log_in(page, live_server, "merchant", "/s/alpha/settings/members/")

    def row(username: str):
        return page.locator("table tbody tr", has_text=username)

    row("colleague").locator("select[name=role]").select_option("merchant")
    row("colleague").locator("button", has_text="Save").click()
    page.wait_for_selector("text=colleague is now Merchant.")
    assert row("colleague").locator("select[name=role]").input_value() == "merchant"

    row("colleague").locator("button", has_text="Remove").click()
    page.wait_for_selector("text=colleague has been removed.")
    assert row("colleague").count() == 0

    # Now the only merchant: demoting or removing oneself is refused with the reason.
    row("merchant").locator("select[name=role]").select_option("analyst")
    row("merchant").locator("button", has_text="Save").click()
    page.wait_for_selector(".alert-error")
    assert "A store needs at least one merchant." in page.locator(".alert-error").inner_text()
    row("merchant").locator("button", has_text="Remove").click()
    page.wait_for_selector(".alert-error")
    assert "A store needs at least one merchant." in page.locator(".alert-error").inner_text()
    assert list(Membership.objects.filter(store=store).values_list("user__username", "role")) == [
        ("merchant", Role.MERCHANT)
    ]
    assert not fits_both_sizes(page, "members")
