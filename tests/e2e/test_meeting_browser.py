"""Real browsers meet through the MCU: headless Chromium with fake camera and microphone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import FRAME_COUNTS_JS, close, drop_connections, join, launch
from tests.helpers import ext, meeting_events, wait_for

pytestmark = pytest.mark.e2e
MEDIA_TIMEOUT_S = 20


@pytest.fixture
def meeting_url(pbx: PbxClient) -> str:
    return str(pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"])


def _wait(pred: Any, what: str, timeout: float = MEDIA_TIMEOUT_S) -> Any:
    return wait_for(what, pred, timeout)


def _count(page: Page) -> int:
    return int(page.text_content("[data-testid=participant-count]") or 0)


def _assert_media(page: Page, others: int, publishers: list[Page] | None = None) -> None:
    """Every remote participant's video decodes at the sent resolution, and audio arrives.

    The camera captures 640x360. Without ``publishers`` every tile must decode exactly that.
    With them (rooms of three browsers on two cores, where Chromium's encoder may scale down for
    CPU), every tile must decode exactly what its publisher's encoder sends at that moment: the
    MCU forwards, it never rescales."""

    def flowing() -> bool:
        stats = page.evaluate("window.webmeeting.stats()")
        return len(stats) == others and all(
            s["video"] and s["video"]["framesDecoded"] > 10 and s["audio"] and s["audio"]["samples"] > 0 for s in stats.values()
        )

    _wait(flowing, "video frames and audio from every remote participant")
    sent = _wait(lambda: page.evaluate("window.webmeeting.localSettings()"), "the page's own camera")
    frames: dict[str, Any] = {}

    def rendering() -> bool:  # every tile paints frames (a stall right after a reconnect may pass, a frozen one not)
        nonlocal frames
        frames = page.evaluate(FRAME_COUNTS_JS, 1000)
        return len(frames) == others and all(c["frames"] > 5 for c in frames.values())

    _wait(rendering, "every remote video rendering frames")
    assert (sent["width"], sent["height"]) == (640, 360)
    if publishers is None:
        for counted in frames.values():
            assert (counted["width"], counted["height"]) == (640, 360), frames
    else:
        encoders = {e["me"]: e for e in (p.evaluate("window.webmeeting.sent()") for p in publishers) if e}

        def same_as_sent() -> bool:
            nonlocal frames
            frames = page.evaluate(FRAME_COUNTS_JS, 500)
            now = {e["me"]: e for e in (p.evaluate("window.webmeeting.sent()") for p in publishers) if e}
            encoders.update(now)
            return all((c["width"], c["height"]) == (now[pid]["width"], now[pid]["height"]) for pid, c in frames.items())

        _wait(same_as_sent, f"every tile at its publisher's encoded size ({encoders}, {frames})", timeout=10)
        for pid, counted in frames.items():
            full = (counted["width"], counted["height"]) == (640, 360)
            assert full or encoders[pid]["limitation"] in ("cpu", "bandwidth"), (frames, encoders)
    assert page.evaluate("document.cookie") == ""


def _back_in_meeting(pages: list[Page], since: float, budget_s: float) -> float:
    """Every page connected again with everyone, seeing and hearing them, within ``budget_s`` of
    ``since`` (monotonic); returns how long it took."""
    for page in pages:
        _wait(
            lambda p=page: p.text_content("[data-testid=connection-state]") == "connected" and _count(p) == len(pages),
            "everyone back in the meeting",
            timeout=budget_s,
        )
    for page in pages:
        _assert_media(page, len(pages) - 1)
    elapsed = time.monotonic() - since
    assert elapsed < budget_s, elapsed
    return elapsed


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
            _assert_media(page, people - 1, pages if people > 2 else None)
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
        mcu = platform.endpoints["mcus"][0]
        status = lambda: requests.get(mcu["status"], timeout=5).json()  # noqa: E731
        # (an earlier test's pages may still be leaving this MCU: their sockets close as they end)
        wait_for("only this meeting on the MCU", lambda: status()["participants"] == 2, timeout=20)
        health = status()
        assert health["forwarded_streams"] == 4
        assert health["decoders_created"] == 0
        # its load is counted in forwarded streams, in its health check and in what the portal holds
        assert requests.get(mcu["health"], timeout=5).json()["load"] == 4
        from webmeeting.adapters import firestore as fs

        wait_for("the heartbeat's load", lambda: fs.data(fs.mcus().document(mcu["id"]).get()).get("load") == 4, timeout=15)
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


def test_dial_in_is_shown_to_the_organizer_only(playwright: Any, pbx: PbxClient, platform: Platform) -> None:
    numbers = {"conference_number": "812", "dial_in": [{"country": "AT", "number": "+43 1 9876543"}]}
    platform.register_pbx("pbx.example.com", pbx.pbx_id, pbx.api_secret, numbers)
    links = pbx.sync([ext("101")]).json()["extensions"][0]
    organizer_ctx, participant_ctx = launch(playwright), launch(playwright)
    received: list[str] = []
    try:
        organizer = join(organizer_ctx, links["quick_meeting_organizer_url"], "Ada")
        participant_page = participant_ctx.new_page()

        def keep(response: Any) -> None:
            if response.request.resource_type in ("fetch", "xhr", "document"):
                received.append(response.text())

        participant_page.on("response", keep)
        participant_page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: received.append(str(payload))))
        participant_page.goto(links["quick_meeting_url"])
        participant_page.fill("input[name=display_name]", "Grace")
        participant_page.click("button[data-testid=join]")
        organizer.wait_for_selector("[data-testid=dialin]", timeout=MEDIA_TIMEOUT_S * 1000)
        _wait(
            lambda: "+43 1 9876543" in (organizer.text_content("[data-testid=dialin]") or ""),
            "the numbers on the organizer's page",
        )
        assert "812" in (organizer.text_content("[data-testid=dialin]") or "")
        _wait(lambda: _count(participant_page) == 2, "the participant in the meeting")
        time.sleep(2)  # time enough for anything the participant might be sent
        assert participant_page.locator("[data-testid=dialin]").count() == 0
        assert "9876543" not in participant_page.content()
        assert received and not [r for r in received if "9876543" in r]
    finally:
        close(organizer_ctx)
        close(participant_ctx)


def test_polls_files_and_documents_in_the_meeting(playwright: Any, pbx: PbxClient, platform: Platform, tmp_path: Any) -> None:
    import requests as http

    from infra.launcher import FILES_BUCKET
    from webmeeting.adapters import storage

    pbx.sync([ext("101")])
    created = pbx.put_meeting(
        "m-share", {"organizer": "101", "name": "Sharing", "scheduled_start": "2026-12-01T09:00:00Z", "duration_minutes": 60}
    )
    links = created.json()
    organizer_ctx, participant_ctx = launch(playwright), launch(playwright)
    upload = tmp_path / "minutes.txt"
    upload.write_bytes(b"line one\nline two\n" * 100)
    pdf = tmp_path / "slides.pdf"
    pdf.write_bytes(PDF_DOC)
    try:
        ada = join(organizer_ctx, links["organizer_url"], "Ada")
        grace = join(participant_ctx, links["url"], "Grace")
        for page in (ada, grace):
            _wait(lambda p=page: _count(p) == 2, "both in the meeting")
        # a poll: created and run by the organizer, voted by both, results for both
        ada.fill("#poll-form input[name=question]", "Ship on Thursday?")
        ada.fill("#poll-form input[name=options]", "Yes, No")
        ada.click("button[data-testid=create-poll]")
        ada.wait_for_selector("button[data-testid=edit-poll]", timeout=10000)
        ada.click("button[data-testid=edit-poll]")  # edited from the page
        ada.fill("#poll-form input[name=question]", "Ship on Friday?")
        ada.click("button[data-testid=create-poll]")
        _wait(lambda: (ada.text_content("[data-testid=poll]") or "").startswith("Ship on Friday?"), "the edited poll")
        ada.click("button[data-testid=run-poll]")
        grace.wait_for_selector("button[data-testid=vote-1]", timeout=10000)
        grace.click("button[data-testid=vote-1]")
        ada.wait_for_selector("button[data-testid=vote-0]", timeout=10000)
        ada.click("button[data-testid=vote-0]")
        for page in (ada, grace):
            _wait(
                lambda p=page: p.locator("[data-testid=poll-result]").all_text_contents() == ["Yes: 1 (50 %)", "No: 1 (50 %)"],
                "the poll results",
            )
        assert grace.locator("button[data-testid=poll-report]").count() == 0
        with ada.expect_download() as report:
            ada.click("button[data-testid=poll-report]")
        assert Path(report.value.path()).read_bytes().startswith(b"%PDF")
        ada.click("button[data-testid=delete-poll]")  # deleted from the page, with its results
        _wait(
            lambda: ada.locator("[data-testid=poll]").count() == 0 and grace.locator("[data-testid=poll-result]").count() == 0,
            "the poll gone",
        )
        # a file: uploaded by Grace, downloaded by Ada, byte for byte; its name never leaves Grace's browser
        sent: list[str] = []
        grace.on("request", lambda r: sent.append(r.url + str(r.headers)))
        grace.set_input_files("input[data-testid=file-input]", str(upload))
        ada.wait_for_selector("[data-testid=file-list] a", timeout=10000)
        href = ada.get_attribute("[data-testid=file-list] a", "href")
        assert http.get(str(href), timeout=10).content == upload.read_bytes()
        assert any("/api/meet/v1/files?ext=txt" in s for s in sent) and not [s for s in sent if "minutes" in s]
        # a document: shared by the organizer, rendered for the participant
        ada.set_input_files("input[data-testid=pdf-input]", str(pdf))
        _wait(lambda: grace.get_attribute("[data-testid=pdf-view]", "data-pages") == "1", "the document rendered")
        assert int(grace.evaluate("document.querySelector('[data-testid=pdf-view]').width")) > 100
        file_objects = [b.name for b in storage.client().list_blobs(FILES_BUCKET) if b.name.startswith("files/")]
        pdf_objects = [b.name for b in storage.client().list_blobs(FILES_BUCKET) if b.name.startswith("pdfs/")]
        assert len(file_objects) == 1 and len(pdf_objects) == 1
        for page in (ada, grace):
            page.click("button[data-testid=leave]")
    finally:
        close(organizer_ctx)
        close(participant_ctx)
    # after both left: the shared file is gone, the document stays until the meeting is deleted
    _wait(lambda: not storage.exists(FILES_BUCKET, file_objects[0]), "the shared file to be deleted")
    assert storage.exists(FILES_BUCKET, pdf_objects[0])
    assert pbx.delete_meeting("m-share").status_code == 204
    assert not storage.exists(FILES_BUCKET, pdf_objects[0])


PDF_DOC = b"""%PDF-1.4
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >> endobj
4 0 obj << /Length 44 >> stream
BT /F1 24 Tf 40 100 Td (Hello slides) Tj ET
endstream endobj
5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj
trailer << /Root 1 0 R >>
%%EOF
"""
