"""One registry of in-process caches: every module that keeps one registers its invalidator, and
``invalidate_process_caches()`` (called around every test by tests/conftest.py) empties them all."""

from __future__ import annotations

import importlib

from shop_recs.platform.cache import invalidate_process_caches, registered_process_caches

#: Modules that keep an in-process cache, and the registry name each one registers.
OUTSIDE_SERVING = {
    "shop_recs.api.auth": "api.keys",
    "shop_recs.api.cors": "api.cors_origins",
    "shop_recs.search.services": "search.index",
    "shop_recs.ads.eligibility": "ads.campaigns",
    "shop_recs.training.services": "training.models",
}
SERVING_MODULES = ("shop_recs.serving.services", "shop_recs.serving.rules", "shop_recs.serving.snapshot")


def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:  # serving is being split: a module may have moved
        if exc.name != name:
            raise


def test_every_cache_module_registers_its_invalidator():
    for module in (*OUTSIDE_SERVING, *SERVING_MODULES):
        _import(module)
    names = registered_process_caches()
    missing = sorted(set(OUTSIDE_SERVING.values()) - set(names))
    assert not missing, f"not registered: {missing} (registered: {names})"
    assert any(name.startswith("serving.") for name in names), names
    assert names == sorted(names)


def test_invalidate_process_caches_forgets_a_cached_api_key(api_key):
    from shop_recs.api import auth
    from shop_recs.stores.models import ApiKey

    assert auth.check_api_key(api_key).status is auth.KeyStatus.OK
    prefix = ApiKey.prefix_of(api_key)
    assert prefix in auth._known_keys

    invalidate_process_caches()
    assert prefix not in auth._known_keys
    assert auth.check_api_key(api_key).status is auth.KeyStatus.OK  # read again from the database


def test_invalidate_for_one_store_leaves_other_stores_campaigns(store, other_store):
    from shop_recs.ads import eligibility

    eligibility._cache[store.pk] = object()  # type: ignore[assignment]
    eligibility._cache[other_store.pk] = object()  # type: ignore[assignment]
    invalidate_process_caches(store.pk)
    assert store.pk not in eligibility._cache
    assert other_store.pk in eligibility._cache
    invalidate_process_caches()
    assert not eligibility._cache


def test_the_model_cache_registers_a_store_aware_invalidator():
    from shop_recs.training import artifacts

    artifacts.clear_model_cache()  # the registry calls it with a store id too
    artifacts.clear_model_cache(store_id=12345)
    assert "training.models" in registered_process_caches()
