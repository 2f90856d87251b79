"""The MCU registry: heartbeats in, the usable MCUs out.

Liveness is judged on real time (``clock.wall()``), never the shiftable platform clock: an MCU
is alive or not now, whatever day the platform pretends it is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.domain.mcu import Mcu

HEARTBEAT_STALE_S = 30  # an MCU silent this long is unavailable


def record_heartbeat(mcu_id: str, body: dict[str, Any]) -> None:
    now = runtime.clock().wall()
    ref = fs.client().collection("mcus").document(mcu_id)
    snap = ref.get()
    status = fs.data(snap).get("status", "active") if snap.exists else "active"  # deprecation is an admin's call
    ref.set(
        {
            "region": body["region"],
            "url": body["url"],
            "capacity": body["capacity"],
            "load": body["load"],
            "latitude": body["latitude"],
            "longitude": body["longitude"],
            "workers": body["workers"],
            "status": status,
            "last_heartbeat_at": now,
        }
    )


def mcu_from_doc(mcu_id: str, d: dict[str, Any], now: datetime) -> Mcu:
    status = d.get("status", "active")
    last = d.get("last_heartbeat_at")
    if status == "active" and (last is None or now - last > timedelta(seconds=HEARTBEAT_STALE_S)):
        status = "unavailable"
    return Mcu(mcu_id, d["region"], d["url"], status, int(d.get("capacity", 0)), int(d.get("load", 0)))


def all_mcus() -> list[Mcu]:
    now = runtime.clock().wall()
    return [mcu_from_doc(s.id, fs.data(s), now) for s in fs.client().collection("mcus").stream()]
