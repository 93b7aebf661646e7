"""Activity API serializers, for the OpenAPI schema and for rendering customers.

Event and customer input is validated by ``services.clean_event_rows`` / ``clean_customer_rows``
(one fast pure-Python pass with the same rules); these classes document that schema. Keep them in
step when a rule changes.
"""

from __future__ import annotations

from rest_framework import serializers

from shop_recs.activity.models import Customer, EventType


class EventInputSerializer(serializers.Serializer):
    """One event as sent by a shop frontend."""

    customer = serializers.CharField(
        required=False, allow_null=True, max_length=100, help_text="Customer external id; unknown ones are created."
    )
    session_id = serializers.CharField(
        required=False, allow_null=True, max_length=100, help_text="Anonymous session; customer or session_id needed."
    )
    type = serializers.ChoiceField(choices=EventType.choices)
    sku = serializers.CharField(
        required=False, allow_null=True, max_length=100, help_text="Required, except null for search events."
    )
    value = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="rating: 1..5 (required); purchase: unit price >= 0; cart events: defaults to quantity.",
    )
    quantity = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Positive; defaults to 1 for cart and purchase."
    )
    order_id = serializers.CharField(
        required=False, allow_null=True, max_length=100, help_text="Required for purchase events."
    )
    query = serializers.CharField(
        required=False, allow_null=True, max_length=500, help_text="Required for search events."
    )
    timestamp = serializers.DateTimeField(
        help_text="ISO-8601 with a time zone; naive or more than 5 minutes in the future is rejected."
    )
    context = serializers.DictField(
        required=False, allow_null=True, help_text="What led to the event, e.g. {list_id, ad_id, placement}."
    )


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Number of events stored.")


class CustomerInputSerializer(serializers.Serializer):
    """A customer's profile, as sent to PUT /customers/{external_id} (omitted fields are cleared)."""

    country = serializers.CharField(required=False, allow_blank=True, max_length=64)
    age_band = serializers.CharField(required=False, allow_blank=True, max_length=16)
    gender = serializers.CharField(required=False, allow_blank=True, max_length=16)
    signup_date = serializers.DateField(required=False, allow_null=True)


class CustomerBulkRowSerializer(CustomerInputSerializer):
    external_id = serializers.CharField(max_length=100)


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["external_id", "country", "age_band", "gender", "signup_date", "created_at"]
        read_only_fields = fields


class CustomerUpsertResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
