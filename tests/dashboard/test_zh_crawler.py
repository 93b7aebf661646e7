"""Issue 14: every dashboard page reads in Chinese for a zh-Hans member, generated texts included.

The pages are found by walking the URL resolver (``tests.security.conftest.all_routes``), so a page
another session adds later is crawled without anyone listing it. The store is a populated one: the
demo's seeded, trained, profiled and segmented store with its evaluation, campaign and experiment
(``setup_demo`` on a small scale), plus a catalog import that failed on bad rows and one that
succeeded, and a row of every other kind a URL names (``tests.security.conftest.build_world``).
URL parameters are filled with that store's real ids.

Each page is fetched as the merchant and as the analyst with the language set to zh-Hans. Its
visible text (script and style dropped; of the attributes only ``placeholder``, ``title``, ``alt``,
``aria-label`` and the ``value`` of buttons) is stripped of the store's own data (titles, skus,
brands, categories, customer ids, user names, names the merchant typed, URLs, numbers) and of the
terms in ``ALLOWED`` (each with its reason); any English word left fails the test, listed by page.
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import models
from django.test import Client
from django.urls import reverse

from analytics.evaluation.models import EvaluationRun
from analytics.models import ProfileRun, Segment
from shop_recs.activity.models import Customer, Event
from shop_recs.ads.models import Campaign
from shop_recs.catalog.models import Category, Product
from shop_recs.imports.csv_importers import import_catalog
from shop_recs.imports.models import ImportJob
from shop_recs.search.models import SearchQuery
from shop_recs.serving.models import Experiment, Variant
from shop_recs.stores.models import ApiKey, Invitation, Store
from shop_recs.stores.scoping import store_scope
from shop_recs.training.models import ModelVersion, TrainingRun
from tests.security.conftest import Route, all_routes, build_world

pytestmark = pytest.mark.django_db

DUMP_DIR = os.environ.get("ZH_CRAWL_DUMP", "")
DEMO_ARGS = ["--customers", "300", "--products", "120", "--events", "9000", "--requests", "400", "--no-progress"]

#: Terms that stay as they are in a Chinese page, each with the reason.
ALLOWED: dict[str, str] = {
    # Metric and protocol names: the literature's notation, written the same way in Chinese texts.
    "NDCG": "ranking metric name (NDCG@k)",
    "MAP": "ranking metric name (MAP@k)",
    "MRR": "ranking metric name",
    "AUC": "metric name",
    "CTR": "click-through rate, an industry acronym used as is in Chinese",
    "CVR": "conversion rate acronym",
    "AOV": "average order value acronym",
    "RFM": "recency/frequency/monetary, the analysis's name",
    "KPI": "acronym",
    "ROI": "acronym",
    "UTC": "time zone name",
    "SHA": "hash name (SHA-256)",
    "CSV": "file format",
    "JSON": "file format",
    "JSONL": "file format",
    "UCI": "the UCI Online Retail data set's name",
    "API": "acronym",
    "URL": "acronym",
    "SKU": "stock-keeping unit, the merchant's own term",
    "R": "the R of RFM (recency score), named beside its Chinese meaning",
    "F": "the F of RFM (frequency score), named beside its Chinese meaning",
    "M": "the M of RFM (monetary score)",
    "k": "a parameter's symbol (k segments, k-anonymity's k, metric@k)",
    "p": "the p-value's symbol",
    "alpha": "the significance level's symbol (α), as statistics texts write it",
    "NOT": "the rule builder's keyword for an excluded group, shown as its button says it",
    "PCA": "principal component analysis, the method's name",
    "Gini": "the Gini coefficient, a proper name",
    "SVD": "singular value decomposition, the method's name",
    "RPM": "revenue per mille, an ad metric's acronym",
    "ROAS": "return on ad spend, an ad metric's acronym",
    "CPC": "cost per click, an ad pricing acronym",
    "CPM": "cost per mille, an ad pricing acronym",
    "ISO": "the standard's name (ISO 8601)",
    "MB": "file size unit",
    "celery": "the scheduler process's command name (celery beat, celery worker)",
    "beat": "part of the command name celery beat",
    "worker": "part of the command name celery worker",
    # Event types: the codes a file or an API call must carry literally, listed in the import help.
    "view": "event type code",
    "click": "event type code",
    "purchase": "event type code",
    "search": "event type code",
    "rating": "event type code",
    "tags": "a catalog column's name",
    "sku": "a catalog column's name",
    "title": "a catalog column's name",
    "price": "a catalog column's name",
    # The import help's example category path, as a merchant's file writes it.
    "Home": "example category path (Home > Kitchen > Mugs)",
    "Kitchen": "example category path",
    "Mugs": "example category path",
    "SKUs": "plural of SKU",
    "ID": "identifier",
    "IDs": "identifiers",
    "HTTP": "protocol",
    "GET": "HTTP method in the API docs' examples",
    "POST": "HTTP method",
    "DP": "differential privacy acronym beside its Chinese name",
    "CI": "confidence interval acronym beside its Chinese name",
    "PNG": "file format",
    "Plotly": "charting library's name",
    "Redis": "product name",
    "Celery": "product name",
    "PostgreSQL": "product name",
    "SQLite": "product name",
    "Django": "product name",
    "Chrome": "product name",
    # Algorithm names: identifiers of the engine's models, shown as the code calls them.
    "popularity": "algorithm id",
    "trending": "algorithm id",
    "itemknn": "algorithm id",
    "item_knn": "algorithm id",
    "userknn": "algorithm id",
    "als": "algorithm id",
    "ALS": "algorithm name (alternating least squares)",
    "BPR": "algorithm name (Bayesian personalised ranking)",
    "bpr": "algorithm id",
    "EASE": "algorithm name",
    "ease": "algorithm id",
    "SLIM": "algorithm name",
    "slim": "algorithm id",
    "hybrid": "algorithm id",
    "content": "algorithm id",
    "cooccurrence": "algorithm id",
    "random": "algorithm id (the baseline)",
    # Metric ids, shown as the engine names them beside @k (precision@10) and in chart legends.
    "precision": "metric id",
    "recall": "metric id",
    "ndcg": "metric id",
    "map": "metric id",
    "mrr": "metric id",
    "kNN": "algorithm family name",
    "KNN": "algorithm family name",
    "TF": "TF-IDF, the text model's name",
    "IDF": "TF-IDF, the text model's name",
    "ElasticNet": "model name",
    "MiniBatchKMeans": "model name",
    "Laplace": "noise distribution's name",
    "English": "the language switch names each language in itself",
    "EN": "the language switch's label for English, the same in every language",
    "sr": "the product's logo mark (shop_recs), and a secret API key's prefix (sr_...)",
    "pk": "a publishable API key's prefix (pk_...)",
    "v": "a model version's prefix in a chart legend (v12; v- when none)",
    "Authorization": "the HTTP header a shop sends its key in, typed literally",
    "Bearer": "the HTTP authorization scheme, typed literally",
    "placement": "the API's query parameter (?placement=), typed literally by the shop",
    "USD": "currency code",
    "EUR": "currency code",
    "CNY": "currency code",
    "GBP": "currency code",
    "JPY": "currency code",
    "US": "currency symbol US$",
}

#: Fields of any store-owned row that hold what the merchant typed (a later page's rows count too).
TYPED_FIELDS = {"name", "title", "description", "key", "label", "slug", "hypothesis", "notes"}

#: Attributes whose text a reader sees or hears.
TEXT_ATTRS = {"placeholder", "title", "alt", "aria-label"}
SKIP_TAGS = {"script", "style", "template", "noscript", "code", "pre", "svg"}
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")
URLISH = re.compile(r"(https?://|/)[^\s]*|[\w.+-]+@[\w.-]+")
NUMBERISH = re.compile(r"[-+]?\d[\d,.]*(e[-+]?\d+)?[%kKmM]?")
CODEISH = re.compile(r"\b[A-Za-z]+[@_#:.]\w+|\b\w*\d\w*\b|\bsr_\w+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.mono = 0
        self.option_value: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        # An option that shows its own value is an identifier (a time zone, a currency code), not a word.
        self.option_value = a.get("value") if tag == "option" else None
        if tag in SKIP_TAGS:
            self.skip += 1
        # Machine text the page shows as such (a key prefix, a fingerprint, a file name, a field path).
        if "mono" in (a.get("class") or "").split():
            self.mono += 1
        for name in TEXT_ATTRS:
            if a.get(name):
                self.parts.append(a[name])
        if tag == "input" and a.get("type") in ("submit", "button", "reset") and a.get("value"):
            self.parts.append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIP_TAGS and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if self.option_value is not None and data.strip() in (self.option_value, self.option_value.replace("_", " ")):
            return
        if not self.skip and not self.mono:
            self.parts.append(data)


class _MonoDepth(_Text):
    """Tracks the depth of ``.mono`` elements so their end tags close them again."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}:
            before = self.mono
            super().handle_starttag(tag, attrs)
            self.mono = before
            return
        before = self.mono
        super().handle_starttag(tag, attrs)
        self.stack.append(self.mono != before)

    def handle_endtag(self, tag: str) -> None:
        super().handle_endtag(tag)
        if self.stack and self.stack.pop():
            self.mono -= 1


_FIGURE_JSON = re.compile(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', re.S)


def _title(value: object) -> str:
    return value.get("text", "") if isinstance(value, dict) else value if isinstance(value, str) else ""


def figure_texts(html: str) -> list[str]:
    """What a plotly chart embedded in the page writes on screen: titles, axis titles, legend names."""
    texts: list[str] = []
    for raw in _FIGURE_JSON.findall(html):
        try:
            figure = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(figure, dict) or "data" not in figure:
            continue
        layout = figure.get("layout") or {}
        texts.append(_title(layout.get("title")))
        for key, axis in layout.items():
            if key.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
                texts.append(_title(axis.get("title")))
        texts.extend(_title(a) for a in layout.get("annotations") or [])
        for trace in figure.get("data") or []:
            if trace.get("showlegend", True) is not False and isinstance(trace.get("name"), str):
                texts.append(trace["name"])
    return [t for t in texts if t]


def visible_text(html: str) -> str:
    parser = _MonoDepth()
    parser.feed(html)
    return "\n".join([*(p for p in parser.parts if p.strip()), *figure_texts(html)])


def english_words(text: str, data: list[str]) -> list[str]:
    # Avatars show the first letter of a user's or a store's name.
    initials = {v[0].upper() for v in data if v[:1].isalpha()}
    if data:  # longest first, so a title is removed before a word of it; whole words only ("tent" ≠ "content")
        text = re.sub("|".join(rf"(?<![A-Za-z]){re.escape(v)}(?![A-Za-z])" for v in data), " ", text)
    text = URLISH.sub(" ", text)
    text = CODEISH.sub(" ", text)
    text = NUMBERISH.sub(" ", text)
    return sorted({w for w in WORD.findall(text) if w not in ALLOWED and w not in initials})


def store_data(store) -> list[str]:
    """Every text of the store that its merchant or its shoppers wrote (not the platform's words)."""
    values: set[str] = set()
    with store_scope(store):
        for p in Product.objects.values_list("title", "sku", "brand", "description"):
            values.update(p)
        for c in Category.objects.values_list("name", "path"):
            values.update(c)
            values.update(c[1].split(" > "))
        values.update(Customer.objects.values_list("external_id", flat=True))
        values.update(Customer.objects.values_list("country", flat=True))
        values.update(Event.objects.exclude(order_id="").values_list("order_id", flat=True).distinct())
        values.update(Event.objects.exclude(query="").values_list("query", flat=True).distinct())
        for s in Segment.objects.filter(kind=Segment.Kind.RULE).values_list("name", "description"):
            values.update(s)
        for e in Experiment.objects.values_list("name", "description", "placement"):
            values.update(e)
        values.update(Variant.objects.values_list("name", flat=True))
        for c in Campaign.objects.values_list("name", "title", "landing_url"):
            values.update(c)
        values.update(ApiKey.objects.values_list("name", flat=True))
        values.update(ImportJob.objects.values_list("file_name", flat=True))
        values.update(SearchQuery.objects.values_list("query", flat=True))
        values.update(Invitation.objects.values_list("email", flat=True))
        for run in EvaluationRun.objects.all():
            values.update(run.algorithms)
        # Rows of kinds added later (a placement, ...): what a merchant named or described them.
        for model in apps.get_models():
            if model is Segment or not any(f.name == "store" for f in model._meta.concrete_fields):
                continue
            named = [
                f.name
                for f in model._meta.concrete_fields
                if f.name in TYPED_FIELDS and isinstance(f, (models.CharField, models.TextField))
            ]
            if named:
                for row in model._base_manager.filter(store=store).values_list(*named):
                    values.update(v for v in row if isinstance(v, str))
    values.update(get_user_model().objects.values_list("username", flat=True))
    values.update(get_user_model().objects.values_list("email", flat=True))
    values.update(Store.objects.values_list("name", flat=True))
    values.update(Store.objects.values_list("slug", flat=True))
    return sorted((v for v in values if v and len(v) > 1), key=len, reverse=True)


#: URL parameter -> how to find the populated store's row it names (the richest one of its kind).
def url_ids(store, world_ids: dict) -> dict[str, object]:

    ids = dict(world_ids)
    with store_scope(store):
        richest = {
            "training_run_id": TrainingRun.objects.exclude(pk=world_ids["training_run_id"]).order_by("-pk").first(),
            "version_id": ModelVersion.objects.filter(is_active=True).first(),
            "profile_run_id": ProfileRun.objects.exclude(pk=world_ids["profile_run_id"]).order_by("-pk").first(),
            "segment_id": Segment.objects.filter(kind=Segment.Kind.AUTO).order_by("pk").first(),
            "campaign_id": Campaign.objects.exclude(pk=world_ids["campaign_id"]).order_by("pk").first(),
            "eval_run_id": EvaluationRun.objects.exclude(pk=world_ids["eval_run_id"]).order_by("-pk").first(),
            "experiment_id": Experiment.objects.exclude(pk=world_ids["experiment_id"]).order_by("pk").first(),
            "job_id": ImportJob.objects.filter(error_count__gt=0).order_by("-pk").first(),
        }
    for key, row in richest.items():
        if row is not None:
            ids[key] = row.pk
    return ids


RUN_ID = {"recommend:run_status": "training_run_id", "analytics:run_status": "profile_run_id"}


def _row_of(store, param: str) -> object | None:
    """A parameter no one listed (a page added later): ``<model>_id`` names the store's row of that model."""
    wanted = param.removesuffix("_id").replace("_", "")
    models = [m for m in apps.get_models() if m._meta.model_name == wanted and hasattr(m, "store_id")]
    assert models, f"URL parameter {param!r} names no store-owned model; add it to url_ids"
    with store_scope(store):
        row = models[0].objects.order_by("pk").first()
    return row.pk if row is not None else None


def page_url(route: Route, ids: dict, store) -> str | None:
    kwargs = {}
    for param in route.params:
        key = RUN_ID.get(route.name, param) if param == "run_id" else param
        if key not in ids:
            ids[key] = _row_of(store, param)
        if ids[key] is None:
            return None  # the store has no row of that kind: nothing to show
        kwargs[param] = ids[key]
    return reverse(route.name, kwargs=kwargs)


def dashboard_pages() -> list[Route]:
    """Every dashboard page of a store (the API, the admin and non-page endpoints left out)."""
    return [r for r in all_routes() if r.is_store_page and not r.name.startswith("admin:")]


def _import_files(store, merchant, tmp_path: Path) -> None:

    bad = tmp_path / "catalog-bad.csv"
    bad.write_text("sku,title,price\nZ-1,,3.50\nZ-2,Mug,1.2.3\nZ-2,Mug,2\n", encoding="utf-8")
    import_catalog(store, bad, file_name="catalog-bad.csv", created_by=merchant)
    good = tmp_path / "catalog-good.csv"
    good.write_text("sku,title,price,colour\nZ-9,Zeta mug,3.50,red\n", encoding="utf-8")
    import_catalog(store, good, file_name="catalog-good.csv", created_by=merchant)


@pytest.fixture
def populated(db, settings, tmp_path, make_user):
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_DIR = tmp_path / "models"
    call_command("setup_demo", *DEMO_ARGS, stdout=StringIO())

    store = Store.objects.get(slug="demo")
    world = build_world(store, "zz", make_user)
    _import_files(store, world.merchant, tmp_path)
    users = get_user_model().objects
    return store, url_ids(store, world.ids), {"merchant": users.get(username="demo"), "analyst": world.analyst}


def crawl(user, store, ids: dict) -> tuple[int, dict[str, list[str]]]:
    """How many pages were read, and ``{page: English words}`` of every dashboard page ``user`` reads in zh-Hans."""
    client = Client()
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    data = store_data(store)
    found: dict[str, list[str]] = {}
    read = 0
    for route in dashboard_pages():
        url = page_url(route, ids, store)
        if url is None:
            continue
        response = client.get(url)
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue  # a redirect, a download, a refusal (an analyst on a merchant page), a JSON poll
        read += 1
        html = response.content.decode()
        # Every chart is drawn by charts.js, which registers plotly's zh-CN locale (dates, weekdays, months).
        assert "data-figure=" not in html or "js/charts.js" in html, f"{url} draws charts without charts.js"
        # A whole page names its language; a fragment a page loads into itself (a live estimate) has no <html>.
        assert "<html" not in html or 'lang="zh-hans"' in html, f"{url} is not in zh-Hans"
        text = visible_text(html)
        if DUMP_DIR:  # ZH_CRAWL_DUMP=/some/dir keeps each page's extracted text, to see a failure in context
            Path(DUMP_DIR).mkdir(parents=True, exist_ok=True)
            (Path(DUMP_DIR) / (route.name.replace(":", "_") + ".txt")).write_text(text, encoding="utf-8")
        words = english_words(text, data)
        if words:
            found[f"{route.name} {url}"] = words
    return read, found


def test_every_dashboard_page_reads_in_chinese(populated):
    store, ids, users = populated
    problems = {}
    for role, user in users.items():
        read, found = crawl(user, store, ids)
        # The walk reached the store's pages (overview, catalog, customers, segments, jobs, ...).
        assert read >= 25, f"only {read} pages read as the {role}"
        problems.update({f"[{role}] {page}": words for page, words in found.items()})
    report = "\n".join(f"{page}: {' '.join(words)}" for page, words in sorted(problems.items()))
    assert not problems, f"English words on zh-Hans pages:\n{report}"


def test_the_text_extraction_keeps_what_a_reader_sees():
    html = (
        "<html><head><style>p{}</style><script>var english = 1;</script></head><body>"
        '<p title="Hover text">中文 Revenue 1,234 NDCG@10</p><input type="submit" value="Save">'
        '<input type="text" value="typed by the user"><span class="mono">sr_ab12 key</span>'
        '<a href="/s/demo/">链接</a></body></html>'
    )
    text = visible_text(html)
    assert "english" not in text and "typed by the user" not in text and "sr_ab12" not in text
    assert english_words(text, data=[]) == ["Hover", "Revenue", "Save", "text"]
