"""Recording on the MCU: the forwarded (still encoded) frames of every track go to one raw file
per track (``webmeeting.domain.rawtrack``), never decoded. A stopped recording is kept on local
disk until the upload to the raw-recordings bucket is confirmed and the portal has been told;
an MCU restarted after a crash resumes what it had not finished.

    <recordings dir>/<recording id>/manifest.json   what was recorded (written at stop)
    <recordings dir>/<recording id>/<track>.wmr     the raw tracks
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import av

from mcu_vm.passthrough import media_ssrc
from webmeeting import tokens
from webmeeting.domain import rawtrack

log = logging.getLogger("mcu.recording")

FLUSH_INTERVAL_S = 1.0
RETRY_MAX_S = 60.0


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


class TrackRecorder:
    """A sink on a publisher, like a subscriber: writes each packet as a raw frame record."""

    def __init__(self, path: Path, header: dict[str, Any], receiver: Any, request_keyframe: Any) -> None:
        self.path = path
        self.kind = header["kind"]
        self.header = header
        self._out: IO[bytes] = open(path, "wb", buffering=256 * 1024)  # noqa: SIM115 - closed in stop()
        rawtrack.write_header(self._out, header)
        self._receiver = receiver
        self._request_keyframe = request_keyframe
        self._last_sr: tuple[int, int] | None = None
        self._last_flush = time.monotonic()
        self.waiting_for_keyframe = self.kind == "video"
        self.frames = 0
        self.bytes = 0
        self.closed = False
        if self.waiting_for_keyframe:
            request_keyframe()

    def push(self, packet: av.Packet, layer: int | None = None) -> None:
        """Every frame, whatever its temporal layer (a recording is not a subscriber on a thin link)."""
        try:
            self._push(packet)
        except Exception:  # noqa: BLE001 - a recording problem must never stop the forwarding
            log.exception("recording track %s: frame not written", self.header["track_id"])

    def _push(self, packet: av.Packet) -> None:
        if self.closed:
            return
        if self.waiting_for_keyframe:
            if not packet.is_keyframe:
                self._request_keyframe()  # (the publisher rate-limits requests)
                return
            self.waiting_for_keyframe = False
        sr = self._sender_report()
        if sr is not None and sr != self._last_sr:
            self._last_sr = sr
            self._out.write(rawtrack.sender_report_record(rawtrack.SenderReport(*sr)))
        data = bytes(packet)
        frame = rawtrack.Frame(time.time_ns(), int(packet.pts or 0), bool(packet.is_keyframe), data)
        self._out.write(rawtrack.frame_record(frame))
        self.frames += 1
        self.bytes += len(data)
        now = time.monotonic()
        if now - self._last_flush > FLUSH_INTERVAL_S:
            self._out.flush()
            self._last_flush = now

    def _sender_report(self) -> tuple[int, int] | None:
        """The last RTCP SR of the SSRC that carries the media (not, say, its RTX stream's)."""
        reports = getattr(self._receiver, "wm_sender_reports", None)
        if not reports:
            return None
        ssrc = media_ssrc(self._receiver)
        return reports.get(ssrc) if ssrc is not None else None

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            self._out.flush()
            os.fsync(self._out.fileno())
            self._out.close()


class RoomRecording:
    """One recording of one room: a recorder on every publisher, present and future."""

    def __init__(self, recording_id: str, meeting_key: str, folder: Path) -> None:
        self.recording_id = recording_id
        self.meeting_key = meeting_key
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.started_at = datetime.now(UTC)
        self.recorders: list[tuple[Any, TrackRecorder]] = []  # (publisher, recorder)

    def add(self, publisher: Any, participant_id: str) -> None:
        n = len(self.recorders)
        track_id = f"t{n:03d}-{publisher.kind}"
        header = {
            "track_id": track_id,
            "participant_id": participant_id,
            "kind": publisher.kind,
            "source": publisher.source,  # camera, or a shared screen
            "codec": publisher.codec.mimeType.split("/")[-1].lower(),
            "clock_rate": publisher.codec.clockRate,
            "started_at": _iso(datetime.now(UTC)),
        }
        rec = TrackRecorder(self.folder / f"{track_id}.wmr", header, publisher.receiver, publisher.request_keyframe)
        publisher.subscribers.add(rec)
        self.recorders.append((publisher, rec))

    def stop(self) -> dict[str, Any]:
        """Detach, close the files and write the manifest; returns it."""
        stopped_at = datetime.now(UTC)
        tracks = []
        for publisher, rec in self.recorders:
            publisher.subscribers.discard(rec)
            rec.stop()
            if rec.frames:
                tracks.append({**rec.header, "file": rec.path.name, "frames": rec.frames, "bytes": rec.bytes})
            else:
                rec.path.unlink(missing_ok=True)  # a track that never sent a frame (or a keyframe)
        manifest = {
            "recording_id": self.recording_id,
            "meeting_key": self.meeting_key,
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(stopped_at),
            "tracks": tracks,
        }
        tmp = self.folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.folder / "manifest.json")
        return manifest


class Uploader:
    """Uploads stopped recordings to the raw bucket, verifies each object (MD5), tells the
    portal, and only then deletes the local copy. Retries with backoff; survives restarts (the
    folders on disk are the queue)."""

    def __init__(self, root: Path, bucket: str, portal: Any, mcu_id: str) -> None:
        self.root = root
        self.mcu_id = mcu_id
        self.bucket = bucket
        self.portal = portal
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.uploaded = 0

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._task = asyncio.ensure_future(self._run())

    def kick(self) -> None:
        self._wake.set()

    def pending(self) -> list[Path]:
        return sorted(p.parent for p in self.root.glob("*/manifest.json"))

    async def _run(self) -> None:
        delay = 1.0
        while True:
            failed = False
            for folder in self.pending():
                try:
                    await self._deliver(folder)
                except Exception as exc:  # noqa: BLE001 - kept on disk, tried again
                    failed = True
                    log.warning("recording %s not delivered yet: %s", folder.name, exc)
            delay = min(RETRY_MAX_S, delay * 2) if failed else 1.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay if failed else 30.0)

    async def _deliver(self, folder: Path) -> None:
        """One recording, under a lock (every worker process of the VM runs an uploader)."""
        with open(folder / ".lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another worker is on it
            if (folder / "manifest.json").exists():
                await self._deliver_locked(folder)

    async def _deliver_locked(self, folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        rec_id = manifest["recording_id"]
        loop = asyncio.get_running_loop()
        for track in manifest["tracks"]:
            track["object"] = f"raw/{self.mcu_id}/{rec_id}/{track['file']}"  # its own prefix: all it may write
            await loop.run_in_executor(None, self._upload, folder / track["file"], track["object"])
        if not await self.portal.post(f"/api/mcu/v1/recordings/{rec_id}/uploaded", manifest):
            raise RuntimeError("the portal did not confirm")
        shutil.rmtree(folder, ignore_errors=True)
        self.uploaded += 1
        log.info("recording %s uploaded (%d tracks) and handed to the portal", rec_id, len(manifest["tracks"]))

    def _upload(self, path: Path, object_name: str) -> None:
        from google.api_core.exceptions import PreconditionFailed

        from webmeeting.adapters import storage  # google-cloud-storage: only the uploader needs it

        # The MCU may create objects under its prefix and nothing else (no read, no overwrite,
        # no delete). Storage checks the declared MD5 and refuses a corrupted upload; an object
        # appears only once complete, so an existing one is this file, uploaded before a crash.
        blob = storage.bucket(self.bucket).blob(object_name)
        blob.md5_hash = storage.file_md5(path)
        try:
            blob.upload_from_filename(str(path), content_type="application/octet-stream", if_generation_match=0)
        except PreconditionFailed:
            return

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class RecordingControl:
    """The organizer's start and stop of a room's recording, each checked against the portal's
    grant (which names the MCU, the meeting, the recording and the action)."""

    def __init__(self, uploader: Uploader | None, token_public_key: str, mcu_id: str) -> None:
        self.uploader = uploader
        self.token_public_key = token_public_key
        self.mcu_id = mcu_id

    def apply(self, room: Any, role: str, grant_text: str) -> str:
        """forbidden | unauthenticated | changed | unchanged (a repeated start or stop)."""
        if role != "organizer" or self.uploader is None:
            return "forbidden"
        try:
            grant = tokens.verify_grant(self.token_public_key, grant_text, self.mcu_id, room.key, datetime.now(UTC))
        except tokens.TokenError:
            return "unauthenticated"
        if grant.action == "start" and room.recording is None:
            room.recording = RoomRecording(grant.recording_id, room.key, self.uploader.root / grant.recording_id)
            for other in room.participants.values():
                for _, pub in other.all_publishers():
                    room.recording.add(pub, other.id)
            log.info("recording %s started", grant.recording_id)
            return "changed"
        if grant.action == "stop" and room.recording is not None and room.recording.recording_id == grant.recording_id:
            self.stop(room)
            return "changed"
        return "unchanged"

    def stop(self, room: Any) -> None:
        """Stop the room's recording (if any); its tracks go to the uploader."""
        if room.recording is None:
            return
        room.recording.stop()
        log.info("recording %s stopped", room.recording.recording_id)
        room.recording = None
        if self.uploader:
            self.uploader.kick()
