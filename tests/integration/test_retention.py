"""Every rule of the retention table at its boundary, against the emulators, with the platform's
controllable clock: one second before, the data is there (Firestore and Storage); one second
after, a sweep removes it, and nothing else changed. Sweeps run twice change nothing the second
time. ``test_every_rule_has_a_test`` fails when a rule of the table has no test here or
elsewhere (``@pytest.mark.retention("<rule>")``)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.launcher import FILES_BUCKET, RAW_BUCKET, RECORDINGS_BUCKET, Platform
from infra.pbx_client import PbxClient
from tests.helpers import dump_firestore, ext, meeting, new_pbx
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage
from webmeeting.domain import retention as policy

pytestmark = pytest.mark.integration
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def set_clock(clock_file: Path, when: datetime) -> None:
    """Make the platform's now be ``when`` (an offset from real time, read by every service)."""
    clock_file.write_text(f"{(when - datetime.now(UTC)).total_seconds():.3f}")
    time.sleep(0.02)  # a new mtime for the services' cache


def sweep(platform: Platform, rule: str) -> dict[str, Any]:
    resp = requests.post(
        f"{platform.upstreams['tasks_api']}/tasks/v1/retention/{rule}",
        json={},
        headers={"X-Webmeeting-Task-Secret": platform.tasks_secret},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def changes(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def boundary(
    platform: Platform,
    clock_file: Path,
    rule: str,
    at: datetime,
    expect_changed: Callable[[set[str]], bool],
    objects: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> set[str]:
    """Sweep one second before ``at`` (nothing changes, objects stay), then one second after
    (``expect_changed`` holds for what changed, the objects are gone), then again (nothing)."""
    set_clock(clock_file, at - SECOND)
    before = dump_firestore()
    assert sweep(platform, rule)["done"] == 0
    assert dump_firestore() == before
    assert all(storage.exists(b, o) for b, o in objects)
    set_clock(clock_file, at + SECOND)
    result = sweep(platform, rule)
    changed = changes(before, dump_firestore())
    assert result["done"] >= 1 and expect_changed(changed), (result, sorted(changed))
    assert not any(storage.exists(b, o) for b, o in objects)
    again = dump_firestore()
    assert sweep(platform, rule)["done"] == 0
    assert dump_firestore() == again
    return changed


@pytest.fixture
def scheduled(pbx: PbxClient) -> tuple[str, datetime, int]:
    """A scheduled meeting with an invitee and a vanity link: (key, scheduled start, minutes)."""
    pbx.sync([ext("101", vanity="ada")])
    start = (datetime.now(UTC) + DAY).replace(microsecond=0)
    body = meeting(
        "101",
        scheduled_start=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_minutes=45,
        participants=[{"name": "Grace Hopper", "email": "grace@example.org"}],
    )
    key = pbx.put_meeting("m-ret", body).json()["meeting_key"]
    return key, start, 45


@pytest.mark.retention("meeting_names")
def test_meeting_names_go_7_days_after_the_scheduled_date(platform: Platform, clock_file: Path, scheduled: Any) -> None:
    key, start, _ = scheduled
    m = fs.data(fs.meetings().document(key).get())
    link = f"vanity_links/{m['vanity_link']}"
    changed = boundary(platform, clock_file, "meeting_names", start + 7 * DAY, lambda c: c == {f"meetings/{key}", link})
    after = fs.data(fs.meetings().document(key).get())
    assert (after["name"], after["comments"]) == ("", "")
    assert after["participants"] == [{"name": None, "email": "grace@example.org"}]  # the email has its own rule
    assert changed


@pytest.mark.retention("participant_emails")
def test_invitee_emails_go_7_days_after_the_meeting_ends(platform: Platform, clock_file: Path, scheduled: Any) -> None:
    key, start, minutes = scheduled
    boundary(
        platform,
        clock_file,
        "participant_emails",
        start + timedelta(minutes=minutes) + 7 * DAY,
        lambda c: c == {f"meetings/{key}"},
    )
    assert fs.data(fs.meetings().document(key).get())["participants"] == [{"name": "Grace Hopper", "email": None}]


@pytest.mark.retention("participant_events")
def test_participant_names_and_ips_go_7_days_after_the_meeting(platform: Platform, clock_file: Path, scheduled: Any) -> None:
    key, _, _ = scheduled
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    events = [
        {
            "id": f"ev-{secrets.token_hex(6)}",
            "type": t,
            "meeting_key": key,
            "participant_id": "p-00000001",
            "at": (at + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"),
            "mcu_id": "mcu-eu-1",
            "name": "Grace",
            "ip": "127.0.0.9",
        }
        for t, s in (("joined", 0), ("left", 60))
    ]
    resp = requests.post(
        f"{platform.endpoints['portal']}/api/mcu/v1/events",
        json={"events": events},
        headers={"Authorization": f"Bearer {platform.mcu_secrets['mcu-eu-1']}", "X-MCU-Id": "mcu-eu-1"},
        timeout=10,
    )
    assert resp.status_code == 200
    # the session ended with the "left": let its report be made first (it writes in the background)
    deadline = time.monotonic() + 20
    while not fs.data(fs.client().collection("sessions").document(key).get()).get("finalized") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fs.data(fs.client().collection("sessions").document(key).get()).get("finalized")
    for col in ("reports", "mails"):  # not this rule's data: out of the way of the retries in the background
        fs.client().recursive_delete(fs.client().collection(col))
    first = f"participant_events/{events[0]['id']}"
    boundary(platform, clock_file, "participant_events", at + 7 * DAY, lambda c: c == {first})
    # the second (60 s later) goes at its own boundary
    boundary(
        platform,
        clock_file,
        "participant_events",
        at + timedelta(seconds=60) + 7 * DAY,
        lambda c: c == {f"participant_events/{events[1]['id']}"},
    )


@pytest.mark.retention("mails")
def test_mail_records_go_7_days_after_creation(platform: Platform, clock_file: Path, pbx: PbxClient) -> None:
    pbx.sync([ext("101")])
    pbx.put_meeting("m-mail", meeting("101", send_invitations=True))
    (snap,) = list(fs.client().collection("mails").stream())
    created = fs.data(snap)["created_at"]
    time.sleep(1)  # let its delivery settle (the record changes to sent)
    boundary(platform, clock_file, "mails", created + 7 * DAY, lambda c: c == {f"mails/{snap.id}"})


@pytest.mark.retention("recordings")
def test_recordings_go_7_days_after_creation(platform: Platform, clock_file: Path) -> None:
    now = datetime.now(UTC)
    objects = []
    for n, created in enumerate((now, now + timedelta(hours=1))):
        rec_id = f"{n:x}" * 32
        out, raw = f"recordings/{secrets.token_hex(16)}.mp4", f"raw/mcu-eu-1/{rec_id}/t000-video.wmr"
        storage.bucket(RECORDINGS_BUCKET).blob(out).upload_from_string(b"mp4")
        storage.bucket(RAW_BUCKET).blob(raw).upload_from_string(b"raw")
        fs.client().collection("recordings").document(rec_id).set(
            {"status": "ready", "created_at": created, "output_object": out, "tracks": [{"object": raw}], "meeting_key": "k" * 22}
        )
        objects.append([(RECORDINGS_BUCKET, out), (RAW_BUCKET, raw)])
    boundary(platform, clock_file, "recordings", now + 7 * DAY, lambda c: c == {f"recordings/{'0' * 32}"}, objects[0])
    assert all(storage.exists(b, o) for b, o in objects[1])  # the younger one stays


@pytest.mark.retention("shared_files")
def test_shared_files_go_when_their_session_is_over(platform: Platform, clock_file: Path) -> None:
    key = "s" * 22
    fs.client().collection("sessions").document(key).set({"session_id": "a" * 16, "count": 1})
    storage.bucket(FILES_BUCKET).blob("files/x1").upload_from_string(b"data")
    fs.client().collection("files").document("x1").set(
        {"meeting_key": key, "session_id": "a" * 16, "object": "files/x1", "created_at": datetime.now(UTC)}
    )
    before = dump_firestore()
    assert sweep(platform, "shared_files")["done"] == 0  # the session runs: kept
    assert dump_firestore() == before and storage.exists(FILES_BUCKET, "files/x1")
    fs.client().collection("sessions").document(key).update({"count": 0})  # the counter reached 0 (its end was missed)
    before = dump_firestore()
    assert sweep(platform, "shared_files")["done"] == 1
    assert changes(before, dump_firestore()) == {"files/x1"} and not storage.exists(FILES_BUCKET, "files/x1")
    assert sweep(platform, "shared_files")["done"] == 0


def _report(rid: str, created: datetime, sanitized: int = 0) -> None:
    fs.reports().document(rid).set(
        {
            "pbx_id": "p1",
            "status": "acked",
            "created_at": created,
            "sanitized": sanitized,
            "meeting_key": "k" * 22,
            "session_id": "0" * 16,
            "report": {
                "pbx_meeting_id": "m-1",
                "meeting_name": "Review",
                "started_at": created,
                "ended_at": created,
                "participants": [
                    {"name": "Ada L", "email": "a@example.com", "role": "organizer", "connected_seconds": 60, "reconnects": 0}
                ],
            },
        }
    )


@pytest.mark.retention("reports_sanitize")
def test_reports_are_sanitized_at_2_months(platform: Platform, clock_file: Path) -> None:
    created = datetime.now(UTC)
    _report("r-old", created)
    _report("r-new", created + DAY)
    boundary(platform, clock_file, "reports_sanitize", created + 60 * DAY, lambda c: c == {"reports/r-old"})
    report = fs.data(fs.reports().document("r-old").get())["report"]
    assert report["participants"][0]["name"] == "Participant 1" and report["participants"][0]["email"] is None
    assert report["meeting_name"] == ""


@pytest.mark.retention("reports_sanitize_yearly")
def test_reports_are_sanitized_again_at_a_year(platform: Platform, clock_file: Path) -> None:
    created = datetime.now(UTC)
    _report("r-old", created, sanitized=1)
    boundary(platform, clock_file, "reports_sanitize_yearly", created + 365 * DAY, lambda c: c == {"reports/r-old"})
    d = fs.data(fs.reports().document("r-old").get())
    assert d["sanitized"] == 2 and d["meeting_key"] is None and d["report"]["pbx_meeting_id"] is None


@pytest.mark.retention("statistics_anonymize")
def test_statistics_are_anonymized_at_2_months(platform: Platform, clock_file: Path) -> None:
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    fs.client().collection("statistics").document(f"{day:%Y-%m-%d}_eu").set(
        {"granularity": "day", "period_start": day, "region": "eu", "meetings": 2}
    )
    boundary(
        platform,
        clock_file,
        "statistics_anonymize",
        day + 60 * DAY,
        lambda c: c == {f"statistics/{day:%Y-%m-%d}_eu", f"statistics/{day:%Y-%m}_eu"},
    )


@pytest.mark.retention("statistics_delete")
def test_statistics_are_deleted_at_a_year(platform: Platform, clock_file: Path) -> None:
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    fs.client().collection("statistics").document(f"{month:%Y-%m}_eu").set(
        {"granularity": "month", "period_start": month, "region": "eu", "meetings": 2}
    )
    boundary(platform, clock_file, "statistics_delete", month + 365 * DAY, lambda c: c == {f"statistics/{month:%Y-%m}_eu"})


def _pbx_paths(pbx: PbxClient) -> set[str]:
    return {p for p in dump_firestore() if pbx.pbx_id in p or p.startswith("meetings/") or p.startswith("fqdns/")}


@pytest.mark.retention("pbx_no_contact")
def test_a_pbx_silent_for_60_days_loses_everything(platform: Platform, clock_file: Path, api: str, pbx: PbxClient) -> None:
    pbx.sync([ext("101")])
    pbx.put_meeting("m-1", meeting("101"))
    other = new_pbx(api, platform.endpoints["dev_license_keys"][1], fqdn="other.example.com")
    other.sync([ext("201")])
    last = fs.data(fs.pbxs().document(pbx.pbx_id).get())["last_contact_at"]
    fs.pbxs().document(other.pbx_id).update({"last_contact_at": last + DAY})
    theirs = {p for p in dump_firestore() if other.pbx_id in p}

    def gone(changed: set[str]) -> bool:
        return not (changed & theirs) and f"pbxs/{pbx.pbx_id}" in changed and "fqdns/pbx.example.com" in changed

    boundary(platform, clock_file, "pbx_no_contact", last + 60 * DAY, gone)
    left = dump_firestore()
    assert not any(pbx.pbx_id in p for p in left) and "fqdns/pbx.example.com" not in left
    assert fs.data(fs.licenses().document(platform.endpoints["dev_license_keys"][0]).get())["bound_pbx_id"] is None
    assert theirs <= set(left)


def _zone(platform: Platform, fqdn: str, present: bool) -> None:
    import json
    import os

    zone = Path(platform.endpoints["dns"]["zone_file"])
    records = json.loads(zone.read_text() or "{}")
    if present:
        records[fqdn] = {"A": ["127.0.0.1"]}
    else:
        records.pop(fqdn, None)
    tmp = zone.with_suffix(".tmp")
    tmp.write_text(json.dumps(records))
    os.replace(tmp, zone)
    time.sleep(0.3)  # the DNS server reloads its zone


def _dns_check(platform: Platform, pbx_id: str) -> dict[str, Any]:
    resp = requests.post(
        f"{platform.upstreams['tasks_api']}/tasks/v1/dns-check",
        json={"pbx_ids": [pbx_id]},
        headers={"X-Webmeeting-Task-Secret": platform.tasks_secret},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.mark.retention("pbx_dns_meetings")
@pytest.mark.retention("pbx_dns")
def test_an_unresolvable_pbx_loses_meetings_at_14_days_and_everything_at_30(
    platform: Platform, clock_file: Path, pbx: PbxClient
) -> None:
    fqdn = "pbx.example.com"
    platform.register_pbx(fqdn, pbx.pbx_id, pbx.api_secret)
    pbx.sync([ext("101")])
    key = pbx.put_meeting("m-dns", meeting("101")).json()["meeting_key"]
    t0 = datetime.now(UTC)
    assert _dns_check(platform, pbx.pbx_id) == {"ok": 1}
    _zone(platform, fqdn, present=False)

    def day(n: int) -> datetime:
        return t0 + n * DAY

    # days 1..12 fail; day 13 resolves again: the streak is over
    for n in range(1, 13):
        set_clock(clock_file, day(n))
        assert _dns_check(platform, pbx.pbx_id) == {"failing": 1}
        for rule in ("pbx_dns_meetings", "pbx_dns"):
            assert sweep(platform, rule)["done"] == 0
    first_streak = fs.data(fs.pbxs().document(pbx.pbx_id).get())["dns_failing_since"]
    assert abs((first_streak - day(1)).total_seconds()) < 5
    _zone(platform, fqdn, present=True)
    set_clock(clock_file, day(13))
    assert _dns_check(platform, pbx.pbx_id) == {"ok": 1}
    assert fs.data(fs.pbxs().document(pbx.pbx_id).get())["dns_failing_since"] is None
    _zone(platform, fqdn, present=False)
    set_clock(clock_file, day(14))
    assert _dns_check(platform, pbx.pbx_id) == {"failing": 1}  # a new streak starts on day 14
    since = fs.data(fs.pbxs().document(pbx.pbx_id).get())["dns_failing_since"]
    set_clock(clock_file, day(20))  # 19 days after the first failure, 6 into the new streak
    assert sweep(platform, "pbx_dns_meetings")["done"] == 0 and fs.meetings().document(key).get().exists

    meeting_paths = {f"meetings/{key}", f"sessions/{key}"}
    boundary(
        platform,
        clock_file,
        "pbx_dns_meetings",
        since + 14 * DAY,
        lambda c: (
            f"meetings/{key}" in c
            and c <= meeting_paths | {f"pbxs/{pbx.pbx_id}"} | {p for p in c if p.startswith("vanity_links/")}
        ),
    )
    assert fs.pbxs().document(pbx.pbx_id).get().exists  # the PBX and its users stay until day 30
    boundary(
        platform, clock_file, "pbx_dns", since + 30 * DAY, lambda c: f"pbxs/{pbx.pbx_id}" in c and "fqdns/pbx.example.com" in c
    )
    assert not any(pbx.pbx_id in p for p in dump_firestore())
    _zone(platform, fqdn, present=True)


# --- the table is covered -------------------------------------------------------------------------


def test_every_rule_has_a_test() -> None:
    import re

    tests = Path(__file__).resolve().parents[1]
    covered = {
        m for path in tests.rglob("test_*.py") for m in re.findall(r'@pytest\.mark\.retention\("([a-z_]+)"\)', path.read_text())
    }
    missing = {r.name for r in policy.RULES} - covered
    assert not missing, f"retention rules without a test: {sorted(missing)}"
    assert covered <= set(policy.BY_NAME), f"tests name rules the table does not have: {sorted(covered - set(policy.BY_NAME))}"


@pytest.mark.retention("audit_log")
def test_audit_entries_go_1_year_after_they_were_written(platform: Platform, clock_file: Path) -> None:
    console = platform.endpoints["console"]
    seen = requests.get(console["url"] + "pbxs", auth=("support@webmeeting.local", console["password"]), timeout=10)
    assert seen.status_code == 200
    (snap,) = list(fs.client().collection("audit").stream())  # support looked at the PBXs
    entry = fs.data(snap)
    assert entry["action"] == "view_pbxs" and entry["expire_at"] == entry["at"] + 365 * DAY  # the TTL safety net
    boundary(platform, clock_file, "audit_log", entry["at"] + 365 * DAY, lambda c: c == {f"audit/{snap.id}"})
