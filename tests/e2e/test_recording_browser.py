"""A two-person meeting in headless Chromium is recorded for ~10 s: the MCU writes the raw
tracks, uploads them, the converter job makes the MP4 in the Storage emulator, ffprobe sees
H.264 + AAC of the right duration and both people in the picture, the organizer's mail has a
working link, and the raw files are gone."""

from __future__ import annotations

import email
import json
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import requests
from playwright.sync_api import Page

from infra.launcher import RECORDINGS_BUCKET, Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, join, launch
from tests.helpers import ext, raw_objects, wait_for
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage

pytestmark = pytest.mark.e2e
TIMEOUT_S = 30


def _wait(pred: Any, what: str, timeout: float = TIMEOUT_S) -> Any:
    return wait_for(what, pred, timeout, every=0.1)


def _flowing(page: Page) -> bool:
    stats = page.evaluate("window.webmeeting.stats()")
    return len(stats) == 1 and all(s["video"] and s["video"]["framesDecoded"] > 30 for s in stats.values())


def _indicator(page: Page) -> bool:
    return page.is_visible("[data-testid=recording-indicator]")


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def test_a_recorded_meeting_becomes_one_mp4_with_both_people(
    playwright: Any, pbx: PbxClient, platform: Platform, tmp_path: Path
) -> None:
    org_email = f"rec-{secrets.token_hex(3)}@example.com"
    links = pbx.sync([ext("101", "Ada", "Lovelace", email=org_email)]).json()["extensions"][0]
    key = links["quick_meeting_url"].rsplit("/", 1)[1]
    ada_ctx, grace_ctx = launch(playwright), launch(playwright)
    try:
        ada = join(ada_ctx, links["quick_meeting_organizer_url"], "Ada Lovelace")
        grace = join(grace_ctx, links["quick_meeting_url"], "Grace Hopper")
        _wait(lambda: _flowing(ada) and _flowing(grace), "media both ways")
        assert ada.is_visible("[data-testid=record]") and not grace.is_visible("[data-testid=record]")

        ada.click("[data-testid=record]")
        _wait(lambda: _indicator(ada) and _indicator(grace), "everyone to see the meeting is recorded", timeout=10)
        started = time.monotonic()
        time.sleep(10)
        ada.click("[data-testid=record]")
        _wait(lambda: not _indicator(ada) and not _indicator(grace), "the indicator to go", timeout=10)
        recorded = time.monotonic() - started
    finally:
        close(ada_ctx)
        close(grace_ctx)

    def ready() -> dict[str, Any] | None:
        docs = [
            fs.data(s) | {"id": s.id} for s in fs.client().collection("recordings").stream() if fs.data(s)["meeting_key"] == key
        ]
        assert len(docs) <= 1
        return docs[0] if docs and docs[0]["status"] == "ready" else None

    rec = _wait(ready, "the recording to be converted", timeout=120)
    # this meeting's one MP4 (other tests of the session may have stored recordings of their own)
    (blob,) = [b for b in storage.client().list_blobs(RECORDINGS_BUCKET, prefix="recordings/") if b.name == rec["output_object"]]
    assert re.fullmatch(r"recordings/[0-9a-f]{32}\.mp4", blob.name)  # 128 random bits
    mp4 = tmp_path / "recording.mp4"
    blob.download_to_filename(str(mp4))

    probe = ffprobe(mp4)
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["aac", "h264"], probe["streams"]
    duration = float(probe["format"]["duration"])
    assert abs(duration - recorded) <= 0.1 * recorded, (duration, recorded)
    assert "faststart" in " ".join(probe["format"].get("tags", {}).values()) or mp4.read_bytes()[:100_000].find(
        b"moov"
    ) < mp4.read_bytes().find(b"mdat")

    # both people in the picture: two grid cells, neither black (a black cell is uniform), in
    # nearly every frame of the middle of the recording
    with av.open(str(mp4)) as container:
        middle = [
            f.to_ndarray(format="gray") for f in container.decode(video=0) if abs(float(f.pts * f.time_base) - duration / 2) < 2
        ]
    lit = [(g[180:540, 80:560].std() > 3, g[180:540, 720:1200].std() > 3) for g in middle]
    assert len(middle) > 60 and sum(a and b for a, b in lit) >= 0.9 * len(middle), lit

    # the organizer's mail with a link that works (a V4 signed URL)
    def mail() -> email.message.Message | None:
        for path in Path(platform.endpoints["smtp"]["inbox_dir"]).glob("*.eml"):
            msg = email.message_from_bytes(path.read_bytes())
            if org_email in (msg["To"] or "") and (msg["Subject"] or "").startswith("Recording ready"):
                return msg
        return None

    msg = _wait(mail, "the recording mail")
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    url = next(line for line in text.splitlines() if line.startswith("http"))
    assert "X-Goog-Signature=" in url and "X-Goog-Expires=" in url
    assert int(re.search(r"X-Goog-Expires=(\d+)", url)[1]) <= 7 * 24 * 3600
    got = requests.get(url, timeout=30)
    assert got.status_code == 200 and got.content == mp4.read_bytes()

    # the raw tracks are gone: from the bucket and from the MCU's disk
    assert raw_objects(rec["id"]) == []
    assert rec["raw_deleted"] is True or _wait(
        lambda: fs.data(fs.client().collection("recordings").document(rec["id"]).get())["raw_deleted"], "raw deleted"
    )
    for mcu in platform.endpoints["mcus"]:
        folder = platform.state_dir / f"mcu-{mcu['id']}" / "recordings" / rec["id"]
        assert not folder.exists()


def test_a_shared_screen_is_the_main_cell_of_the_recording(playwright: Any, pbx: PbxClient, tmp_path: Path) -> None:
    links = pbx.sync([ext("101", "Ada", "Lovelace", email=f"rec-{secrets.token_hex(3)}@example.com")]).json()["extensions"][0]
    key = links["quick_meeting_url"].rsplit("/", 1)[1]
    ada_ctx, grace_ctx = launch(playwright), launch(playwright)
    try:
        ada = join(ada_ctx, links["quick_meeting_organizer_url"], "Ada Lovelace")
        grace = join(grace_ctx, links["quick_meeting_url"], "Grace Hopper")
        _wait(lambda: _flowing(ada) and _flowing(grace), "media both ways")
        ada.click("[data-testid=share-screen]")
        _wait(
            lambda: grace.evaluate("document.querySelector('video[data-screen-of]')?.videoWidth || 0") >= 640,
            "the screen at Grace",
        )
        ada.click("[data-testid=record]")
        _wait(lambda: _indicator(ada) and _indicator(grace), "recording", timeout=10)
        time.sleep(6)
        ada.click("[data-testid=record]")
        _wait(lambda: not _indicator(ada), "stopped", timeout=10)
    finally:
        close(ada_ctx)
        close(grace_ctx)

    def ready() -> dict[str, Any] | None:
        for s in fs.client().collection("recordings").stream():
            doc = fs.data(s)
            if doc["meeting_key"] == key and doc["status"] == "ready":
                return doc
        return None

    rec = _wait(ready, "the recording to be converted", timeout=120)
    assert sorted(t.get("source", "camera") + "/" + t["kind"] for t in rec["tracks"]) == [
        "camera/audio",
        "camera/audio",
        "camera/video",
        "camera/video",
        "screen/audio",
        "screen/video",
    ], rec["tracks"]
    mp4 = tmp_path / "screen.mp4"
    storage.bucket(RECORDINGS_BUCKET).blob(rec["output_object"]).download_to_filename(str(mp4))
    with av.open(str(mp4)) as container:
        duration = float(container.duration / 1e6)
        middle = [
            f.to_ndarray(format="gray") for f in container.decode(video=0) if abs(float(f.pts * f.time_base) - duration / 2) < 1.5
        ]
    assert len(middle) > 30

    # Chromium's fake pictures: a disc on black whose grey level cycles, and a white timestamp at
    # the top left. The screen (16:9) fills the left 960 px from y = 90, its disc at the centre;
    # the two cameras' discs at the centres of the right column's 320x180 cells (y = 180..360,
    # 360..540), black above them. A grid of two or of three puts all of these elsewhere.
    union = np.max(np.stack(middle), axis=0)  # every disc at its brightest
    assert union[310:410, 430:530].mean() > 150  # the screen's disc, large
    assert union[250:290, 1100:1140].mean() > 150 and union[430:470, 1100:1140].mean() > 150  # the cameras, small
    assert union[0:170, 980:1260].mean() < 10  # nothing above the column
    screen_text = [g[110:140, 68:283].mean() > 30 for g in middle]  # the screen's timestamp, frame by frame
    assert sum(screen_text) >= 0.9 * len(middle), screen_text
