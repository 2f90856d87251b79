"""Who is calling as an MCU: the registry of MCUs and the check of their credentials.

The registry is configuration: ``WEBMEETING_MCUS`` (JSON; production: terraform writes it from
the instance groups) or ``WEBMEETING_MCUS_FILE`` (a JSON file the local launcher rewrites as it
starts MCUs, read again whenever it changes).

Credentials:
- production (``account``): ``Authorization: Bearer <ID token>`` from the VM's metadata server
  (``format=full``), verified here against Google's certificates: audience = this API's URL,
  ``email`` = the MCU's service account, and the instance name inside the token = the MCU id.
  One account per instance group, one identity per instance.
- local (``secret_sha256``): ``Authorization: Bearer <the MCU's own secret>``.
Both with ``X-MCU-Id``. Every failure is the same 401, whatever went wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from typing import Any

from webmeeting import errors, runtime
from webmeeting.domain.mcu import RegisteredMcu, parse_registry

_lock = threading.Lock()
_cache: dict[str, tuple[float, dict[str, RegisteredMcu]]] = {}


def registry() -> dict[str, RegisteredMcu]:
    """The MCUs this portal knows (``WEBMEETING_MCUS``, or the file ``WEBMEETING_MCUS_FILE``,
    re-read when it changes)."""
    path = runtime.backends().mcus_file
    if path:
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return {}
        with _lock:
            cached = _cache.get(path)
            if cached is None or cached[0] != mtime:
                with open(path) as fh:
                    cached = (mtime, parse_registry(fh.read()))
                _cache[path] = cached
            return cached[1]
    return parse_registry(runtime.backends().mcus_json)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _verify_google_id_token(token: str, audience: str) -> dict[str, Any]:
    import google.auth.transport.requests  # only production MCUs present ID tokens
    from google.oauth2 import id_token

    return dict(id_token.verify_token(token, google.auth.transport.requests.Request(), audience=audience))


def authenticate(mcu_id: str, authorization: str, audience: str, project: str) -> RegisteredMcu:
    """The registered MCU ``mcu_id``, if the credential proves it is that MCU; else Unauthenticated."""
    refused = errors.Unauthenticated("MCU credentials required")
    entry = registry().get(mcu_id)
    presented = authorization.removeprefix("Bearer ").strip()
    if entry is None or not presented or not authorization.startswith("Bearer "):
        raise refused
    if entry.secret_sha256:
        if not hmac.compare_digest(secret_digest(presented), entry.secret_sha256):
            raise refused
        return entry
    try:
        claims = _verify_google_id_token(presented, audience)
    except Exception:  # noqa: BLE001 - malformed, expired, wrong audience or signature: all the same 401
        raise refused from None
    gce = (claims.get("google") or {}).get("compute_engine") or {}
    if (
        claims.get("email") != entry.account
        or not claims.get("email_verified")
        or gce.get("instance_name") != mcu_id
        or gce.get("project_id") != project
    ):
        raise refused
    return entry
