from __future__ import annotations

from decimal import Decimal

from django.core.management import call_command

from shop_recs.catalog.models import Category, Product
from shop_recs.imports.importers import import_catalog
from shop_recs.imports.models import ImportJob, ImportStatus
from shop_recs.stores.scoping import store_scope

GOOD = """sku,title,description,category,brand,tags,price,currency,image_url,is_active,in_stock,colour,material
MUG-1,Blue Mug,A blue mug,Home > Kitchen > Mugs,Acme,blue;mug,9.50,EUR,https://img.example/mug1.jpg,true,yes,blue,ceramic
MUG-2,Red Mug,,Home>Kitchen>Mugs,Acme,red|mug,12,,,1,0,red,
TEE-1,Plain Tee,"Soft, cotton",Fashion > Tops,Basics,,15.00,EUR,,false,true,,cotton
"""


def test_catalog_import_creates_products_categories_and_attributes(store, write_file):
    job = import_catalog(store, write_file("catalog.csv", GOOD))
    assert job.status == ImportStatus.SUCCEEDED, job.message
    assert (job.rows_read, job.rows_imported, job.report["products_created"]) == (3, 3, 3)
    with store_scope(store):
        mug1 = Product.objects.get(sku="MUG-1")
        mug2 = Product.objects.get(sku="MUG-2")
        tee = Product.objects.get(sku="TEE-1")
        assert mug1.category.path == "Home > Kitchen > Mugs" and mug2.category_id == mug1.category_id
        assert mug1.tags == ["blue", "mug"] and mug2.tags == ["red", "mug"]
        assert mug1.price == Decimal("9.50") and mug1.currency == "EUR"
        assert mug2.currency == store.currency  # blank -> the store's default
        assert mug2.in_stock is False and tee.is_active is False
        assert mug1.attributes == {"colour": "blue", "material": "ceramic"}
        assert mug2.attributes == {"colour": "red"}
        assert tee.description == "Soft, cotton"
        assert set(Category.objects.values_list("path", flat=True)) == {
            "Home",
            "Home > Kitchen",
            "Home > Kitchen > Mugs",
            "Fashion",
            "Fashion > Tops",
        }


def test_catalog_reimport_updates_without_duplicates(store, write_file):
    path = write_file("catalog.csv", GOOD)
    import_catalog(store, path)
    changed = write_file("catalog2.csv", GOOD.replace("Blue Mug", "Navy Mug"))
    job = import_catalog(store, changed)
    assert job.report["products_created"] == 0 and job.report["products_updated"] == 3
    again = import_catalog(store, path)  # the same file again is fine for a catalog: an upsert
    assert again.status == ImportStatus.SUCCEEDED
    with store_scope(store):
        assert Product.objects.count() == 3
        assert Category.objects.count() == 5
        assert Product.objects.get(sku="MUG-1").title == "Blue Mug"


def test_catalog_errors_name_lines_and_write_nothing(store, write_file):
    bad = (
        "sku,title,price,is_active\n"
        "A,Alpha,1.00,true\n"
        "B,Beta,abc,true\n"  # line 3: bad number
        "C,,2.00,true\n"  # line 4: no title
        "D,Delta,3.00,maybe\n"  # line 5: bad boolean
        "A,Again,1.00,true\n"  # line 6: duplicate sku
    )
    job = import_catalog(store, write_file("bad.csv", bad))
    assert job.status == ImportStatus.FAILED
    assert [e["line"] for e in job.errors] == [3, 4, 5, 6]
    assert "price" in job.errors[0]["message"] and "abc" in job.errors[0]["message"]
    assert "first on line 2" in job.errors[3]["message"]
    with store_scope(store):
        assert Product.objects.count() == 0 and Category.objects.count() == 0


def test_catalog_missing_column_is_a_line_1_error(store, write_file):
    job = import_catalog(store, write_file("bad.csv", "sku,name\nA,Alpha\n"))
    assert job.status == ImportStatus.FAILED
    assert job.errors == [{"line": 1, "message": "missing required column(s): title"}]


def test_catalog_service_validation_is_mapped_to_lines(store, write_file):
    # "/" in a sku is refused by catalog.services; the error must still point at the line.
    job = import_catalog(store, write_file("bad.csv", "sku,title\nOK,Fine\nA/B,Slash\n"))
    assert job.status == ImportStatus.FAILED
    assert job.errors[0]["line"] == 3 and "sku" in job.errors[0]["message"]
    with store_scope(store):
        assert Product.objects.count() == 0


def test_import_catalog_command(store, write_file, capsys):
    call_command("import_catalog", "--store", store.slug, str(write_file("c.csv", GOOD)), "--no-progress")
    out = capsys.readouterr().out
    assert "succeeded" in out and "products_created: 3" in out
    with store_scope(store):
        assert ImportJob.objects.get().rows_imported == 3
