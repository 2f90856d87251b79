"""Secrets at rest and derived keys.

PBX API secrets are needed in clear to verify HMAC signatures, so they are stored encrypted
(AES-256-GCM under the platform key, bound to the PBX id), never in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MEETING_KEY_BYTES = 16  # 128 random bits (contract asks >= 96)


def new_api_secret() -> str:
    """A fresh PBX API secret: base64 of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def encrypt_secret(platform_key: bytes, pbx_id: str, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(platform_key).encrypt(nonce, secret.encode(), pbx_id.encode())
    return base64.b64encode(nonce + sealed).decode()


def decrypt_secret(platform_key: bytes, pbx_id: str, blob: str) -> str:
    raw = base64.b64decode(blob)
    return AESGCM(platform_key).decrypt(raw[:12], raw[12:], pbx_id.encode()).decode()


def hmac_keys(api_secret: str) -> list[bytes]:
    """Keys a PBX may sign with: the secret string as issued (documented), or its decoded bytes."""
    keys = [api_secret.encode()]
    try:
        keys.append(base64.b64decode(api_secret, validate=True))
    except ValueError:
        pass
    return keys


def new_meeting_key() -> str:
    return secrets.token_urlsafe(MEETING_KEY_BYTES)


def new_id() -> str:
    return secrets.token_hex(10)


def derived_key(platform_key: bytes, purpose: str) -> str:
    """A deterministic, unguessable 128-bit key (used for Quick Meetings so a retried sync
    produces the same key instead of an orphan)."""
    digest = hmac.new(platform_key, purpose.encode(), hashlib.sha256).digest()[:MEETING_KEY_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def organizer_secret(platform_key: bytes, meeting_key: str) -> str:
    """The secret in a meeting's organizer link (derived: nothing to store, nothing to leak)."""
    return derived_key(platform_key, f"organizer:{meeting_key}")
