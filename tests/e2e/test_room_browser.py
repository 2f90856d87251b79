"""The meeting room in real browsers: chat (to everyone, private, escaped, never stored), raised
hands (the organizer lowers anyone's) and reactions, through the MCU's room channel."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Page

from infra.launcher import FILES_BUCKET, RAW_BUCKET, RECORDINGS_BUCKET, Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, in_meeting, join, launch
from tests.helpers import dump_firestore, ext, meeting, wait_for
from webmeeting.adapters import storage

pytestmark = pytest.mark.e2e
TIMEOUT_S = 20


def _links(pbx: PbxClient) -> tuple[str, str]:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    return str(quick["quick_meeting_url"]), str(quick["quick_meeting_organizer_url"])


def _in_meeting(page: Page, people: int) -> str:
    return in_meeting(page, people, TIMEOUT_S)


@contextmanager
def _room(playwright: Any, pbx: PbxClient, *names: str) -> Iterator[tuple[Any, str, list[tuple[Page, str]]]]:
    """A browser with one tab per name in one meeting, the first as its organizer:
    (the browser, the meeting link, [(page, participant id)])."""
    url, organizer_url = _links(pbx)
    browser = launch(playwright)
    try:
        people = []
        for n, name in enumerate(names):
            page = join(browser, organizer_url if n == 0 else url, name)
            people.append((page, _in_meeting(page, n + 1)))
        yield browser, url, people
    finally:
        close(browser)


def _messages(page: Page) -> list[dict[str, Any]]:
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll('[data-testid=chat-message]')].map((m) => ({
                 from: m.dataset.from, private: m.dataset.private === 'true', text: m.querySelector('span').textContent,
                 html: m.innerHTML}))"""
        )
    )


def _say(page: Page, text: str, to: str = "") -> None:
    page.select_option("select[data-testid=chat-to]", to)
    page.fill("textarea[data-testid=chat-input]", text)
    page.click("button[data-testid=chat-send]")


def _everything_stored(platform: Platform) -> str:
    """Every Firestore document, every Storage object's name and content, every process's log."""
    parts = [json.dumps(dump_firestore(), default=str)]
    for bucket in (RAW_BUCKET, RECORDINGS_BUCKET, FILES_BUCKET):
        for blob in storage.client().list_blobs(bucket):
            parts += [blob.name, blob.download_as_bytes().decode("utf-8", "replace")]
    for log in (platform.state_dir / "logs").glob("*.log"):
        parts.append(log.read_text(errors="replace"))
    return "\n".join(parts)


@pytest.mark.retention("chat")
def test_chat_to_everyone_and_privately_as_text_and_never_stored(playwright: Any, pbx: PbxClient, platform: Platform) -> None:
    with _room(playwright, pbx, "Ada", "Bob", "Eve") as (browser, url, [(ada, ada_id), (bob, bob_id), (eve, _)]):
        public = f"<b>hello</b> & <img src=x onerror=alert(1)> {secrets.token_hex(8)}"
        private = f"just for Bob {secrets.token_hex(8)}"
        _say(ada, public)
        wait_for(
            "the message everywhere",
            lambda: all(any(m["text"] == public for m in _messages(p)) for p in (ada, bob, eve)),
            TIMEOUT_S,
        )
        for page in (bob, eve):
            shown = next(m for m in _messages(page) if m["text"] == public)
            assert shown["from"] == ada_id and not shown["private"]
            assert "<b>" not in shown["html"] and "<img" not in shown["html"]  # text, never HTML
        _say(ada, private, to=bob_id)
        for page in (bob, ada):  # the recipient, and the sender's own copy
            wait_for(
                "the private message", lambda p=page: any(m["text"] == private and m["private"] for m in _messages(p)), TIMEOUT_S
            )
        late = join(browser, url, "Late")
        _in_meeting(late, 4)
        wait_for("the history for a late joiner", lambda: any(m["text"] == public for m in _messages(late)), TIMEOUT_S)
        assert all(m["text"] != private for m in _messages(late)) and all(m["text"] != private for m in _messages(eve))
        for page in (ada, bob, eve, late):
            page.click("button[data-testid=leave]")

    def stored_with_the_session() -> str | None:  # the search covers the session: its events are there
        text = _everything_stored(platform)
        return text if ada_id in text and bob_id in text else None

    stored = wait_for("the session's events stored", stored_with_the_session, TIMEOUT_S)
    for text in (public, private):
        assert text.split()[-1] not in stored  # the unique part of each message, anywhere


def test_hands_and_reactions(playwright: Any, pbx: PbxClient) -> None:
    with _room(playwright, pbx, "Ada", "Bob") as (_, _, [(ada, ada_id), (bob, bob_id)]):
        entry = f"[data-testid=participant][data-participant-id='{bob_id}']"
        bob.click("button[data-testid=raise-hand]")
        wait_for("Bob's hand up for Ada", lambda: ada.get_attribute(entry, "data-hand") == "up", TIMEOUT_S)
        assert ada.get_attribute(f"[data-testid=participant][data-participant-id='{ada_id}']", "data-role") == "organizer"
        assert bob.get_attribute(entry, "data-role") == "participant"
        ada.click(f"{entry} button[data-testid=lower-hand]")  # the organizer lowers it
        wait_for(
            "Bob's hand down for both", lambda: all(p.get_attribute(entry, "data-hand") == "down" for p in (ada, bob)), TIMEOUT_S
        )
        assert bob.text_content("button[data-testid=raise-hand]") == "Raise hand"
        assert bob.query_selector("button[data-testid=lower-hand]") is None  # a participant lowers no one's
        bob.click("button[data-testid=react][data-emoji='👏']")
        wait_for(
            "Bob's reaction on Ada's screen",
            lambda: ada.query_selector(f"[data-testid=reaction][data-from='{bob_id}']") is not None,
            TIMEOUT_S,
        )
        assert ada.text_content(f"[data-testid=reaction][data-from='{bob_id}']") == "👏"


def test_prejoin_chooses_devices_and_joins_with_camera_and_microphone_off(playwright: Any, pbx: PbxClient) -> None:
    with _room(playwright, pbx, "Ada") as (browser, url, [(ada, _)]):
        bob = browser.new_page()
        bob.goto(url)
        wait_for(
            "the camera preview",
            lambda: bob.evaluate("document.querySelector('[data-testid=preview]').videoWidth") > 0,
            TIMEOUT_S,
        )
        cameras = bob.eval_on_selector_all("select[data-testid=camera-select] option", "os => os.map(o => o.value)")
        mics = bob.eval_on_selector_all("select[data-testid=mic-select] option", "os => os.map(o => o.value)")
        assert cameras and mics
        wait_for(
            "the microphone level moving",
            lambda: float(bob.get_attribute("[data-testid=mic-level]", "data-level") or 0) > 0.02,
            TIMEOUT_S,
        )
        bob.select_option("select[data-testid=camera-select]", cameras[-1])  # a chosen camera replaces the preview's
        wait_for(
            "the chosen camera", lambda: bob.evaluate("document.querySelector('[data-testid=preview]').videoWidth") > 0, TIMEOUT_S
        )
        bob.select_option("select[data-testid=mic-select]", mics[-1])
        bob.uncheck("[data-testid=prejoin-camera]")
        bob.uncheck("[data-testid=prejoin-mic]")
        bob.fill("input[name=display_name]", "Bob")
        bob.click("button[data-testid=join]")
        bob_id = _in_meeting(bob, 2)
        entry = f"[data-testid=participant][data-participant-id='{bob_id}']"
        wait_for("Bob muted for Ada", lambda: "muted" in (ada.text_content(entry) or ""), TIMEOUT_S)
        wait_for(
            "Bob's camera off for Ada",
            lambda: ada.evaluate(
                f"document.querySelector(\"video[data-participant-id='{bob_id}']\")?.parentElement.classList.contains('video-off')"
            ),
            TIMEOUT_S,
        )
        assert bob.text_content("button[data-testid=toggle-audio]") == "Unmute"
        assert bob.text_content("button[data-testid=toggle-video]") == "Start video"
        kept = bob.evaluate(
            "async () => [document.cookie, localStorage.length, sessionStorage.length, (await indexedDB.databases()).length]"
        )
        assert kept == ["", 0, 0, 0]  # nothing of the choice is kept beyond the tab


def _audio_packets(page: Page, publisher_id: str) -> int:
    stats = page.evaluate("window.webmeeting.stats()")
    entry = stats.get(publisher_id) or {}
    return int((entry.get("audio") or {}).get("packets", 0))


def _audio_flows(page: Page, publisher_id: str, seconds: float = 1.5) -> bool:
    before = _audio_packets(page, publisher_id)
    page.wait_for_timeout(int(seconds * 1000))
    return _audio_packets(page, publisher_id) > before + 5


def test_moderation_mute_remove_lock(playwright: Any, pbx: PbxClient) -> None:
    with _room(playwright, pbx, "Ada", "Bob", "Eve") as (browser, url, [(ada, _), (bob, bob_id), (eve, eve_id)]):
        wait_for("Bob's audio reaching Eve", lambda: _audio_flows(eve, bob_id), TIMEOUT_S)
        assert bob.query_selector("button[data-testid=mute-participant]") is None  # organizer-only tools
        # promote: Bob a presenter for everyone, kept by the room; and back
        bob_entry = f"[data-testid=participant][data-participant-id='{bob_id}']"
        ada.click(f"{bob_entry} button[data-testid=promote-participant]")
        for page in (ada, bob, eve):
            wait_for("Bob a presenter", lambda p=page: p.get_attribute(bob_entry, "data-role") == "presenter", TIMEOUT_S)
        ada.click(f"{bob_entry} button[data-testid=demote-participant]")
        wait_for("Bob a participant again", lambda: eve.get_attribute(bob_entry, "data-role") == "participant", TIMEOUT_S)
        # mute someone: their audio stops arriving; they may unmute themselves
        ada.click(f"[data-testid=participant][data-participant-id='{bob_id}'] button[data-testid=mute-participant]")
        wait_for("Bob told he is muted", lambda: bob.text_content("button[data-testid=toggle-audio]") == "Unmute", TIMEOUT_S)
        wait_for("Bob's audio stopped for Eve", lambda: not _audio_flows(eve, bob_id), TIMEOUT_S)
        bob.click("button[data-testid=toggle-audio]")
        wait_for("Bob's audio back for Eve", lambda: _audio_flows(eve, bob_id), TIMEOUT_S)
        # mute everyone
        ada.click("button[data-testid=mute-all]")
        for page in (bob, eve):
            wait_for("everyone muted", lambda p=page: p.text_content("button[data-testid=toggle-audio]") == "Unmute", TIMEOUT_S)
        # remove someone: that page is out and does not come back
        ada.click(f"[data-testid=participant][data-participant-id='{eve_id}'] button[data-testid=remove-participant]")
        eve.wait_for_selector("[data-testid=removed]", state="visible", timeout=TIMEOUT_S * 1000)
        wait_for("Eve gone for the others", lambda: ada.text_content("[data-testid=participant-count]") == "2", TIMEOUT_S)
        ada.wait_for_timeout(3000)
        assert ada.text_content("[data-testid=participant-count]") == "2" and eve.is_visible("[data-testid=removed]")
        # a fresh join of hers (a new tab) waits at the door: the removal turned the lobby on
        eve_again = join(browser, url, "Eve")
        eve_again.wait_for_selector("[data-testid=lobby-waiting]", state="visible", timeout=TIMEOUT_S * 1000)
        _turn_away(ada, eve_again)
        # lock: nobody new comes in; unlocked, they do (through the lobby, which is still on)
        ada.click("button[data-testid=lock-meeting]")
        wait_for("locked for Bob", lambda: bob.is_visible("[data-testid=locked-indicator]"), TIMEOUT_S)
        kim = join(browser, url, "Kim")
        wait_for("Kim refused", lambda: "locked" in (kim.text_content("#left-reason") or ""), TIMEOUT_S)
        ada.click("button[data-testid=lock-meeting]")
        kim.click("#rejoin")
        kim.wait_for_selector("[data-testid=lobby-waiting]", state="visible", timeout=TIMEOUT_S * 1000)
        ada.click("[data-testid=lobby-entry] button[data-testid=admit]")
        _in_meeting(kim, 3)


def _turn_away(doorman: Page, waiting: Page) -> None:
    doorman.wait_for_selector("[data-testid=lobby-entry]", timeout=TIMEOUT_S * 1000)
    doorman.click("[data-testid=lobby-entry] button[data-testid=reject]")
    waiting.wait_for_selector("[data-testid=lobby-rejected]", state="visible", timeout=TIMEOUT_S * 1000)
    assert not waiting.is_visible("[data-testid=lobby-waiting]") and not waiting.is_visible("#meeting")
    wait_for("the door empty", lambda: doorman.query_selector("[data-testid=lobby-entry]") is None, TIMEOUT_S)


def test_lobby_from_the_pbx_admit_and_reject(playwright: Any, pbx: PbxClient) -> None:
    pbx.sync([ext("101")])
    created = pbx.put_meeting(f"lobby-{secrets.token_hex(4)}", meeting(name="Board meeting", lobby=True))
    assert created.status_code in (200, 201), created.text
    links = created.json()
    browser = launch(playwright)
    try:
        ada = join(browser, links["organizer_url"], "Ada")
        ada_id = _in_meeting(ada, 1)  # the organizer never waits
        grace = join(browser, links["url"], "Grace")
        grace.wait_for_selector("[data-testid=lobby-waiting]", state="visible", timeout=TIMEOUT_S * 1000)
        # waiting: the title and her own preview, nothing of the meeting
        assert "Board meeting" in grace.text_content("[data-testid=lobby-waiting]")
        assert grace.evaluate("document.getElementById('lobby-preview').srcObject !== null")
        assert not grace.is_visible("#meeting") and grace.query_selector(f"[data-participant-id='{ada_id}']") is None
        grace.wait_for_timeout(1000)
        assert grace.evaluate("window.webmeeting.stats()") == {}  # no media reaches her
        # the organizer is told, and lets her in: she joins without reloading
        ada.wait_for_selector("[data-testid=lobby-entry]", timeout=TIMEOUT_S * 1000)
        assert ada.is_visible("[data-testid=lobby-notice]") and "Grace" in ada.text_content("[data-testid=lobby-notice]")
        ada.click("[data-testid=lobby-entry] button[data-testid=admit]")
        _in_meeting(grace, 2)
        wait_for("Ada's video at Grace", lambda: _frames(grace, ada_id) > 5, TIMEOUT_S)
        assert not ada.is_visible("[data-testid=lobby-notice]")
        # someone turned away sees so, and is not in
        bob = join(browser, links["url"], "Bob")
        bob.wait_for_selector("[data-testid=lobby-waiting]", state="visible", timeout=TIMEOUT_S * 1000)
        _turn_away(ada, bob)
        assert ada.text_content("[data-testid=participant-count]") == "2"
        # the organizer opens the door: the next one comes straight in
        ada.click("button[data-testid=lobby-toggle]")
        wait_for("lobby off", lambda: ada.get_attribute("button[data-testid=lobby-toggle]", "aria-pressed") == "false", TIMEOUT_S)
        kim = join(browser, links["url"], "Kim")
        _in_meeting(kim, 3)
    finally:
        close(browser)


def _frames(page: Page, participant_id: str, selector: str = "video[data-participant-id='{id}']", ms: int = 500) -> int:
    """Video frames ``page`` shows in one element within ``ms``."""
    return int(
        page.evaluate(
            """async ([sel, ms]) => { const v = document.querySelector(sel); if (!v) return 0;
                 let n = 0; const end = performance.now() + ms;
                 await new Promise((resolve) => { const tick = (now) => { n += 1; if (now < end) v.requestVideoFrameCallback(tick); else resolve(); };
                   v.requestVideoFrameCallback(tick); setTimeout(resolve, ms + 1000); });
                 return n; }""",
            [selector.format(id=participant_id), ms],
        )
    )


def _screen_shown(page: Page, sharer: str) -> bool:
    """The sharer's screen plays at its own size (a screen sends new frames when it changes: a
    few a second for Chromium's fake one)."""
    sel = f"video[data-screen-of='{sharer}']"
    width = page.evaluate(f'document.querySelector("{sel}")?.videoWidth || 0')
    return width >= 640 and _frames(page, sharer, sel, ms=2000) >= 2


def _width(page: Page, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    return float(box["width"]) if box else 0.0


def test_screen_share_large_for_everyone_one_at_a_time_and_the_organizer_stops_it(playwright: Any, pbx: PbxClient) -> None:
    with _room(playwright, pbx, "Ada", "Grace") as (_, _, [(ada, ada_id), (grace, grace_id)]):
        assert ada.is_visible("button[data-testid=share-screen]") and not grace.is_visible("button[data-testid=share-screen]")
        ada.click("button[data-testid=share-screen]")
        screen = "video[data-screen-of='{id}']"
        wait_for("Ada's screen at Grace", lambda: _screen_shown(grace, ada_id), TIMEOUT_S)
        own = f'document.querySelector("{screen.format(id=ada_id)}")?.srcObject?.getVideoTracks()[0]?.readyState'
        assert ada.evaluate(own) == "live"  # the sharer sees what they share
        # large for everyone, the people small
        camera = f"video[data-participant-id='{ada_id}']"
        assert _width(grace, screen.format(id=ada_id)) > 2 * _width(grace, camera) > 0
        assert grace.evaluate("document.getElementById('meeting').classList.contains('presenting')")
        size = grace.evaluate(
            f'(() => {{ const v = document.querySelector("{screen.format(id=ada_id)}"); return [v.videoWidth, v.videoHeight]; }})()'
        )
        assert size[0] > size[1] > 0 and size[0] >= 640  # the screen's picture, not a camera thumbnail
        # a presenter may share, but not while someone else does
        ada.click(f"[data-testid=participant][data-participant-id='{grace_id}'] button[data-testid=promote-participant]")
        wait_for("Grace may share", lambda: grace.is_visible("button[data-testid=share-screen]"), TIMEOUT_S)
        assert grace.is_disabled("button[data-testid=share-screen]")
        ada.click("button[data-testid=share-screen]")  # Ada stops
        for page in (ada, grace):
            wait_for("the share over", lambda p=page: p.query_selector("video[data-screen-of]") is None, TIMEOUT_S)
        wait_for("Grace may share now", lambda: grace.is_enabled("button[data-testid=share-screen]"), TIMEOUT_S)
        grace.click("button[data-testid=share-screen]")
        wait_for("Grace's screen at Ada", lambda: _screen_shown(ada, grace_id), TIMEOUT_S)
        assert grace.is_visible("[data-testid=stage]")
        # the organizer stops anyone's share
        ada.click(f"[data-testid=participant][data-participant-id='{grace_id}'] button[data-testid=stop-screen-participant]")
        for page in (ada, grace):
            wait_for("Grace's share stopped", lambda p=page: p.query_selector("video[data-screen-of]") is None, TIMEOUT_S)
        wait_for(
            "Grace's button reset", lambda: grace.text_content("button[data-testid=share-screen]") == "Share screen", TIMEOUT_S
        )


def test_the_active_speaker_is_shown(playwright: Any, pbx: PbxClient) -> None:
    with _room(playwright, pbx, "Ada", "Bob") as (_, _, [(ada, _), (bob, bob_id)]):
        entry = f"[data-testid=participant][data-participant-id='{bob_id}']"
        # the fake microphone beeps: Bob speaks, then he is silent between beeps
        wait_for("Bob speaking for Ada", lambda: ada.get_attribute(entry, "data-speaking") == "true", TIMEOUT_S)
        wait_for("Bob silent for Ada", lambda: ada.get_attribute(entry, "data-speaking") == "false", TIMEOUT_S)
        ada.click("button[data-testid=layout]")  # the speaker layout: the latest speaker large
        wait_for(
            "Bob's tile large",
            lambda: ada.evaluate(
                f"document.querySelector(\"video[data-participant-id='{bob_id}']\").parentElement.classList.contains('main')"
            ),
            TIMEOUT_S,
        )
        bob.click("button[data-testid=toggle-audio]")  # muted: never shown speaking
        ada.wait_for_timeout(1500)
        samples = []
        for _ in range(10):
            samples.append(ada.get_attribute(entry, "data-speaking"))
            ada.wait_for_timeout(200)
        assert set(samples) == {"false"}, samples


def test_phone_width_tabs_by_keyboard_and_connection_quality(playwright: Any, pbx: PbxClient) -> None:
    """At 390 px the side panels are tabs (one panel shown, arrow keys move between them, nothing
    wider than the screen); each person's connection quality is shown, with a text label."""
    url, organizer_url = _links(pbx)
    desk, phone = launch(playwright), launch(playwright, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        ada = join(desk, organizer_url, "Ada")
        ada_id = _in_meeting(ada, 1)
        bob = join(phone, url, "Bob")
        bob_id = _in_meeting(bob, 2)
        assert bob.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows the phone
        assert bob.is_visible("#panel-people") and not bob.is_visible("#panel-chat")
        bob.focus("[data-testid=tab-people]")
        bob.keyboard.press("ArrowRight")
        assert bob.get_attribute("[data-testid=tab-chat]", "aria-selected") == "true"
        assert bob.evaluate("document.activeElement.id") == "tab-chat"
        assert bob.is_visible("textarea[data-testid=chat-input]") and not bob.is_visible("#panel-people")
        bob.keyboard.press("End")
        assert bob.is_visible("#panel-polls") and not bob.is_visible("#panel-chat")
        bob.keyboard.press("ArrowRight")  # wraps around
        assert bob.is_visible("#panel-people")
        # a chat message while the chat is not shown is counted on its tab
        ada.fill("textarea[data-testid=chat-input]", "hello Bob")
        ada.click("button[data-testid=chat-send]")
        wait_for("unread counted", lambda: bob.text_content("#chat-unread") == "1", TIMEOUT_S)
        bob.click("[data-testid=tab-chat]")
        assert not bob.is_visible("#chat-unread")
        # connection quality on loopback: good, for each person, with a label
        for page, other in ((ada, bob_id), (bob, ada_id)):
            entry = f"[data-testid=participant][data-participant-id='{other}']"
            wait_for("quality shown", lambda p=page, e=entry: p.get_attribute(e, "data-quality") == "good", TIMEOUT_S)
            assert page.get_attribute(f"{entry} .quality", "aria-label") == "good connection"
        assert ada.evaluate("window.webmeeting.quality()")[bob_id] == "good"
        # every control has a name a screen reader can say
        unnamed = ada.evaluate(
            """[...document.querySelectorAll('#meeting button, #meeting input, #meeting select, #meeting textarea')]
                 .filter((e) => e.offsetParent !== null && e.type !== 'hidden')
                 .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || e.labels?.length || e.placeholder))
                 .map((e) => e.outerHTML.slice(0, 80))"""
        )
        assert unnamed == []
    finally:
        close(desk)
        close(phone)
