"""The configuration, read from the environment once, here and nowhere else (a test holds the
rest of the code to that): ``Settings`` for the portal's functions and the converter,
``Backends`` for how any process reaches the services around it (emulators, SMTP, PBXs, the
clock), ``mcu_vm.settings.McuSettings`` for the MCU.

Missing required settings fail by name at start-up, not at first use.
The README's configuration table lists every variable (a test checks it against these).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from webmeeting.domain.files import MAX_FILE_BYTES
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
    files_bucket: str = "webmeeting-files"  # files shared in sessions, documents of meetings
    file_max_bytes: int = MAX_FILE_BYTES  # one shared file or document at most
    join_token_key: str = ""  # PEM, ES256 private key signing join tokens (meeting_api)
    turn_secret: str = ""  # shared with the MCUs' coturns: signs TURN credentials (meeting_api); empty: no TURN
    tasks_target: str = ""  # base URL of the internal tasks function, as Cloud Tasks and Scheduler reach it
    tasks_auth: str = "secret"  # tasks_api callers: "secret" (local: the task secret header) | "iam" (production)
    tasks_secret: str = ""  # the local task secret (tasks_auth=secret)
    iap_audience: str = ""  # the console: the audience of IAP's signed header (/projects/N/global/backendServices/ID)
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
            files_bucket=env.get("WEBMEETING_FILES_BUCKET", "webmeeting-files"),
            file_max_bytes=int(env.get("WEBMEETING_FILE_MAX_BYTES", str(MAX_FILE_BYTES))),
            join_token_key=env.get("WEBMEETING_JOIN_TOKEN_KEY", ""),
            turn_secret=env.get("WEBMEETING_TURN_SECRET", ""),
            tasks_target=env.get("WEBMEETING_TASKS_TARGET", "").rstrip("/"),
            tasks_auth=_choice(env, "WEBMEETING_TASKS_AUTH", ("secret", "iam"), "secret"),
            tasks_secret=env.get("WEBMEETING_TASKS_SECRET", ""),
            iap_audience=env.get("WEBMEETING_IAP_AUDIENCE", ""),
        )

    @property
    def secret_key(self) -> bytes:
        """32 bytes: encrypts PBX API secrets, derives Quick Meeting keys and organizer secrets.
        Every portal function holds it; the converter (which decodes untrusted media) does not,
        and fails by name if its code ever reaches for it."""
        if len(self.secret_key_bytes) != 32:
            raise MissingSetting("environment variable WEBMEETING_SECRET_KEY is required here")
        return self.secret_key_bytes

    @property
    def tasks_url(self) -> str:
        """Base URL Cloud Tasks calls the task handlers at: the internal tasks function's own URL
        (never the public load balancer, which does not route /tasks)."""
        return self.require("tasks_target")

    def require(self, name: str) -> str:
        """A setting only some deployables need, failing by name when absent."""
        value = str(getattr(self, name))
        if not value:
            raise MissingSetting(f"environment variable WEBMEETING_{name.upper()} is required here")
        return value


@dataclass(frozen=True)
class Backends:
    """How this process reaches what is around it. Every field has a default: production needs
    only the project (Google's libraries find their services themselves)."""

    project: str = ""  # GOOGLE_CLOUD_PROJECT (or GCLOUD_PROJECT)
    storage_emulator_host: str = ""  # STORAGE_EMULATOR_HOST: local Cloud Storage
    signing_key_file: str = ""  # a service-account key for signed URLs (local; production signs through IAM)
    tasks_emulator_host: str = ""  # local Cloud Tasks
    tasks_secret: str = ""  # the header local tasks carry (production: OIDC)
    tasks_service_account: str = ""  # production: the identity tasks call with (OIDC)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_tls: str = "none"  # none | starttls | tls
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "WebMeeting <no-reply@webmeeting.local>"
    pbx_scheme: str = "https"  # how the portal calls PBXs (local simulator: http)
    pbx_port: int = 0  # 0: the scheme's port
    egress_allow: tuple[str, ...] = ()  # host:port the egress guard admits although not public (local only)
    dns_server: str = ""  # the resolver for PBX FQDNs; empty: the system's
    converter_runner: str = ""  # "local": conversions run as local processes (no Cloud Run)
    converter_log_dir: str = "/tmp"  # noqa: S108 - local converter runs only
    converter_id: str = "converter"  # WEBMEETING_CONVERTER_ID: which converter this job runs as
    clock_offset_s: float = 0.0  # shifts the platform clock (tests of retention)
    clock_file: str = ""  # a file holding the offset, re-read when it changes (tests)
    mcus_json: str = "{}"  # WEBMEETING_MCUS: the MCU registry (terraform writes it)
    mcus_file: str = ""  # or a file holding it (the local launcher writes it)
    retention_s: tuple[tuple[str, float], ...] = ()  # WEBMEETING_RETENTION_<RULE>_S overrides
    iap_jwks_file: str = ""  # the keys IAP's header is signed with (local: the dev sign-in's); empty: Google's

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Backends:
        env = dict(os.environ) if env is None else env
        prefix = "WEBMEETING_RETENTION_"
        retention = tuple(
            sorted(
                (k[len(prefix) : -2].lower(), float(v)) for k, v in env.items() if k.startswith(prefix) and k.endswith("_S") and v
            )
        )
        return cls(
            project=env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT") or "",
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST", ""),
            signing_key_file=env.get("WEBMEETING_SIGNING_KEY_FILE", ""),
            tasks_emulator_host=env.get("WEBMEETING_TASKS_EMULATOR_HOST", ""),
            tasks_secret=env.get("WEBMEETING_TASKS_SECRET", ""),
            tasks_service_account=env.get("WEBMEETING_TASKS_SERVICE_ACCOUNT", ""),
            smtp_host=env.get("WEBMEETING_SMTP_HOST", "127.0.0.1"),
            smtp_port=int(env.get("WEBMEETING_SMTP_PORT", "25")),
            smtp_tls=_choice(env, "WEBMEETING_SMTP_TLS", ("none", "starttls", "tls"), "none"),
            smtp_user=env.get("WEBMEETING_SMTP_USER", ""),
            smtp_password=env.get("WEBMEETING_SMTP_PASSWORD", ""),
            smtp_from=env.get("WEBMEETING_SMTP_FROM", "WebMeeting <no-reply@webmeeting.local>"),
            pbx_scheme=_choice(env, "WEBMEETING_PBX_SCHEME", ("https", "http"), "https"),
            pbx_port=int(env.get("WEBMEETING_PBX_PORT", "") or 0),
            egress_allow=tuple(a.strip() for a in env.get("WEBMEETING_EGRESS_ALLOW", "").split(",") if a.strip()),
            dns_server=env.get("WEBMEETING_DNS_SERVER", ""),
            converter_runner=env.get("WEBMEETING_CONVERTER_RUNNER", ""),
            converter_log_dir=env.get("WEBMEETING_CONVERTER_LOG_DIR", "/tmp"),  # noqa: S108 - local runs only
            converter_id=env.get("WEBMEETING_CONVERTER_ID", "converter"),
            clock_offset_s=float(env.get("WEBMEETING_TIME_OFFSET_S", "0") or 0),
            clock_file=env.get("WEBMEETING_CLOCK_FILE", ""),
            mcus_json=env.get("WEBMEETING_MCUS", "") or "{}",
            mcus_file=env.get("WEBMEETING_MCUS_FILE", ""),
            iap_jwks_file=env.get("WEBMEETING_IAP_JWKS_FILE", ""),
            retention_s=retention,
        )


def child_environment(withheld: frozenset[str]) -> dict[str, str]:
    """This process's environment for a child process, without ``withheld`` (local runners)."""
    return {k: v for k, v in os.environ.items() if k not in withheld}


def set_environment(values: dict[str, str]) -> None:
    """``values`` join this process's environment (see ``runtime.use_environment``)."""
    os.environ.update(values)
