"""The ``recommend`` app holds only migration history now.

Its models moved to ``shop_recs.training`` (runs, versions, schedules) and ``shop_recs.serving``
(rules, the list log) with state-only migrations; the tables kept their names. The app stays
installed so existing databases replay its migrations in order (docs/architecture.md, "Model moves").
"""
