"""Screenshots of the meeting room for docs/: a local platform, three people in headless Chromium
(the organizer sharing a screen, a chat going on), the room at desktop width and at a phone's
(390 px, the chat tab open), the prejoin screen and the lobby; and the operator console on that
meeting as support (redacted) and as an admin (in full, the audit log, a confirmation step).

    make screenshots          (or: .venv/bin/python -m infra.screenshots [--out docs/screenshots] [--only console])
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright
from rich.console import Console

from infra.chromium import close, launch
from infra.launcher import DEV_LICENSE_KEYS, Platform
from infra.pbx_client import PbxClient

ROOT = Path(__file__).resolve().parent.parent
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 30_000


def _wait(page: Page, js: str) -> None:
    """Until ``js`` is true in the page (polled: the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not page.evaluate(js):
        if time.monotonic() > deadline:
            raise TimeoutError(js)
        time.sleep(0.2)


def _join(context: Any, url: str, name: str, people: int | None = None) -> Page:
    page = context.new_page()
    page.goto(url)
    page.fill("input[name=display_name]", name)
    page.click("button[data-testid=join]")
    if people is not None:
        _wait(page, f"document.querySelector('[data-testid=participant-count]')?.textContent === '{people}'")
    return page


def console_shots(pw: Any, platform: Platform, key: str, out: Path) -> list[Path]:
    """The console on a live meeting, signed in through the dev sign-in."""
    base, password = platform.endpoints["console"]["url"], platform.endpoints["console"]["password"]
    shots = []
    for who in ("support@webmeeting.local", "admin@webmeeting.local"):
        ctx = launch(pw, viewport={"width": 1280, "height": 800}, http_credentials={"username": who, "password": password})
        try:
            page = ctx.new_page()
            role = who.split("@")[0]
            page.goto(f"{base}meetings?key={key}")
            shots.append(_save(page, out / f"console-meeting-{role}.png"))
            if role == "support":
                page.goto(f"{base}mcus")
                shots.append(_save(page, out / "console-mcus-support.png"))
            else:
                page.goto(f"{base}privacy")
                page.fill("input[aria-label='erase email']", "grace@example.org")
                page.click("#erase")
                shots.append(_save(page, out / "console-confirm-admin.png"))
                page.goto(f"{base}audit")
                shots.append(_save(page, out / "console-audit-admin.png"))
        finally:
            close(ctx)
    return shots


def shoot(out: Path, only: str = "") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    console = Console()
    state = Path(tempfile.mkdtemp(prefix="wm-shots-"))
    platform = Platform(state, project="wm-screenshots")
    shots: list[Path] = []
    with console.status("starting the local platform"):
        platform.start()
    try:
        pbx = PbxClient(platform.endpoints["pbx_api"])
        assert pbx.activate(DEV_LICENSE_KEYS[0], "shots.example.com", "meet.shots.example.com").status_code == 201
        people = [
            {"number": "101", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        ]
        quick = pbx.sync(people).json()["extensions"][0]
        url, organizer_url = quick["quick_meeting_url"], quick["quick_meeting_organizer_url"]
        with sync_playwright() as pw:
            desk = launch(pw, viewport=DESKTOP)
            phone = launch(pw, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            try:
                if only == "console":
                    _join(desk, organizer_url, "Ada Lovelace", 1)
                    _join(desk, url, "Grace Hopper", 2)
                    shots += console_shots(pw, platform, url.rsplit("/", 1)[1], out)
                else:
                    shots += room_shots(desk, phone, url, organizer_url, out)
                    shots += console_shots(pw, platform, url.rsplit("/", 1)[1], out)
            finally:
                close(desk)
                close(phone)
    finally:
        platform.stop()
    for path in shots:
        console.print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return shots


def room_shots(desk: Any, phone: Any, url: str, organizer_url: str, out: Path) -> list[Path]:
    """The room: prejoin, three people with a shared screen and chat, the lobby from both sides."""
    shots: list[Path] = []
    prejoin = desk.new_page()
    prejoin.goto(url)
    _wait(prejoin, "document.getElementById('preview').videoWidth > 0")
    prejoin.fill("input[name=display_name]", "Grace Hopper")
    time.sleep(1)
    shots.append(_save(prejoin, out / "prejoin-desktop.png"))
    prejoin.close()

    ada = _join(desk, organizer_url, "Ada Lovelace", 1)
    grace = _join(desk, url, "Grace Hopper", 2)
    alan = _join(phone, url, "Alan Turing", 3)
    alan.click("[data-testid=tab-chat]")  # a phone shows one panel at a time
    ada.click("button[data-testid=share-screen]")
    _wait(alan, "document.querySelector('video[data-screen-of]')?.videoWidth > 0")
    for page, text in (
        (grace, "Good morning! The slides are up."),
        (ada, "Thanks for joining — we start with the roadmap."),
        (alan, "Hi all, joining from my phone 👋"),
    ):
        page.fill("textarea[data-testid=chat-input]", text)
        page.click("button[data-testid=chat-send]")
        time.sleep(0.4)
    grace.click("button[data-testid=raise-hand]")
    _wait(ada, "document.querySelectorAll('[data-testid=chat-message]').length === 3")
    time.sleep(2)  # the videos settle
    shots.append(_save(ada, out / "room-desktop.png"))
    shots.append(_save(alan, out / "room-phone.png"))

    ada.click("button[data-testid=lobby-toggle]")
    _wait(ada, "document.querySelector('[data-testid=lobby-toggle]').getAttribute('aria-pressed') === 'true'")
    waiting = _join(phone, url, "Katherine Johnson")
    _wait(waiting, "!document.getElementById('lobby-screen').hidden")
    _wait(ada, "document.querySelector('[data-testid=lobby-entry]') !== null")
    time.sleep(1)
    shots.append(_save(waiting, out / "lobby-phone.png"))
    shots.append(_save(ada, out / "lobby-organizer-desktop.png"))
    return shots


def _save(page: Page, path: Path) -> Path:
    page.screenshot(path=str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--only", choices=["console"], default="", help="only the operator console's")
    args = parser.parse_args()
    shoot(args.out, args.only)


if __name__ == "__main__":
    main()
