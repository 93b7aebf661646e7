"""Write the demo catalog's placeholder images (one SVG per category) into the static tree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from shop_recs.imports.demo_catalog import demo_categories
from shop_recs.imports.placeholders import static_placeholder_dir, write_placeholders


class Command(BaseCommand):
    help = "Write static/shop_recs/placeholders/*.svg, the demo products' images (commit the result)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--out", type=Path, default=None, help="Folder (default: the repository's static tree).")

    def handle(self, *args: Any, out: Path | None = None, **options: Any) -> None:
        written = write_placeholders(out or static_placeholder_dir(), demo_categories())
        self.stdout.write(f"{len(written)} placeholder images written to {written[0].parent}")
