"""Headless Chromium (Debian's package) driven by Playwright, with fake camera, microphone and
screen: what the browser tests and the screenshot script run."""

from __future__ import annotations

import shlex
import shutil
import tempfile
from pathlib import Path
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


# an init script: every peer connection of the page may use relay (TURN) candidates only
RELAY_ONLY = """(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (config = {}) { return new Native({ ...config, iceTransportPolicy: "relay" }); };
  window.RTCPeerConnection.prototype = Native.prototype;
})();"""


def launch(playwright: Any, prefix: list[str] | None = None, args_extra: list[str] | None = None, **options: Any) -> Any:
    """One Chromium instance with a profile folder of its own (``context.profile``); ``options``
    for Playwright's context (a viewport, a device scale). ``prefix`` runs the browser under a
    command, such as ``ip netns exec <namespace>`` (Playwright talks to it over a pipe)."""
    profile = tempfile.mkdtemp(prefix="wm-chromium-")
    executable = CHROMIUM
    if prefix:
        wrapper = Path(profile) / "chromium.sh"
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.join([*prefix, CHROMIUM])} "$@"\n')
        wrapper.chmod(0o755)
        executable = str(wrapper)
    context = playwright.chromium.launch_persistent_context(
        str(Path(profile) / "data"), executable_path=executable, args=FLAGS + (args_extra or []), headless=True, **options
    )
    context.profile = profile
    return context


def close(context: Any) -> None:
    context.close()
    shutil.rmtree(context.profile, ignore_errors=True)
