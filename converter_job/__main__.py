"""The converter job: ``python -m converter_job --recording-id ID --converter CONVERTER``.

One execution converts one recording (production: a Cloud Run job execution started by the
portal's conversion task; locally the same code as a process):

 1. claim the recording (a lease it renews while working; a rerun of a finished one only cleans up)
 2. download the raw tracks from the raw-recordings bucket
 3. compose the MP4 (``compose.py``), progress in the log
 4. upload it under the recording's unguessable name (chosen once, so a rerun overwrites, never
    duplicates) and verify it
 5. mark the recording ready and queue the organizer's mail (one transaction)
 6. delete the raw tracks, then its local copies

Any failure: the recording is marked failed with the reason, the development team is told, and
the portal retries with backoff; the raw tracks stay until a conversion succeeds.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from converter_job.compose import compose
from webmeeting import runtime
from webmeeting.adapters import storage
from webmeeting.services import recordings

log = logging.getLogger("converter")


class LeaseKeeper(threading.Thread):
    """Renews the claim every third of the lease; notices when it was taken away."""

    def __init__(self, rec_id: str, execution: str, settings: Any) -> None:
        super().__init__(daemon=True)
        self.rec_id, self.execution, self.settings = rec_id, execution, settings
        self.stop = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stop.wait(self.settings.convert_lease_s / 3):
            try:
                if not recordings.renew(self.rec_id, self.execution, self.settings):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                log.warning("lease renewal failed", exc_info=True)


def delete_raw(doc: dict[str, Any], settings: Any) -> None:
    recordings.raw_deleted(doc["id"], doc, settings)


def convert(rec_id: str, converter: str, settings: Any) -> int:
    execution = f"{converter}-{secrets.token_hex(6)}"
    claimed = recordings.claim(rec_id, execution, settings)
    if isinstance(claimed, str):
        log.info("recording %s: nothing to do (%s)", rec_id, claimed)
        return 0
    doc = claimed | {"id": rec_id}
    if doc["status"] == "ready":
        log.info("recording %s was converted before; removing what is left of its raw tracks", rec_id)
        delete_raw(doc, settings)
        return 0
    log.info("recording %s: converting on %s (attempt %s, execution %s)", rec_id, converter, doc.get("attempts"), execution)
    keeper = LeaseKeeper(rec_id, execution, settings)
    keeper.start()
    work = Path(tempfile.mkdtemp(prefix=f"convert-{rec_id[:8]}-"))
    try:
        done = storage.bucket(settings.recordings_bucket).get_blob(doc["output_object"])
        if done is not None and (done.metadata or {}).get("recording_id") == rec_id:
            # converted and uploaded before a crash: only what came after is left to do
            log.info("recording %s: the MP4 is already uploaded; finishing", rec_id)
            keeper.stop.set()
            duration = float((done.metadata or {}).get("duration_s", 0))
            recordings.mark_ready(rec_id, execution, int(done.size or 0), duration, settings, runtime.clock().now())
            delete_raw(doc, settings)
            return 0
        files: dict[str, Path] = {}
        for n, track in enumerate(doc["tracks"], 1):
            target = work / track["file"]
            storage.bucket(settings.raw_bucket).blob(track["object"]).download_to_filename(str(target))
            files[track["track_id"]] = target
            log.info("downloaded %d/%d raw tracks", n, len(doc["tracks"]))
        manifest = {"started_at": _iso(doc["started_at"]), "stopped_at": _iso(doc["stopped_at"]), "tracks": doc["tracks"]}
        out = work / "recording.mp4"
        result = compose(manifest, files, out, progress=lambda pct: log.info("composing: %d %%", pct))
        if keeper.lost:
            raise RuntimeError("the claim on this recording was lost (another converter took over)")
        blob = storage.bucket(settings.recordings_bucket).blob(doc["output_object"])
        blob.content_disposition = 'attachment; filename="recording.mp4"'
        blob.metadata = {"recording_id": rec_id, "duration_s": f"{result.duration_s:.3f}"}  # marks a complete upload
        blob.upload_from_filename(str(out), content_type="video/mp4")
        blob.reload()
        if blob.md5_hash != storage.file_md5(out):
            raise RuntimeError("the uploaded recording does not match the converted file")
        log.info("uploaded %d bytes (%.1f s of media)", out.stat().st_size, result.duration_s)
        keeper.stop.set()
        recordings.mark_ready(rec_id, execution, out.stat().st_size, result.duration_s, settings, runtime.clock().now())
        delete_raw(doc, settings)
        log.info("recording %s ready; raw tracks deleted", rec_id)
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure is reported, with its reason
        keeper.stop.set()
        reason = f"{exc.__class__.__name__}: {exc}"
        outcome = recordings.mark_failed(rec_id, execution, reason, settings, runtime.clock().now())
        log.error("recording %s failed on %s: %s (%s)", rec_id, converter, reason, outcome)
        return 1
    finally:
        keeper.stop.set()
        shutil.rmtree(work, ignore_errors=True)


def _iso(at: Any) -> str:
    return at.isoformat().replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="converter_job", description=__doc__.splitlines()[0])
    parser.add_argument("--recording-id", required=True)
    parser.add_argument("--converter", default=runtime.backends().converter_id)
    parser.add_argument("--attempt", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stdout)
    return convert(args.recording_id, args.converter, runtime.settings())


if __name__ == "__main__":
    sys.exit(main())
