"""Browser-test helpers on headless Chromium (``infra.chromium``): joining, frame counts,
network drops."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

from infra.chromium import CHROMIUM, FLAGS, close, launch
from tests.helpers import wait_for

__all__ = ["CHROMIUM", "FLAGS", "close", "launch", "in_meeting", "join", "drop_connections"]


def in_meeting(page: Any, people: int, timeout_s: float = 20) -> str:
    """Wait until ``page`` is connected with ``people`` in the room; returns its participant id."""
    wait_for(
        "the room",
        lambda: (
            page.text_content("[data-testid=connection-state]") == "connected"
            and page.text_content("[data-testid=participant-count]") == str(people)
        ),
        timeout_s,
    )
    return str(page.evaluate("window.webmeeting.participantId()"))


def join(context: Any, url: str, name: str) -> Any:
    """Open ``url`` in ``context`` and join as ``name``; returns the page."""
    page = context.new_page()
    page.goto(url)
    page.fill("input[name=display_name]", name)
    page.click("button[data-testid=join]")
    return page


FRAME_COUNTS_JS = """async (ms) => {
  const videos = [...document.querySelectorAll('video[data-participant-id]')];
  const counts = {};
  await Promise.all(videos.map((v) => new Promise((resolve) => {
    const id = v.dataset.participantId;
    counts[id] = {frames: 0, width: 0, height: 0};
    const end = performance.now() + ms;
    const tick = (now, meta) => {
      counts[id].frames += 1; counts[id].width = meta.width; counts[id].height = meta.height;
      if (now < end) v.requestVideoFrameCallback(tick); else resolve();
    };
    v.requestVideoFrameCallback(tick);
    setTimeout(resolve, ms + 500);
  })));
  return counts;
}"""


def drop_connections(context: Any, port: int) -> int:
    """Cut this browser's TCP connections to ``port`` as a network drop would (``ss -K``).
    Returns how many were cut."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if context.profile.encode() in fh.read():
                        pids.add(int(entry))
            except OSError:
                continue
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", "dport", "=", f":{port}"], capture_output=True, text=True, check=True
    ).stdout
    cut = 0
    for line in listing.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            local_port = line.split()[2].rsplit(":", 1)[1]
            subprocess.run(
                ["ss", "-K", "dport", "=", f":{port}", "sport", "=", f":{local_port}"], capture_output=True, check=True
            )
            cut += 1
    return cut
