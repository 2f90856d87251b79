"""Codecs across real browsers. A Chromium publisher that offers H.264 first (Safari's order) meets
a Firefox subscriber (no H.264 decoder here) and a Chromium one: for 30 s all see and hear each
other and nobody reconnects. A publisher that offers H.264 only: Firefox declines that video,
and stays in the meeting with everyone else's media."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from infra.firefox import Firefox
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, in_meeting, join, launch
from tests.helpers import ext, wait_for

pytestmark = pytest.mark.network
TIMEOUT_S = 30
HELD_S = 30


def h264(only: bool) -> str:
    """An init script: every offer the page makes lists H.264 first (``only``: nothing else)."""
    return """(() => {
  const ONLY = %s;
  const munge = (sdp) => sdp.split(/(?=^m=)/m).map((section) => {
    if (!section.startsWith("m=video")) return section;
    const lines = section.split("\\r\\n");
    const codec = {}, apt = {};
    for (const l of lines) {
      let r = l.match(/^a=rtpmap:(\\d+) ([^/]+)/); if (r) codec[r[1]] = r[2];
      r = l.match(/^a=fmtp:(\\d+) apt=(\\d+)/); if (r) apt[r[1]] = r[2];
    }
    const isH264 = (pt) => codec[pt] === "H264" || (codec[pt] === "rtx" && codec[apt[pt]] === "H264");
    const m = lines[0].split(" ");
    const pts = m.slice(3);
    const keep = ONLY ? pts.filter(isH264) : [...pts.filter(isH264), ...pts.filter((p) => !isH264(p))];
    lines[0] = [...m.slice(0, 3), ...keep].join(" ");
    return lines.filter((l) => {
      const r = l.match(/^a=(?:rtpmap|fmtp|rtcp-fb):(\\d+)/);
      return !r || keep.includes(r[1]);
    }).join("\\r\\n");
  }).join("");
  const native = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = async function (...args) {
    const offer = await native.apply(this, args);
    return { type: offer.type, sdp: munge(offer.sdp) };
  };
})();""" % ("true" if only else "false")


def _media(page: Page, publisher: str) -> tuple[int, int]:
    entry = page.evaluate("window.webmeeting.stats()").get(publisher) or {}
    return int((entry.get("video") or {}).get("framesDecoded", 0)), int((entry.get("audio") or {}).get("packets", 0))


def _fox_media(fox: Firefox, publisher: str) -> tuple[int, int]:
    entry = fox.run_async("return await window.webmeeting.stats();").get(publisher) or {}
    return int((entry.get("video") or {}).get("framesDecoded", 0)), int((entry.get("audio") or {}).get("packets", 0))


def test_an_h264_first_publisher_with_firefox_and_chromium_subscribers_for_30_s(playwright: Any, pbx: PbxClient) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    safari_like = launch(playwright)
    safari_like.add_init_script(h264(only=False))
    plain = launch(playwright)
    fox = Firefox()
    try:
        ada = join(safari_like, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        offered = ada.evaluate("(async () => (await new RTCPeerConnection().createOffer({offerToReceiveVideo: true})).sdp)()")
        video_line = next(line for line in offered.splitlines() if line.startswith("m=video"))
        first_pt = video_line.split()[3]
        assert f"a=rtpmap:{first_pt} H264/90000" in offered  # the munging took: H.264 is offered first
        grace = join(plain, quick["quick_meeting_url"], "Grace")
        grace_id = in_meeting(grace, 2, TIMEOUT_S)
        fox.join(quick["quick_meeting_url"], "Fox")
        wait_for("Firefox in", lambda: fox.text("[data-testid=participant-count]") == "3", TIMEOUT_S)
        fox_id = str(fox.run("return window.webmeeting.participantId();"))

        def everyone(minimum: tuple[int, int]) -> bool:
            seen = [_media(ada, grace_id), _media(ada, fox_id), _media(grace, ada_id), _media(grace, fox_id)]
            seen += [_fox_media(fox, ada_id), _fox_media(fox, grace_id)]
            return all(v >= minimum[0] and a >= minimum[1] for v, a in seen)

        wait_for("everyone sees and hears everyone", lambda: everyone((30, 30)), TIMEOUT_S)
        before = [_fox_media(fox, ada_id), _media(grace, ada_id)]
        ada.wait_for_timeout(HELD_S * 1000)
        after = [_fox_media(fox, ada_id), _media(grace, ada_id)]
        # 30 s later: Ada's video kept coming at Firefox and Grace (at least 10 fps, on a shared 2-core machine)
        for (v0, a0), (v1, a1) in zip(before, after, strict=True):
            assert v1 - v0 >= 10 * HELD_S and a1 - a0 >= 25 * HELD_S, (before, after)
        assert everyone((30 * HELD_S // 3, 25 * HELD_S))
        # nobody reconnected
        joins = [ada.evaluate("window.webmeeting.joins()"), grace.evaluate("window.webmeeting.joins()")]
        joins.append(fox.run("return window.webmeeting.joins();"))
        assert joins == [1, 1, 1], joins
    finally:
        fox.close()
        close(plain)
        close(safari_like)


def test_a_declined_stream_leaves_firefox_in_the_meeting(playwright: Any, pbx: PbxClient) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    h264_only = launch(playwright)
    h264_only.add_init_script(h264(only=True))
    plain = launch(playwright)
    fox = Firefox()
    try:
        ada = join(h264_only, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        grace = join(plain, quick["quick_meeting_url"], "Grace")
        grace_id = in_meeting(grace, 2, TIMEOUT_S)
        wait_for("Ada's H.264 at Grace", lambda: _media(grace, ada_id)[0] > 30, TIMEOUT_S)
        fox.join(quick["quick_meeting_url"], "Fox")
        wait_for("Firefox in", lambda: fox.text("[data-testid=participant-count]") == "3", TIMEOUT_S)
        fox_id = str(fox.run("return window.webmeeting.participantId();"))
        wait_for("Grace's media in Firefox", lambda: min(_fox_media(fox, grace_id)) > 30, TIMEOUT_S)
        wait_for(
            "Firefox's media at Ada and Grace",
            lambda: min(_media(ada, fox_id)) > 30 and min(_media(grace, fox_id)) > 30,
            TIMEOUT_S,
        )
        ada.wait_for_timeout(10_000)
        # Ada's H.264 video is not decoded in Firefox; Firefox is still in, never rejoined, and
        # everything else keeps flowing
        assert _fox_media(fox, ada_id)[0] == 0
        assert fox.run("return window.webmeeting.joins();") == 1 and fox.text("[data-testid=participant-count]") == "3"
        before = _fox_media(fox, grace_id)
        ada.wait_for_timeout(3000)
        assert _fox_media(fox, grace_id)[0] > before[0] + 30
        assert [p.evaluate("window.webmeeting.joins()") for p in (ada, grace)] == [1, 1]
    finally:
        fox.close()
        close(plain)
        close(h264_only)
