"""Money in ads (issue #14): CPM/CPC pricing with a bid, money budgets, spend in micro-units (schema).

Existing campaigns had an *impression* budget; ``0004_money_data`` converts them so that each keeps
serving exactly as many impressions as before (CPM 10.00, i.e. 0.01 per impression). A separate
migration because on PostgreSQL a data update followed by an ALTER TABLE of the same table in one
transaction fails with "pending trigger events".
"""

from decimal import Decimal

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ads", "0002_campaign_status_reason"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="campaign", name="campaign_budget_positive"),
        migrations.AddField(
            model_name="campaign",
            name="pricing_model",
            field=models.CharField(
                choices=[("cpm", "Per thousand impressions (CPM)"), ("cpc", "Per click (CPC)")],
                default="cpm",
                max_length=3,
                verbose_name="pricing",
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="bid",
            field=models.DecimalField(
                decimal_places=2,
                default=Decimal("10.00"),
                help_text="Per thousand impressions (CPM) or per click (CPC).",
                max_digits=8,
                verbose_name="bid",
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="daily_budget",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                help_text="Empty: no daily limit. Spending is paced evenly over each (UTC) day.",
                max_digits=12,
                null=True,
                verbose_name="daily budget",
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="spend_micros",
            field=models.BigIntegerField(default=0, verbose_name="spend (micro-units)"),
        ),
        migrations.AddField(
            model_name="campaign",
            name="spend_day",
            field=models.DateField(blank=True, null=True, verbose_name="spend day"),
        ),
        migrations.AddField(
            model_name="campaign",
            name="day_spend_micros",
            field=models.BigIntegerField(default=0, verbose_name="spend on the spend day (micro-units)"),
        ),
        migrations.AddField(
            model_name="impression",
            name="cost_micros",
            field=models.BigIntegerField(default=0, verbose_name="cost (micro-units)"),
        ),
        migrations.AlterField(
            model_name="campaign",
            name="budget",
            field=models.DecimalField(decimal_places=2, max_digits=12, verbose_name="total budget"),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(condition=models.Q(budget__gt=0), name="campaign_budget_positive"),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(condition=models.Q(bid__gt=0), name="campaign_bid_positive"),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(daily_budget__isnull=True) | models.Q(daily_budget__gt=0),
                name="campaign_daily_budget_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="campaign",
            constraint=models.CheckConstraint(
                condition=models.Q(spend_micros__gte=0) & models.Q(day_spend_micros__gte=0),
                name="campaign_spend_not_negative",
            ),
        ),
    ]
