"""TURN REST credentials: what coturn's use-auth-secret accepts, and only until they expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from webmeeting import turn

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_credentials_are_the_turn_rest_scheme() -> None:
    got = turn.credentials("s3cret", "p" * 24, ["turn:127.0.0.1:3478?transport=udp"], NOW, ttl_s=600)
    assert got["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert got["username"] == f"{int(NOW.timestamp()) + 600}:{'p' * 24}"
    expected = base64.b64encode(hmac.new(b"s3cret", got["username"].encode(), hashlib.sha1).digest()).decode()
    assert got["credential"] == expected


def test_they_hold_until_they_expire_and_only_under_the_secret() -> None:
    got = turn.credentials("s3cret", "p" * 24, ["turn:x"], NOW, ttl_s=600)
    assert turn.valid("s3cret", got["username"], got["credential"], NOW + timedelta(seconds=599))
    assert not turn.valid("s3cret", got["username"], got["credential"], NOW + timedelta(seconds=601))
    assert not turn.valid("other", got["username"], got["credential"], NOW)
    assert not turn.valid("s3cret", "not-a-time:x", got["credential"], NOW)
