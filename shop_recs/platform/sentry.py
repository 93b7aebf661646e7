"""Optional error reporting to Sentry (or any server speaking its protocol), on when ``SENTRY_DSN`` is set.

Called from the end of ``shop_recs/settings.py``, so web processes, workers and commands all report.
What is reported: unhandled exceptions of Django views and Celery tasks, and ERROR log records (the
logging integration: the API's JSON 500 path, ``shop_recs.api.errors``, catches the exception to
answer in the error shape and logs it at ERROR with its traceback, which is how it reaches Sentry).
No personal data: ``send_default_pii=False`` (no user ids, cookies, client addresses or request bodies
beyond what Sentry scrubs by default); each event is tagged with the request id
(``shop_recs.platform.requestid``) to find the matching log lines.
"""

from __future__ import annotations

from typing import Any


def init_sentry(dsn: str, *, environment: str, sample_rate: float, traces_sample_rate: float) -> Any:
    """Initialise the Sentry SDK with the Django and Celery integrations; returns the SDK's guard
    (a context manager that closes the client, for tests). Nothing happens for an empty ``dsn``."""
    if not dsn:
        return None
    # Imported only with a DSN: without one, no process loads the SDK at all.
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    return sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        sample_rate=sample_rate,
        traces_sample_rate=traces_sample_rate,
        # Also the SDK's default; stated so nobody has to look it up. sentry-sdk 2.75 marks the option
        # deprecated (a DeprecationWarning at start-up) in favour of data_collection, whose defaults
        # collect more (cookies, headers): keep this until that is configured to match.
        send_default_pii=False,
        integrations=[DjangoIntegration(), CeleryIntegration()],
    )
