"""Sign-in is throttled per account and per IP address (issue 12 §8, issue 16).

The reproduction: 60 wrong passwords in 16 s, and then the right one still worked.
"""

from __future__ import annotations

import pytest

from shop_recs.stores.models import Role

LOGIN = "/accounts/login/"


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 5
    # A fast hasher: these tests sign in ~25 times, and PBKDF2 costs ~1 s each on the CI box.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return 5


def _attempt(client, username, password, ip="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_wrong_passwords_lock_the_account_even_for_the_right_one(client, store, make_user, limit):
    make_user("owner", store, Role.MERCHANT)
    for _ in range(limit - 1):
        assert _attempt(client, "owner", "wrong").status_code == 200  # the form again, with its error
    assert _attempt(client, "owner", "wrong").status_code == 429  # the attempt that reaches the limit
    locked = _attempt(client, "owner", "pw-123456!")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    assert 'id="locked-out"' in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address does not unlock the account (throttled by account, not only by IP).
    assert _attempt(client, "owner", "pw-123456!", ip="10.9.9.9").status_code == 429


def test_one_address_guessing_many_accounts_is_throttled(client, store, make_user, limit):
    make_user("victim", store, Role.MERCHANT)
    for i in range(limit):
        _attempt(client, f"guess{i}", "wrong", ip="10.0.0.66")
    assert _attempt(client, "victim", "pw-123456!", ip="10.0.0.66").status_code == 429
    # The same account still signs in from elsewhere.
    assert _attempt(client, "victim", "pw-123456!", ip="10.0.0.7").status_code == 302


def test_a_successful_sign_in_resets_the_count(client, store, make_user, limit):
    make_user("careful", store, Role.MERCHANT)
    for _ in range(limit - 1):
        _attempt(client, "careful", "wrong")
    assert _attempt(client, "careful", "pw-123456!").status_code == 302
    client.logout()
    for _ in range(limit - 1):  # counted from zero again: still below the limit
        assert _attempt(client, "careful", "wrong").status_code == 200
    assert _attempt(client, "careful", "pw-123456!").status_code == 302
