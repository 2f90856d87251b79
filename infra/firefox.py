"""Headless Firefox (Debian's ``firefox-esr``) driven over Marionette (PyPI ``marionette_driver``),
with fake camera and microphone, loopback ICE, and every background service off: whatever
Firefox would fetch from Mozilla goes to a dead proxy on 127.0.0.1 instead. Its sound card is a
PulseAudio null sink of its own (Debian ``pulseaudio``): without an audio device Firefox never
starts a Web Audio context, so the prejoin's level meter would never move."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from marionette_driver.by import By
from marionette_driver.marionette import Marionette

from infra.netns import Namespace

FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
PULSEAUDIO = shutil.which("pulseaudio") or "/usr/bin/pulseaudio"

PREFS: dict[str, Any] = {
    # fake media, no prompts, loopback ICE with real addresses
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # nothing leaves the machine: every other request goes to a closed port on loopback
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.no_proxies_on": "127.0.0.1,localhost",
    "network.proxy.allow_hijacking_localhost": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.trr.mode": 5,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.newtabpage.enabled": False,
    "browser.ping-centre.telemetry": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "media.gmp-manager.url": "http://127.0.0.1:9/",
    "media.gmp-gmpopenh264.enabled": False,
    "security.OCSP.enabled": 0,
    "remote.prefs.recommended": True,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Firefox:
    """One headless Firefox with a profile of its own, one page (Marionette's window)."""

    def __init__(self, prefs: dict[str, Any] | None = None, namespace: Namespace | None = None) -> None:
        """``namespace``: Firefox runs in that network namespace (Marionette is reached inside it)."""
        self.profile = Path(tempfile.mkdtemp(prefix="wm-firefox-"))
        self.port = _free_port()
        prefs = {**PREFS, **(prefs or {}), "marionette.port": self.port}
        (self.profile / "user.js").write_text(
            "".join(f"user_pref({_js(k)}, {_js(v)});\n" for k, v in prefs.items()), encoding="utf-8"
        )
        self.sound = _SoundCard(self.profile / "pulse")
        self.process = subprocess.Popen(
            [
                *(namespace.prefix if namespace else []),
                FIREFOX,
                "--headless",
                "--marionette",
                "--no-remote",
                "--profile",
                str(self.profile),
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **self.sound.env},
        )
        with namespace.entered() if namespace else contextlib.nullcontext():
            self.client = Marionette(host="127.0.0.1", port=self.port, socket_timeout=60, startup_timeout=60)
            deadline = time.monotonic() + 60
            while True:
                try:
                    self.client.start_session()
                    break
                except Exception:  # noqa: BLE001 - Firefox is still starting up
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        self.close()
                        raise
                    time.sleep(0.5)
        self.client.timeout.script = 30

    def goto(self, url: str) -> None:
        self.client.navigate(url)

    def run(self, script: str, *args: Any) -> Any:
        """``script`` (a function body using ``arguments``) in the page's own scope."""
        return self.client.execute_script(script, script_args=list(args), sandbox=None, new_sandbox=False)

    def run_async(self, script: str, *args: Any) -> Any:
        """An async function body: its ``return`` value, awaited."""
        body = f"const resolve = arguments[arguments.length - 1]; (async () => {{ {script} }})(...arguments).then(resolve, (e) => resolve({{error: String(e)}}));"
        return self.client.execute_async_script(body, script_args=list(args), sandbox=None, new_sandbox=False)

    def click(self, css: str) -> None:
        self.client.find_element(By.CSS_SELECTOR, css).click()

    def fill(self, css: str, text: str) -> None:
        element = self.client.find_element(By.CSS_SELECTOR, css)
        element.clear()
        element.send_keys(text)

    def text(self, css: str) -> str:
        return str(self.run("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css) or "")

    def join(self, url: str, name: str) -> None:
        self.goto(url)
        self.fill("input[name=display_name]", name)
        self.click("button[data-testid=join]")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_session()
        _end(self.process)
        self.sound.close()
        shutil.rmtree(self.profile, ignore_errors=True)


class _SoundCard:
    """A PulseAudio daemon with one null sink, reachable only on a unix socket in ``folder``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.socket = folder / "native"
        env = {**os.environ, "HOME": str(folder), "XDG_RUNTIME_DIR": str(folder)}
        self.process = subprocess.Popen(
            [
                PULSEAUDIO, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--log-target=stderr",
                "-F", "/dev/null",
                "--load=module-null-sink sink_name=speakers",
                f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                raise RuntimeError("PulseAudio did not start")
            time.sleep(0.1)
        self.env = {"PULSE_SERVER": f"unix:{self.socket}"}

    def close(self) -> None:
        _end(self.process)


def _end(process: subprocess.Popen[bytes]) -> None:
    """Terminate, and kill what does not go within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _js(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
