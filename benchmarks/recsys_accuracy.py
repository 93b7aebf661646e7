"""Accuracy benchmark on the UCI Online Retail log (not a test): tune, train, evaluate, print a table.

Protocol: purchases only, global temporal cutoff with the last 30 days as test, only items new to each
user count as hits, k = 10; every model (and implicit's ALS/BPR/cosine as peers) is tuned on a
validation split carved from train only. Equivalent to::

    python manage.py recsys_bench --uci --protocol temporal --test-days 30 --peers \
        --n-iter 8 --tune-budget 90 --dump-recs /tmp/recs --json /tmp/bench.json

Extra command-line arguments are passed through to ``recsys_bench`` (e.g. ``--algorithms ease``).
Data credit: UCI Machine Learning Repository, Online Retail (Chen, Sain & Guo, 2012), CC BY 4.0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARGS = [
    "--uci",
    "--protocol",
    "temporal",
    "--test-days",
    "30",
    "--peers",
    "--n-iter",
    "8",
    "--tune-budget",
    "90",
    "--dump-recs",
    "/tmp/recs",
    "--json",
    "/tmp/bench.json",
]


def main(argv: list[str]) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop_recs.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("recsys_bench", *(DEFAULT_ARGS + argv))


if __name__ == "__main__":
    main(sys.argv[1:])
