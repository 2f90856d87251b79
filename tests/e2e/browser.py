"""Headless Chromium (Debian's package) driven by Playwright, with fake camera and microphone."""

from __future__ import annotations

import shutil
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--allow-loopback-in-peer-connection",  # else no ICE candidates on loopback
    "--autoplay-policy=no-user-gesture-required",
]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)


def join(browser: Any, url: str, name: str) -> Any:
    """A new browser context opens ``url`` and joins as ``name``; returns the page."""
    context = browser.new_context()
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
