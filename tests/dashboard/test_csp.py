"""Content-Security-Policy (issue 12 §8): no inline script runs without the request's nonce, and no
template carries an inline event handler."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
INLINE_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)


def test_templates_have_no_inline_handlers_and_every_inline_script_has_the_nonce():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        if INLINE_HANDLER.search(text):
            offenders.append(f"{path.relative_to(TEMPLATES)}: inline event handler")
        for tag in SCRIPT_TAG.findall(text):
            if "csp_nonce" not in tag:
                offenders.append(f"{path.relative_to(TEMPLATES)}: {tag}")
    assert not offenders, offenders


def test_pages_send_a_policy_whose_nonce_matches_their_scripts(client, store, merchant):
    client.force_login(merchant)
    response = client.get(f"/s/{store.slug}/jobs/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    scripts = re.findall(r"<script nonce=\"([^\"]+)\"", response.content.decode())
    assert scripts and set(scripts) == {nonce}
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
