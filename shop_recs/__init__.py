"""shop_recs: a multi-store personalization platform."""

from shop_recs.celery import app as celery_app

__all__ = ("celery_app",)
