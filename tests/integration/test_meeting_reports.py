"""Meeting reports end to end through the real MCU, Firestore, Cloud Tasks, SMTP and the PBX
simulator: made when the session is over, mailed, pushed until acknowledged, listed until acked;
reconciliation of lost "left" events and dead MCUs; sanitizing and statistics operations."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.helpers import InMeeting, ext, inbox, join_meeting, meeting, wait_for, wait_session_count
from webmeeting.adapters import firestore as fs
from webmeeting.services import reports, statistics

pytestmark = pytest.mark.integration
WAIT_S = 30


def report_docs(meeting_key: str) -> list[tuple[str, dict[str, Any]]]:
    return [(s.id, fs.data(s)) for s in fs.reports().stream() if fs.data(s).get("meeting_key") == meeting_key]


def pbx_inbox(platform: Platform, fqdn: str) -> Path:
    return platform.state_dir / "pbx-sim" / "reports" / fqdn


def deliveries(platform: Platform, fqdn: str, report_id: str) -> int:
    log = pbx_inbox(platform, fqdn) / "received.log"
    return log.read_text().split().count(report_id) if log.exists() else 0


def task(platform: Platform, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{platform.upstreams['tasks_api']}/tasks/v1/{path}",
        json=body,
        headers={"X-Webmeeting-Task-Secret": platform.tasks_secret},
        timeout=30,
    )


def mcu_events(platform: Platform, mcu_id: str, events: list[dict[str, Any]]) -> requests.Response:
    return requests.post(
        f"{platform.endpoints['portal']}/api/mcu/v1/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {platform.mcu_secrets[mcu_id]}", "X-MCU-Id": mcu_id},
        timeout=10,
    )


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
def org_email() -> str:
    return f"olga-{secrets.token_hex(3)}@example.com"


def scheduled(platform: Platform, pbx: PbxClient, org_email: str, fqdn: str = "pbx.example.com") -> tuple[str, str]:
    platform.register_pbx(fqdn, pbx.pbx_id, pbx.api_secret)
    assert pbx.sync([ext("101", "Olga", "Organa", email=org_email)]).status_code == 200
    body = pbx.put_meeting(
        "m-report", meeting("101", participants=[{"name": "Grace Hopper", "email": "grace@example.org"}])
    ).json()
    return body["meeting_key"], body["organizer_url"].split("#organizer=")[1]


def hold_meeting(platform: Platform, key: str, secret: str) -> tuple[float, float]:
    """Organizer for the whole time, Grace for part of it; returns (organizer, Grace) seconds."""
    org = InMeeting([join_meeting(platform, key, "Olga Organa", organizer_secret=secret)], key)
    t0 = time.monotonic()
    grace = InMeeting([join_meeting(platform, key, "Grace Hopper")], key)
    t1 = time.monotonic()
    wait_session_count(key, 2)
    time.sleep(1.5)
    grace.close()
    t2 = time.monotonic()
    wait_session_count(key, 1)
    time.sleep(0.5)
    org.close()
    t3 = time.monotonic()
    return t3 - t0, t2 - t1


def test_a_finished_meeting_is_reported_mailed_pushed_and_listed_until_acked(
    platform: Platform, pbx: PbxClient, org_email: str
) -> None:
    key, secret = scheduled(platform, pbx, org_email)
    org_s, grace_s = hold_meeting(platform, key, secret)
    (rid, doc), *more = wait_for("the report", lambda: report_docs(key))
    assert more == []
    report = doc["report"]
    assert report["meeting_name"] == "Quarterly review" and report["pbx_meeting_id"] == "m-report"
    by_name = {p["name"]: p for p in report["participants"]}
    assert set(by_name) == {"Olga Organa", "Grace Hopper"}
    olga, grace = by_name["Olga Organa"], by_name["Grace Hopper"]
    assert (olga["role"], olga["email"], olga["reconnects"]) == ("organizer", org_email, 0)
    assert (grace["role"], grace["email"], grace["reconnects"]) == ("participant", "grace@example.org", 0)
    assert abs(olga["connected_seconds"] - org_s) <= 2 and abs(grace["connected_seconds"] - grace_s) <= 2

    # mailed to the organizer, with the timeline chart inline
    (mail,) = wait_for("the report mail", lambda: inbox(platform, org_email))
    assert mail["Subject"] == "Meeting report: Quarterly review"
    pngs = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert pngs and all(p.get_payload(decode=True).startswith(b"\x89PNG") for p in pngs)
    html = next(p for p in mail.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    assert "Grace Hopper" in html and 'src="cid:' in html

    # pushed to the PBX, signed (the simulator checks), in the contract's shape
    wait_for("the push", lambda: deliveries(platform, "pbx.example.com", rid) == 1)
    pushed = json.loads((pbx_inbox(platform, "pbx.example.com") / f"{rid}.json").read_text())
    assert pushed["id"] == rid and pushed["participants"] == report["participants"]
    status = wait_for("the push recorded", lambda: fs.data(fs.reports().document(rid).get())["push"]["status"] == "delivered")
    assert status is True

    # listed until acked
    listed = pbx.reports("pending").json()["reports"]
    assert [r["id"] for r in listed] == [rid]
    assert listed[0]["participants"] == report["participants"]
    assert pbx.ack(rid).status_code == 204
    assert pbx.reports("pending").json()["reports"] == []
    assert [r["id"] for r in pbx.reports("acked").json()["reports"]] == [rid]

    # a retried report task changes nothing: one report, one mail, one delivery
    assert task(platform, "report", {"meeting_key": key, "session_id": doc["session_id"]}).json()["outcome"] == "exists"
    time.sleep(2)
    assert len(report_docs(key)) == 1 and len(inbox(platform, org_email)) == 1
    assert deliveries(platform, "pbx.example.com", rid) == 1

    # the day's statistics counted it once, and hold no personal string
    stats = [fs.data(s) for s in fs.statistics().stream()]
    day = [s for s in stats if s.get("meetings")]
    assert sum(s["meetings"] for s in day) == 1 and sum(s["participants"] for s in day) == 2
    text = repr(stats)
    for personal in ("Olga", "Organa", "Grace", "Hopper", org_email, "grace@example.org", "Quarterly", key, "127.0.0.1"):
        assert personal not in text


def test_a_refusing_pbx_gets_its_report_once_it_answers_exactly_once(platform: Platform, org_email: str) -> None:
    fqdn = f"refuse-{secrets.token_hex(3)}.example.com"
    other = PbxClient(platform.endpoints["pbx_api"])
    license_key = platform.endpoints["dev_license_keys"][1]
    assert other.activate(license_key, fqdn, f"meet.{fqdn}").status_code == 201
    key, secret = scheduled(platform, other, org_email, fqdn)
    box = pbx_inbox(platform, fqdn)
    box.mkdir(parents=True, exist_ok=True)
    (box / "REFUSE").write_text("")
    try:
        hold_meeting(platform, key, secret)
        ((rid, _),) = wait_for("the report", lambda: report_docs(key))
        wait_for("refused pushes", lambda: fs.data(fs.reports().document(rid).get())["push"]["attempts"] >= 2)
        assert deliveries(platform, fqdn, rid) == 0
        assert [r["id"] for r in other.reports("pending").json()["reports"]] == [rid]  # the pull path still has it
    finally:
        (box / "REFUSE").unlink()
    wait_for("the delivery after the PBX answers again", lambda: deliveries(platform, fqdn, rid) >= 1, timeout=60)
    # the PBX has it; the push task records that right after the PBX's answer
    push = wait_for(
        "the push recorded", lambda: (p := fs.data(fs.reports().document(rid).get())["push"])["status"] == "delivered" and p
    )
    assert push["status"] == "delivered" and push["attempts"] >= 3
    time.sleep(6)  # longer than the last backoff: a duplicate would have come by now
    assert deliveries(platform, fqdn, rid) == 1


def test_a_lost_left_is_reconciled_from_the_mcus_live_snapshot(platform: Platform, pbx: PbxClient, org_email: str) -> None:
    key, _ = scheduled(platform, pbx, org_email)
    ghost_at = datetime.now(UTC) - timedelta(seconds=5)
    # the MCU's "joined" for someone whose "left" never arrives (the MCU has nobody in that meeting)
    resp = mcu_events(
        platform,
        "mcu-eu-1",
        [
            {
                "id": secrets.token_hex(8),
                "type": "joined",
                "meeting_key": key,
                "participant_id": "ghost-000001",
                "at": iso(ghost_at),
                "mcu_id": "mcu-eu-1",
                "name": "Ghost",
            }
        ],
    )
    assert resp.status_code == 200, resp.text
    wait_session_count(key, 1)
    # the MCU's next heartbeat (every 2 s) lists who it really has: nobody here
    wait_session_count(key, 0)
    ((_, doc),) = wait_for("the report", lambda: report_docs(key))
    (ghost,) = doc["report"]["participants"]
    assert ghost["name"] == "Ghost" and 5 <= ghost["connected_seconds"] <= 5 + 4


def test_a_dead_mcus_participants_are_closed_at_its_last_heartbeat(platform: Platform, pbx: PbxClient, org_email: str) -> None:
    key, _ = scheduled(platform, pbx, org_email)
    dead = fs.client().collection("mcus").document("mcu-dead-1")
    platform.register_mcu("mcu-dead-1", "test-dead", "ws://127.0.0.1:9/ws", 0.0, 0.0)  # its own identity
    last = datetime.now(UTC) - timedelta(seconds=60)
    dead.set(
        {
            "region": "test-dead",
            "url": "ws://127.0.0.1:9/ws",
            "capacity": 10,
            "load": 1,
            "latitude": 0.0,
            "longitude": 0.0,
            "workers": 1,
            "status": "active",
            "last_heartbeat_at": last,
            "unreachable_at": None,
        }
    )
    try:
        joined = {"id": secrets.token_hex(8), "type": "joined", "meeting_key": key, "participant_id": "stuck-000001"}
        ev = {**joined, "at": iso(last - timedelta(seconds=30)), "mcu_id": "mcu-dead-1", "name": "Stuck"}
        assert mcu_events(platform, "mcu-dead-1", [ev]).status_code == 200
        wait_session_count(key, 1)
        out = task(platform, "sessions-sweep", {})
        assert out.status_code == 200 and out.json()["closed_connections"] >= 1, out.text
        wait_session_count(key, 0)
        ((_, doc),) = wait_for("the report", lambda: report_docs(key))
        (stuck,) = doc["report"]["participants"]
        assert stuck["connected_seconds"] == 30  # from the join to the MCU's last heartbeat, not to now
        assert task(platform, "sessions-sweep", {}).json()["closed_connections"] == 0  # twice: nothing more
    finally:
        dead.delete()


def test_sanitizing_and_admin_redaction(platform: Platform, pbx: PbxClient, org_email: str) -> None:
    key, secret = scheduled(platform, pbx, org_email)
    hold_meeting(platform, key, secret)
    ((rid, doc),) = wait_for("the report", lambda: report_docs(key))
    (shown,) = [r for r in reports.for_admin(pbx.pbx_id) if r["id"] == rid]
    assert sorted(p["name"] for p in shown["participants"]) == ["G**** H*****", "O*** O*****"]
    local = org_email.split("@")[0]
    assert sorted(p["email"] for p in shown["participants"]) == [
        "g****@e******.org",
        "o" + "*" * (len(local) - 1) + "@e******.com",
    ]
    created = doc["created_at"]
    assert reports.sanitize_due(created, 1) == 0  # one second before: untouched
    assert fs.data(fs.reports().document(rid).get())["report"] == doc["report"]
    assert reports.sanitize_due(created + timedelta(seconds=1), 1) == 1
    after = fs.data(fs.reports().document(rid).get())
    text = repr(after)
    for personal in ("Olga", "Grace", org_email, "grace@example.org", "Quarterly"):
        assert personal not in text
    assert sorted(p["connected_seconds"] for p in after["report"]["participants"]) == sorted(
        p["connected_seconds"] for p in doc["report"]["participants"]
    )
    assert reports.sanitize_due(created + timedelta(seconds=1), 1) == 0  # a second run finds nothing
    assert reports.sanitize_due(created + timedelta(seconds=1), 2) == 1  # the yearly pass
    final = fs.data(fs.reports().document(rid).get())
    assert final["meeting_key"] is None and final["report"]["pbx_meeting_id"] is None and final["sanitized"] == 2


def test_statistics_are_folded_into_months_at_two_months_and_deleted_at_a_year(platform: Platform) -> None:
    day = datetime(2026, 9, 14, tzinfo=UTC)
    for region, meetings in (("eu", 3), ("us", 1)):
        fs.statistics().document(f"2026-09-14_{region}").set(
            {"granularity": "day", "period_start": day, "region": region, "meetings": meetings, "participants": 2 * meetings}
        )
    fs.statistics().document("2026-09-15_eu").set(
        {"granularity": "day", "period_start": day + timedelta(days=1), "region": "eu", "meetings": 2, "participants": 5}
    )
    assert statistics.anonymize_due(day) == 0  # nothing before it
    assert statistics.anonymize_due(day + timedelta(days=1)) == 2  # the 14th's, both regions
    docs = {s.id: fs.data(s) for s in fs.statistics().stream()}
    assert set(docs) == {"2026-09_eu", "2026-09_us", "2026-09-15_eu"}
    assert (docs["2026-09_eu"]["meetings"], docs["2026-09_eu"]["granularity"]) == (3, "month")
    assert statistics.anonymize_due(day + timedelta(days=2)) == 1
    assert fs.data(fs.statistics().document("2026-09_eu").get())["participants"] == 11
    assert statistics.anonymize_due(day + timedelta(days=2)) == 0
    month = datetime(2026, 9, 1, tzinfo=UTC)
    assert statistics.delete_due(month) == 0
    assert statistics.delete_due(month + timedelta(seconds=1)) == 2
    assert list(fs.statistics().stream()) == []
