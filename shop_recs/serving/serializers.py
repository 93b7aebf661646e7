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


class RecommendedItemSerializer(serializers.Serializer):
    sku = serializers.CharField()
    title = serializers.CharField()
    price = serializers.FloatField(allow_null=True)
    score = serializers.FloatField()
    reason = ReasonSerializer()


class RecommendationResponseSerializer(serializers.Serializer):
    list_id = serializers.UUIDField(help_text="Send it back in events' context.list_id for attribution.")
    model_version = serializers.IntegerField(allow_null=True)
    algorithm = serializers.CharField()
    placement = serializers.CharField()
    items = RecommendedItemSerializer(many=True)


class SessionRequestSerializer(serializers.Serializer):
    viewed = serializers.ListField(child=serializers.CharField(), max_length=200, help_text="Skus, oldest first.")
    n = serializers.IntegerField(required=False, min_value=1, max_value=100)
    placement = serializers.CharField(required=False)
    category = serializers.CharField(required=False)
    min_price = serializers.FloatField(required=False)
    max_price = serializers.FloatField(required=False)
    diversity = serializers.FloatField(required=False, min_value=0, max_value=1)
