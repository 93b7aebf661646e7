"""Issue 14: numbers, money, dates and generated texts follow the reader's language.

Django's own zh_Hans formats group digits with no separator (a Chinese merchant read "71465"); the
project's format module (``FORMAT_MODULE_PATH``) groups by three with a comma. Money carries the
store's currency as the language writes it. Texts the system generates (automatic segment names and
descriptions, import reports and errors, gate verdicts, job stages) are stored as codes or fixed
English templates and rendered in the reader's language when shown.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.humanize.templatetags.humanize import intcomma
from django.template import Context, Template
from django.utils import formats, translation

from analytics import labels
from analytics.models import Segment
from shop_recs.dashboard.formatting import format_money, format_number
from shop_recs.dashboard.templatetags.dashboard import attribution_via, gender, num
from shop_recs.imports.messages import report_label, translate_message
from shop_recs.platform.stages import stage_label
from shop_recs.training.texts import translate_reason


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_numbers_have_thousands_separators_in_both_languages(language):
    with translation.override(language):
        assert format_number(71465) == "71,465"
        assert format_number(1234567.891, 2) == "1,234,567.89"
        assert format_number(Decimal("-9876.5"), 1) == "-9,876.5"
        assert format_number(None) == "–" and format_number(float("nan")) == "–"
        assert intcomma(71465) == "71,465"  # humanize's filter reads the same locale formats
        assert num(12345) == "12,345" and num("", 1) == "–"


def test_money_carries_the_store_currency_as_each_language_writes_it():
    with translation.override("en"):
        assert format_money(1234.5, "USD") == "$1,234.50"
        assert format_money(1234.5, "CNY") == "CN¥1,234.50"
        assert format_money(Decimal("-3"), "EUR") == "-€3.00"
        assert format_money(1500, "JPY") == "¥1,500"  # no minor unit
        assert format_money(12, "CHF") == "12.00 CHF"  # no symbol here: the ISO code after the amount
        assert format_money(None, "USD") == "–"
        assert format_money("< 5", "USD") == "< 5"  # a hidden small figure is shown as the page wrote it
    with translation.override("zh-hans"):
        assert format_money(1234.5, "USD") == "US$1,234.50"
        assert format_money(1234.5, "CNY") == "¥1,234.50"
        assert format_money(71465, "CNY") == "¥71,465.00"
        assert format_money(1500, "JPY") == "JP¥1,500"


def test_money_filter_in_a_template():
    template = Template("{% load dashboard %}{{ v|money:c }}")
    with translation.override("zh-hans"):
        assert template.render(Context({"v": 71465.2, "c": "CNY"})) == "¥71,465.20"
    with translation.override("en"):
        assert template.render(Context({"v": 71465.2, "c": "USD"})) == "$71,465.20"


def test_dates_use_the_locale_formats():
    day = date(2024, 11, 29)
    with translation.override("zh-hans"):
        assert formats.date_format(day, "DATE_FORMAT") == "2024年11月29日"
        assert formats.date_format(day, "MONTH_DAY_FORMAT") == "11月29日"
    with translation.override("en"):
        assert formats.date_format(day, "DATE_FORMAT") == "Nov. 29, 2024"


def test_enum_values_are_named_in_the_reader_language():
    with translation.override("zh-hans"):
        assert (gender("female"), gender("Male"), gender("F")) == ("女", "男", "女")
        assert gender("") == "—" and gender("agender") == "agender"  # the shop's own word, as sent
        assert stage_label("fitting als") == "正在拟合 als" and stage_label("done") == "已完成"
        assert attribution_via("context") == "购买时附带曝光 ID" and attribution_via("odd") == "odd"
    with translation.override("en"):
        assert gender("female") == "female" and stage_label("fitting als") == "fitting als"


# --- generated texts: stored as codes, built when shown ----------------------------------------------

POPULATION = {"recency": 30.0, "frequency": 2.0, "monetary": 100.0}


def test_an_automatic_segment_is_named_in_the_reader_language():
    label = labels.cluster_label({"recency": 10.0, "frequency": 4.0, "monetary": 120.0}, POPULATION, "Home > Garden")
    assert (label["kind"], label["recency"], label["frequent"], label["spend"]) == ("buyers", "recent", True, "mid")
    with translation.override("en"):
        assert labels.label_name(label) == "Recent frequent mid spenders · Garden"
        assert labels.label_description(label).startswith("Median 10 days since last order (all buyers: 30)")
    with translation.override("zh-hans"):
        assert labels.label_name(label) == "近期高频中等消费客户 · Garden"  # the category is the shop's own text
        desc = labels.label_description(label)
        assert desc.startswith(
            "距上次下单中位数 10 天（全部购买客户：30），订单 4.0 笔（2.0），营收 120.00（100.00）。"
        )
        assert "Home > Garden" in desc


@pytest.mark.django_db
def test_segment_rows_store_codes_and_old_english_rows_still_translate(store):
    label = labels.cluster_label({"recency": 300.0, "frequency": 1.0, "monetary": 900.0}, POPULATION, None)
    name, desc = labels.english(label)
    new = Segment.all_stores.create(
        store=store, kind="auto", name=name, description=desc, summary={labels.LABEL_KEY: label}
    )
    # A row written before the codes existed: English only; the display path recognises its texts.
    old = Segment.all_stores.create(
        store=store,
        kind="auto",
        name="Lapsed high spenders · Garden (2)",
        description="Median 300 days since last order (all buyers: 30), 1.0 orders (2.0), revenue 1900.00 (100.00). "
        "Leans towards Home > Garden more than the average customer.",
    )
    rule = Segment.all_stores.create(store=store, kind="rule", name="Recent high spenders", description="mine")
    with translation.override("zh-hans"):
        assert new.display_name == "流失高消费客户" and str(new) == "流失高消费客户"
        assert old.display_name == "流失高消费客户 · Garden (2)"
        assert "营收 1,900.00" in old.display_description and "Home > Garden" in old.display_description
        assert rule.display_name == "Recent high spenders"  # an analyst's own words are never rewritten
    with translation.override("en"):
        assert new.display_name == name == "Lapsed high spenders"
        assert old.display_name == "Lapsed high spenders · Garden (2)"


def test_import_report_keys_and_errors_are_translated():
    stored = (
        "The file was rejected and nothing was imported: 3 error(s): line 2: title is empty; "
        "line 3: price: 'abc' is not a price (e.g. 12.50, 12,50, '12.50 USD' or '€12.50'); "
        "line 4: sku 'Z-2' appears again (first on line 3)"
    )
    with translation.override("zh-hans"):
        assert report_label("products_created") == "新建商品"
        assert report_label("cancellation") == "取消发票（InvoiceNo 以 C 开头）"
        assert report_label("brand_new_key") == "brand new key"  # unknown: shown, never dropped
        assert translate_message("title is empty") == "title 为空"
        assert translate_message(stored) == (
            "文件被拒绝，未导入任何数据：3 个错误：第 2 行：title 为空；"
            "第 3 行：price：'abc' 不是价格（例如 12.50、12,50、'12.50 USD' 或 '€12.50'）；"
            "第 4 行：SKU 'Z-2' 重复出现（首次出现在第 3 行）"
        )
        assert translate_message("something nobody wrote a rule for") == "something nobody wrote a rule for"
    with translation.override("en"):
        assert translate_message(stored) == stored


def test_gate_verdicts_are_translated_with_their_figures():
    stored = (
        "training run #2: better: ndcg@10 0.2482 vs 0.1541 on the same 77 customers, difference +0.0942 "
        "(95% interval +0.0247 to +0.1720)"
    )
    with translation.override("zh-hans"):
        assert translate_reason(stored) == (
            "训练任务 #2：更好：在同样 77 位客户上 ndcg@10 为 0.2482 对 0.1541，差值 +0.0942"
            "（95% 区间 +0.0247 至 +0.1720）"
        )
        assert translate_reason("forced") == "强制"
        assert translate_reason("lift 1.2% is below the minimum 2.0%") == "提升 1.2% 低于最低要求 2.0%"
        assert translate_reason("a merchant's own reason") == "a merchant's own reason"
        # What promoting an experiment's variant did (the "Promoted …" flash and the activation history).
        assert translate_reason("model version 3 (als) active; training configuration updated") == (
            "模型版本 3（als）已启用；训练配置已更新"
        )
        assert translate_reason("promoted from experiment #4, variant B (promoted anyway)") == (
            "由实验 #4 的变体 B 推广（不顾警告推广）"
        )
    with translation.override("en"):
        assert translate_reason(stored) == stored


@pytest.mark.django_db
def test_import_page_shows_translated_report_and_errors(client, store, merchant, tmp_path):
    from shop_recs.imports.csv_importers import import_catalog

    bad = tmp_path / "bad.csv"
    bad.write_text("sku,title,price\nZ-1,,3.50\n", encoding="utf-8")
    failed = import_catalog(store, bad, created_by=merchant)
    good = tmp_path / "good.csv"
    good.write_text("sku,title,price\nZ-1,Mug,3.50\n", encoding="utf-8")
    done = import_catalog(store, good, created_by=merchant)
    client.force_login(merchant)
    client.cookies["django_language"] = "zh-hans"
    html = client.get(f"/s/alpha/imports/{failed.pk}/").content.decode()
    assert "title 为空" in html and "title is empty" not in html
    html = client.get(f"/s/alpha/imports/{done.pk}/").content.decode()
    assert "新建商品" in html and "products_created" not in html
