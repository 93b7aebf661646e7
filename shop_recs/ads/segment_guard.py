"""Campaigns and the segments they target: a deleted segment pauses its campaigns.

Connected in ``AdsConfig.ready`` to ``pre_delete`` of ``"analytics.Segment"`` by its lazy name, so the
ads package never imports analytics. It runs for every deletion: a merchant deleting a rule segment,
or an automatic segment that a rebuild no longer finds.
"""

from __future__ import annotations

import logging
from typing import Any

from shop_recs.ads.services import pause_campaigns_losing_segment

logger = logging.getLogger(__name__)


def pause_targeting_campaigns(sender: Any, instance: Any, **kwargs: Any) -> None:
    paused = pause_campaigns_losing_segment(instance.store_id, instance.pk, instance.name)
    if paused:
        logger.warning("store %s: segment %s deleted; %d campaign(s) paused", instance.store_id, instance.pk, paused)
