"""Catalog API serializers.

``ProductSerializer`` renders products. The input serializers document the request schema in
OpenAPI; the API validates input with ``services.clean_product_rows`` (same rules, one fast pass),
so keep the two in step when a rule changes.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from shop_recs.catalog.models import Product
from shop_recs.catalog.services import PRODUCT_FIELDS


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Machine-readable code, e.g. invalid_rows, not_found, authentication_failed."
    )
    message = serializers.CharField()
    details = serializers.JSONField(
        allow_null=True, help_text="For invalid_rows / invalid_input: a list of {index, field, reason}."
    )


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the whole API."""

    error = ErrorBodySerializer()


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": 1000},
            {"type": "string", "maxLength": 0},
        ]
    }
)
class OptionalURLField(serializers.URLField):
    """An http(s) URL or ``""`` (none): the schema says so, where a plain URLField's ``format: uri``
    made every product without an image a schema violation."""


class ProductSerializer(serializers.ModelSerializer):
    category = serializers.SerializerMethodField(help_text="Category path, e.g. 'Home > Kitchen > Mugs'.")
    image_url = OptionalURLField(read_only=True)
    url = OptionalURLField(read_only=True, help_text="The product's page in the shop ('' when unknown).")

    class Meta:
        model = Product
        fields = ["sku", *PRODUCT_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields

    def get_category(self, obj: Product) -> str | None:
        return obj.category.path if obj.category_id else None


class ProductInputSerializer(serializers.Serializer):
    """A product as sent to PUT /products/{sku}. Omitted fields take their defaults (full replace)."""

    title = serializers.CharField(max_length=500)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    category = serializers.CharField(
        required=False, allow_null=True, max_length=1000, help_text="Path 'A > B > C'; unknown nodes are created."
    )
    brand = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    tags = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=0, required=False, allow_null=True)
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, allow_null=True, help_text="3-letter code; default: the store's currency."
    )
    image_url = OptionalURLField(required=False, allow_blank=True, max_length=1000, default="")
    url = OptionalURLField(
        required=False,
        allow_blank=True,
        max_length=1000,
        default="",
        help_text="The product's page in the shop: http(s) only, at most 1000 characters, no spaces or control "
        "characters.",
    )
    is_active = serializers.BooleanField(required=False, default=True)
    in_stock = serializers.BooleanField(required=False, default=True)
    attributes = serializers.DictField(required=False, default=dict)


class ProductBulkRowSerializer(ProductInputSerializer):
    """One row of POST /products/bulk."""

    sku = serializers.CharField(max_length=100, help_text="Unique in the store; no '/'.")


class UpsertResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    count = serializers.IntegerField()
