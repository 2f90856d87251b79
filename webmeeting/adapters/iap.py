"""Who is calling the operator console: the Identity-Aware Proxy's signed header.

In production IAP sits on the load balancer's console route: it signs the caller in with Google
and adds ``x-goog-iap-jwt-assertion`` (ES256, issuer ``https://cloud.google.com/iap``, audience
the backend service) to every request it lets through; anything not through IAP has no valid
header. The console verifies it as Google asks (signature against Google's published keys,
issuer, audience, expiry) and takes the verified ``email``. Locally the front door plays IAP:
its dev sign-in ends in the same header, signed with a key the launcher made
(``WEBMEETING_IAP_JWKS_FILE``); the console's code path is the same.

Google's keys are fetched through the egress guard and kept for ``KEYS_TTL_S``.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import jwt

from webmeeting import runtime
from webmeeting.adapters import egress
from webmeeting.errors import Unauthenticated

HEADER = "x-goog-iap-jwt-assertion"
ISSUER = "https://cloud.google.com/iap"
GOOGLE_KEYS = ("www.gstatic.com", "/iap/verify/public_key-jwk")
KEYS_TTL_S = 3600.0
ASSERTION_MAX = 4096  # bytes; IAP's are about 1 KB
LEEWAY_S = 30

_keys: tuple[float, dict[str, Any]] | None = None
_lock = threading.Lock()


def _key_set() -> dict[str, Any]:
    global _keys
    with _lock:
        if _keys is not None and time.monotonic() - _keys[0] < KEYS_TTL_S:
            return _keys[1]
    path = runtime.backends().iap_jwks_file
    if path:
        doc = json.loads(Path(path).read_text())
    else:
        doc = egress.request("GET", GOOGLE_KEYS[0], GOOGLE_KEYS[1], {"Accept": "application/json"}).json()
    keys = {k["kid"]: k for k in doc.get("keys", []) if isinstance(k, dict) and "kid" in k}
    with _lock:
        _keys = (time.monotonic(), keys)
    return keys


def reset() -> None:
    global _keys
    with _lock:
        _keys = None


def verified_email(assertion: str | None, audience: str) -> str:
    """The address IAP verified, or ``Unauthenticated``."""
    if not assertion or len(assertion) > ASSERTION_MAX or not audience:
        raise Unauthenticated("sign in through the console's address")
    try:
        kid = jwt.get_unverified_header(assertion).get("kid")
        jwk = _key_set().get(str(kid))
        if jwk is None:
            raise Unauthenticated("sign in through the console's address")
        key = jwt.PyJWK(jwk, algorithm="ES256")
        claims = jwt.decode(
            assertion,
            key=key,
            algorithms=["ES256"],
            audience=audience,
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "aud", "iss", "email"]},
        )
    except (jwt.PyJWTError, ValueError, egress.EgressRefused) as exc:
        raise Unauthenticated("sign in through the console's address") from exc
    email = claims.get("email")
    if not isinstance(email, str):
        raise Unauthenticated("sign in through the console's address")
    return email.removeprefix("accounts.google.com:")
