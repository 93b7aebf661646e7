"""Schema-only serializers: they document the serving responses in OpenAPI (the views build plain dicts)."""

from __future__ import annotations

from rest_framework import serializers


class ReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[
            "because_viewed",
            "popular",
            "trending",
            "content_similar",
            "boosted",
            "pinned",
            "collaborative",
            "frequently_bought_together",
        ]
    )
    text = serializers.CharField()
    anchor_sku = serializers.CharField(allow_null=True)


class CardFieldsSerializer(serializers.Serializer):
    """The product fields of every served item (recommendations, similar, FBT, popular, trending and
    search): enough to draw a product card without another lookup."""

    sku = serializers.CharField()
    title = serializers.CharField()
    price = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        allow_null=True,
        help_text='Decimal string with 2 places, e.g. "12.50"; null when the product has no price.',
    )
    currency = serializers.CharField(
        help_text="ISO 4217 code: the product's currency, or the store's when the product has none."
    )
    in_stock = serializers.BooleanField()
    image_url = serializers.URLField(allow_null=True, help_text="http(s) URL of the product image; null when none.")
    url = serializers.URLField(allow_null=True, help_text="http(s) URL of the product page; null when none.")


class RecommendedItemSerializer(CardFieldsSerializer):
    score = serializers.FloatField()
    reason = ReasonSerializer()


class RecommendationResponseSerializer(serializers.Serializer):
    list_id = serializers.UUIDField(help_text="Send it back in events' context.list_id for attribution.")
    model_version = serializers.IntegerField(allow_null=True)
    algorithm = serializers.CharField()
    placement = serializers.CharField()
    rules_placement = serializers.CharField(
        help_text="The placement whose rules served the list: the one asked for, or the store's default "
        "placement when none was given or the store has no placement with that key."
    )
    items = RecommendedItemSerializer(many=True)


class SessionRequestSerializer(serializers.Serializer):
    viewed = serializers.ListField(child=serializers.CharField(), max_length=200, help_text="Skus, oldest first.")
    n = serializers.IntegerField(required=False, min_value=1, max_value=100)
    placement = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    min_price = serializers.FloatField(required=False)
    max_price = serializers.FloatField(required=False)
    diversity = serializers.FloatField(required=False, min_value=0, max_value=1)
