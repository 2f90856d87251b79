"""A network change under a browser in the meeting: its relay traffic suddenly comes from a new
address (what the platform sends to the old one is lost, as when a phone moves from Wi-Fi to
mobile data) and its sockets are cut (as a browser closes them when its address changes). The
page goes straight back to its MCU, which kept its place: the others never see it leave, its
hand stays up, and media flows both ways again within 3 s."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import Page

from infra.chromium import RELAY_ONLY
from infra.impaired import LinkSpec
from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, in_meeting, join, launch
from tests.helpers import ext, meeting_events, wait_for
from tests.network.behind import behind_link

pytestmark = pytest.mark.network
TIMEOUT_S = 30
BACK_WITHIN_S = 3.0

# what the MCU tells this page, as "type:participant id" (test instrumentation, not the page's)
WATCH = """(() => {
  const Native = window.WebSocket;
  window.__told = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        try {
          const m = JSON.parse(e.data);
          window.__told.push(`${m.type}:${m.participant_id || (m.participant && m.participant.id) || ""}`);
        } catch (err) { /* not ours */ }
      });
    }
  };
})();"""


def _counts(page: Page, publisher: str) -> tuple[int, int]:
    entry = page.evaluate("window.webmeeting.stats()").get(publisher) or {}
    return int((entry.get("video") or {}).get("framesDecoded", 0)), int((entry.get("audio") or {}).get("packets", 0))


def _back(page: Page, publisher: str, before: tuple[int, int]) -> bool:
    """Media of a new subscription (its counters start again) back: a video frame decoded and
    audio received (the moment media is back, not some frames later: at 30 fps five frames
    added 170 ms to what was measured)."""
    frames, packets = _counts(page, publisher)
    return 0 < frames < before[0] and 0 < packets < before[1]


def test_a_network_change_keeps_the_participant_and_media_is_back_within_3_s(
    playwright: Any, pbx: PbxClient, platform: Platform
) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    with behind_link(platform, LinkSpec()) as (namespace, gate, link):
        home = launch(playwright)
        home.add_init_script(WATCH)
        moving = launch(playwright, prefix=namespace.prefix)
        moving.add_init_script(RELAY_ONLY)
        try:
            ada = join(home, quick["quick_meeting_organizer_url"], "Ada")
            ada_id = in_meeting(ada, 1, TIMEOUT_S)
            grace = join(moving, quick["quick_meeting_url"], "Grace")
            grace_id = in_meeting(grace, 2, TIMEOUT_S)
            grace.click("#raise-hand")
            wait_for(
                "Grace's hand at Ada", lambda: ada.get_attribute(f'li[data-participant-id="{grace_id}"]', "data-hand") == "up", 10
            )
            wait_for("media at Ada", lambda: min(_counts(ada, grace_id)) > 60, TIMEOUT_S)
            wait_for("media at Grace", lambda: min(_counts(grace, ada_id)) > 60, TIMEOUT_S)
            at_ada, at_grace = _counts(ada, grace_id), _counts(grace, ada_id)

            changed = time.monotonic()
            link.rebind()
            gate.reset()
            back: dict[str, float] = {}
            while len(back) < 2 and time.monotonic() - changed < TIMEOUT_S:
                if "ada" not in back and _back(ada, grace_id, at_ada):
                    back["ada"] = time.monotonic() - changed
                if "grace" not in back and _back(grace, ada_id, at_grace):
                    back["grace"] = time.monotonic() - changed
                time.sleep(0.05)
            assert back.get("ada", 99) <= BACK_WITHIN_S and back.get("grace", 99) <= BACK_WITHIN_S, back
            assert link.rebinds == 1 and gate.connections >= 2  # it did come back through the changed network

            # the same participant, in its place: same id, hand still up; the others never saw it go
            assert grace.evaluate("window.webmeeting.participantId()") == grace_id
            assert grace.evaluate("window.webmeeting.joins()") == 2
            assert grace.get_attribute(f'li[data-participant-id="{grace_id}"]', "data-hand") == "up"
            told = ada.evaluate("window.__told")
            assert f"participant_joined:{grace_id}" in told  # the watch works: Grace's first arrival
            assert told.count(f"participant_joined:{grace_id}") == 1 and f"participant_left:{grace_id}" not in told, told
            assert ada.text_content("[data-testid=participant-count]") == "2"
            # the meeting report counts it as a reconnect (one drop, one return)
            key = quick["quick_meeting_url"].rsplit("/", 1)[1]
            kinds = lambda: sorted(e["type"] for e in meeting_events(key) if e["participant_id"] == grace_id)  # noqa: E731
            wait_for("Grace's events", lambda: kinds() == ["joined", "left", "reconnected"], 15)
        finally:
            close(moving)
            close(home)
