"""Browsers on a network without UDP: each runs in a network namespace of its own whose only way
out is TCP to the platform's public ports (the portal, the MCUs' signalling, the relay). They
join, and their media goes through coturn over TCP, or over TLS where only the TLS port is
open (a network that lets nothing but 443 out)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from infra.firefox import Firefox
from infra.launcher import Platform
from infra.netns import Namespace, TcpGate
from infra.pbx_client import PbxClient
from tests.e2e.browser import close, in_meeting, join, launch
from tests.helpers import ext, wait_for

pytestmark = pytest.mark.network
TIMEOUT_S = 30


def _ports(platform: Platform, relay: str) -> list[int]:
    """The portal, every MCU's signalling, and the relay's TCP (``tcp``) or TLS (``tls``) port."""
    turn = platform.endpoints["turn"]
    web = [urlsplit(platform.endpoints["portal"]).port] + [urlsplit(m["url"]).port for m in platform.endpoints["mcus"]]
    return [int(p) for p in web if p] + [int(turn["port"] if relay == "tcp" else turn["tls_port"])]


@pytest.fixture
def no_udp(platform: Platform) -> Iterator[Any]:
    """A factory of UDP-less namespaces: ``no_udp("tcp")`` or ``no_udp("tls")``."""
    made: list[tuple[Namespace, TcpGate]] = []

    def make(relay: str) -> Namespace:
        namespace = Namespace()
        made.append((namespace, TcpGate(namespace, _ports(platform, relay))))
        return namespace

    yield make
    for namespace, gate in made:
        gate.close()
        namespace.close()


def _flowing(page: Page, publisher: str) -> bool:
    entry = page.evaluate("window.webmeeting.stats()").get(publisher) or {}
    return bool((entry.get("video") or {}).get("framesDecoded", 0) > 30 and (entry.get("audio") or {}).get("packets", 0) > 30)


def _fox_flowing(fox: Firefox, publisher: str) -> bool:
    entry = fox.run_async("return await window.webmeeting.stats();").get(publisher) or {}
    return bool((entry.get("video") or {}).get("framesDecoded", 0) > 30 and (entry.get("audio") or {}).get("packets", 0) > 30)


def test_udp_blocked_chromium_and_firefox_meet_through_turn_over_tcp(playwright: Any, pbx: PbxClient, no_udp: Any) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    home = launch(playwright)  # the organizer, on an open network
    walled = launch(playwright, prefix=no_udp("tcp").prefix)
    fox = Firefox(namespace=no_udp("tcp"))
    try:
        ada = join(home, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        grace = join(walled, quick["quick_meeting_url"], "Grace")
        grace_id = in_meeting(grace, 2, TIMEOUT_S)
        fox.join(quick["quick_meeting_url"], "Fox")
        wait_for("Firefox in", lambda: fox.text("[data-testid=participant-count]") == "3", TIMEOUT_S)
        fox_id = str(fox.run("return window.webmeeting.participantId();"))
        for page, others in ((ada, (grace_id, fox_id)), (grace, (ada_id, fox_id))):
            for other in others:
                wait_for(f"media from {other}", lambda p=page, o=other: _flowing(p, o), TIMEOUT_S)
        for other in (ada_id, grace_id):
            wait_for(f"media in Firefox from {other}", lambda o=other: _fox_flowing(fox, o), TIMEOUT_S)
        # the walled browsers' connections all go through the relay over TCP
        for routes in (grace.evaluate("window.webmeeting.routes()"), fox.run_async("return await window.webmeeting.routes();")):
            assert routes and all(r["local"] == "relay" and r["protocol"] == "tcp" for r in routes), routes
        # while the organizer's are direct (on a loaded machine Chromium may nominate a relay pair first,
        # whose checks answered sooner, and move to the higher-priority direct pair once its checks do)
        wait_for(
            "the organizer's connections to be direct",
            lambda: (r := ada.evaluate("window.webmeeting.routes()")) and all(x["local"] != "relay" for x in r),
            TIMEOUT_S,
        )
    finally:
        fox.close()
        close(walled)
        close(home)


def test_only_tls_out_chromium_meets_through_turn_over_tls(
    playwright: Any, pbx: PbxClient, platform: Platform, no_udp: Any
) -> None:
    quick = pbx.sync([ext("101")]).json()["extensions"][0]
    home = launch(playwright)
    # the local relay's certificate is its own: this browser trusts exactly that key (production's
    # relay has a publicly trusted one)
    trust = f"--ignore-certificate-errors-spki-list={platform.endpoints['turn']['tls_spki']}"
    walled = launch(playwright, prefix=no_udp("tls").prefix, args_extra=[trust])
    try:
        ada = join(home, quick["quick_meeting_organizer_url"], "Ada")
        ada_id = in_meeting(ada, 1, TIMEOUT_S)
        grace = join(walled, quick["quick_meeting_url"], "Grace")
        grace_id = in_meeting(grace, 2, TIMEOUT_S)
        wait_for("media at Ada", lambda: _flowing(ada, grace_id), TIMEOUT_S)
        wait_for("media at Grace", lambda: _flowing(grace, ada_id), TIMEOUT_S)
        routes = grace.evaluate("window.webmeeting.routes()")
        assert routes and all(r["local"] == "relay" and r["protocol"] == "tls" for r in routes), routes
    finally:
        close(walled)
        close(home)
