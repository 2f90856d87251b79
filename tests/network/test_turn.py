"""TURN: browsers that may use nothing but a relay (``iceTransportPolicy: "relay"`` in Chromium,
``media.peerconnection.ice.relay_only`` in Firefox) meet through the local coturn, with the
short-lived credentials the portal issues with each join for that MCU."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from aioice import stun
from aioice.turn import create_turn_endpoint
from playwright.sync_api import Page

from infra.chromium import RELAY_ONLY
from infra.firefox import Firefox
from infra.launcher import Platform
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, in_meeting, join, launch
from tests.helpers import ext, join_meeting, wait_for
from webmeeting import turn

pytestmark = pytest.mark.network
TIMEOUT_S = 25


def test_each_join_carries_turn_credentials_for_its_mcu(platform: Platform, pbx: PbxClient) -> None:
    key = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    joined = join_meeting(platform, key, "Ada")
    (server,) = joined["ice_servers"]
    assert server["urls"] == platform.endpoints["turn"]["urls"]
    expiry, pid = server["username"].split(":")
    assert pid == joined["participant_id"] and int(expiry) - datetime.now(UTC).timestamp() <= turn.TTL_S + 5
    assert turn.valid(platform.turn_secret, server["username"], server["credential"], datetime.now(UTC))
    assert not turn.valid("another secret", server["username"], server["credential"], datetime.now(UTC))


def _flowing(page: Page, publisher: str) -> bool:
    entry = page.evaluate("window.webmeeting.stats()").get(publisher) or {}
    return bool((entry.get("video") or {}).get("framesDecoded", 0) > 30 and (entry.get("audio") or {}).get("packets", 0) > 30)


def test_relay_only_browsers_meet_through_turn(playwright: Any, pbx: PbxClient) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    browser = launch(playwright)
    browser.add_init_script(RELAY_ONLY)
    fox = Firefox({"media.peerconnection.ice.relay_only": True})
    try:
        ada = join(browser, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        grace = join(browser, quick["quick_meeting_url"], "Grace")
        grace_id = in_meeting(grace, 2, TIMEOUT_S)
        fox.join(quick["quick_meeting_url"], "Fox")
        wait_for("Firefox in", lambda: fox.text("[data-testid=participant-count]") == "3", TIMEOUT_S)
        fox_id = str(fox.run("return window.webmeeting.participantId();"))
        for page, others in ((ada, (grace_id, fox_id)), (grace, (ada_id, fox_id))):
            for other in others:
                wait_for(f"media from {other}", lambda p=page, o=other: _flowing(p, o), TIMEOUT_S)
        fox_stats = lambda: fox.run_async("return await window.webmeeting.stats();")  # noqa: E731
        wait_for(
            "media in Firefox",
            lambda: all(((fox_stats().get(o) or {}).get("video") or {}).get("framesDecoded", 0) > 30 for o in (ada_id, grace_id)),
            TIMEOUT_S,
        )
        # every connection goes through the relay
        for routes in (ada.evaluate("window.webmeeting.routes()"), fox.run_async("return await window.webmeeting.routes();")):
            assert routes and all(r["local"] == "relay" for r in routes), routes
    finally:
        fox.close()
        close(browser)


# the relay reached over TCP only (as from a network that lets no UDP out)
RELAY_OVER_TCP = """(() => {
  const Native = window.RTCPeerConnection;
  const tcp = (servers = []) => servers.map((s) => ({ ...s, urls: [].concat(s.urls).filter((u) => u.startsWith("turn:") && u.endsWith("transport=tcp")) }))
    .filter((s) => s.urls.length);
  window.RTCPeerConnection = function (config = {}) {
    return new Native({ ...config, iceServers: tcp(config.iceServers), iceTransportPolicy: "relay" });
  };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"""


def test_turn_over_tcp(playwright: Any, pbx: PbxClient) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    browser = launch(playwright)
    browser.add_init_script(RELAY_OVER_TCP)
    try:
        ada = join(browser, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        grace = join(browser, quick["quick_meeting_url"], "Grace")
        grace_id = in_meeting(grace, 2, TIMEOUT_S)
        wait_for("media at Ada", lambda: _flowing(ada, grace_id), TIMEOUT_S)
        wait_for("media at Grace", lambda: _flowing(grace, ada_id), TIMEOUT_S)
        routes = ada.evaluate("window.webmeeting.routes()")
        assert routes and all(r["local"] == "relay" and r["protocol"] == "tcp" for r in routes), routes
    finally:
        close(browser)


def test_the_relay_takes_only_valid_credentials_and_reaches_only_the_mcus(platform: Platform, pbx: PbxClient) -> None:
    """No open relay: a TURN allocation needs this platform's credentials, and relays to the
    MCUs' address only (elsewhere, even another loopback address, is refused)."""
    key = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"].rsplit("/", 1)[1]
    (server,) = join_meeting(platform, key, "Mallory")["ice_servers"]
    address = ("127.0.0.1", int(platform.endpoints["turn"]["port"]))

    async def run() -> tuple[bool, bool, bool]:
        try:
            await create_turn_endpoint(asyncio.DatagramProtocol, address, server["username"], "not the credential")
            forged = True
        except Exception:  # noqa: BLE001 - the allocation is refused (401)
            forged = False
        transport, _ = await create_turn_endpoint(asyncio.DatagramProtocol, address, server["username"], server["credential"])
        inner = transport._TurnTransport__inner_protocol  # type: ignore[attr-defined]
        try:
            await inner.channel_bind(0x4000, ("127.0.0.1", 9))  # the MCUs' address
            to_mcu = True
        except stun.TransactionFailed:
            to_mcu = False
        try:
            await inner.channel_bind(0x4001, ("127.0.0.2", 9))  # anywhere else
            elsewhere = True
        except stun.TransactionFailed:
            elsewhere = False
        transport.close()
        return forged, to_mcu, elsewhere

    forged, to_mcu, elsewhere = asyncio.run(run())
    assert not forged and to_mcu and not elsewhere
