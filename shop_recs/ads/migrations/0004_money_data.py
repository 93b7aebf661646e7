"""Money in ads (issue #14), data: existing impression budgets become money budgets (see 0003_money).

Each campaign keeps exactly the impressions it had left: CPM with a bid of 10.00 (0.01 per
impression), budget = impressions x 0.01, spend = impressions served x 0.01, and every existing
impression cost 0.01. Backwards, a money budget becomes impressions at the campaign's own CPM (or
0.01 per impression for CPC), rounded down.
"""

from decimal import Decimal

from django.db import migrations

#: 0.01 in micro-units: what one legacy impression costs after the conversion.
LEGACY_IMPRESSION_MICROS = 10_000


def impressions_to_money(apps, schema_editor) -> None:
    Campaign = apps.get_model("ads", "Campaign")
    Impression = apps.get_model("ads", "Impression")
    # all stores: a schema conversion touches every campaign once.
    for c in Campaign.all_stores.all().iterator():
        c.budget = (Decimal(int(c.budget)) / 100).quantize(Decimal("0.01"))
        c.bid = Decimal("10.00")
        c.pricing_model = "cpm"
        c.spend_micros = int(c.impressions_served) * LEGACY_IMPRESSION_MICROS
        c.save(update_fields=["budget", "bid", "pricing_model", "spend_micros"])
    # all stores: every legacy impression was paid for at the converted price.
    Impression.all_stores.update(cost_micros=LEGACY_IMPRESSION_MICROS)


def money_to_impressions(apps, schema_editor) -> None:
    Campaign = apps.get_model("ads", "Campaign")
    # all stores: the reverse conversion touches every campaign once.
    for c in Campaign.all_stores.all().iterator():
        per_impression = (c.bid / 1000) if c.pricing_model == "cpm" else Decimal("0.01")
        c.budget = max(1, int(c.budget / per_impression))
        c.save(update_fields=["budget"])


class Migration(migrations.Migration):
    dependencies = [
        ("ads", "0003_money"),
    ]

    operations = [
        migrations.RunPython(impressions_to_money, money_to_impressions),
    ]
