"""The meeting room with a Firefox participant (Debian's firefox-esr over Marionette) beside
Chromium ones: Firefox's prejoin lists its devices and its level meter moves, the lobby lets it
in, it sees the shared screen large (and the recording shows that screen large with Firefox's
camera beside it), chats (escaped, to everyone and privately: afterwards those texts are found
nowhere), raises a hand, reacts, speaks, is muted and removed by the organizer, and its fresh
join after that waits at the door and is rejected."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from playwright.sync_api import Page

from infra.firefox import Firefox
from infra.launcher import RECORDINGS_BUCKET, Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, in_meeting, join, launch
from tests.e2e.test_room_browser import _everything_stored
from tests.helpers import ext, wait_for
from webmeeting.adapters import firestore as fs
from webmeeting.adapters import storage

pytestmark = pytest.mark.e2e
TIMEOUT_S = 25


def _fox_receives(fox: Firefox, publisher: str) -> dict[str, Any]:
    stats = fox.run_async("return await window.webmeeting.stats();")
    return dict(stats.get(publisher) or {})


def _audio_packets(page: Page, publisher: str) -> int:
    entry = page.evaluate("window.webmeeting.stats()").get(publisher) or {}
    return int((entry.get("audio") or {}).get("packets", 0))


def _recording(key: str) -> dict[str, Any] | None:
    for snap in fs.client().collection("recordings").stream():
        doc = fs.data(snap)
        if doc["meeting_key"] == key and doc["status"] == "ready":
            return doc
    return None


@pytest.mark.retention("chat")
def test_a_firefox_participant_in_the_room(playwright: Any, pbx: PbxClient, platform: Platform, tmp_path: Path) -> None:
    quick = pbx.sync([ext("101", email=f"fox-{secrets.token_hex(3)}@example.com")]).json()["extensions"][0]
    key = quick["quick_meeting_url"].rsplit("/", 1)[1]
    said = [
        f"{what} {secrets.token_hex(8)}" for what in ("<img src=x onerror=alert(1)> hello all", "just for you", "hi from Firefox")
    ]
    browser = launch(playwright)
    fox = Firefox()
    try:
        ada = join(browser, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        # the lobby: Firefox waits at the door with its preview, and is let in without reloading
        ada.click("button[data-testid=lobby-toggle]")
        wait_for("lobby on", lambda: ada.get_attribute("button[data-testid=lobby-toggle]", "aria-pressed") == "true", TIMEOUT_S)
        # Firefox's prejoin: its cameras and microphones listed, its preview playing, its level meter moving
        fox.goto(quick["quick_meeting_url"])
        wait_for(
            "Firefox's devices",
            lambda: fox.run(
                """return document.querySelectorAll('[data-testid=camera-select] option').length > 0
                     && document.querySelectorAll('[data-testid=mic-select] option').length > 0
                     && document.getElementById('preview').videoWidth > 0;"""
            ),
            TIMEOUT_S,
        )
        wait_for(
            "Firefox's microphone level",
            lambda: float(fox.run("return document.querySelector('[data-testid=mic-level]').dataset.level || 0;")) > 0.02,
            TIMEOUT_S,
        )
        fox.fill("input[name=display_name]", "Fox <b>Firefox</b>")
        fox.click("button[data-testid=join]")
        wait_for("Firefox waiting", lambda: fox.run("return !document.getElementById('lobby-screen').hidden"), TIMEOUT_S)
        ada.wait_for_selector("[data-testid=lobby-entry]", timeout=TIMEOUT_S * 1000)
        ada.click("[data-testid=lobby-entry] button[data-testid=admit]")
        wait_for("Firefox in", lambda: fox.text("[data-testid=participant-count]") == "2", TIMEOUT_S)
        fox_id = str(fox.run("return window.webmeeting.participantId();"))
        wait_for(
            "Ada's video decoded in Firefox",
            lambda: (_fox_receives(fox, ada_id).get("video") or {}).get("framesDecoded", 0) > 20,
            TIMEOUT_S,
        )
        wait_for("Firefox's audio at Ada", lambda: _audio_packets(ada, fox_id) > 20, TIMEOUT_S)

        # a shared screen, large in Firefox too
        ada.click("button[data-testid=share-screen]")
        screen = f"video[data-screen-of='{ada_id}']"
        wait_for(
            "the screen in Firefox",
            lambda: fox.run("const v = document.querySelector(arguments[0]); return v ? v.videoWidth : 0;", screen) >= 640,
            TIMEOUT_S,
        )
        widths = fox.run(
            """const w = (sel) => { const e = document.querySelector(sel); return e ? e.getBoundingClientRect().width : 0; };
               return [w(arguments[0]), w(arguments[1])];""",
            screen,
            f"video[data-participant-id='{ada_id}']",
        )
        assert widths[0] > 2 * widths[1] > 0, widths
        # recorded while shared: Firefox is told, and its camera goes into the recording
        ada.click("button[data-testid=record]")
        wait_for(
            "Firefox told of the recording",
            lambda: fox.run("return !document.querySelector('[data-testid=recording-indicator]').hidden"),
            TIMEOUT_S,
        )
        ada.wait_for_timeout(6000)
        ada.click("button[data-testid=record]")
        wait_for(
            "the recording over in Firefox",
            lambda: fox.run("return document.querySelector('[data-testid=recording-indicator]').hidden"),
            TIMEOUT_S,
        )
        ada.click("button[data-testid=share-screen]")
        wait_for(
            "the share over in Firefox", lambda: fox.run("return !document.querySelector('video[data-screen-of]');"), TIMEOUT_S
        )

        # chat both ways, as text; private to Firefox only
        ada.select_option("select[data-testid=chat-to]", "")
        ada.fill("textarea[data-testid=chat-input]", said[0])
        ada.click("button[data-testid=chat-send]")
        wait_for(
            "Firefox can choose Ada",
            lambda: ada.query_selector(f"select[data-testid=chat-to] option[value='{fox_id}']"),
            TIMEOUT_S,
        )
        ada.select_option("select[data-testid=chat-to]", fox_id)
        ada.fill("textarea[data-testid=chat-input]", said[1])
        ada.click("button[data-testid=chat-send]")
        messages = """return [...document.querySelectorAll('[data-testid=chat-message]')].map((m) => [m.dataset.from,
                        m.querySelector('span').textContent, m.querySelectorAll('img').length]);"""
        wait_for("two messages in Firefox", lambda: len(fox.run(messages)) == 2, TIMEOUT_S)
        assert fox.run(messages) == [[ada_id, said[0], 0], [ada_id, said[1], 0]]
        fox.fill("textarea[data-testid=chat-input]", said[2])
        fox.click("button[data-testid=chat-send]")
        wait_for("Firefox's message at Ada", lambda: said[2] in (ada.text_content("[data-testid=chat-log]") or ""), TIMEOUT_S)
        # the name was shown as text everywhere
        assert ada.query_selector("[data-testid=participant-list] b") is None

        # a raised hand, and the organizer lowers it
        fox.click("button[data-testid=raise-hand]")
        entry = f"[data-testid=participant][data-participant-id='{fox_id}']"
        wait_for("Firefox's hand at Ada", lambda: ada.get_attribute(entry, "data-hand") == "up", TIMEOUT_S)
        ada.click(f"{entry} button[data-testid=lower-hand]")
        wait_for(
            "lowered in Firefox",
            lambda: fox.run("return document.querySelector(arguments[0]).dataset.hand;", entry) == "down",
            TIMEOUT_S,
        )

        # a reaction, seen by the others
        fox.click("button[data-testid=react][data-emoji='👏']")
        wait_for(
            "Firefox's reaction at Ada", lambda: ada.query_selector(f"[data-testid=reaction][data-from='{fox_id}']"), TIMEOUT_S
        )
        # the organizer locks the meeting: Firefox is told
        ada.click("button[data-testid=lock-meeting]")
        wait_for("locked in Firefox", lambda: fox.run("return !document.getElementById('locked-indicator').hidden"), TIMEOUT_S)
        ada.click("button[data-testid=lock-meeting]")

        # Firefox's fake microphone is a steady tone: it speaks; muted by the organizer, its audio stops
        wait_for("Firefox speaking at Ada", lambda: ada.get_attribute(entry, "data-speaking") == "true", TIMEOUT_S)
        ada.click(f"{entry} button[data-testid=mute-participant]")
        wait_for("Firefox told it is muted", lambda: fox.text("button[data-testid=toggle-audio]") == "Unmute", TIMEOUT_S)

        def stopped() -> bool:
            before = _audio_packets(ada, fox_id)
            ada.wait_for_timeout(1500)
            return _audio_packets(ada, fox_id) <= before + 2

        wait_for("Firefox's audio stopped at Ada", stopped, TIMEOUT_S)

        # removed: Firefox is out and stays out
        ada.click(f"{entry} button[data-testid=remove-participant]")
        wait_for("Firefox removed", lambda: fox.run("return !document.getElementById('removed-screen').hidden"), TIMEOUT_S)
        wait_for("gone at Ada", lambda: ada.text_content("[data-testid=participant-count]") == "1", TIMEOUT_S)
        ada.wait_for_timeout(2000)
        assert ada.text_content("[data-testid=participant-count]") == "1"

        # a fresh join from Firefox after the removal waits at the door; the organizer rejects it
        fox.join(quick["quick_meeting_url"], "Fox again")
        wait_for("Firefox waiting again", lambda: fox.run("return !document.getElementById('lobby-screen').hidden"), TIMEOUT_S)
        ada.wait_for_selector("[data-testid=lobby-entry]", timeout=TIMEOUT_S * 1000)
        ada.click("[data-testid=lobby-entry] button[data-testid=reject]")
        wait_for(
            "Firefox rejected",
            lambda: fox.run("return !document.querySelector('[data-testid=lobby-rejected]').hidden"),
            TIMEOUT_S,
        )
        assert fox.run("return document.getElementById('meeting').hidden && document.getElementById('lobby-screen').hidden")
        assert ada.text_content("[data-testid=participant-count]") == "1"
        ada.click("button[data-testid=leave]")
    finally:
        fox.close()
        close(browser)

    # the recording: the shared screen is the main cell, Firefox's camera and Ada's in the column
    rec = wait_for("the recording converted", lambda: _recording(key), 120)
    assert {t["participant_id"] for t in rec["tracks"] if t.get("source", "camera") == "camera"} == {ada_id, fox_id}
    assert sorted(t["kind"] for t in rec["tracks"] if t["participant_id"] == fox_id) == ["audio", "video"]
    mp4 = tmp_path / "fox.mp4"
    storage.bucket(RECORDINGS_BUCKET).blob(rec["output_object"]).download_to_filename(str(mp4))
    with av.open(str(mp4)) as container:
        duration = float(container.duration / 1e6)
        middle = [
            f.to_ndarray(format="gray") for f in container.decode(video=0) if abs(float(f.pts * f.time_base) - duration / 2) < 1.5
        ]
    assert len(middle) > 30
    union = np.max(np.stack(middle), axis=0)
    assert union[310:410, 430:530].mean() > 150  # Chromium's shared screen, its disc large at the left
    cells = [union[180:360, 960:1280], union[360:540, 960:1280]]  # the column: one camera each
    assert all(cell.max() > 60 for cell in cells), [int(c.max()) for c in cells]
    assert union[0:170, 980:1260].mean() < 10  # nothing above the column

    # the chat texts are nowhere: Firestore, Storage, every process's log (the session's events are)
    def stored_with_the_session() -> str | None:
        text = _everything_stored(platform)
        return text if ada_id in text and fox_id in text else None

    stored = wait_for("the session's events stored", stored_with_the_session, TIMEOUT_S)
    for text in said:
        assert text.split()[-1] not in stored
