"""Recordings through the real MCU (aiortc participants), Storage, Tasks and the converter job
as a process: who may record, and faults — the converter killed mid-conversion, the upload
failing, the portal down when the MCU reports — each ending with exactly one correct MP4 and
nothing lost."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import pytest
import requests
from aiortc.mediastreams import AudioStreamTrack

from infra.launcher import RAW_BUCKET, RECORDINGS_BUCKET, Platform
from infra.mcu_client import FlatVideoTrack, McuClient, record
from infra.pbx_client import PbxClient
from mcu_vm import net
from tests.helpers import InMeeting, assert_error, dump_firestore, ext, join_meeting, new_pbx, raw_objects, wait_session_count
from tests.helpers import wait_for as _wait_for
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage
from webmeeting.services import licenses

pytestmark = pytest.mark.integration
WAIT_S = 90


@pytest.fixture(autouse=True)
def loopback_ice() -> None:
    net.use_addresses(["127.0.0.1"])


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    return _wait_for(what, check, timeout, every=0.25)  # conversions take a while: a longer default


def recording_doc(rec_id: str) -> dict[str, Any]:
    return fs.data(fs.client().collection("recordings").document(rec_id).get())


class Meeting:
    """An organizer and a participant (aiortc) publishing audio and video, in a thread."""

    def __init__(self, platform: Platform, pbx: PbxClient) -> None:
        links = pbx.sync([ext("101", "Ada", "Lovelace", email="ada-rec@example.com")]).json()["extensions"][0]
        self.key = links["quick_meeting_url"].rsplit("/", 1)[1]
        self.secret = links["quick_meeting_organizer_url"].split("#organizer=")[1]
        self.portal = platform.endpoints["portal"]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.org = McuClient(self.portal, self.key, "Ada")
        self.guest = McuClient(self.portal, self.key, "Grace")
        self.run(self._start())

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        await self.org.join(organizer_secret=self.secret)
        await self.guest.join()
        await self.org.publish([AudioStreamTrack(), FlatVideoTrack(120)])
        await self.guest.publish([AudioStreamTrack(), FlatVideoTrack(180)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got = self.guest.received.get(self.org.joined["participant_id"])
            if got and got.kinds.get("video", 0) > 10:
                return
            await asyncio.sleep(0.2)
        raise AssertionError("media never flowed")

    def record(self, seconds: float, before_stop: Callable[[], None] | None = None) -> str:
        started = self.run(record(self.org, "start"))
        wait_for("the MCU to record", lambda: self.org.recording_active and self.guest.recording_active, 10)
        t0 = time.monotonic()
        time.sleep(seconds)
        if before_stop:
            before_stop()
        self.run(record(self.org, "stop"))
        self.recorded_s = time.monotonic() - t0
        return str(started["recording_id"])

    def close(self) -> None:
        if not self.thread.is_alive():
            return

        async def bye() -> None:
            await self.org.close()
            await self.guest.close()

        self.run(bye())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def meeting(platform: Platform, pbx: PbxClient) -> Iterator[Meeting]:
    m = Meeting(platform, pbx)
    yield m
    m.close()


def mp4s(rec: dict[str, Any]) -> list[Any]:
    return [b for b in storage.client().list_blobs(RECORDINGS_BUCKET, prefix="recordings/") if b.name == rec["output_object"]]


def assert_one_good_mp4(rec_id: str, seconds: float, tmp: Path) -> dict[str, Any]:
    rec = wait_for("the recording to be ready", lambda: (d := recording_doc(rec_id)) and d["status"] == "ready" and d)
    (blob,) = mp4s(rec)
    out = tmp / f"{rec_id}.mp4"
    blob.download_to_filename(str(out))
    with av.open(str(out)) as c:
        assert {s.codec_context.name for s in c.streams} == {"h264", "aac"}
        assert float(c.duration / 1e6) == pytest.approx(seconds, rel=0.15)
        frame = next(f for f in c.decode(video=0) if float(f.pts * f.time_base) > seconds / 2)
        gray = frame.to_ndarray(format="gray")
        assert gray[180:540, 80:560].mean() > 20 and gray[180:540, 720:1200].mean() > 20  # both people
    wait_for("the raw tracks to go", lambda: not raw_objects(rec_id), 30)
    return rec


def converter_processes(rec_id: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"converter_job" in cmd and rec_id.encode() in cmd:
                pids.append(int(entry))
    return pids


def ops_mails(platform: Platform, rec_id: str) -> list[Any]:
    out = []
    for path in Path(platform.endpoints["smtp"]["inbox_dir"]).glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes())
        if rec_id in (msg["Subject"] or "") and "ops@" in (msg["To"] or ""):
            out.append(msg)
    return out


def sweep(platform: Platform) -> dict[str, Any]:
    resp = requests.post(
        f"{platform.upstreams['tasks_api']}/tasks/v1/recordings-sweep",
        json={},
        headers={"X-Webmeeting-Task-Secret": platform.tasks_secret},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


# --- who may record ------------------------------------------------------------------------------


def test_only_the_organizer_of_a_running_licensed_meeting_records(platform: Platform, pbx: PbxClient, api: str) -> None:
    links = pbx.sync([ext("101")]).json()["extensions"][0]
    key = links["quick_meeting_url"].rsplit("/", 1)[1]
    secret = links["quick_meeting_organizer_url"].split("#organizer=")[1]
    url = platform.endpoints["portal"] + "/api/meet/v1/recording"
    org = join_meeting(platform, key, "Ada", organizer_secret=secret)
    guest = join_meeting(platform, key, "Grace")

    def post(token: str, body: Any) -> requests.Response:
        return requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    before = dump_firestore()
    assert_error(post(guest["token"], {"action": "start"}), 403, "organizer_only")
    assert_error(post(org["token"], {"action": "start"}), 403, "not_connected")  # a token alone records nothing
    assert_error(post(org["token"], {"action": "pause"}), 400, "invalid_request")
    assert_error(post("forged", {"action": "start"}), 401, "unauthenticated")
    assert_error(post(org["token"], {"action": "stop"}), 403, "not_connected")
    assert dump_firestore() == before

    unlicensed = licenses.add_license(
        edition="basic", expires_at=datetime.now(UTC) + timedelta(days=30), max_participants=10, recording=False
    )
    other = new_pbx(api, unlicensed.key, fqdn="norec.example.com")
    links = other.sync([ext("201")]).json()["extensions"][0]
    key2 = links["quick_meeting_url"].rsplit("/", 1)[1]
    org2 = join_meeting(platform, key2, "Ada", organizer_secret=links["quick_meeting_organizer_url"].split("#organizer=")[1])
    held = InMeeting([org2], key2)
    try:
        wait_session_count(key2, 1)
        assert_error(post(org2["token"], {"action": "start"}), 403, "recording_not_licensed")
    finally:
        held.close()


# --- faults --------------------------------------------------------------------------------------


def test_a_converter_killed_mid_conversion_is_retried_into_one_mp4(platform: Platform, meeting: Meeting, tmp_path: Path) -> None:
    log = platform.state_dir / "logs"
    marks = {p: p.stat().st_size for p in log.glob("converter-*.log")}
    rec_id = meeting.record(6)
    meeting.close()

    def composing() -> bool:
        for path in log.glob("converter-*.log"):
            text = path.read_bytes()[marks.get(path, 0) :].decode(errors="replace")
            if rec_id in text and "composing: 10 %" in text.split(rec_id, 1)[1]:
                return True
        return False

    wait_for("the conversion to be under way", composing, 60)
    pids = converter_processes(rec_id)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert recording_doc(rec_id)["status"] == "converting"
    time.sleep(5)  # longer than the lease (4 s in tests): its holder is gone
    swept = sweep(platform)
    doc = recording_doc(rec_id)
    assert swept["conversions_failed"] == 1, (swept, doc["status"], str(doc.get("lease_until")), str(datetime.now(UTC)))
    doc = recording_doc(rec_id)
    assert doc["status"] == "failed" and "stopped responding" in doc["error"]
    rec = assert_one_good_mp4(rec_id, 6, tmp_path)
    assert rec["attempts"] == 2
    assert wait_for("the ops mail", lambda: ops_mails(platform, rec_id), 30)
    assert sweep(platform)["conversions_failed"] == 0  # nothing more to do


def test_a_failing_upload_is_retried_and_nothing_is_lost(platform: Platform, meeting: Meeting, tmp_path: Path) -> None:
    storage.bucket(RECORDINGS_BUCKET).delete(force=True)  # the converter's upload will fail
    try:
        rec_id = meeting.record(4)
        meeting.close()
        doc = wait_for("the failure", lambda: (d := recording_doc(rec_id)) and d.get("status") == "failed" and d)
        assert "NotFound" in doc["error"] or "404" in doc["error"], doc["error"]
        assert raw_objects(rec_id)  # raw tracks kept
    finally:
        storage.ensure_bucket(RECORDINGS_BUCKET)
    assert_one_good_mp4(rec_id, 4, tmp_path)
    assert wait_for("the ops mail", lambda: ops_mails(platform, rec_id), 30)


def test_the_portal_down_when_the_mcu_reports(platform: Platform, meeting: Meeting, tmp_path: Path) -> None:
    stopped: list[Any] = []
    rec_id = meeting.record(4, before_stop=lambda: stopped.append(platform.stop_proc("fn-mcu_api")))
    folder = platform.state_dir / "mcu-mcu-eu-1" / "recordings" / rec_id
    try:
        wait_for(
            "the raw tracks uploaded",
            lambda: len(raw_objects(rec_id)) == 4,
            30,
        )
        time.sleep(2)
        assert (folder / "manifest.json").exists()  # kept: the portal has not confirmed
        assert recording_doc(rec_id)["status"] == "recording"
    finally:
        (proc,) = stopped
        port = int(proc.argv[proc.argv.index("--port") + 1])
        platform.restart(proc, platform.tcp_ok(port))
    meeting.close()
    assert_one_good_mp4(rec_id, meeting.recorded_s, tmp_path)
    wait_for("the MCU to drop its local copy", lambda: not folder.exists(), 30)


def test_an_admin_retries_a_failed_recording_on_a_chosen_converter(platform: Platform, pbx: PbxClient, tmp_path: Path) -> None:
    """A failed recording (raw tracks kept; here one person sent H.264), retried from the admin CLI."""
    from typer.testing import CliRunner

    from infra.media import Person, write_recording
    from webmeeting.cli.admin import app

    pbx.sync([ext("101", email="ada-cli@example.com")])
    rec_id = "c" * 32
    manifest = write_recording(
        tmp_path / "raw",
        [Person("alice-000001", 120, 100, 150, 440), Person("bob-00000001", 170, 150, 100, 660, video_codec="h264")],
        3.0,
    )
    for track in manifest["tracks"]:
        track["object"] = f"raw/mcu-eu-1/{rec_id}/{track['file']}"
        storage.bucket(RAW_BUCKET).blob(track["object"]).upload_from_filename(str(tmp_path / "raw" / track["file"]))
    now = datetime.now(UTC)
    fs.client().collection("recordings").document(rec_id).set(
        {
            "status": "failed",
            "error": "earlier failure",
            "meeting_key": "k" * 22,
            "session_id": "0" * 16,
            "pbx_id": pbx.pbx_id,
            "organizer": "101",
            "meeting_name": "Quick Meeting",
            "mcu_id": "mcu-eu-1",
            "created_at": now,
            "started_at": datetime.fromisoformat(manifest["started_at"].replace("Z", "+00:00")),
            "stopped_at": datetime.fromisoformat(manifest["stopped_at"].replace("Z", "+00:00")),
            "tracks": manifest["tracks"],
            "attempts": 1,
            "expire_at": now + timedelta(days=7),
        }
    )
    runner = CliRunner()
    assert runner.invoke(app, ["converters", "fallback", "nope"]).exit_code == 1
    done = runner.invoke(app, ["converters", "fallback", "conv-us"])
    assert done.exit_code == 0, done.output
    listed = runner.invoke(app, ["converters", "list"], env={"COLUMNS": "200"})
    assert "conv-eu" in listed.output and "conv-us" in listed.output
    retried = runner.invoke(app, ["recordings", "retry", rec_id, "--converter", "conv-us"])
    assert retried.exit_code == 0, retried.output
    rec = assert_one_good_mp4(rec_id, 3.0, tmp_path)
    assert rec["dispatched_to"] == "conv-us" and rec["attempts"] == 2
    again = runner.invoke(app, ["recordings", "retry", rec_id])
    assert again.exit_code == 1 and "ready" in again.output  # nothing to retry once it is ready
