"""One frozen settings object per deployable, read from the environment once.

Missing required settings fail by name at start-up, not at first use.
The README's configuration table lists every variable.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from webmeeting.routes import TRUSTED_PROXY_HOPS

PBX_BODY_LIMIT_BYTES = 1024 * 1024  # contract: 1 MiB for PBX calls
SIGNATURE_WINDOW_S = 300  # contract: |now - X-Timestamp| <= 300 s
SYNC_INTERVAL_S = 8 * 3600  # policy: re-synchronisation every 8 hours


class MissingSetting(RuntimeError):
    pass


def _required(env: dict[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise MissingSetting(f"environment variable {name} is required")
    return value


def _location(text: str) -> tuple[float, float]:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise MissingSetting("WEBMEETING_DEFAULT_LOCATION must be 'latitude,longitude'") from exc
    return lat, lon


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, default).strip() or default
    if value not in allowed:
        raise MissingSetting(f"{name} must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Settings:
    project: str
    public_base_url: str
    secret_key_bytes: bytes  # see ``secret_key``; empty where the deployable holds no key (the converter)
    trusted_proxy_count: int  # X-Forwarded-For entries appended by trusted front ends
    default_location: tuple[float, float] = (50.11, 8.68)  # Frankfurt: where unlocatable PBXs are taken to be
    geoip_db: str = ""  # MaxMind City database; empty: the packaged GeoLite2 file, if installed
    mcu_stale_s: float = 30.0  # an MCU without a heartbeat this long is unavailable
    converters: str = ""  # id@region,...: the converter jobs (production: one Cloud Run job per region)
    raw_bucket: str = "webmeeting-raw-recordings"
    recordings_bucket: str = "webmeeting-recordings"
    ops_email: str = ""  # the development team: told about failed conversions
    convert_lease_s: float = 60.0  # a converter that stops renewing its claim this long is taken as dead
    recording_days: int = 7  # recordings (and their links) live this long after creation
    session_grace_s: float = 30.0  # a meeting empty this long is over (its report goes out); a return before continues it
    join_token_key: str = ""  # PEM, ES256 private key signing join tokens (meeting_api)
    tasks_target: str = ""  # base URL of the internal tasks function, as Cloud Tasks and Scheduler reach it
    tasks_auth: str = "secret"  # tasks_api callers: "secret" (local: the task secret header) | "iam" (production)
    tasks_secret: str = ""  # the local task secret (tasks_auth=secret)
    signature_window_s: int = SIGNATURE_WINDOW_S
    max_body_bytes: int = PBX_BODY_LIMIT_BYTES
    sync_interval_s: int = SYNC_INTERVAL_S

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        raw_key = env.get("WEBMEETING_SECRET_KEY", "").strip()
        try:
            key = base64.b64decode(raw_key, validate=True)
        except binascii.Error as exc:
            raise MissingSetting("WEBMEETING_SECRET_KEY must be base64") from exc
        if raw_key and len(key) != 32:
            raise MissingSetting("WEBMEETING_SECRET_KEY must decode to 32 bytes")
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or ""
        if not project:
            raise MissingSetting("environment variable GOOGLE_CLOUD_PROJECT is required")
        return cls(
            project=project,
            public_base_url=_required(env, "WEBMEETING_PUBLIC_BASE_URL").rstrip("/"),
            secret_key_bytes=key,
            trusted_proxy_count=int(env.get("WEBMEETING_TRUSTED_PROXY_COUNT", str(TRUSTED_PROXY_HOPS))),
            default_location=_location(env.get("WEBMEETING_DEFAULT_LOCATION", "50.11,8.68")),
            geoip_db=env.get("WEBMEETING_GEOIP_DB", ""),
            mcu_stale_s=float(env.get("WEBMEETING_MCU_STALE_S", "30")),
            session_grace_s=float(env.get("WEBMEETING_SESSION_GRACE_S", "30")),
            converters=env.get("WEBMEETING_CONVERTERS", ""),
            raw_bucket=env.get("WEBMEETING_RAW_BUCKET", "webmeeting-raw-recordings"),
            recordings_bucket=env.get("WEBMEETING_RECORDINGS_BUCKET", "webmeeting-recordings"),
            ops_email=env.get("WEBMEETING_OPS_EMAIL", ""),
            convert_lease_s=float(env.get("WEBMEETING_CONVERT_LEASE_S", "60")),
            recording_days=int(env.get("WEBMEETING_RECORDING_DAYS", "7")),
            join_token_key=env.get("WEBMEETING_JOIN_TOKEN_KEY", ""),
            tasks_target=env.get("WEBMEETING_TASKS_TARGET", "").rstrip("/"),
            tasks_auth=_choice(env, "WEBMEETING_TASKS_AUTH", ("secret", "iam"), "secret"),
            tasks_secret=env.get("WEBMEETING_TASKS_SECRET", ""),
        )

    @property
    def secret_key(self) -> bytes:
        """32 bytes: encrypts PBX API secrets, derives Quick Meeting keys and organizer secrets.
        Every portal function holds it; the converter (which decodes untrusted media) does not,
        and fails by name if its code ever reaches for it."""
        if len(self.secret_key_bytes) != 32:
            raise MissingSetting("environment variable WEBMEETING_SECRET_KEY is required here")
        return self.secret_key_bytes

    def require(self, name: str) -> str:
        """A setting only some deployables need, failing by name when absent."""
        value = str(getattr(self, name))
        if not value:
            raise MissingSetting(f"environment variable WEBMEETING_{name.upper()} is required here")
        return value
