from __future__ import annotations

import pytest

from shop_recs.catalog.models import Product
from shop_recs.stores.models import ApiKey
from shop_recs.stores.scoping import ScopeError, store_scope


def test_query_without_scope_raises(store, make_product):
    make_product(store, "A1")
    with pytest.raises(ScopeError):
        list(Product.objects.all())


def test_scope_filters_to_one_store(store, other_store, make_product):
    make_product(store, "A1")
    make_product(other_store, "B1")
    with store_scope(store):
        assert list(Product.objects.values_list("sku", flat=True)) == ["A1"]
    with store_scope(other_store):
        assert list(Product.objects.values_list("sku", flat=True)) == ["B1"]
    with store_scope([store, other_store]):
        assert Product.objects.count() == 2


def test_api_key_is_stored_hashed_and_matches(store):
    key, raw = ApiKey.generate(store, "frontend")
    assert raw not in key.key_hash and len(key.key_hash) == 64
    assert raw.startswith("sr_") and ApiKey.prefix_of(raw) == key.prefix
    assert key.matches(raw)
    assert not key.matches(raw + "x")
