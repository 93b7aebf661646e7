"""shop_recs: a multi-store personalization platform.

The Celery app is bound when Django starts (``StoresConfig.ready``), not on package import, so that
importing the engine (``shop_recs.recsys``) never loads Django or Celery.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "celery_app":
        # Lazy on purpose: importing the engine must not load Django or Celery.
        from shop_recs.celery import app

        return app
    raise AttributeError(name)
