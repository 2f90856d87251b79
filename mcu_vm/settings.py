"""MCU settings, read from the environment once (the README's table lists them)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from mcu_vm.adaptation import LAST_N, SPAN_AFTER
from webmeeting.settings import MissingSetting

# forwarded streams one worker (one core) takes by default: the MCU spent 0.8-2.0 % of a core per
# forwarded video stream at 1.5 Mbit/s (docs/benchmarks.md), audio a fraction of that
STREAMS_PER_WORKER = 100


def _req(env: dict[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise MissingSetting(f"environment variable {name} is required")
    return value


def _auth(value: str) -> str:
    if value not in ("secret", "gce"):
        raise MissingSetting("MCU_AUTH must be secret or gce")
    return value


@dataclass(frozen=True)
class McuSettings:
    mcu_id: str
    region: str
    public_url: str  # what browsers connect to, e.g. wss://mcu-1.example.com/ws
    portal_url: str  # the portal's base URL (heartbeats, participant events)
    secret: str  # authenticates the MCU to the portal (production: OIDC of its service account)
    token_public_key: str  # PEM: verifies join tokens
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 1
    last_n: int = LAST_N  # camera videos each subscriber gets at most (the most recent speakers)
    span_after: int = SPAN_AFTER  # a room's people on its home worker before the next go to other workers
    capacity: int = STREAMS_PER_WORKER  # forwarded streams this VM takes (audio or video, publisher to subscriber)
    latitude: float = 0.0
    longitude: float = 0.0
    ice_servers: tuple[dict[str, object], ...] = ()  # STUN/TURN, passed to aiortc and browsers
    ice_addresses: tuple[str, ...] = ()  # host candidate addresses; empty: aioice's own choice
    udp_port_min: int = 0  # 0: any port
    udp_port_max: int = 0
    heartbeat_s: float = 5.0
    recordings_dir: str = "/var/lib/webmeeting/recordings"  # raw tracks until their upload is confirmed
    raw_bucket: str = ""  # the raw-recordings bucket; empty: this MCU does not record
    trusted_proxy_hops: int = 0  # proxies in front of the signalling port (production: Caddy, 1)
    auth: str = "secret"  # how the MCU proves itself to the portal: "secret" (MCU_SECRET) | "gce" (ID token)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> McuSettings:
        env = dict(os.environ) if env is None else env
        ice_servers = json.loads(env.get("MCU_ICE_SERVERS", "[]") or "[]")
        workers = int(env.get("MCU_WORKERS", str(os.cpu_count() or 1)))
        if not isinstance(ice_servers, list):
            raise MissingSetting("MCU_ICE_SERVERS must be a JSON list of {urls, username, credential}")
        return cls(
            mcu_id=_req(env, "MCU_ID"),
            region=_req(env, "MCU_REGION"),
            public_url=_req(env, "MCU_PUBLIC_URL"),
            portal_url=_req(env, "MCU_PORTAL_URL").rstrip("/"),
            secret=_req(env, "MCU_SECRET") if env.get("MCU_AUTH", "secret") == "secret" else "",
            token_public_key=_req(env, "MCU_JOIN_TOKEN_PUBLIC_KEY"),
            host=env.get("MCU_HOST", "127.0.0.1"),
            port=int(env.get("MCU_PORT", "0")),
            workers=workers,
            capacity=int(env.get("MCU_CAPACITY", "0")) or STREAMS_PER_WORKER * workers,
            last_n=int(env.get("MCU_LAST_N", str(LAST_N))),
            span_after=max(1, int(env.get("MCU_SPAN_AFTER", str(SPAN_AFTER)))),
            latitude=float(env.get("MCU_LATITUDE", "0")),
            longitude=float(env.get("MCU_LONGITUDE", "0")),
            ice_servers=tuple(ice_servers),
            ice_addresses=tuple(a for a in env.get("MCU_ICE_ADDRESSES", "").split(",") if a),
            udp_port_min=int(env.get("MCU_UDP_PORT_MIN", "0")),
            udp_port_max=int(env.get("MCU_UDP_PORT_MAX", "0")),
            heartbeat_s=float(env.get("MCU_HEARTBEAT_S", "5")),
            recordings_dir=env.get("MCU_RECORDINGS_DIR", "/var/lib/webmeeting/recordings"),
            raw_bucket=env.get("MCU_RAW_BUCKET", ""),
            trusted_proxy_hops=int(env.get("MCU_TRUSTED_PROXY_HOPS", "0")),
            auth=_auth(env.get("MCU_AUTH", "secret")),
        )
