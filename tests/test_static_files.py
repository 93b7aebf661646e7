"""Static files the production way: collectstatic into a temporary STATIC_ROOT, hashed names in the
pages, pre-compressed variants that WhiteNoise serves with a long cache, and only plotly.min.js taken
from the plotly package.

The rest of the suite serves plain names from the finders (STATICFILES_MANIFEST=0 in pyproject.toml);
here the settings are those of a deployment (DEBUG off, manifest storage, no finders).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import override_settings

from shop_recs.platform.staticfinders import PackageFileFinder, package_file

MANIFEST_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"
PLOTLY_SCRIPT = re.compile(r'<script src="(/static/vendor/plotly/plotly\.min\.([0-9a-f]{12})\.js)"')


def _production_static(root: Path) -> dict:
    return {
        "STATIC_ROOT": root,
        "STORAGES": {**django_settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST_STORAGE}},
        "WHITENOISE_USE_FINDERS": False,
    }


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """One real `collectstatic --noinput` for the module (a few seconds: it compresses every file)."""
    root = tmp_path_factory.mktemp("staticfiles")
    with override_settings(**_production_static(root)):
        call_command("collectstatic", "--noinput", verbosity=0)
    return root


@pytest.fixture
def production_static(collected, settings) -> Path:
    for name, value in _production_static(collected).items():
        setattr(settings, name, value)
    return collected


def _plotly_url(client) -> str:
    html = client.get("/s/alpha/experiments/").content.decode()
    match = PLOTLY_SCRIPT.search(html)
    assert match, "no hashed plotly.min.<hash>.js script on the experiments page"
    return match.group(1)


@pytest.mark.django_db
def test_a_chart_page_links_the_hashed_plotly_bundle(production_static, client, merchant):
    client.force_login(merchant)
    url = _plotly_url(client)
    name = url.removeprefix("/static/")
    assert (production_static / name).is_file()
    # The hashed copy is the installed plotly.min.js, byte for byte.
    assert (production_static / name).read_bytes() == package_file("plotly", "package_data/plotly.min.js").read_bytes()


@pytest.mark.django_db
def test_whitenoise_serves_the_gzip_variant_with_a_long_cache(production_static, client, merchant):
    client.force_login(merchant)
    url = _plotly_url(client)
    assert (production_static / (url.removeprefix("/static/") + ".gz")).is_file()

    zipped = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert zipped.status_code == 200
    assert zipped["Content-Encoding"] == "gzip"
    body = b"".join(zipped.streaming_content)
    original = package_file("plotly", "package_data/plotly.min.js").read_bytes()
    assert len(body) < len(original) / 2
    assert gzip.decompress(body) == original
    cache_control = zipped["Cache-Control"]
    max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
    assert max_age >= 365 * 24 * 3600
    assert "immutable" in cache_control
    assert "Accept-Encoding" in zipped["Vary"]

    plain = client.get(url)  # a client that does not accept gzip gets the file itself
    assert plain.status_code == 200
    assert not plain.has_header("Content-Encoding")
    assert b"".join(plain.streaming_content) == original


@pytest.mark.django_db
def test_an_unhashed_name_is_not_cached_for_long(production_static, client):
    response = client.get("/static/vendor/plotly/plotly.min.js")
    assert response.status_code == 200  # the original name stays reachable (collectstatic keeps it)
    assert "immutable" not in response["Cache-Control"]
    assert int(re.search(r"max-age=(\d+)", response["Cache-Control"]).group(1)) <= 3600


def test_only_plotly_min_js_is_collected_from_the_plotly_package(collected):
    plotly_dir = collected / "vendor" / "plotly"
    names = sorted(p.name for p in plotly_dir.iterdir())
    assert all(name.startswith("plotly.min.") for name in names), names
    assert "plotly.min.js" in names and any(re.fullmatch(r"plotly\.min\.[0-9a-f]{12}\.js", n) for n in names)
    # plotly's second bundle, its sample data sets and template JSON stay in the package.
    package_dir = package_file("plotly", "package_data/plotly.min.js").parent
    assert (package_dir / "widgetbundle.js").is_file() and (package_dir / "datasets").is_dir()  # they exist...
    collected_names = {p.name for p in collected.rglob("*")}
    assert not {"widgetbundle.js", "datasets", "iris.csv.gz"} & collected_names  # ...but are not published
    assert not list(collected.rglob("widgetbundle*")) and not list(collected.rglob("*.csv.gz"))


def test_the_finder_finds_and_lists_only_its_file():
    finder = PackageFileFinder()
    assert finder.check() == []
    found = finder.find("vendor/plotly/plotly.min.js")
    assert found and Path(found).name == "plotly.min.js"
    assert finder.find("vendor/plotly/plotly.min.js", find_all=True) == [found]
    assert finder.find("vendor/plotly/widgetbundle.js") == []
    assert finder.find("vendor/plotly/datasets/iris.csv.gz") == []
    listed = [(path, storage.prefix) for path, storage in finder.list(None)]
    assert listed == [("plotly.min.js", "vendor/plotly")]
    assert list(finder.list(["*.js"])) == []


def test_the_finder_reports_a_missing_package():
    finder = PackageFileFinder({"vendor/x/x.js": ("no_such_package_here", "x.js")})
    assert [error.id for error in finder.check()] == ["shop_recs.E001"]
    assert finder.find("vendor/x/x.js") == []
    assert list(finder.list(None)) == []
