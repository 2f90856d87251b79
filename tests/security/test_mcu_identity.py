"""Outside in, as a compromised or impersonating MCU: it speaks only for itself, with its
registered URL, region, location and capacity ceiling, and uploads only under its own prefix."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests

from infra.launcher import Platform
from tests.helpers import assert_error
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration


def _post(platform: Platform, path: str, body: dict[str, Any], mcu_id: str, secret: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {secret}", "X-MCU-Id": mcu_id}
    return requests.post(f"{platform.endpoints['portal']}/api/mcu/v1{path}", json=body, headers=headers, timeout=10)


def _beat(platform: Platform, mcu_id: str, **over: Any) -> dict[str, Any]:
    mcu = next(m for m in platform.endpoints["mcus"] if m["id"] == mcu_id)
    body = {"id": mcu_id, "region": mcu["region"], "url": mcu["url"], "capacity": 200, "load": 0}
    return body | {"latitude": 50.11, "longitude": 8.68, "workers": 2} | over


def test_one_mcus_secret_does_not_speak_for_another(platform: Platform) -> None:
    eu = platform.mcu_secrets["mcu-eu-1"]
    assert_error(_post(platform, "/heartbeat", _beat(platform, "mcu-us-1"), "mcu-us-1", eu), 401, "unauthenticated")
    assert_error(
        _post(platform, "/heartbeat", _beat(platform, "mcu-eu-1", id="mcu-evil"), "mcu-evil", eu), 401, "unauthenticated"
    )
    assert_error(_post(platform, "/events", {"events": []}, "mcu-us-1", eu), 401, "unauthenticated")
    assert_error(_post(platform, "/heartbeat", _beat(platform, "mcu-eu-1", id="mcu-us-1"), "mcu-eu-1", eu), 403, "forbidden")


def test_a_heartbeat_cannot_move_capture_or_inflate_an_mcu(platform: Platform) -> None:
    eu = platform.mcu_secrets["mcu-eu-1"]
    evil = _beat(platform, "mcu-eu-1", url="wss://attacker.example.com/ws")
    assert_error(_post(platform, "/heartbeat", evil, "mcu-eu-1", eu), 403, "forbidden")
    assert_error(
        _post(platform, "/heartbeat", _beat(platform, "mcu-eu-1", region="us-central1"), "mcu-eu-1", eu), 403, "forbidden"
    )
    inflated = _beat(platform, "mcu-eu-1", capacity=100_000, latitude=-33.9, longitude=151.2)  # "I am huge, in Sydney"
    assert _post(platform, "/heartbeat", inflated, "mcu-eu-1", eu).status_code == 204
    doc = fs.data(fs.client().collection("mcus").document("mcu-eu-1").get())
    assert doc["url"] == next(m["url"] for m in platform.endpoints["mcus"] if m["id"] == "mcu-eu-1")
    assert doc["capacity"] <= 200 and (doc["latitude"], doc["longitude"]) == (50.11, 8.68)


def test_uploads_lie_under_the_mcus_own_prefix(platform: Platform) -> None:
    rec_id = secrets.token_hex(16)
    track = {
        "track_id": "t000-video",
        "participant_id": "p" * 12,
        "kind": "video",
        "codec": "vp8",
        "clock_rate": 90000,
        "file": "t000-video.wmr",
        "object": f"raw/mcu-us-1/{rec_id}/t000-video.wmr",  # another MCU's prefix
        "frames": 1,
        "bytes": 1,
    }
    body = {
        "recording_id": rec_id,
        "meeting_key": "k" * 22,
        "started_at": "2026-12-01T10:00:00Z",
        "stopped_at": "2026-12-01T10:01:00Z",
    }
    resp = _post(
        platform, f"/recordings/{rec_id}/uploaded", body | {"tracks": [track]}, "mcu-eu-1", platform.mcu_secrets["mcu-eu-1"]
    )
    assert_error(resp, 403, "forbidden")
