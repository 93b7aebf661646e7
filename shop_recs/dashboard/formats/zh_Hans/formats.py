"""Simplified Chinese number formats for the dashboard.

Django's zh_Hans formats group digits with no separator at all (``THOUSAND_SEPARATOR = ""``), so a
zh-Hans merchant read "71465" where an English one read "71,465". Chinese business software and
reports write amounts with a comma every three digits (71,465; ¥1,234.50): that is what the pages
use. Everything else (dates 2024年5月1日, times) comes from Django's zh_Hans module.
"""

from __future__ import annotations

DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
