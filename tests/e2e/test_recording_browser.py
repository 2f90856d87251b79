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
    (blob,) = list(storage.client().list_blobs(RECORDINGS_BUCKET, prefix="recordings/"))
    assert blob.name == rec["output_object"] and re.fullmatch(r"recordings/[0-9a-f]{32}\.mp4", blob.name)  # 128 random bits
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
