"""``shop_recs.wsgi`` with a pause between the commit and the answer, for ``test_durability``.

For a request whose ``Idempotency-Key`` starts with :data:`SLOW_KEY_PREFIX`, the application runs
(the batch is committed) and then the answer waits :data:`ACK_DELAY` seconds before gunicorn sends
a byte of it. A worker killed in that window is the case an idempotency key exists for: stored, but
the client never heard so. Without the pause the window is a millisecond and a random kill rarely
lands in it; with it, the test can aim at it. Nothing else about the application changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from shop_recs.wsgi import application as _django

SLOW_KEY_PREFIX = "dur-c0-"
ACK_DELAY = 0.5


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    result = _django(environ, start_response)
    # Django has answered (and committed); gunicorn writes the headers only with the first body bytes.
    if environ.get("HTTP_IDEMPOTENCY_KEY", "").startswith(SLOW_KEY_PREFIX):
        time.sleep(ACK_DELAY)
    return result
