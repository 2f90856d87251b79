"""Helpers shared by the integration and browser tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import requests
from google.cloud.firestore import FieldFilter

from infra.pbx_client import PbxClient
from webmeeting.adapters import firestore as fs
from webmeeting.routes import RateLimit

# Loopback source addresses stand for PBXs around the world in the tests' own City database
# (127.0.0.1, unlisted, is "not found": the default location).
GEO = {
    "127.0.0.2": ("Paris", 48.8566, 2.3522, "FR", "EU"),
    "127.0.0.3": ("Chicago", 41.8781, -87.6298, "US", "NA"),
    "127.0.0.4": ("Sydney", -33.8688, 151.2093, "AU", "OC"),
    "127.0.0.5": ("Sao Paulo", -23.5505, -46.6333, "BR", "SA"),
}


def build_geo_database(path: Path) -> Path:
    """A MaxMind-format City database with exactly the entries of ``GEO``."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoIP2-City", languages=["en"], description="webmeeting tests")
    for ip, (city, lat, lon, country, continent) in GEO.items():
        writer.insert_network(
            IPSet([f"{ip}/32"]),
            {
                "city": {"names": {"en": city}},
                "country": {"iso_code": country, "names": {"en": country}},
                "continent": {"code": continent, "names": {"en": continent}},
                "location": {"latitude": lat, "longitude": lon},
            },
        )
    writer.to_db_file(str(path))
    return path


def new_pbx(api: str, license_key: str, fqdn: str = "pbx.example.com", source_ip: str | None = None) -> PbxClient:
    client = PbxClient(api, source_ip=source_ip)
    resp = client.activate(license_key, fqdn, f"meet.{fqdn}")
    assert resp.status_code == 201, resp.text
    return client


def ext(
    number: str, first: str | None = "Ada", last: str | None = "Lovelace", email: str | None = None, vanity: str | None = None
) -> dict[str, Any]:
    return {
        "number": number,
        "first_name": first,
        "last_name": last,
        "email": email if email is not None else f"u{number}@example.com",
        "vanity_name": vanity,
    }


def meeting(organizer: str = "101", **overrides: Any) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    body = {
        "organizer": organizer,
        "name": "Quarterly review",
        "comments": "Agenda attached",
        "scheduled_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_minutes": 60,
        "participants": [{"name": "Grace Hopper", "email": "grace@example.org"}],
        "send_invitations": False,
    }
    body.update(overrides)
    return body


def dump_firestore() -> dict[str, Any]:
    """Every document in the database, by path (subcollections included), except the MCU
    registry, which the running MCUs' heartbeats rewrite every 2 s whatever a test does."""
    out: dict[str, Any] = {}

    def walk(collections: Any) -> None:
        for col in collections:
            for ref in col.list_documents():
                snap = ref.get()
                if snap.exists:
                    out[ref.path] = snap.to_dict()
                walk(ref.collections())

    walk(c for c in fs.client().collections() if c.id != "mcus")
    return out


def assert_error(resp: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in resp.text
    if code:
        assert body["error"]["code"] == code, body
    return dict(body["error"])


def meeting_events(meeting_key: str) -> list[dict[str, Any]]:
    """The stored participant events of one meeting (other tests' late events are elsewhere)."""
    query = fs.client().collection("participant_events").where(filter=FieldFilter("meeting_key", "==", meeting_key))
    return [fs.data(s) for s in query.stream()]


class InMeeting:
    """Holds participants' signalling sockets open (the session runs) until closed."""

    def __init__(self, joins: list[dict[str, Any]], key: str) -> None:
        self.joins, self.key = joins, key
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        assert self.ready.wait(15)

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            sockets = []
            for j in self.joins:
                ws = await session.ws_connect(j["mcu_url"])
                await ws.send_json({"type": "join", "token": j["token"], "meeting_key": self.key})
                assert (await ws.receive_json(timeout=10))["type"] == "joined"
                sockets.append(ws)
            self.ready.set()
            while not self.stop.is_set():
                await asyncio.sleep(0.05)
            for ws in sockets:
                await ws.send_json({"type": "leave"})
                await ws.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


def wait_session_count(key: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if fs.data(fs.client().collection("sessions").document(key).get()).get("count") == count:
            return
        time.sleep(0.1)
    raise AssertionError(f"session count never reached {count}")


def join_meeting(platform: Any, key: str, name: str = "Ada", organizer_secret: str | None = None, **extra: Any) -> dict[str, Any]:
    """Join through the portal as the meeting page does; the response body."""
    body: dict[str, Any] = {"meeting_key": key, "display_name": name, **extra}
    if organizer_secret:
        body["organizer_secret"] = organizer_secret
    resp = requests.post(platform.endpoints["portal"] + "/api/meet/v1/join", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def quick_links(pbx: PbxClient, number: str = "101", **fields: Any) -> tuple[str, str]:
    """Sync one extension; (its Quick Meeting key, its organizer secret)."""
    e = pbx.sync([ext(number, **fields)]).json()["extensions"][0]
    return e["quick_meeting_url"].rsplit("/", 1)[1], e["quick_meeting_organizer_url"].split("#organizer=")[1]


def wait_for(what: str, check: Any, timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; that value, or an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def inbox(platform: Any, to: str) -> list[Any]:
    """Mails the local SMTP server received for ``to`` (parsed), oldest first."""
    import email

    out = []
    for path in sorted(Path(platform.endpoints["smtp"]["inbox_dir"]).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes())
        if to in (msg["To"] or ""):
            out.append(msg)
    return out


def raw_objects(recording_id: str) -> list[Any]:
    """The raw-track objects of a recording, whichever MCU wrote them (raw/<mcu>/<recording>/...)."""
    from infra.launcher import RAW_BUCKET
    from webmeeting.adapters import storage

    return [b for b in storage.client().list_blobs(RAW_BUCKET, prefix="raw/") if f"/{recording_id}/" in b.name]


def allowed_before_429(send: Callable[[], int], count: int) -> tuple[int, float]:
    """Send until the first 429; returns how many were let through and how long that took."""
    start = time.monotonic()
    for sent in range(count * 3):
        status = send()
        if status == 429:
            return sent, time.monotonic() - start
    raise AssertionError(f"no 429 after {count * 3} requests")


def assert_limit(passed: int, elapsed: float, limit: RateLimit) -> None:
    """The burst is ``count``; the bucket refills at count/interval per second meanwhile."""
    assert limit.count <= passed <= limit.count + elapsed * limit.rate_per_s + 1, (passed, elapsed)
