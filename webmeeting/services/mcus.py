"""The MCU registry: heartbeats in, the MCUs and their state out; admin status changes.

Liveness is judged on real time (``clock.wall()``), never the shiftable platform clock: an MCU
is alive or not now, whatever day the platform pretends it is.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import requests

from webmeeting import runtime
from webmeeting.adapters import firestore as fs
from webmeeting.domain.api import McuInfo
from webmeeting.domain.mcu import Location, Mcu, NoMcuAvailable, choose_mcu
from webmeeting.errors import InvalidRequest, NotFound
from webmeeting.settings import Settings

PROBE_TIMEOUT_S = 1.5  # a reported-dead MCU that does not answer this fast is taken as dead
# the sessions are compared with an MCU's live snapshot when the snapshot changed, when events
# arrived since the last comparison, and at least this often; otherwise a steady MCU's heartbeat
# costs one read (its own document), whatever it carries
RECONCILE_EVERY_S = 60.0


def live_digest(live: dict[str, list[str]]) -> str:
    """A fingerprint of who an MCU has, per meeting (the order of either does not matter)."""
    canonical = json.dumps(sorted((key, sorted(ids)) for key, ids in live.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def record_heartbeat(mcu_id: str, body: dict[str, Any], digest: str | None = None) -> bool:
    """Store the heartbeat; whether the live snapshot it carries (``digest``) is due to be
    reconciled with the sessions now."""
    now = runtime.clock().wall()
    ref = fs.mcus().document(mcu_id)
    snap = ref.get()
    old = fs.data(snap) if snap.exists else {}
    fields: dict[str, Any] = {
        "region": body["region"],
        "url": body["url"],
        "capacity": body["capacity"],
        "load": body["load"],
        "latitude": body["latitude"],
        "longitude": body["longitude"],
        "workers": body["workers"],
        # no "status": deprecation is an admin's call, and a heartbeat that wrote back what it
        # read could undo an admin's change made in between (readers take a missing one as active)
        "last_heartbeat_at": now,
        "unreachable_at": None,
    }
    due = False
    if digest is not None:
        last = old.get("reconciled_at")
        events_at = old.get("events_at")
        due = (
            digest != old.get("live_digest")
            or last is None
            or (events_at is not None and events_at >= last)
            or (now - last).total_seconds() >= RECONCILE_EVERY_S
        )
        if due:
            fields |= {"live_digest": digest, "reconciled_at": now}
    ref.set(fields, merge=True)  # merge: the admin's status and an "events arrived" mark written meanwhile stay
    return due


def mark_events(mcu_id: str) -> None:
    """Events of ``mcu_id`` changed its sessions: its next live snapshot is compared with them."""
    fs.mcus().document(mcu_id).set({"events_at": runtime.clock().wall()}, merge=True)


def mcu_from_doc(mcu_id: str, d: dict[str, Any]) -> Mcu:
    now = runtime.clock().wall()
    stale = timedelta(seconds=runtime.settings().mcu_stale_s)
    status = d.get("status", "active")
    last = d.get("last_heartbeat_at")
    if status != "deprecated" and (last is None or now - last > stale or d.get("unreachable_at")):
        status = "unavailable"
    return Mcu(
        mcu_id,
        d["region"],
        d["url"],
        status,
        int(d.get("capacity", 0)),
        int(d.get("load", 0)),
        float(d.get("latitude", 0.0)),
        float(d.get("longitude", 0.0)),
    )


def all_mcus() -> list[Mcu]:
    docs = [(s.id, fs.data(s)) for s in fs.mcus().stream()]
    return [mcu_from_doc(mcu_id, d) for mcu_id, d in docs if "region" in d]  # heartbeated at least once


def mcu_info(mcu: Mcu | None) -> McuInfo | None:
    return McuInfo(id=mcu.id, region=mcu.region, url=mcu.url) if mcu else None


def closest_mcu(where: Location) -> Mcu | None:
    """The PBX's default (Automatic) MCU, or None while no MCU can take it."""
    try:
        return choose_mcu(where, all_mcus())
    except NoMcuAvailable:
        return None


def pbx_location(pbx: dict[str, Any], settings: Settings) -> Location:
    """Where the PBX is (GeoIP at activation), or the configured default."""
    loc = pbx.get("location") or {}
    if "latitude" in loc and "longitude" in loc:
        return Location(float(loc["latitude"]), float(loc["longitude"]))
    return Location(*settings.default_location)


def health_url(ws_url: str) -> str:
    """The MCU's health endpoint beside its signalling URL (wss://h/ws -> https://h/healthz)."""
    base = ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
    return base.rsplit("/", 1)[0] + "/healthz"


def confirm_failure(mcu: Mcu) -> bool:
    """A browser says ``mcu`` failed: probe it; mark it unavailable if it does not answer.
    (A client cannot move a meeting off a healthy MCU by claiming it failed.)"""
    try:
        ok = requests.get(health_url(mcu.url), timeout=PROBE_TIMEOUT_S).status_code == 200
    except requests.RequestException:
        ok = False
    if not ok:
        fs.mcus().document(mcu.id).update({"unreachable_at": runtime.clock().wall()})
    return not ok


def set_status(mcu_id: str, status: str) -> None:
    """Admin: ``deprecated`` (takes no new PBXs or sessions) or ``active``."""
    if status not in ("active", "deprecated"):
        raise InvalidRequest("status is active or deprecated")
    ref = fs.mcus().document(mcu_id)
    if not ref.get().exists:
        raise NotFound(f"no MCU {mcu_id}")
    ref.update({"status": status})


def assigned_pbx_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for snap in fs.pbxs().select(["mcu_id"]).stream():
        mcu_id = fs.data(snap).get("mcu_id")
        if mcu_id:
            counts[mcu_id] = counts.get(mcu_id, 0) + 1
    return counts
