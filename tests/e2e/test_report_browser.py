"""A real meeting in two headless Chromium instances, one of whom drops and comes back: the
organizer's report mail and the report the PBX simulator receives both show the reconnect and
connected times within 2 s of what the test measured."""

from __future__ import annotations

import email
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, drop_connections, join, launch
from tests.helpers import ext, wait_for

pytestmark = pytest.mark.e2e
TIMEOUT_S = 30


def _wait(pred: Any, what: str, timeout: float = TIMEOUT_S) -> Any:
    return wait_for(what, pred, timeout, every=0.1)


def _state(page: Page) -> str | None:
    return page.text_content("[data-testid=connection-state]")


def _count(page: Page) -> int:
    return int(page.text_content("[data-testid=participant-count]") or 0)


def test_report_after_a_drop_and_rejoin(playwright: Any, pbx: PbxClient, platform: Platform) -> None:
    org_email = f"ada-{secrets.token_hex(3)}@example.com"
    platform.register_pbx("pbx.example.com", pbx.pbx_id, pbx.api_secret)
    links = pbx.sync([ext("101", "Ada", "Lovelace", email=org_email)]).json()["extensions"][0]
    ada_ctx, grace_ctx = launch(playwright), launch(playwright)
    try:
        ada = join(ada_ctx, links["quick_meeting_organizer_url"], "Ada Lovelace")
        _wait(lambda: _state(ada) == "connected", "Ada to connect")
        ada_in = time.monotonic()
        grace = join(grace_ctx, links["quick_meeting_url"], "Grace Hopper")
        _wait(lambda: _state(grace) == "connected", "Grace to connect")
        grace_in = time.monotonic()
        _wait(lambda: _count(ada) == 2 and _count(grace) == 2, "both in the meeting")
        time.sleep(3)

        mcu_port = int(platform.endpoints["mcus"][0]["url"].rsplit(":", 1)[1].split("/")[0])
        grace_drop = time.monotonic()
        assert drop_connections(grace_ctx, mcu_port) == 1
        _wait(lambda: _state(grace) != "connected", "Grace to notice the drop", timeout=10)
        _wait(lambda: _state(grace) == "connected", "Grace to reconnect on her own")
        grace_back = time.monotonic()
        _wait(lambda: _count(ada) == 2, "Ada to see Grace back")
        time.sleep(3)

        grace.click("button[data-testid=leave]")
        grace_out = time.monotonic()
        _wait(lambda: _count(ada) == 1, "Ada to see Grace leave")
        time.sleep(1)
        ada.click("button[data-testid=leave]")
        ada_out = time.monotonic()
    finally:
        close(ada_ctx)
        close(grace_ctx)
    measured = {
        "Ada Lovelace": (ada_out - ada_in, 0),
        "Grace Hopper": ((grace_drop - grace_in) + (grace_out - grace_back), 1),
    }

    # the PBX simulator's received report
    inbox = platform.state_dir / "pbx-sim" / "reports" / "pbx.example.com"

    def pushed() -> dict[str, Any] | None:
        for path in inbox.glob("*.json") if inbox.exists() else []:
            body = json.loads(path.read_text())
            if body["pbx_meeting_id"] == "quick-101" and {p["name"] for p in body["participants"]} == set(measured):
                return dict(body)
        return None

    report = _wait(pushed, "the report at the PBX")
    for p in report["participants"]:
        seconds, reconnects = measured[p["name"]]
        assert p["reconnects"] == reconnects, report
        assert abs(p["connected_seconds"] - seconds) <= 2, (p, seconds)
    assert next(p for p in report["participants"] if p["name"] == "Ada Lovelace")["role"] == "organizer"

    # the organizer's mail says the same
    def mail() -> email.message.Message | None:
        for path in Path(platform.endpoints["smtp"]["inbox_dir"]).glob("*.eml"):
            msg = email.message_from_bytes(path.read_bytes())
            if org_email in (msg["To"] or "") and (msg["Subject"] or "").startswith("Meeting report"):
                return msg
        return None

    msg = _wait(mail, "the report mail")
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    for name, (seconds, reconnects) in measured.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"- {name}"))
        m = re.search(r"connected (\d+) min (\d+) s, reconnected (\d+) time", line)
        assert m, line
        assert abs(int(m[1]) * 60 + int(m[2]) - seconds) <= 2 and int(m[3]) == reconnects, (line, seconds)
    assert any(p.get_content_type() == "image/png" for p in msg.walk())
