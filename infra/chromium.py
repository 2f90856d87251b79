"""Headless Chromium (Debian's package) driven by Playwright, with fake camera, microphone and
screen: what the browser tests and the screenshot script run."""

from __future__ import annotations

import shutil
import tempfile
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


def launch(playwright: Any, **options: Any) -> Any:
    """One Chromium instance with a profile folder of its own (``context.profile``); ``options``
    for Playwright's context (a viewport, a device scale)."""
    profile = tempfile.mkdtemp(prefix="wm-chromium-")
    context = playwright.chromium.launch_persistent_context(
        profile, executable_path=CHROMIUM, args=FLAGS, headless=True, **options
    )
    context.profile = profile
    return context


def close(context: Any) -> None:
    context.close()
    shutil.rmtree(context.profile, ignore_errors=True)
