"""Real browsers meet through the MCU: headless Chromium with fake camera and microphone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import FRAME_COUNTS_JS, close, drop_connections, join, launch
from tests.helpers import ext, meeting_events

pytestmark = pytest.mark.e2e
MEDIA_TIMEOUT_S = 20


@pytest.fixture
def meeting_url(pbx: PbxClient) -> str:
    return str(pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"])


@pytest.fixture
def playwright() -> Iterator[Any]:
    with sync_playwright() as pw:
        yield pw


def _wait(pred: Any, what: str, timeout: float = MEDIA_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _count(page: Page) -> int:
    return int(page.text_content("[data-testid=participant-count]") or 0)


def _assert_media(page: Page, others: int) -> None:
    """Every remote participant's video decodes at the sent resolution, and audio arrives."""
    sent = page.evaluate("window.webmeeting.localSettings()")

    def flowing() -> bool:
        stats = page.evaluate("window.webmeeting.stats()")
        return len(stats) == others and all(
            s["video"] and s["video"]["framesDecoded"] > 10 and s["audio"] and s["audio"]["samples"] > 0 for s in stats.values()
        )

    _wait(flowing, "video frames and audio from every remote participant")
    frames: dict[str, Any] = {}

    def rendering() -> bool:  # every tile paints frames (a stall right after a reconnect may pass, a frozen one not)
        nonlocal frames
        frames = page.evaluate(FRAME_COUNTS_JS, 1000)
        return len(frames) == others and all(c["frames"] > 5 for c in frames.values())

    _wait(rendering, "every remote video rendering frames")
    for counted in frames.values():
        assert (counted["width"], counted["height"]) == (sent["width"], sent["height"]) == (640, 360), frames
    assert page.evaluate("document.cookie") == ""


def _meet(playwright: Any, url: str, names: list[str]) -> tuple[list[Any], list[Page], list[str]]:
    browsers = [launch(playwright) for _ in names]
    set_cookies: list[str] = []
    pages = []
    for browser, name in zip(browsers, names, strict=True):
        page = join(browser, url, name)
        page.on("response", lambda r: set_cookies.append(r.url) if "set-cookie" in r.headers else None)
        pages.append(page)
    return browsers, pages, set_cookies


@pytest.mark.parametrize("people", [2, 3])
def test_people_meet_see_and_hear_each_other_and_leave(playwright: Any, meeting_url: str, people: int) -> None:
    names = ["Ada", "Grace", "Katherine"][:people]
    browsers, pages, set_cookies = _meet(playwright, meeting_url, names)
    try:
        for page in pages:
            _wait(lambda p=page: _count(p) == people, f"participant count {people}")
            assert page.locator("video[data-participant-id]").count() == people - 1
        for page in pages:
            _assert_media(page, people - 1)
        pages[-1].click("button[data-testid=leave]")
        for page in pages[:-1]:
            _wait(lambda p=page: _count(p) == people - 1, "the leaver to disappear")
            assert page.locator("video[data-participant-id]").count() == people - 2
        assert set_cookies == []
    finally:
        for b in browsers:
            close(b)


def test_mute_is_shown_to_others(playwright: Any, meeting_url: str) -> None:
    browsers, pages, _ = _meet(playwright, meeting_url, ["Ada", "Grace"])
    try:
        _wait(lambda: _count(pages[1]) == 2, "both in the meeting")
        pages[0].click("button[data-testid=toggle-audio]")
        _wait(lambda: "muted" in (pages[1].text_content("[data-testid=participant-list]") or ""), "the mute to show")
    finally:
        for b in browsers:
            close(b)


def test_the_mcu_never_decodes(playwright: Any, meeting_url: str, platform: Platform) -> None:
    import requests

    browsers, pages, _ = _meet(playwright, meeting_url, ["Ada", "Grace"])
    try:
        for page in pages:
            _assert_media(page, 1)
        health = requests.get(platform.endpoints["mcus"][0]["health"], timeout=5).json()
        assert health["forwarded_streams"] == 4 and health["participants"] == 2
        assert health["decoders_created"] == 0
    finally:
        for b in browsers:
            close(b)


def test_a_dropped_participant_reconnects_on_its_own(playwright: Any, meeting_url: str, platform: Platform) -> None:

    browsers, pages, _ = _meet(playwright, meeting_url, ["Ada", "Grace"])
    try:
        for page in pages:
            _assert_media(page, 1)
        ada = pages[0]
        mcu_port = int(platform.endpoints["mcus"][0]["url"].rsplit(":", 1)[1].split("/")[0])
        assert drop_connections(browsers[0], mcu_port) == 1
        _wait(lambda: ada.text_content("[data-testid=connection-state]") == "connected", "Ada to reconnect")
        for page in pages:
            _wait(lambda p=page: _count(p) == 2, "both back in the meeting")
            _assert_media(page, 1)
        _wait(
            lambda: any(e["type"] == "reconnected" for e in meeting_events(meeting_url.rsplit("/", 1)[1])),
            "a reconnected event",
            timeout=5,
        )
        events = meeting_events(meeting_url.rsplit("/", 1)[1])
        assert {e["name"] for e in events if e["type"] == "reconnected"} == {"Ada"}
    finally:
        for b in browsers:
            close(b)
