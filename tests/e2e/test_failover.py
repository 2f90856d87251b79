"""An MCU dies mid-meeting: both people are back in the same meeting on the next closest MCU
within 10 s, seeing each other again, and the session counts them as reconnected."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from infra.launcher import Platform
from tests.e2e.browser import close, join, launch
from tests.e2e.test_meeting_browser import _assert_media, _back_in_meeting
from tests.helpers import ext, meeting_events, new_pbx
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.e2e
FAILOVER_BUDGET_S = 10


@pytest.fixture
def two_mcus(platform: Platform) -> Iterator[dict[str, dict[str, Any]]]:
    """Two MCUs of the test's own (London and Frankfurt); the platform's two are set aside."""
    mcus = fs.client().collection("mcus")
    for mcu_id in ("mcu-eu-1", "mcu-us-1"):
        mcus.document(mcu_id).update({"status": "deprecated"})
    started = {
        "london": platform.start_mcu("mcu-fo-london", "europe-west2", 51.5074, -0.1278),
        "frankfurt": platform.start_mcu("mcu-fo-frankfurt", "europe-west3", 50.1109, 8.6821),
    }
    platform.wait_registered({"mcu-fo-london", "mcu-fo-frankfurt"})
    try:
        yield started
    finally:
        for mcu_id in ("mcu-fo-london", "mcu-fo-frankfurt"):
            proc = next((p for p in platform.procs if p.name == f"mcu-{mcu_id}"), None)
            if proc:
                if proc.popen.poll() is None:
                    os.killpg(proc.popen.pid, signal.SIGTERM)
                    proc.popen.wait(timeout=20)
                platform.procs.remove(proc)
            mcus.document(mcu_id).delete()
        for mcu_id in ("mcu-eu-1", "mcu-us-1"):
            mcus.document(mcu_id).update({"status": "active"})


def test_both_land_on_the_next_closest_mcu_and_see_each_other(
    platform: Platform, api: str, license_key: str, two_mcus: dict[str, dict[str, Any]]
) -> None:
    pbx = new_pbx(api, license_key, source_ip="127.0.0.2")  # Paris: London is closest, then Frankfurt
    assert fs.data(fs.pbxs().document(pbx.pbx_id).get())["mcu_id"] == "mcu-fo-london"
    url = pbx.sync([ext("101")]).json()["extensions"][0]["quick_meeting_url"]
    key = url.rsplit("/", 1)[1]
    with sync_playwright() as pw:
        contexts = [launch(pw), launch(pw)]
        try:
            pages = [join(c, url, n) for c, n in zip(contexts, ["Ada", "Grace"], strict=True)]
            for page in pages:
                _assert_media(page, 1)
            assert fs.data(fs.client().collection("sessions").document(key).get())["mcu_id"] == "mcu-fo-london"

            london = next(p for p in platform.procs if p.name == "mcu-mcu-fo-london")
            os.killpg(london.popen.pid, signal.SIGKILL)  # the VM dies: no goodbye
            elapsed = _back_in_meeting(pages, time.monotonic(), FAILOVER_BUDGET_S)  # seeing and hearing each other again
            print(f"failover: both back with media {elapsed:.1f} s after the MCU died")
        finally:
            for c in contexts:
                close(c)
    session = fs.data(fs.client().collection("sessions").document(key).get())
    assert session["mcu_id"] == "mcu-fo-frankfurt"
    events = meeting_events(key)
    reconnected = sorted(e["name"] for e in events if e["type"] == "reconnected" and e["mcu_id"] == "mcu-fo-frankfurt")
    assert reconnected == ["Ada", "Grace"]
