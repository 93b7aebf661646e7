"""Container health probe: ``python scripts/probe.py healthz`` (or ``readyz``); exit 0 on a 200.

Asks the web process on 127.0.0.1 with a ``Host`` it accepts: Django answers 400 to a host that is
not in ``ALLOWED_HOSTS``, so probing ``127.0.0.1`` in a deployment whose ``ALLOWED_HOSTS`` names only
its public domain would report a healthy process as dead. Standard library only, no Django import
(the probe must cost nothing next to the process it checks). Used by the Dockerfile's HEALTHCHECK
and docker-compose.yml (docs/deployment.md).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def allowed_host(raw: str) -> str:
    """The first concrete name of ``ALLOWED_HOSTS`` (``.example.com`` -> ``example.com``; ``*`` skipped)."""
    for entry in raw.split(","):
        name = entry.strip().lstrip(".")
        if name and name != "*":
            return name
    return "localhost"


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "healthz"
    if path not in {"healthz", "readyz"}:
        print(f"probe: path must be healthz or readyz, not {path!r}", file=sys.stderr)
        return 2
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/{path}",
        headers={"Host": allowed_host(os.environ.get("ALLOWED_HOSTS", "localhost"))},
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 - a fixed http URL
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"probe: /{path} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
