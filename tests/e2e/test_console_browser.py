"""The operator console in headless Chromium against the launched platform: a real meeting (two
aiortc participants on the MCU, a recording converted to MP4, its report), looked at by support
and by an admin through the front door's dev sign-in (the local stand-in for IAP).

Support sees names, emails and IPs redacted only, cannot open a recording, export, erase or read
the audit log; the admin sees them in full, opens the recording through a signed link, erases an
address and deletes the PBX, each after a confirmation step; every access is in the audit log; a
caller without a role gets 403 and nothing else; no page sets a cookie."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiortc.mediastreams import AudioStreamTrack

from infra.chromium import close, launch
from infra.launcher import Platform
from infra.mcu_client import FlatVideoTrack, McuClient, record
from infra.pbx_client import PbxClient
from mcu_vm import net
from tests.helpers import ext, meeting, wait_for
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.e2e
SUPPORT, ADMIN, NOBODY = "support@webmeeting.local", "admin@webmeeting.local", "nobody@example.com"
ALICE, GRACE = "Alice Liddell", "Grace Hopper"
GRACE_EMAIL = "grace@example.org"


@pytest.fixture(autouse=True)
def loopback_ice() -> None:
    net.use_addresses(["127.0.0.1"])


class Recorded:
    """A scheduled meeting with an invitee; Alice (organizer) and Grace meet on the MCU with
    audio and video, Alice records 2 s; they stay connected until ``leave``."""

    def __init__(self, platform: Platform, pbx: PbxClient) -> None:
        pbx.sync([ext("101", "Alice", "Liddell", email="alice@example.com")])
        body = pbx.put_meeting("console-1", meeting(participants=[{"name": GRACE, "email": GRACE_EMAIL}])).json()
        self.key = body["meeting_key"]
        secret = body["organizer_url"].split("#organizer=")[1]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        portal = platform.endpoints["portal"]
        self.alice, self.grace = McuClient(portal, self.key, ALICE), McuClient(portal, self.key, GRACE)

        async def start() -> str:
            await self.alice.join(organizer_secret=secret)
            await self.grace.join()
            await self.alice.publish([AudioStreamTrack(), FlatVideoTrack(120)])
            await self.grace.publish([AudioStreamTrack(), FlatVideoTrack(180)])
            while not ((got := self.grace.received.get(self.alice.joined["participant_id"])) and got.kinds.get("video", 0) > 10):
                await asyncio.sleep(0.2)
            started = await record(self.alice, "start")
            await asyncio.sleep(2)
            await record(self.alice, "stop")
            return str(started["recording_id"])

        self.recording_id = self.run(start(), 60)

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def leave(self) -> None:
        if not self.thread.is_alive():
            return

        async def bye() -> None:
            await self.alice.close()
            await self.grace.close()

        self.run(bye())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def recorded(platform: Platform, pbx: PbxClient) -> Iterator[Recorded]:
    m = Recorded(platform, pbx)
    yield m
    m.leave()


class Operator:
    """One Chromium signed in through the dev sign-in; every response it gets is kept."""

    def __init__(self, playwright: Any, platform: Platform, email: str) -> None:
        self.base = platform.endpoints["console"]["url"]
        self.context = launch(
            playwright, http_credentials={"username": email, "password": platform.endpoints["console"]["password"]}
        )
        self.responses: list[Any] = []
        self.context.on("response", lambda r: self.responses.append(r))
        self.page = self.context.new_page()

    def open(self, path: str) -> int:
        resp = self.page.goto(self.base + path)
        return int(resp.status)

    def text(self, selector: str = "main") -> str:
        return str(self.page.inner_text(selector))

    def cookies_set(self) -> list[str]:
        return [r.url for r in self.responses if r.header_value("set-cookie")] + [c["name"] for c in self.context.cookies()]

    def close(self) -> None:
        close(self.context)


def audit_entries() -> list[dict[str, Any]]:
    return [fs.data(s) for s in fs.audit().stream()]


def has_entry(operator: str, action: str, outcome: str | None = None) -> bool:
    return any(
        e["operator"] == operator and e["action"] == action and (outcome is None or e["outcome"] == outcome)
        for e in audit_entries()
    )


def test_support_sees_redacted_data_an_admin_acts_everything_is_audited(
    playwright: Any, platform: Platform, pbx: PbxClient, recorded: Recorded
) -> None:
    wait_for(
        "the recording to be ready",
        lambda: fs.data(fs.recordings().document(recorded.recording_id).get()).get("status") == "ready",
        90,
    )
    support, admin, nobody = (Operator(playwright, platform, who) for who in (SUPPORT, ADMIN, NOBODY))
    try:
        # --- a caller without a role: 403 and nothing else ------------------------------------------
        for path in ("", "pbxs", f"meetings?key={recorded.key}", "audit", "assets/console.css"):
            assert nobody.open(path) == 403, path
            assert nobody.text("body").strip() == "no access"
            assert nobody.page.query_selector("header") is None and nobody.page.query_selector("a") is None

        # --- support: redacted only -----------------------------------------------------------------
        assert support.open(f"meetings?key={recorded.key}") == 200
        page = support.text()
        assert ALICE not in page and GRACE not in page and GRACE_EMAIL not in page and "127.0.0.1" not in page
        assert "A**** L******" in page and "G**** H*****" in page  # the display names, as joined
        assert "g****@e******.org" in page and "127.0.x.x" in page
        assert support.page.query_selector("button.link") is None  # no way to a recording's media
        assert support.open("mcus") == 200
        live = support.text(f"[data-mcu='{fs.data(fs.sessions().document(recorded.key).get())['mcu_id']}']")
        assert "A**** L******" in live and ALICE not in live and recorded.key not in live
        assert support.open("recordings?fqdn=pbx.example.com") == 200
        assert recorded.recording_id[:12] in support.text() and support.page.query_selector("button.link") is None
        assert support.open(f"pbxs/{pbx.pbx_id}") == 200
        assert "What is held" in support.text() and "127.0.0.1" not in support.text()
        for path in ("privacy", "audit"):
            assert support.open(path) == 403, path
        # forms posted by hand: refused before anything happens
        refused = support.page.request.post(
            support.base + f"recordings/{recorded.recording_id}/link", form={"token": "1.x"}, fail_on_status_code=False
        )
        assert refused.status == 403
        erase = support.page.request.post(
            support.base + "confirm", form={"what": "erase", "email": GRACE_EMAIL}, fail_on_status_code=False
        )
        assert erase.status == 403
        assert fs.data(fs.meetings().document(recorded.key).get())["invitee_emails"] == [GRACE_EMAIL]

        # --- the admin: in full, and acts after confirming ---------------------------------------------
        assert admin.open(f"meetings?key={recorded.key}") == 200
        page = admin.text()
        assert ALICE in page and GRACE in page and GRACE_EMAIL in page and "127.0.0.1" in page
        admin.page.click(f"tr[data-recording='{recorded.recording_id}'] button.link")
        href = admin.page.get_attribute("#signed-link", "href")
        assert href and "X-Goog-Signature" in href
        mp4 = requests.get(href, timeout=10)
        assert mp4.status_code == 200 and mp4.content[4:8] == b"ftyp"
        # a token is bound to its operator: the admin's form does not work for support
        token = (
            re.search(r'name="token" value="([^"]+)"', admin.page.content())
            if admin.open(f"recordings?meeting={recorded.key}") == 200
            else None
        )
        assert token is not None
        stolen = support.page.request.post(
            support.base + f"recordings/{recorded.recording_id}/link", form={"token": token.group(1)}, fail_on_status_code=False
        )
        assert stolen.status == 403

        assert admin.open("privacy") == 200
        admin.page.fill("input[aria-label='erase email']", GRACE_EMAIL)
        admin.page.click("#erase")
        assert "erase grace@example.org" in admin.text("#sentence")
        assert fs.data(fs.meetings().document(recorded.key).get())["invitee_emails"] == [GRACE_EMAIL]  # not yet: only asked
        admin.page.click("#confirm")
        assert "done" in admin.text()
        assert fs.data(fs.meetings().document(recorded.key).get())["invitee_emails"] == []

        # --- the audit log: every access, by whom, never the data ---------------------------------------
        for operator, action, outcome in (
            (SUPPORT, "view_meeting", "ok"),
            (SUPPORT, "view_mcus", "ok"),
            (SUPPORT, "view_recordings", "ok"),
            (SUPPORT, "view_pbx", "ok"),
            (SUPPORT, "privacy_export", "refused"),
            (SUPPORT, "view_audit", "refused"),
            (SUPPORT, "recording_link", "refused"),
            (SUPPORT, "privacy_erase", "refused"),
            (ADMIN, "view_meeting", "ok"),
            (ADMIN, "recording_link", "ok"),
            (ADMIN, "privacy_erase", "ok"),
        ):
            assert has_entry(operator, action, outcome), (operator, action, outcome)
        held = repr(audit_entries())
        for personal in (ALICE, GRACE, GRACE_EMAIL, "127.0.0.1", recorded.key):
            assert personal not in held
        assert admin.open("audit") == 200
        log = admin.text("#audit")
        assert SUPPORT in log and "recording_link" in log and "refused" in log
        assert has_entry(ADMIN, "view_audit", "ok")

        # --- manual deletion of the PBX, confirmed, carried out by the tasks function ------------------
        recorded.leave()
        assert admin.open(f"pbxs/{pbx.pbx_id}") == 200
        admin.page.click("#delete-pbx")
        admin.page.click("#confirm")
        assert "queued" in admin.text("#result")
        wait_for("the PBX to be deleted", lambda: not fs.pbxs().document(pbx.pbx_id).get().exists, 30)
        assert has_entry(ADMIN, "pbx_delete", "queued")

        for who in (support, admin, nobody):
            assert who.cookies_set() == []
    finally:
        for who in (support, admin, nobody):
            who.close()
