"""`make run` heals like production: SIGKILL the MCU serving a meeting and the launcher restarts it
(as the managed instance group would) while the rest keeps running; two browsers in that meeting
carry on within 10 s."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import sync_playwright

from tests.e2e.browser import close, join, launch
from tests.e2e.test_meeting_browser import _assert_media, _back_in_meeting, _wait
from tests.platform.launch import start_make_run

pytestmark = [pytest.mark.platform, pytest.mark.e2e]
CARRY_ON_BUDGET_S = 10


def _supervisor_pid(mcu: dict[str, str]) -> int:
    """The MCU supervisor process serving ``mcu`` under this `make run`: its environment names the
    id and the port (other platforms on this machine, such as the test session's, may run an MCU
    of the same id)."""
    port = urlsplit(mcu["health"]).port
    wanted = {f"MCU_ID={mcu['id']}".encode(), f"MCU_PORT={port}".encode()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = set((proc / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if cmdline[-3:-1] == [b"-m", b"mcu_vm"] and wanted <= environ:
            return int(proc.name)
    raise AssertionError(f"no process for MCU {mcu['id']} on port {port}")


def test_a_killed_mcu_is_restarted_and_the_meeting_carries_on(tmp_path: Path) -> None:
    proc, state, out = start_make_run(tmp_path)
    try:
        ep = json.loads((state / "endpoints.json").read_text())
        url = dict(re.findall(r"^\s+(\d+)\s+(http://127\.0\.0\.1:\d+/meet/\S+)", out.read_text(), re.M))["101"]
        key = url.rsplit("/", 1)[1]
        with sync_playwright() as pw:
            contexts = [launch(pw), launch(pw)]
            try:
                pages = [join(c, url, n) for c, n in zip(contexts, ["Ada", "Grace"], strict=True)]
                for page in pages:
                    _assert_media(page, 1)

                def serving() -> dict[str, str] | None:
                    for mcu in ep["mcus"]:
                        workers = requests.get(mcu["status"], timeout=5).json()["workers"]
                        if any(key in w["live"] for w in workers):
                            return dict(mcu)
                    return None

                mcu = _wait(serving, "the MCU serving the meeting", timeout=10)
                os.kill(_supervisor_pid(mcu), signal.SIGKILL)  # the VM dies: no goodbye
                elapsed = _back_in_meeting(pages, time.monotonic(), CARRY_ON_BUDGET_S)
                print(f"heal: both back in the meeting with media {elapsed:.1f} s after the MCU was killed")
            finally:
                for c in contexts:
                    close(c)

        # the killed MCU is back where it was, and the platform never stopped
        def up() -> bool:
            try:
                return bool(requests.get(mcu["health"], timeout=2).json()["status"] == "up")
            except requests.RequestException:
                return False

        _wait(up, "the MCU restarted", timeout=30)
        assert proc.poll() is None, out.read_text()
        _wait(lambda: f"mcu-{mcu['id']} had stopped: restarted" in out.read_text(), "the launcher to say so", timeout=10)
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert not (state / "endpoints.json").exists()
