"""What serving does when training reports: receivers of training's signals (connected in ``apps.py``).

Training sends the signals and never imports serving; serving listens.
"""

from __future__ import annotations

from typing import Any

from shop_recs.serving import fbt, runtime
from shop_recs.stores.models import Store


def forget_active_version(sender: Any, store_id: int, **kwargs: Any) -> None:
    """``training.activation.version_activated``: this process serves the new version from its next request."""
    runtime.forget_active_version(store_id)


def rebuild_frequently_bought_together(sender: Any, store: Store, **kwargs: Any) -> None:
    """``training.services.model_trained``: serving never computes FBT on a request; rebuild it with every model."""
    fbt.build_fbt(store)
