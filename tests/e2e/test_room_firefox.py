"""The meeting room with a Firefox participant (Debian's firefox-esr over Marionette) beside
Chromium ones: the lobby lets Firefox in, it sees the shared screen large, chats (escaped, to
everyone and privately), raises a hand, speaks, is muted and removed by the organizer."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from infra.pbx_client import PbxClient
from tests.e2e.browser import close, in_meeting, join, launch
from tests.e2e.firefox import Firefox
from tests.helpers import ext, wait_for

pytestmark = pytest.mark.e2e
TIMEOUT_S = 25


def _fox_receives(fox: Firefox, publisher: str) -> dict[str, Any]:
    stats = fox.run_async("return await window.webmeeting.stats();")
    return dict(stats.get(publisher) or {})


def _audio_packets(page: Page, publisher: str) -> int:
    entry = page.evaluate("window.webmeeting.stats()").get(publisher) or {}
    return int((entry.get("audio") or {}).get("packets", 0))


def test_a_firefox_participant_in_the_room(playwright: Any, pbx: PbxClient) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    browser = launch(playwright)
    fox = Firefox()
    try:
        ada = join(browser, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        # the lobby: Firefox waits at the door with its preview, and is let in without reloading
        ada.click("button[data-testid=lobby-toggle]")
        wait_for("lobby on", lambda: ada.get_attribute("button[data-testid=lobby-toggle]", "aria-pressed") == "true", TIMEOUT_S)
        # Firefox's prejoin: its cameras and microphones listed, its preview playing
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
        ada.click("button[data-testid=share-screen]")
        wait_for(
            "the share over in Firefox", lambda: fox.run("return !document.querySelector('video[data-screen-of]');"), TIMEOUT_S
        )

        # chat both ways, as text; private to Firefox only
        ada.select_option("select[data-testid=chat-to]", "")
        ada.fill("textarea[data-testid=chat-input]", "<img src=x onerror=alert(1)> hello all")
        ada.click("button[data-testid=chat-send]")
        wait_for(
            "Firefox can choose Ada",
            lambda: ada.query_selector(f"select[data-testid=chat-to] option[value='{fox_id}']"),
            TIMEOUT_S,
        )
        ada.select_option("select[data-testid=chat-to]", fox_id)
        ada.fill("textarea[data-testid=chat-input]", "just for you")
        ada.click("button[data-testid=chat-send]")
        messages = """return [...document.querySelectorAll('[data-testid=chat-message]')].map((m) => [m.dataset.from,
                        m.querySelector('span').textContent, m.querySelectorAll('img').length]);"""
        wait_for("two messages in Firefox", lambda: len(fox.run(messages)) == 2, TIMEOUT_S)
        assert fox.run(messages) == [[ada_id, "<img src=x onerror=alert(1)> hello all", 0], [ada_id, "just for you", 0]]
        fox.fill("textarea[data-testid=chat-input]", "hi from Firefox")
        fox.click("button[data-testid=chat-send]")
        wait_for(
            "Firefox's message at Ada", lambda: "hi from Firefox" in (ada.text_content("[data-testid=chat-log]") or ""), TIMEOUT_S
        )
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
    finally:
        fox.close()
        close(browser)
