"""TURN credentials in the TURN REST scheme (what coturn's ``use-auth-secret`` checks): the
username is ``<expiry unix time>:<participant id>``, the password the base64 HMAC-SHA1 of the
username under the secret the portal shares with the MCUs' coturns. Nothing is stored: coturn
recomputes the HMAC and refuses an expired username. Pure: the caller passes the time."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

TTL_S = 8 * 3600  # a working day of meetings: a relay allocation is refreshed with these credentials


def credentials(secret: str, participant_id: str, urls: list[str], now: datetime, ttl_s: int = TTL_S) -> dict[str, Any]:
    """One ``RTCIceServer`` entry for ``urls`` (the TURN server of the MCU the participant joins)."""
    username = f"{int(now.timestamp()) + ttl_s}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return {"urls": list(urls), "username": username, "credential": base64.b64encode(digest).decode()}


def valid(secret: str, username: str, credential: str, now: datetime) -> bool:
    """What coturn checks (used by tests): the HMAC matches and the expiry is in the future."""
    expiry, _, _ = username.partition(":")
    if not expiry.isdigit() or int(expiry) < now.timestamp():
        return False
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), credential)
